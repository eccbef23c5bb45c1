"""Evaluation: teacher-forced accuracy equals decoded accuracy on a trained model, equivalence
accuracy on hand-built answers, the theory against brute-force enumeration and the papers'
numbers, the fixed test sets, and the analysis plots."""

import functools
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib import image as mpimg

from arith_jax import analyze, evaluate, model, tasks
from arith_jax.errors import ConfigError

FEW = settings(max_examples=25, deadline=None)
TINY_MODEL = dict(num_layers=2, num_heads=2, d_model=32, d_ff=64)


def spec_for(name, width, format_text, max_modulus=0):
    return tasks.TaskSpec(name, width, tasks.Format.parse(format_text, task=name), max_modulus)


# ---------------------------------------------------------------------------------------------
# A tiny model trained on 2-digit addition (reversed result): kept early (mostly wrong) and
# late (mostly right), so both members have right and wrong answers to compare.

ADD2 = spec_for("add", 2, "pad=2,reverse_result,eos")
ADD3 = spec_for("add", 3, "pad=3,reverse_result,eos")


@pytest.fixture(scope="module")
def trained_add():
    # Room for 3-digit operands, so the analysis can vary a digit outside the trained range.
    cfg = model.ModelConfig.create(**TINY_MODEL, max_positions=ADD3.seq_len)
    graphdef, params = model.init(cfg, ADD2.vocab_size, jax.random.key(0))
    optimizer = optax.adam(3e-3)
    sampling = tasks.Sampling.parse("below:2")

    def loss_fn(params, batch):
        logits_BxTxV = model.apply(graphdef, params, batch.tokens)
        losses_BxT1 = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV[:, :-1], batch.tokens[:, 1:])
        mask_BxT1 = batch.answer_mask[:, 1:]
        return jnp.sum(losses_BxT1 * mask_BxT1) / jnp.sum(mask_BxT1)

    @jax.jit
    def train_50_steps(params, opt_state, key):
        def step(carry, step_key):
            params, opt_state = carry
            batch = tasks.make_batch(ADD2, sampling, step_key, 64)
            grads = jax.grad(loss_fn)(params, batch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, (params, opt_state), jax.random.split(key, 50))[0]

    state = (params, optimizer.init(params))
    snapshots = []
    for chunk in range(8):  # about 40% right after 200 steps, over 90% after 400
        state = train_50_steps(*state, jax.random.key(chunk))
        snapshots.append(state[0])
    early, late = snapshots[3], snapshots[7]
    return graphdef, early, late


def test_teacher_forced_accuracy_equals_decoded_accuracy_on_a_trained_model(trained_add):
    graphdef, early, late = trained_add
    population = jax.tree.map(lambda x, y: jnp.stack([x, y]), early, late)
    operands = evaluate.eval_operands(ADD2, [1, 2], 128, seed=3)

    @jax.jit
    def metrics_and_answers(params_M, a_NxW, b_NxW):
        def one(params):
            apply_fn = lambda tokens: model.apply(graphdef, params, tokens)
            batch = tasks.batch_for_operands(ADD2, a_NxW, b_NxW, 0)
            exact_N, _ = evaluate.exact_match(apply_fn(batch.tokens), batch, ADD2)
            decoded = evaluate.greedy_decode(apply_fn, batch, ADD2.answer_len)
            metrics = evaluate.member_metrics(apply_fn, ADD2, a_NxW, b_NxW, 0, 2, decode=True)
            return metrics, exact_N, decoded

        return jax.vmap(one)(params_M)

    all_exact = []
    for a, b in operands.values():
        metrics, exact_MxN, decoded_MxNxT = jax.device_get(metrics_and_answers(population, a, b))
        np.testing.assert_array_equal(metrics["decoded_acc"], metrics["acc"])
        np.testing.assert_allclose(metrics["acc"], exact_MxN.mean(axis=1), rtol=1e-6)
        # Per example: the decoded answer, read back as a number, is a + b exactly when the
        # teacher-forced argmax was right at every answer position.
        for exact_N, decoded_NxT in zip(exact_MxN, decoded_MxNxT):
            answers = [_decoded_value(ADD2, row) for row in decoded_NxT]
            truths = [tasks.digits_to_int(x) + tasks.digits_to_int(y) for x, y in zip(a, b)]
            np.testing.assert_array_equal(exact_N, [got == want for got, want in zip(answers, truths)])
        # In distribution (n_train = 2 covers both lengths) the equivalence target is the answer.
        np.testing.assert_allclose(metrics["equiv_acc"], metrics["acc"], rtol=1e-6)
        all_exact.append(exact_MxN)
    all_exact = np.concatenate(all_exact, axis=1)
    assert all_exact[1].mean() > 0.5, "the trained member should mostly be right"
    assert 0 < all_exact[0].mean() < 1, "the early member should be partly right"


