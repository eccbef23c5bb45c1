"""Checkpoints: SIGTERM then resume equals an uninterrupted run (every source), SIGKILL
during a save resumes from the last complete step, a mismatched config is refused."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from arith_jax import checkpoint as ckpt_lib
from arith_jax import config as config_lib
from arith_jax import tasks, train, writers
from arith_jax.errors import ConfigError
from tiny_config import tiny_config

STEPS = 30


def _write_records(path, config, n=200):
    """A file of `a+b=c;` records in the config's format, made with the task engine."""
    spec = tasks.TaskSpec(config.task.name, 2, tasks.Format.parse(config.task.format, task=config.task.name), 100)
    batch = tasks.make_batch(spec, tasks.Sampling.parse("below:2"), jax.random.PRNGKey(5), n, config.task.moduli[0])
    lines = [tasks.detokenize(np.asarray(t)).rstrip(".") for t in batch.tokens]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _config(source, tmp_path):
    # The online run also checkpoints at every chunk end, so its stop lands on a step that is
    # already being saved (which must not save twice).
    overrides = dict(train__steps=STEPS, checkpoint__every=5 if source == "online" else 0, eval__every=10,
                     data__source=source)
    if source == "finite":
        overrides.update(data__size=64)
    if source == "files":
        overrides.update(task__moduli=[11])
        base = tiny_config(**overrides)
        overrides.update(data__files=[_write_records(tmp_path / "train.txt", base)])
    return tiny_config(**overrides)


def _tb_scalars(workdir, tag):
    """{member: [(step, value)]} as TensorBoard serves them."""
    out = {}
    for name in sorted(os.listdir(os.path.join(workdir, "tb"))):
        acc = event_accumulator.EventAccumulator(os.path.join(workdir, "tb", name))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            out[name] = [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]
    return out


@pytest.mark.parametrize("source", ["online", "finite", "files"])
def test_sigterm_then_resume_equals_an_uninterrupted_run(source, tmp_path, monkeypatch):
    config = _config(source, tmp_path)
    full = train.train(config, str(tmp_path / "full"), console=False)

    sent = []
    original_update = writers.Progress.update

    def update_then_sigterm(self, step, *args, **kwargs):
        original_update(self, step, *args, **kwargs)
        if step >= 5 and not sent:
            sent.append(step)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(writers.Progress, "update", update_then_sigterm)
    with pytest.raises(train.Interrupted) as stopped:
        train.train(config, str(tmp_path / "resumed"), console=False)
    monkeypatch.undo()
    assert 0 < stopped.value.step < STEPS
    assert ckpt_lib.Checkpointer(str(tmp_path / "resumed"), keep=1).latest_step() == stopped.value.step

    resumed = train.train(config, str(tmp_path / "resumed"), console=False)
    assert resumed.step == STEPS
    for a, b in zip(jax.tree.leaves(jax.device_get(full.runs[0].state)),
                    jax.tree.leaves(jax.device_get(resumed.runs[0].state))):
        np.testing.assert_array_equal(a, b)
    full_results = writers.read_results(str(tmp_path / "full"))
    assert writers.read_results(str(tmp_path / "resumed")) == full_results
    assert {r["step"] for r in full_results} == {10, 20, 30}
    for tag in ("train/loss", "train/batch_acc", "train/grad_norm", "train/lr", "eval/acc/len_3"):
        assert _tb_scalars(str(tmp_path / "resumed"), tag) == _tb_scalars(str(tmp_path / "full"), tag), tag


KILL_SCRIPT = """
import sys, time, pathlib
sys.path.insert(0, {tests!r})
import orbax.checkpoint as ocp
marker = pathlib.Path({marker!r})
original = ocp.JsonCheckpointHandler._save_fn

async def paused_save(self, item, directory):
    # The step-20 save stalls half written, as a save does when the machine goes away.
    if item.get("step") == 20:
        # Written whole, then renamed: the test polls for the marker and must never read it
        # created but still empty (a CI run once did).
        partial = marker.with_suffix(".partial")
        partial.write_text(str(directory))
        partial.rename(marker)
        time.sleep(3600)
    return await original(self, item, directory)

ocp.JsonCheckpointHandler._save_fn = paused_save
from arith_jax import train
from tiny_config import tiny_config
train.train(tiny_config(train__steps=40, checkpoint__every=10, log__tensorboard=False), {workdir!r}, console=False)
"""


def test_sigkill_during_a_save_resumes_from_the_last_complete_checkpoint(tmp_path):
    workdir, marker = str(tmp_path / "run"), tmp_path / "paused"
    script = KILL_SCRIPT.format(tests=os.path.dirname(__file__), marker=str(marker), workdir=workdir)
    proc = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ, JAX_PLATFORMS="cpu"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, "the save at step 20 never started"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.path.exists(marker.read_text())  # the half-written step-20 directory is there

    config = tiny_config(train__steps=40, checkpoint__every=10, log__tensorboard=False)
    assert ckpt_lib.Checkpointer(workdir, keep=1).latest_step() == 10
    result = train.train(config, workdir, console=False)
    assert result.step == 40
    assert ckpt_lib.Checkpointer(workdir, keep=2).latest_step() == 40
    steps = [r["step"] for r in writers.read_results(workdir)]
    assert sorted(set(steps)) == [10, 20, 30, 40] and steps == sorted(steps)  # no step logged twice
    assert len(steps) == len(set(steps)) * 2 * 3  # 2 members x 3 lengths per eval


def test_a_mismatched_config_on_resume_gets_the_named_error(tmp_path):
    workdir = str(tmp_path / "run")
    train.train(tiny_config(train__steps=10, log__tensorboard=False), workdir, console=False)
    with pytest.raises(ConfigError, match=r"^task\.moduli: is \[7, 13\] but the checkpoint in .* was trained with "
                                          r"\[7, 11\]; resume with the same value or use a new --workdir$"):
        train.train(tiny_config(train__steps=20, task__moduli=[7, 13], log__tensorboard=False), workdir,
                    console=False)
    with pytest.raises(ConfigError, match=r"^train\.batch_size: is 16 but the checkpoint"):
        train.train(tiny_config(train__steps=20, train__batch_size=16, log__tensorboard=False), workdir,
                    console=False)
    with pytest.raises(ConfigError, match=r"^eval\.lengths: changes the operand width from 3 to 4 digits"):
        train.train(tiny_config(train__steps=20, eval__lengths=[1, 4], log__tensorboard=False), workdir,
                    console=False)
    # Training longer is not a mismatch: it resumes at step 10 and goes on.
    assert train.train(tiny_config(train__steps=20, log__tensorboard=False), workdir, console=False).step == 20


def test_a_field_added_after_a_checkpoint_was_written_counts_as_its_default():
    saved = json.loads(config_lib.to_json(tiny_config()))
    del saved["train"]["weight_decay_from_step"]  # as in a workdir trained before the field existed
    now = json.loads(config_lib.to_json(tiny_config()))
    ckpt_lib.check_resumable(saved, now, "run")  # the default: the same experiment
    now["train"]["weight_decay_from_step"] = 500
    with pytest.raises(ConfigError, match=r"^train\.weight_decay_from_step: is 500 but the checkpoint in run was "
                                          r"trained with 0; resume with the same value or use a new --workdir$"):
        ckpt_lib.check_resumable(saved, now, "run")
