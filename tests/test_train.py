"""Population training: members train independently, values never recompile, NaN freezes."""

import dataclasses
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arith_jax import model as model_lib
from arith_jax import population, train
from tiny_config import tiny_config


def _params(result, group=0):
    return jax.device_get(result.runs[group].state["params"])


def _member(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


@pytest.fixture(scope="module")
def compile_counter():
    counts = {"n": 0}

    def listener(name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            counts["n"] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    return counts


@pytest.fixture(scope="module")
def population_run(tmp_path_factory, compile_counter):
    """Two learning rates x two moduli trained together."""
    config = tiny_config(population__learning_rates=[1e-3, 3e-3], log__tensorboard=False)
    before = compile_counter["n"]
    result = train.train(config, str(tmp_path_factory.mktemp("pop")), console=False)
    return config, result, compile_counter["n"] - before


def test_population_trains_and_evaluates_every_member(population_run):
    config, result, _ = population_run
    assert result.step == config.train.steps
    members = result.runs[0].group.members
    assert len(members) == 4
    assert {(r["member"]["p"], r["member"]["lr"], r["length"]) for r in result.records} == {
        (p, lr, n) for p in (7, 11) for lr in (1e-3, 3e-3) for n in (1, 2, 3)}
    for leaf in jax.tree.leaves(_params(result)):
        assert leaf.shape[0] == 4 and np.all(np.isfinite(leaf))


def test_member_trains_exactly_as_when_trained_alone(population_run, tmp_path):
    config, result, _ = population_run
    members = result.runs[0].group.members
    i = next(k for k, m in enumerate(members) if m["p"] == 11 and m["lr"] == 3e-3)
    alone = tiny_config(task__moduli=[11], population__learning_rates=[3e-3], log__tensorboard=False)
    alone_result = train.train(alone, str(tmp_path / "alone"), console=False)
    together, by_itself = _member(_params(result), i), _member(_params(alone_result), 0)
    # vmap batches the matmuls, so float rounding differs in the last bits; Adam divides by
    # sqrt(v), which can turn rounding on near-zero gradients into steps of up to ~lr. So the
    # bound is one learning rate per parameter, and the whole difference must be tiny next to
    # the distance to the neighbouring member (same seed and lr, other modulus).
    neighbour = _member(_params(result), next(k for k, m in enumerate(members) if m["p"] == 7 and m["lr"] == 3e-3))
    for a, b in zip(jax.tree.leaves(together), jax.tree.leaves(by_itself)):
        np.testing.assert_allclose(a, b, rtol=0, atol=3e-3)
    distance = lambda x, y: np.sqrt(sum(np.sum((p - q) ** 2) for p, q in zip(jax.tree.leaves(x), jax.tree.leaves(y))))
    assert distance(together, by_itself) < 0.05 * distance(together, neighbour)
    acc_together = {r["length"]: r["acc"] for r in result.records if r["member"] == members[i]}
    acc_alone = {r["length"]: r["acc"] for r in alone_result.records}
    assert acc_together == acc_alone


def test_new_learning_rates_and_moduli_do_not_recompile(population_run, tmp_path, compile_counter):
    config, result, compiles_first_run = population_run
    assert compiles_first_run > 0
    other = tiny_config(task__moduli=[13, 97], population__learning_rates=[2e-3, 5e-4],
                        population__weight_decays=[0.01], log__tensorboard=False)
    before = compile_counter["n"]
    second = train.train(other, str(tmp_path / "other"), console=False)
    assert compile_counter["n"] == before
    assert second.runs[0].program is result.runs[0].program
    assert {r["member"]["p"] for r in second.records} == {13, 97}


def test_a_member_forced_to_nan_is_frozen_and_the_others_carry_on(tmp_path):
    config = tiny_config(log__tensorboard=False)
    groups = population.plan(config)
    run = train.build_runs(config, groups)[0]
    state = run.program.init(jnp.asarray(run.group.column("seed", np.uint32)))
    leaves, treedef = jax.tree.flatten(jax.device_get(state["params"]))
    first = np.array(leaves[0])
    first[1] = np.nan  # member 1's first parameter array
    poisoned = jax.tree.unflatten(treedef, [jnp.asarray(first)] + [jnp.asarray(x) for x in leaves[1:]])
    state = dict(state, params=poisoned)
    before = jax.device_get(state["params"])
    steps = jnp.arange(0, 5, dtype=jnp.int32)
    state, metrics = run.program.chunk(state, run.hyper, run.member_data, None, steps)
    after = jax.device_get(state["params"])
    metrics = jax.device_get(metrics)
    assert metrics["frozen"][-1].tolist() == [False, True]
    assert np.all(np.isfinite(metrics["loss"][:, 0])) and np.all(np.isnan(metrics["loss"][:, 1]))
    for b, a in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        np.testing.assert_array_equal(b[1], a[1])  # frozen: untouched
    moved = [not np.array_equal(b[0], a[0]) for b, a in zip(jax.tree.leaves(before), jax.tree.leaves(after))]
    assert all(moved)


def test_default_run_shortened_ends_with_the_accuracy_table(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "arith_jax.cli", "train", f"--workdir={tmp_path / 'default'}",
         "--config.train.steps=20", "--config.train.steps_per_dispatch=10", "--config.eval.every=20",
         "--config.eval.examples_per_length=32", "--config.checkpoint.every=0"],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "p=100" in out and "p=101" in out
    assert "theory" in out.lower()
    # Both tables, each with a row per modulus over the default's three seeds.
    assert "Exact-match accuracy (%) by operand digits, group main, step 20" in out
    assert "Equivalence accuracy (%) by operand digits, group main, step 20" in out
    assert len(re.findall(r"^p=10[01]\s+3\s", out, flags=re.M)) == 4
    assert (tmp_path / "default" / "report" / "report.md").exists()
    assert (tmp_path / "default" / "results" / "step_000000020.jsonl").exists()


def test_each_member_gets_its_own_weight_decay_on_matrices_only():
    config = tiny_config(task__moduli=[7], population__weight_decays=[0.0, 10.0], log__tensorboard=False)
    run = train.build_runs(config, population.plan(config))[0]
    state = run.program.init(run.group.column("seed", np.uint32))
    state, _ = run.program.chunk(state, run.hyper, run.member_data, None, np.arange(5, dtype=np.int32))
    params = jax.device_get(state["params"])
    hyper = jax.device_get(state["opt"][1].hyperparams)
    assert hyper["weight_decay"].tolist() == [0.0, 10.0]
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if leaf.ndim == 3:  # member axis + a matrix: decayed by (1 - lr wd) a step, about 5% in all
            assert np.linalg.norm(leaf[1]) < 0.98 * np.linalg.norm(leaf[0]), jax.tree_util.keystr(path)
        else:  # biases and norms are never decayed: the same data moves them alike
            assert np.abs(leaf[0] - leaf[1]).max() < 1e-3, jax.tree_util.keystr(path)


@pytest.mark.parametrize("tables", [(), ("token",), ("position",)])
def test_only_the_named_embedding_tables_are_decayed(tables):
    """train.decayed_tables: a table left out trains as if no member were decayed, while every
    other matrix is decayed as before."""
    config = tiny_config(task__moduli=[7], population__weight_decays=[0.0, 10.0], log__tensorboard=False,
                         train__decayed_tables=tables)
    run = train.build_runs(config, population.plan(config))[0]
    state = run.program.init(run.group.column("seed", np.uint32))
    state, _ = run.program.chunk(state, run.hyper, run.member_data, None, np.arange(5, dtype=np.int32))
    seen = set()
    for path, leaf in jax.tree_util.tree_leaves_with_path(jax.device_get(state["params"])):
        if leaf.ndim != 3:
            continue
        table = model_lib.embedding_table(path)
        seen.add(table)
        shrunk = np.linalg.norm(leaf[1]) < 0.98 * np.linalg.norm(leaf[0])
        assert shrunk == (table is None or table in tables), jax.tree_util.keystr(path)
    assert seen == {None, "token", "position"}


def test_weight_decay_starts_at_its_step():
    """train.weight_decay_from_step: before it no member is decayed, so members that differ only
    in weight decay train identically; from it on each gets its own."""
    config = tiny_config(task__moduli=[7], population__weight_decays=[0.0, 10.0], train__weight_decay_from_step=3,
                         log__tensorboard=False)
    run = train.build_runs(config, population.plan(config))[0]
    state = run.program.init(run.group.column("seed", np.uint32))
    before, _ = run.program.chunk(state, run.hyper, run.member_data, None, np.arange(3, dtype=np.int32))
    for leaf in jax.tree.leaves(jax.device_get(before["params"])):
        np.testing.assert_array_equal(leaf[0], leaf[1])
    after, _ = run.program.chunk(before, run.hyper, run.member_data, None, np.arange(3, 6, dtype=np.int32))
    matrices = [leaf for leaf in jax.tree.leaves(jax.device_get(after["params"])) if leaf.ndim == 3]
    assert all(np.linalg.norm(m[1]) < 0.98 * np.linalg.norm(m[0]) for m in matrices)


def _after_3_steps(**overrides) -> tuple[dict, dict]:
    """The state and per-step metrics of two members with weight decay 0 and 10 after 3 training
    steps under `overrides`."""
    config = tiny_config(task__moduli=[7], population__weight_decays=[0.0, 10.0], log__tensorboard=False,
                         **overrides)
    run = train.build_runs(config, population.plan(config))[0]
    state = run.program.init(run.group.column("seed", np.uint32))
    return run.program.chunk(state, run.hyper, run.member_data, None, np.arange(3, dtype=np.int32))


def _matrices(state: dict) -> list:
    """The weight matrices (member axis first) of a population's state."""
    return [leaf for leaf in jax.tree.leaves(jax.device_get(state["params"])) if leaf.ndim == 3]


def _matrices_after_3_steps(**overrides) -> list:
    """The weight matrices of the two members of `_after_3_steps`."""
    return _matrices(_after_3_steps(**overrides)[0])


def test_weight_decay_waits_for_the_loss_to_fall_below_its_gate():
    """train.weight_decay_below_loss: at steps where a member's loss is above the gate it is not
    decayed (an untrained member's loss is ~ln(vocab), far above 1e-3), so members that differ
    only in weight decay train identically; a gate above every loss decays from the start."""
    for m in _matrices_after_3_steps(train__weight_decay_below_loss=1e-3):
        np.testing.assert_array_equal(m[0], m[1])
    assert all(np.linalg.norm(m[1]) < 0.98 * np.linalg.norm(m[0])
               for m in _matrices_after_3_steps(train__weight_decay_below_loss=1e3))


def test_while_gated_a_member_gets_the_gated_decay_not_its_own():
    """train.weight_decay_while_gated: with the loss gate holding both members' decay off, the
    member with decay 10 trains exactly like the one with 0 (both get the gated decay); and that
    gated decay does shrink them against a run without it."""
    gated, undecayed = (_matrices_after_3_steps(train__weight_decay_below_loss=1e-3,
                                                train__weight_decay_while_gated=while_gated)
                        for while_gated in (10.0, 0.0))
    for m in gated:
        np.testing.assert_array_equal(m[0], m[1])
    assert all(np.linalg.norm(g[0]) < 0.98 * np.linalg.norm(u[0]) for g, u in zip(gated, undecayed))


def test_below_the_gate_the_decay_rises_as_the_loss_falls():
    """train.weight_decay_full_at_loss: below the gate a member gets weight_decay_while_gated plus
    the part of the way to its own decay that its loss has fallen from the gate towards this loss
    (an untrained member's loss, ~ln(vocab), lies between the gate at 10 and the full decay's 1)."""
    state, metrics = _after_3_steps(train__weight_decay_below_loss=10.0, train__weight_decay_full_at_loss=1.0,
                                    train__weight_decay_while_gated=2.0)
    last_loss = np.asarray(jax.device_get(metrics["loss"]))[-1]
    rise = (10.0 - last_loss) / (10.0 - 1.0)
    assert np.all((rise > 0.5) & (rise < 1.0)), last_loss
    used = np.asarray(jax.device_get(state["opt"][1].hyperparams["weight_decay"]))
    np.testing.assert_allclose(used, 2.0 + (np.array([0.0, 10.0]) - 2.0) * rise, rtol=1e-5)


def test_the_accuracy_gate_holds_the_decay_until_the_batch_is_answered():
    """train.weight_decay_above_accuracy: an untrained member answers none of its batch exactly
    (batch_acc 0), so behind any gate above 0 members that differ only in decay train alike."""
    state, metrics = _after_3_steps(train__weight_decay_above_accuracy=0.01)
    np.testing.assert_array_equal(np.asarray(jax.device_get(metrics["batch_acc"])), 0.0)
    for m in _matrices(state):
        np.testing.assert_array_equal(m[0], m[1])


def test_the_decay_rises_with_the_batch_accuracy_and_the_falling_loss_together():
    """train.weight_decay_full_at_accuracy: past the accuracy gate the decay rises towards the
    member's own as the batch accuracy does, and with the loss ramp too it takes the smaller of
    the two rises. At accuracy 0 with the gate at 0 the rise is 0: both members get the gated
    decay, whatever the loss ramp says."""
    state, metrics = _after_3_steps(train__weight_decay_full_at_accuracy=0.5, train__weight_decay_while_gated=2.0,
                                    train__weight_decay_below_loss=10.0, train__weight_decay_full_at_loss=1.0)
    assert float(np.asarray(jax.device_get(metrics["batch_acc"]))[-1].max()) == 0.0
    np.testing.assert_array_equal(np.asarray(jax.device_get(state["opt"][1].hyperparams["weight_decay"])), 2.0)
    full, _ = _after_3_steps(train__weight_decay_full_at_accuracy=1.0, train__weight_decay_above_accuracy=0.0,
                             train__weight_decay_while_gated=2.0)
    np.testing.assert_array_equal(np.asarray(jax.device_get(full["opt"][1].hyperparams["weight_decay"])), 2.0)


@pytest.mark.parametrize("source", ["online", "finite"])
def test_training_lengths_in_one_program_each_match_a_solo_run(tmp_path, source):
    both = tiny_config(task__moduli=[11], task__train_sampling="below:{n}", population__train_digits=[1, 2],
                       data__source=source, data__size=40, log__tensorboard=False)
    result = train.train(both, str(tmp_path / "both"), console=False)
    (run,) = result.runs
    assert run.group.size == 2 and {r["n_train"] for r in result.records} == {1, 2}
    solo = tiny_config(task__moduli=[11], task__train_sampling="below:2", data__source=source, data__size=40,
                       task__width=3, log__tensorboard=False)
    solo_result = train.train(solo, str(tmp_path / "solo"), console=False)
    i = next(k for k, m in enumerate(run.group.members) if m["train_digits"] == 2)
    for a, b in zip(jax.tree.leaves(_member(_params(result), i)), jax.tree.leaves(_member(_params(solo_result), 0))):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-3)  # one learning rate; see the test above


def test_groups_of_layouts_and_dropout_rates_each_train_as_a_solo_run(tmp_path):
    """population.format and population.dropout: one invocation, one group (program) per
    combination, and each group's member trains exactly as the same config run alone."""
    bos = "pad=4/2,reverse_result,bos,eos"
    sweep = tiny_config(task__moduli=[11], population__format=["pad=4/2,reverse_result,eos", bos],
                        population__dropout=[0.0, 0.2], train__steps=10, log__tensorboard=False)
    result = train.train(sweep, str(tmp_path / "sweep"), console=False)
    assert len(result.runs) == 4
    assert {(r["group"], r["member"]["format"], r["member"]["dropout"]) for r in result.records} == {
        (f"format={fmt.replace('/', '_')},dropout={d}", fmt, d) for fmt in sweep.population.format for d in (0.0, 0.2)}
    solo = tiny_config(task__moduli=[11], task__format=bos, model__dropout=0.2, train__steps=10,
                       log__tensorboard=False)
    solo_result = train.train(solo, str(tmp_path / "solo"), console=False)
    i = next(k for k, run in enumerate(result.runs) if run.group.name == "format=pad=4_2,reverse_result,bos,eos,dropout=0.2")
    for a, b in zip(jax.tree.leaves(_params(result, i)), jax.tree.leaves(_params(solo_result))):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("ramp", [9.0, 3.0])
def test_moving_average_of_the_parameters_follows_its_ramped_recurrence(ramp):
    config = tiny_config(train__ema_decay=0.99, train__ema_ramp=ramp, log__tensorboard=False)  # two members
    run = train.build_runs(config, population.plan(config))[0]
    state = run.program.init(run.group.column("seed", np.uint32))
    previous_ema = jax.device_get(state["ema"])
    assert all(np.array_equal(e, p) for e, p in zip(jax.tree.leaves(previous_ema),
                                                    jax.tree.leaves(jax.device_get(state["params"]))))
    for step in (0, 1):
        state, _ = run.program.chunk(state, run.hyper, run.member_data, None, np.asarray([step], np.int32))
        params, ema = jax.device_get(state["params"]), jax.device_get(state["ema"])
        d = min(0.99, (1 + step) / (1 + ramp + step))  # ramp 9: 0.1, then 2/11 (TensorFlow's rule)
        for e, e0, p in zip(jax.tree.leaves(ema), jax.tree.leaves(previous_ema), jax.tree.leaves(params)):
            np.testing.assert_allclose(e, d * e0 + (1 - d) * p, rtol=1e-6, atol=1e-7)
        previous_ema = ema
    assert train.eval_params(state) is state["ema"]
    assert not any(np.array_equal(e, p) for e, p in zip(jax.tree.leaves(ema), jax.tree.leaves(params)))


@pytest.fixture(scope="module")
def one_step():
    """Member 3 of a 4-member group (p = 11, lr 3e-3), stepped once at step 7 alone by the pure
    `member_step` and, with everyone, by the group's vmapped chunk."""
    config = tiny_config(population__learning_rates=[1e-3, 3e-3], log__tensorboard=False)
    run = train.build_runs(config, population.plan(config))[0]
    program = run.program
    state = program.init(run.group.column("seed", np.uint32))
    i, step = 3, np.int32(7)
    member_state = _member({k: state[k] for k in train.STEP_STATE}, i)
    inputs = {"hyper": _member(run.hyper, i), "member_data": None, "host_step": None}
    alone, metrics = jax.jit(train.member_step, static_argnums=0)(program.step_functions, member_state, inputs, step)
    together, chunk_metrics = program.chunk(state, run.hyper, None, None, np.asarray([step]))
    first_step_of_member = lambda x: x[0, i]  # chunk metrics are [K steps, M members]
    return run.group.members[i], member_state, jax.device_get((alone, metrics)), jax.device_get(
        (_member(together, i), jax.tree.map(first_step_of_member, chunk_metrics)))


def test_one_step_matches_golden_values(one_step):
    # Golden values of this tiny model's first visit to step 7 (nanodo-style): any change to
    # the loss, the schedule, AdamW, clipping or the batch generator moves them.
    member, before, (after, metrics), _ = one_step
    assert (member["p"], member["lr"]) == (11, 3e-3)
    lr_at_7 = 3e-3 * train.lr_multiplier(jnp.float32(7), 2.0, 20.0, 0.1)
    np.testing.assert_allclose(metrics["lr"], lr_at_7, rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], GOLDEN_LOSS, rtol=1e-5)
    np.testing.assert_allclose(metrics["grad_norm"], GOLDEN_GRAD_NORM, rtol=1e-5)
    moved = sum(float(np.sum(np.abs(_without_key_bias(jax.tree_util.keystr(path), a - b))))
                for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(after["params"]),
                                        jax.tree.leaves(jax.device_get(before["params"]))))
    np.testing.assert_allclose(moved, GOLDEN_PARAM_L1_CHANGE, rtol=1e-4)
    assert not after["frozen"]