def _decoded_value(spec, tokens_T):
    """The decoded answer as a Python int (reversed, padded result followed by EOS), or None."""
    start = int(np.flatnonzero(tokens_T == tasks.EQUALS)[0]) + 1
    answer = tokens_T[start: start + spec.answer_len]
    digits, terminator = answer[:-1], answer[-1]
    if terminator != tasks.EOS or np.any(digits >= tasks.NUM_DIGITS):
        return None
    return tasks.digits_to_int(digits)


# ---------------------------------------------------------------------------------------------
# Equivalence accuracy on answers built by hand: a stand-in model that ignores its input and
# predicts a chosen token sequence, so greedy decoding returns exactly the chosen answers.

N_TRAIN = 3
HAND_ROWS = [  # a, b, the answer the stand-in gives, what it is
    (1349, 2705, 1054, "equivalent: 349 + 705"),
    (1349, 2705, 4054, "right"),
    (123, 456, 579, "right and equivalent (in distribution)"),
    (9999, 9999, 1998, "equivalent, one digit shorter than the right 19998"),
    (5000, 5000, 7, "neither (right 10000, equivalent 0)"),
    (1349, 2705, 1054, "equivalent digits but '+' where EOS belongs: not well formed"),
]


def _stand_in_model(spec):
    a = np.stack([tasks.int_to_digits(row[0], spec.width) for row in HAND_ROWS])
    b = np.stack([tasks.int_to_digits(row[1], spec.width) for row in HAND_ROWS])
    answers = np.stack([tasks.int_to_digits(row[2], spec.result_width) for row in HAND_ROWS])
    chosen_BxT, _, _ = jax.device_get(jax.jit(tasks.encode, static_argnums=0)(spec, a, b, answers))
    chosen_BxT = np.array(chosen_BxT)
    chosen_BxT[-1, np.flatnonzero(chosen_BxT[-1] == tasks.EOS)[0]] = tasks.PLUS
    next_token_logits_BxTxV = 10.0 * jax.nn.one_hot(np.roll(chosen_BxT, -1, axis=1), spec.vocab_size)
    return a, b, lambda tokens_BxT: next_token_logits_BxTxV


@pytest.mark.parametrize("format_text", ["reverse_result,eos", "pad=4,reverse_result,eos", "plain",
                                         "pad=4,reverse_result,eos,hints"])
def test_equivalence_accuracy_on_hand_built_answers(format_text):
    spec = spec_for("add", 4, format_text)
    a, b, apply_fn = _stand_in_model(spec)
    metrics = jax.device_get(jax.jit(
        lambda a, b: evaluate.member_metrics(apply_fn, spec, a, b, 0, N_TRAIN, decode=True))(a, b))
    assert metrics["acc"] == pytest.approx(2 / 6)
    assert metrics["decoded_acc"] == pytest.approx(2 / 6)
    assert metrics["equiv_acc"] == pytest.approx(3 / 6)
    if spec.format.pad_result:
        # Per row, result digits right of 5 (little-endian, zero-padded): 04054 vs 01054 -> 4,
        # 5, 5, 19998 vs 01998 -> 3, 10000 vs 00007 -> 3, and the last row 4.
        assert metrics["digit_acc"] == pytest.approx((4 + 5 + 5 + 3 + 3 + 4) / 30)


