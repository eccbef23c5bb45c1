"""1 device vs 4 fake CPU devices vs 2 processes x 2 devices: the same population trains the
same, and a checkpoint saved on 4 devices restores on 1."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from arith_jax import evaluate_checkpoint
from tiny_config import tiny_config

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp, name, devices, processes=1, restore_from=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    out = str(tmp / f"{name}.npz")
    workdir = restore_from or str(tmp / name)
    port = _free_port()
    procs = []
    for pid in range(processes):
        cmd = [sys.executable, WORKER, "--workdir", workdir, "--out", out] + (["--restore_only"] if restore_from else [])
        if processes > 1:
            cmd += ["--coordinator", f"127.0.0.1:{port}", "--num_processes", str(processes), "--process_id", str(pid)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for p in procs:
        output, _ = p.communicate(timeout=600)
        assert p.returncode == 0, output[-4000:]
    with open(out + ".records.json") as f:
        records = json.load(f)
    return dict(np.load(out)), records, workdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    return {
        "1 device": _launch(tmp, "one", 1),
        "4 devices": _launch(tmp, "four", 4),
        "2 processes x 2 devices": _launch(tmp, "two_by_two", 2, processes=2),
    }


@pytest.mark.slow
@pytest.mark.parametrize("other", ["4 devices", "2 processes x 2 devices"])
def test_same_losses_and_parameters_on_any_device_layout(runs, other):
    base, base_records, _ = runs["1 device"]
    got, got_records, _ = runs[other]
    expected_devices = {"4 devices": [4, 1], "2 processes x 2 devices": [4, 2]}[other]
    assert got["__devices__"].tolist() == expected_devices
    assert base.keys() == got.keys()
    np.testing.assert_allclose(got["__loss__"], base["__loss__"], rtol=1e-4)
    # Another device layout reduces in another order, so floats differ in the last bits. The
    # key bias has an exactly-zero true gradient (softmax ignores a shift shared by all keys)
    # and Adam scales its rounding noise up to steps of ~lr: hence an absolute bound of one
    # learning rate (1e-3); every other parameter agrees far more closely.
    for key in base:
        if not key.startswith("__"):
            np.testing.assert_allclose(got[key], base[key], rtol=1e-4, atol=1e-3, err_msg=key)
    acc = lambda records: {(r["member_name"], r["length"]): r["acc"] for r in records}
    assert acc(got_records) == acc(base_records)


@pytest.mark.slow
def test_checkpoint_saved_on_four_devices_restores_on_one(runs):
    saved, _, workdir = runs["4 devices"]
    assert jax.device_count() == 1
    restored_runs, step, _ = evaluate_checkpoint.restore(tiny_config(log__tensorboard=False), workdir)
    assert step == tiny_config().train.steps
    params = jax.device_get(restored_runs[0].state["params"])
    restored = {jax.tree_util.keystr(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(params)}
    assert restored.keys() == {k for k in saved if not k.startswith("__")}
    for key, leaf in restored.items():
        np.testing.assert_array_equal(leaf, saved[key], err_msg=key)


@pytest.mark.slow
def test_checkpoint_saved_on_one_device_restores_on_four(runs, tmp_path):
    saved, saved_records, workdir = runs["1 device"]
    restored, records, _ = _launch(tmp_path, "one_on_four", 4, restore_from=workdir)
    assert restored["__devices__"].tolist() == [4, 1]
    for key in saved:
        if not key.startswith("__"):
            np.testing.assert_array_equal(restored[key], saved[key], err_msg=key)
    acc = lambda rs: {(r["member_name"], r["length"]): r["acc"] for r in rs}
    assert acc(records) == acc(saved_records)  # evaluated on 4 devices, the same answers
