"""Model selection per member: the best parameters by held-out lengths, kept in training and
read back by `arith-jax eval --best`."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arith_jax import evaluate_checkpoint, report, train, writers
from tiny_config import tiny_config


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1, width=32), st.just(float("nan"))), min_size=1, max_size=8))
def test_keep_best_holds_the_latest_of_the_best_scores(scores):
    best = {"params": {"w": jnp.zeros(2)}, "score": jnp.float32(-jnp.inf), "step": jnp.int32(-1)}
    for step, score in enumerate(scores):
        best = train.keep_best(best, {"w": jnp.full(2, float(step))}, jnp.float32(score), jnp.int32(step))
    finite = [(s, step) for step, s in enumerate(scores) if not np.isnan(s)]
    expected_step = max(finite)[1] if finite else -1  # ties: the latest, as report.best_records
    assert int(best["step"]) == expected_step
    assert np.all(np.asarray(best["params"]["w"]) == (expected_step if finite else 0.0))


def test_selection_scores_average_the_selected_lengths_per_member():
    records = [{"member_name": name, "step": 10, "length": n, "acc": acc}
               for name, accs in [("a", (1.0, 0.5, 0.0)), ("b", (0.0, 0.25, None))] for n, acc in zip((1, 2, 3), accs)]
    assert train.selection_scores(records, ["b", "a"], (2,), 10).tolist() == [0.25, 0.5]
    scores = train.selection_scores(records, ["a", "b"], (2, 3), 10)
    assert scores[0] == 0.25 and np.isnan(scores[1])
    assert np.isnan(train.selection_scores(records, ["a"], (2,), 20)).all()  # no evaluation at that step
    # report applies the same rule: b's evaluation with a null accuracy is never selected.
    assert {r["member_name"] for r in report.best_records(records, (2, 3))} == {"a"}


@pytest.fixture(scope="module")
def selected_workdir(tmp_path_factory):
    """Three evaluations; each member's best step is whichever scored best at length 3."""
    path = str(tmp_path_factory.mktemp("select") / "run")
    config = tiny_config(train__steps=30, eval__select_lengths=(3,), train__steps_per_dispatch=5)
    result = train.train(config, path, console=False)
    return path, result


def test_the_kept_best_step_is_the_reports_selected_step(selected_workdir):
    path, result = selected_workdir
    records = writers.read_results(path)
    selected = {r["member_name"]: r["step"] for r in report.best_records(records, (3,))}
    (run,) = result.runs
    kept = dict(zip(run.names, np.asarray(run.state["best"]["step"]).tolist()))
    assert kept == selected and set(selected.values()) <= {10, 20, 30}


def test_eval_best_scores_each_member_as_at_its_best_step(selected_workdir):
    """The best parameters, evaluated again, give exactly the numbers the trainer measured at
    that member's best step."""
    path, _ = selected_workdir
    with open(os.path.join(path, "config.json")) as file:
        config = train.config_lib.from_json(file.read())
    records, out = evaluate_checkpoint.run(config, path, best=True)
    assert out == os.path.join(path, "eval", "best_at_step_30.jsonl")
    trained = {(r["member_name"], r["step"], r["length"]): r["acc"] for r in writers.read_results(path)}
    best = {r["member_name"]: r["step"] for r in report.best_records(writers.read_results(path), (3,))}
    assert len(records) == 2 * 3  # members x lengths
    for r in records:
        assert r["step"] == best[r["member_name"]]
        assert r["acc"] == trained[r["member_name"], r["step"], r["length"]]
    with open(out) as file:
        assert [json.loads(line) for line in file] == records


def test_eval_best_without_selection_is_a_one_line_error(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(train.config_lib.to_json(tiny_config()))
    proc = subprocess.run([sys.executable, "-m", "arith_jax.cli", "eval", f"--workdir={workdir}", "--best"],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: --best: {workdir} kept no best checkpoint: train with eval.select_lengths "
                                   "set (the held-out lengths that pick each member's best step)")