@functools.lru_cache(maxsize=None)
def _jitted_target(name):
    spec = spec_for(name, WIDTH, "reverse_result,eos", tasks.MAX_MODULUS if name in tasks.MODULAR_TASKS else 0)
    return jax.jit(functools.partial(evaluate.equivalence_target, spec))


def _target(name, a, b, n_train, modulus):
    """equivalence_target on one pair of Python ints, as a Python int."""
    digits = _jitted_target(name)(tasks.int_to_digits(a, WIDTH)[None], tasks.int_to_digits(b, WIDTH)[None],
                                  n_train, modulus)
    return tasks.digits_to_int(np.asarray(digits)[0])


WIDTH = 6


def test_equivalence_target_hand_computed_cases():
    assert _target("add", 1349, 2705, 3, 0) == 1054  # 349 + 705
    assert _target("mul", 1349, 2705, 3, 0) == 349 * 705
    assert _target("mod_add", 1349, 2705, 3, 101) == 44  # 1054 mod 101; the right answer is 14
    assert _target("mod_mul", 1349, 2705, 2, 97) == (49 * 5) % 97
    assert _target("add", 349, 705, 3, 0) == 1054  # in distribution it is the answer


@FEW
@given(name=st.sampled_from(tasks.TASKS), a=st.integers(0, 10**WIDTH - 1), b=st.integers(0, 10**WIDTH - 1),
       n_train=st.integers(1, WIDTH), modulus=st.integers(2, tasks.MAX_MODULUS))
def test_equivalence_target_is_the_task_on_truncated_operands(name, a, b, n_train, modulus):
    low_a, low_b = a % 10**n_train, b % 10**n_train
    want = {"add": low_a + low_b, "mul": low_a * low_b, "mod_add": (low_a + low_b) % modulus,
            "mod_mul": (low_a * low_b) % modulus}[name]
    assert _target(name, a, b, n_train, modulus) == want


# ---------------------------------------------------------------------------------------------
# Theory


def _brute_force(task, p, n_train, length):
    """Share of exactly-`length`-digit pairs where the truncated function is right."""
    values = np.arange(0 if length == 1 else 10 ** (length - 1), 10**length, dtype=np.int64)
    a, b = np.meshgrid(values, values, indexing="ij")
    low = 10**n_train
    if task == "mod_add":
        return np.mean((a % low + b % low) % p == (a + b) % p)
    return np.mean((a % low) * (b % low) % p == (a * b) % p)


@FEW
@given(task=st.sampled_from(tasks.MODULAR_TASKS), p=st.integers(2, 60), n_train=st.integers(1, 2),
       extra=st.integers(1, 2))
def test_theory_exact_matches_brute_force_enumeration(task, p, n_train, extra):
    length = min(n_train + extra, 3)
    assert evaluate.theory_exact(task, p, n_train, length) == pytest.approx(_brute_force(task, p, n_train, length),
                                                                           abs=1e-12)


def test_theory_matches_the_papers_table():
    assert round(evaluate.theory_asymptotic("mod_add", 101, 4), 4) == 0.0099
    assert evaluate.theory_asymptotic("mod_add", 150, 4) == pytest.approx(1 / 3)
    assert round(evaluate.theory_asymptotic("mod_add", 51, 4), 4) == 0.0196
    assert evaluate.theory_asymptotic("mod_add", 100, 4) == 1.0
    # The exact probability at a finite length is close to the limit, and 1 in distribution.
    assert evaluate.theory_exact("mod_add", 101, 4, 12) == pytest.approx(1 / 101, rel=1e-4)
    assert evaluate.theory_exact("mod_add", 101, 4, 4) == 1.0
    assert evaluate.theory_exact("mod_add", 100, 4, 9) == 1.0