def test_the_vmapped_chunk_steps_each_member_as_the_pure_step_does(one_step):
    _, _, (alone, metrics), (together, chunk_metrics) = one_step
    for key in ("loss", "grad_norm", "lr"):
        np.testing.assert_allclose(chunk_metrics[key], metrics[key], rtol=1e-6)
    # AdamW moves every parameter by about lr per step, so a wrong member's data, learning rate
    # or state shows as differences of that size. The two compilations round differently, and
    # Adam turns a rounding difference in a small gradient into a visible fraction of a step
    # (seen: 1.4e-6, 0.06% of this step, in one element of 512 on one CPU), so the tolerance is
    # 1% of this step's lr.
    one_percent_of_a_step = 0.01 * float(metrics["lr"])
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(together["params"]),
                            jax.tree.leaves(alone["params"])):
        name = jax.tree_util.keystr(path)
        np.testing.assert_allclose(_without_key_bias(name, a), _without_key_bias(name, b),
                                   atol=one_percent_of_a_step, err_msg=name)


def _without_key_bias(name: str, leaf: np.ndarray) -> np.ndarray:
    """The leaf, less the key third of a qkv bias. The key bias adds q.b_k to every score of a
    query, which softmax ignores: its gradient is zero up to rounding, and Adam scales that
    rounding noise up to full-size steps, which differ between two compilations."""
    if "['qkv']['bias']" not in name:
        return leaf
    d = leaf.shape[0] // 3
    return np.delete(leaf, np.s_[d:2 * d])


