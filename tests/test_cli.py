"""The command line on a trained tiny workdir: eval, report, analyze, data."""

import json
import os
import re
import subprocess
import sys

import pytest

from arith_jax import train
from tiny_config import tiny_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def _cli(*args, expect=0):
    proc = subprocess.run([sys.executable, "-m", "arith_jax.cli", *args], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == expect, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cli") / "run")
    train.train(tiny_config(train__steps=20), path, console=False)
    return path


def test_eval_measures_the_latest_checkpoint_at_any_lengths(workdir):
    out = _cli("eval", f"--workdir={workdir}", "--lengths=1,4").stdout
    assert "p=7" in out and "p=11" in out
    with open(os.path.join(workdir, "eval", "step_20.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert {(r["member_name"], r["length"]) for r in records} == {(m, n) for m in ("p=7", "p=11") for n in (1, 4)}
    assert all(r["step"] == 20 and 0.0 <= r["acc"] <= 1.0 for r in records)


def test_eval_beyond_the_padded_width_is_a_named_error(workdir):
    err = _cli("eval", f"--workdir={workdir}", "--lengths=9", expect=2).stderr.strip().splitlines()[-1]
    assert err.startswith("error: task.format: ")


def test_eval_without_a_checkpoint_is_a_named_error(tmp_path):
    err = _cli("eval", f"--workdir={tmp_path}", expect=2).stderr.strip().splitlines()[-1]
    assert err == f"error: --workdir: {tmp_path} holds no config.json; train there first"


def test_report_is_written_and_rerunnable(workdir):
    for _ in range(2):
        out = _cli("report", f"--workdir={workdir}").stdout
    assert out.strip().endswith("report.md")
    with open(os.path.join(workdir, "report", "report.md")) as f:
        text = f.read()
    assert "p=7" in text and "p=11" in text


def test_analyze_writes_both_plots_the_unseen_places_and_the_attention_for_each_member(workdir):
    _cli("analyze", f"--workdir={workdir}")
    for member in ("p=7", "p=11"):
        for plot in ("answer_positions.png", "pca_final_token.png"):
            with open(os.path.join(workdir, "report", "analysis", member, plot), "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        for record in ("unseen_places.json", "attention.json", "unseen_digits.json"):
            with open(os.path.join(workdir, "report", "analysis", member, record)) as f:
                assert json.load(f)["member"] == member


def test_data_prints_decoded_examples_that_are_right(tmp_path):
    out = _cli("data", f"--config={CONFIGS}/ijcai2024_addition.py", "--n=12", "--raw").stdout.strip().splitlines()
    assert len(out) == 12
    for line in out:
        match = re.match(r"^(\d+) \+ (\d+) = (\d+)\s+(\S+)$", line)
        assert match, line
        a, b, c, raw = match.groups()
        assert int(a) + int(b) == int(c)
        assert raw == a.zfill(5) + b.zfill(5) + c.zfill(6)[::-1]  # the IJCAI-2024 layout


def test_data_for_a_modular_task_names_the_modulus():
    out = _cli("data", "--config.task.moduli=(97,)", "--n=5").stdout.strip().splitlines()
    for line in out:
        a, b, p, c = map(int, re.match(r"^(\d+) \+ (\d+) \(mod (\d+)\) = (\d+)$", line).groups())
        assert p == 97 and (a + b) % 97 == c


def test_sigterm_saves_and_says_how_to_resume(tmp_path):
    import signal

    from arith_jax import checkpoint as ckpt_lib
    workdir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "arith_jax.cli", "train", f"--workdir={workdir}", "--config.train.steps=5000",
         "--config.train.steps_per_dispatch=10", "--config.eval.every=0", "--config.checkpoint.every=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    for line in proc.stdout:  # plain progress lines: not a terminal
        if line.startswith("step "):
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err[-3000:]  # EXIT_RETRY: the same command resumes
    message = err.strip().splitlines()[-1]
    match = re.fullmatch(rf"SIGTERM: saved step (\d+) in {re.escape(str(workdir))}; run the same command again "
                         "to resume", message)
    assert match, message
    assert ckpt_lib.Checkpointer(str(workdir), keep=1).latest_step() == int(match.group(1)) < 5000


@pytest.mark.parametrize("args, message", [
    (["--config.train.lr=1"], "error: --config.train.lr: 'lr' is not a field of train; train has b1, b2, batch_size, "
                              "decayed_tables, ema_decay, ema_ramp, eps, final_lr_fraction, grad_clip, steps, steps_per_dispatch, "
                              "warmup_steps, weight_decay_above_accuracy, weight_decay_below_loss, weight_decay_from_step, "
                              "weight_decay_full_at_accuracy, weight_decay_full_at_loss, weight_decay_while_gated"),
    (["--config.trian.steps=1"], "error: --config.trian.steps: 'trian' is not a field of the config; nearest: train"),
    ([f"--config={CONFIGS}/acl2025_table1.py", "--config.model.pee=rope"],
     "error: --config.model.pee: 'pee' is not a field of model; nearest: pe, preset, rope_base"),
    (["--config=configs/no_such_config.py"], "error: --config: configs/no_such_config.py: no such file"),
    (["--shard=4/4"], "error: --shard: '4/4' is not i/K with 0 <= i < K (the i-th of K shares, e.g. 0/4)"),
])
def test_bad_config_flags_are_one_line_errors(args, message):
    proc = _cli("train", "--workdir=/nonexistent/never_written", *args, expect=2)
    assert proc.stderr.strip() == message and proc.stdout == ""