def test_theory_exact_hand_computed_small_case():
    # p = 3, n = 1, 2-digit operands: right iff 3 | a_hi + b_hi with a_hi, b_hi in 1..9;
    # each residue class has 3 members, so 27 of the 81 pairs.
    assert evaluate.theory_exact("mod_add", 3, 1, 2) == pytest.approx(27 / 81)


def test_mod_mul_limit_matches_enumeration_with_uniform_high_parts():
    # The limit: a_hi, b_hi uniform mod q, a_lo, b_lo uniform below 10^n (n = 1).
    for p in (7, 12, 13):
        q = p // math.gcd(p, 10)
        u, v, x, y = np.meshgrid(np.arange(q), np.arange(q), np.arange(10), np.arange(10), indexing="ij")
        limit = np.mean((u * v * 10 + u * y + x * v) % q == 0)
        assert evaluate.theory_asymptotic("mod_mul", p, 1) == pytest.approx(limit, abs=1e-12)
        assert evaluate.theory_exact("mod_mul", p, 1, 14) == pytest.approx(limit, abs=1e-9)


def test_theory_is_none_where_it_is_not_defined_or_not_countable():
    assert evaluate.theory_asymptotic("add", 0, 4) is None
    assert evaluate.theory_exact("mul", 0, 4, 8) is None
    assert evaluate.theory_exact("mod_mul", 997, 3, 6) is None  # q = 997 is above the exact bound
    assert evaluate.theory_exact("mod_mul", 997, 3, 3) == 1.0  # in distribution it is always right


def test_theory_is_fast_for_the_largest_moduli():
    started = time.perf_counter()
    assert evaluate.theory_exact("mod_add", 999_983, 4, 40) == pytest.approx(1 / 999_983, rel=1e-6)
    assert 0 < evaluate.theory_asymptotic("mod_mul", 999_983, 4) < 1e-5
    assert evaluate.theory_asymptotic("mod_add", 10**6, 6) == 1.0
    assert time.perf_counter() - started < 2.0


def test_theory_rejects_bad_input_naming_the_field():
    with pytest.raises(ConfigError, match=r"^task\.moduli: modulus 1 is not allowed"):
        evaluate.theory_exact("mod_add", 1, 4, 5)
    with pytest.raises(ConfigError, match=r"^task\.name: unknown task 'sub'"):
        evaluate.theory_asymptotic("sub", 7, 4)
    with pytest.raises(ConfigError, match=r"^eval\.lengths: 0 is not allowed"):
        evaluate.theory_exact("mod_add", 7, 4, 0)


# ---------------------------------------------------------------------------------------------
# The fixed test sets


def test_eval_operands_are_exactly_i_digits_and_deterministic():
    spec = spec_for("mod_add", 5, "pad=5,reverse_result,eos", 101)
    sets = evaluate.eval_operands(spec, [1, 3, 5], 50, seed=7)
    assert sorted(sets) == [1, 3, 5]
    for length, pair in sets.items():
        for digits in pair:
            assert digits.shape == (50, 5)
            values = [tasks.digits_to_int(row) for row in digits]
            low = 0 if length == 1 else 10 ** (length - 1)
            assert all(low <= v < 10**length for v in values)
    again = evaluate.eval_operands(spec, [3], 50, seed=7)
    np.testing.assert_array_equal(again[3][0], sets[3][0])  # independent of the other lengths
    other_seed = evaluate.eval_operands(spec, [3], 50, seed=8)
    assert not np.array_equal(other_seed[3][0], sets[3][0])