GOLDEN_LOSS = 3.072306
GOLDEN_GRAD_NORM = 33.977654
GOLDEN_PARAM_L1_CHANGE = 7.251744


def test_training_batches_drop_the_tail_only_longer_eval_operands_need():
    # pad=common is left-aligned: trained on <= 2 digits, evaluated on 6, a training sequence
    # fits in the 2-digit spec's length. Cutting the tail must not change the loss (it holds
    # only PAD, outside the loss mask, after every real token).
    config = tiny_config(task__format="pad=common,reverse_result,eos", task__name="add",
                         eval__lengths=(1, 2, 6), model__pe="coupled", model__coupling_max_offset=8,
                         log__tensorboard=False)
    run = train.build_runs(config, population.plan(config))[0]
    program, spec = run.program, run.group.spec
    fns = program.step_functions
    assert fns.train_seq_len == 2 + 2 + 2 + 3 + 1 < spec.seq_len == 6 + 6 + 2 + 7 + 1
    state = program.init(run.group.column("seed", np.uint32))
    member_state = _member({k: state[k] for k in train.STEP_STATE}, 0)
    inputs = {"hyper": _member(run.hyper, 0), "member_data": None, "host_step": None}
    step = jax.jit(train.member_step, static_argnums=0)
    cut = step(fns, member_state, inputs, np.int32(3))[1]["loss"]
    whole = step(dataclasses.replace(fns, train_seq_len=None), member_state, inputs, np.int32(3))[1]["loss"]
    np.testing.assert_allclose(cut, whole, rtol=1e-6)
    fixed = tiny_config(eval__lengths=(1, 2, 4))  # pad=4/2: every slot is used, nothing is cut
    assert train.build_runs(fixed, population.plan(fixed))[0].program.step_functions.train_seq_len == \
        population.plan(fixed)[0].spec.seq_len


def test_every_encoding_trains_and_evaluates_as_a_group(tmp_path):
    from arith_jax import positional
    encodings = list(positional.ENCODINGS)
    config = tiny_config(population__pe=encodings, model__abacus_max_offset=8, model__coupling_max_offset=8,
                         train__steps=5, train__steps_per_dispatch=5, eval__every=5, eval__lengths=(2,),
                         eval__decode=False, checkpoint__every=0, log__tensorboard=False)
    result = train.train(config, str(tmp_path), console=False)
    assert [run.group.name for run in result.runs] == [f"pe={pe}" for pe in encodings]
    assert np.all(np.isfinite(result.final_loss))
    assert {r["group"] for r in result.records} == {f"pe={pe}" for pe in encodings}
    for run in result.runs:
        assert not np.any(jax.device_get(run.state["frozen"])), run.group.name