def test_eval_operands_reject_lengths_beyond_the_width():
    spec = spec_for("add", 5, "reverse_result,eos")
    allowed = r"each length must be an integer in \[1, 5\]"
    with pytest.raises(ConfigError, match=rf"^eval\.lengths: 6 is not allowed; {allowed}"):
        evaluate.eval_operands(spec, [2, 6], 10, seed=0)
    with pytest.raises(ConfigError, match=r"^eval\.examples_per_length: 0 is not allowed"):
        evaluate.eval_operands(spec, [2], 0, seed=0)


# ---------------------------------------------------------------------------------------------
# The analysis plots


def test_analyze_writes_two_png_plots_the_unseen_places_and_the_attention(trained_add, tmp_path):
    graphdef, _, late = trained_add
    paths = analyze.analyze(graphdef, late, ADD3, 2, 0, str(tmp_path), title="add,seed=0")
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["answer_positions.png", "pca_final_token.png",
                                                     "unseen_places.json", "attention.json", "unseen_digits.json"]
    with open(paths[3]) as f:
        attention = json.load(f)
    assert attention["member"] == "add,seed=0" and attention["unseen_places"] == [2]
    assert len(attention["passes"]) == TINY_MODEL["num_layers"]
    unseen = []
    for block_pass in attention["passes"]:
        assert len(block_pass["heads"]) == TINY_MODEL["num_heads"]
        for head in block_pass["heads"]:
            a, b = head["a_places"], head["b_places"]
            assert len(a) == len(b) == 3 and min(a + b) >= 0
            assert head["trained"] == pytest.approx(sum(a[:2]) + sum(b[:2]), abs=1e-4)
            assert head["unseen"] == pytest.approx(a[2] + b[2], abs=1e-4)
            assert head["trained"] + head["unseen"] <= 1 + 1e-6
            unseen.append(head["unseen"])
    assert attention["unseen_mean"] == pytest.approx(np.mean(unseen))
    with open(paths[2]) as f:
        places = json.load(f)
    # ADD3 holds 3 digits and the model trained on 2: one unseen place, 10^2, in a, b or both.
    assert places["member"] == "add,seed=0" and places["n_train"] == 2 and places["places"] == [2]
    assert sorted(places["equiv_acc"]) == ["a", "b", "both"]
    for scores in places["equiv_acc"].values():
        assert len(scores) == 1 and 0.0 <= scores[0] <= 1.0
    for path in paths[:2]:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        height, width, channels = mpimg.imread(path).shape
        assert height > 200 and width > 200 and channels in (3, 4)
    with open(paths[4]) as f:
        digits = json.load(f)
    assert digits["member"] == "add,seed=0" and digits["place"] == 2 and digits["digits"] == list(range(1, 10))
    assert len(digits["equiv_acc"]) == 9 and all(0.0 <= x <= 1.0 for x in digits["equiv_acc"])
    assert len(digits["attention"]) == TINY_MODEL["num_layers"]
    for block_pass in digits["attention"]:
        assert len(block_pass) == TINY_MODEL["num_heads"]
        assert all(len(per_digit) == 9 and 0.0 <= min(per_digit) and max(per_digit) <= 1.0 for per_digit in block_pass)
    with pytest.raises(ConfigError, match=r"^task\.width: 3 is too small for analyze"):
        analyze.analyze(graphdef, late, ADD3, 3, 0, str(tmp_path))


def test_attention_by_digit_is_the_attention_on_that_place_over_each_digits_operands(trained_add):
    graphdef, _, late = trained_add
    a_DxNxW, b_DxNxW = analyze.one_unseen_place_by_digit(np.random.default_rng(3), 2, 3, 16)
    by_digit = analyze.attention_on_place_by_digit(graphdef, late, ADD3, 0, 2, a_DxNxW, b_DxNxW)
    for d in (0, 4, 8):  # groups of digits 1, 5 and 9, each on its own
        alone = analyze.attention_on_places(graphdef, late, ADD3, 2, 0, a_DxNxW[d], b_DxNxW[d])
        for block_pass, heads in zip(alone["passes"], by_digit):
            for head, per_digit in zip(block_pass["heads"], heads):
                assert per_digit[d] == pytest.approx(head["a_places"][2], abs=2e-5)


def test_analyze_writes_no_attention_record_for_unpadded_operands(trained_add, tmp_path):
    # Unpadded, a 2-digit operand has no token at 10^2 for the answer to attend to.
    graphdef, _, late = trained_add
    unpadded = spec_for("add", 3, "reverse_result,eos")
    paths = analyze.analyze(graphdef, late, unpadded, 2, 0, str(tmp_path))
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["answer_positions.png", "pca_final_token.png",
                                                     "unseen_places.json", "unseen_digits.json"]
    assert not os.path.exists(tmp_path / "attention.json")
    with open(paths[3]) as f:
        assert "attention" not in json.load(f)


@settings(max_examples=30, deadline=None)
@given(n_train=st.integers(1, 4), extra=st.integers(1, 4), operand=st.sampled_from(["a", "b", "both"]),
       seed=st.integers(0, 2**31 - 1), data=st.data())
def test_one_unseen_place_varies_only_that_place_of_the_named_operand(n_train, extra, operand, seed, data):
    width = n_train + extra
    place = data.draw(st.integers(n_train, width - 1))
    a_NxW, b_NxW = analyze.one_unseen_place(np.random.default_rng(seed), n_train, width, place, operand, 64)
    for name, digits_NxW in (("a", a_NxW), ("b", b_NxW)):
        values = [tasks.digits_to_int(row) for row in digits_NxW]
        lows, highs = [v % 10**n_train for v in values], [v // 10**n_train for v in values]
        assert all(0 <= low < 10**n_train for low in lows)
        if operand in (name, "both"):  # exactly one nonzero digit, at 10^place
            assert all(h * 10**n_train // 10**place in range(1, 10) and h * 10**n_train % 10**place == 0
                       for h in highs)
        else:
            assert highs == [0] * len(values)


@settings(max_examples=30, deadline=None)
@given(n_train=st.integers(1, 4), extra=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_one_unseen_place_by_digit_puts_digit_d_of_group_d_at_the_first_unseen_place_of_a(n_train, extra, seed):
    a_DxNxW, b_DxNxW = analyze.one_unseen_place_by_digit(np.random.default_rng(seed), n_train, n_train + extra, 32)
    assert a_DxNxW.shape == b_DxNxW.shape == (9, 32, n_train + extra)
    for d, (a_NxW, b_NxW) in enumerate(zip(a_DxNxW, b_DxNxW), start=1):
        a_values = [tasks.digits_to_int(row) for row in a_NxW]
        assert all(v // 10**n_train == d for v in a_values)  # d at 10^n_train, nothing above
        assert all(0 <= tasks.digits_to_int(row) < 10**n_train for row in b_NxW)


def test_digit_accuracy_ignores_padding_no_answer_can_reach():
    # mod 100 answers have 2 places; padded to 10 digits, the 8 always-zero places must not count.
    spec = tasks.TaskSpec("mod_add", 3, tasks.Format.parse("pad=3/10,reverse_result,eos"), 100)
    a = np.stack([tasks.int_to_digits(x, 3) for x in (123, 456)])
    b = np.stack([tasks.int_to_digits(x, 3) for x in (77, 999)])
    batch = tasks.batch_for_operands(spec, a, b, 100)
    tokens = np.asarray(batch.tokens)
    # A model that predicts the right sequence except the units digit of every answer.
    wrong = tokens.copy()
    for row, start in enumerate(np.asarray(batch.answer_start)):
        wrong[row, start] = (wrong[row, start] + 1) % 10
    logits = jax.nn.one_hot(np.roll(wrong, -1, axis=1), spec.vocab_size) * 10.0
    exact, digit = evaluate.exact_match(logits, batch, spec)
    assert exact.tolist() == [False, False]
    assert np.asarray(digit).tolist() == [0.5, 0.5]  # 1 of the 2 reachable places right
