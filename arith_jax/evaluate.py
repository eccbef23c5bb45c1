"""Evaluating one member: exact match by length, greedy decoding, equivalence accuracy, theory.

The traced functions here see ONE member (its apply function and its modulus); the trainer
jits them once per evaluated length shape and vmaps them over the population. The theory
functions run on the host and count exactly (over residues, never by sampling).

Two facts the seed papers rest on, and which this module makes measurable:
- With a fixed answer length, greedy decoding is right iff the teacher-forced argmax is right
  at every answer position (induction over the answer), so accuracy needs one forward pass.
- A model trained on n-digit operands tends to compute the task on the operands'
  in-distribution representatives, (a mod 10^n) op (b mod 10^n) (Xu et al., IJCAI 2024);
  for modular addition that function is right with probability about gcd(p, 10^n)/p on long
  inputs (Xu et al., ACL 2025).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

from arith_jax import tasks
from arith_jax.errors import ConfigError

# theory_exact for mod_mul enumerates residue triples, O(q^3) for q = p / gcd(p, 10^n):
# about 0.4 s at this bound, seconds beyond it, so above it the answer is None, not an estimate.
MOD_MUL_EXACT_MAX_Q = 512


# ----------------------------------------------------------------------------------------
# Test sets
# ----------------------------------------------------------------------------------------


def eval_operands(spec: tasks.TaskSpec, lengths, n_per_length: int,
                  seed: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The fixed test set: for each length i, n_per_length pairs of exactly-i-digit operands.

    int32 digit arrays of width spec.width. "Exactly i digits" is tasks' "exact:i" (leading
    digit 1..9; any of 0..9 for i = 1), the seed papers' "i-digit operands", the distribution
    theory_exact describes. Drawn on the host with numpy (no per-length device program to
    compile), from a generator seeded by (seed, i): a length's set does not depend on which
    other lengths are asked for. Every member sees the same operands; answers differ per
    member through the modulus (tasks.batch_for_operands, inside the member's jit).
    """
    if isinstance(n_per_length, bool) or not isinstance(n_per_length, int) or n_per_length < 1:
        raise ConfigError("eval.examples_per_length", f"{n_per_length!r} is not allowed; must be an integer >= 1")
    operands = {}
    for length in lengths:
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= spec.width:
            raise ConfigError("eval.lengths", f"{length!r} is not allowed; each length must be an integer in "
                                              f"[1, {spec.width}] (the operand width, task.width)")
        rng = np.random.default_rng((seed, length))
        operands[length] = tuple(exact_length_operands(rng, length, spec.width, n_per_length) for _ in range(2))
    return operands


def exact_length_operands(rng: np.random.Generator, length: int, width: int, n: int) -> np.ndarray:
    """n uniform exactly-`length`-digit numbers as little-endian int32 digits, zero-padded to width."""
    digits_NxW = np.zeros((n, width), np.int32)
    digits_NxW[:, :length] = rng.integers(0, 10, size=(n, length))
    if length > 1:
        digits_NxW[:, length - 1] = rng.integers(1, 10, size=n)
    return digits_NxW


# ----------------------------------------------------------------------------------------
# Accuracy and decoding (traced)
# ----------------------------------------------------------------------------------------


def exact_match(logits_BxTxV, batch: tasks.Batch, spec: tasks.TaskSpec):
    """Teacher-forced correctness: (exact_B bool, digit_correct_B float in [0, 1]).

    Exact iff the argmax at t-1 equals token t at every answer position; with a fixed answer
    length that is exactly whether greedy decoding would be right. Digit accuracy counts only
    answer positions holding result digits (token < 10), not EOS or index hints, and of a
    zero-padded result only the spec.result_width places any answer can fill (a 21-digit
    padding of a mod-100 answer would otherwise score 18/21 for free).
    """
    predicted_BxT1 = jnp.argmax(logits_BxTxV[:, :-1], axis=-1)
    target_BxT1 = batch.tokens[:, 1:]
    answer_BxT1 = batch.answer_mask[:, 1:]
    right_BxT1 = predicted_BxT1 == target_BxT1
    exact_B = jnp.all(right_BxT1 | ~answer_BxT1, axis=1)
    digit_BxT1 = answer_BxT1 & (target_BxT1 < tasks.NUM_DIGITS)
    order_BxT1 = jnp.cumsum(digit_BxT1, axis=1) - 1  # index among the answer's digit tokens
    if spec.format.reverse_result:
        place_BxT1 = order_BxT1
    else:
        place_BxT1 = digit_BxT1.sum(axis=1, keepdims=True) - 1 - order_BxT1
    digit_BxT1 = digit_BxT1 & (place_BxT1 < spec.result_width)
    n_digits_B = jnp.maximum(digit_BxT1.sum(axis=1), 1)
    digit_correct_B = (right_BxT1 & digit_BxT1).sum(axis=1) / n_digits_B
    return exact_B, digit_correct_B


def greedy_decode_cached(prefill_fn, step_fn, batch: tasks.Batch, answer_len: int):
    """greedy_decode with a KV cache: one forward pass over the initial tokens (the prompt's
    keys and values; the answer window's are overwritten before they are read), then one token
    per row and step. prefill_fn(tokens) -> cache; step_fn(tokens, cache, position_B) ->
    (logits_BxV at position_B, cache). The same tokens as greedy_decode, at (answer_len + T)
    token-passes instead of answer_len x T."""
    rows_B = jnp.arange(batch.tokens.shape[0])

    def write_next(k, carry):
        tokens_BxT, cache = carry
        position_B = batch.answer_start + k
        logits_BxV, cache = step_fn(tokens_BxT, cache, position_B - 1)
        tokens_BxT = tokens_BxT.at[rows_B, position_B].set(jnp.argmax(logits_BxV, axis=-1).astype(tokens_BxT.dtype))
        return tokens_BxT, cache

    return jax.lax.fori_loop(0, answer_len, write_next, (batch.tokens, prefill_fn(batch.tokens)))[0]


def greedy_decode(apply_fn, batch: tasks.Batch, answer_len: int):
    """The model's own answers: tokens_BxT with its answer window filled greedily.

    Step k < answer_len (spec.answer_len, static) writes argmax(logits at answer_start + k - 1)
    at answer_start + k, and the next step sees it. The whole window is generated, not just
    the reference answer's mask: with an unpadded result the model's answer may be longer
    or shorter than the reference, and tasks.read_result parses what it actually wrote.
    The layout guarantees answer_start + answer_len <= T.

    One forward of the whole sequence per step: the models are tiny and T is short, so a KV
    cache would save little and cost a second model code path. The fixed-length fori_loop is
    traced inside the caller's jit (the trainer's vmapped eval, analyze's program); a jit of
    its own would key its cache on apply_fn, a fresh closure over the parameters each call.
    """
    rows_B = jnp.arange(batch.tokens.shape[0])

    def write_next(k, tokens_BxT):
        position_B = batch.answer_start + k
        logits_BxV = apply_fn(tokens_BxT)[rows_B, position_B - 1]
        return tokens_BxT.at[rows_B, position_B].set(jnp.argmax(logits_BxV, axis=-1).astype(tokens_BxT.dtype))

    return jax.lax.fori_loop(0, answer_len, write_next, batch.tokens)


def equivalence_target(spec: tasks.TaskSpec, a_BxW, b_BxW, n_train, modulus):
    """The task applied to the in-distribution representatives (a mod 10^n) and (b mod 10^n).

    What the IJCAI-2024 paper finds models output on longer operands: digits of
    significance >= n_train are dropped before the task (and its modulus) is applied.
    """
    kept_W = jnp.arange(a_BxW.shape[-1]) < n_train
    return tasks.compute_result(spec.name, jnp.where(kept_W, a_BxW, 0), jnp.where(kept_W, b_BxW, 0), modulus)


def member_metrics(apply_fn, spec: tasks.TaskSpec, a_BxW, b_BxW, modulus, n_train, decode: bool,
                   decoder=None) -> dict:
    """One member's scalars at one length: acc, digit_acc (+ decoded_acc, equiv_acc if decode).

    decoder: (prefill_fn, step_fn) to decode with a KV cache (greedy_decode_cached); None
    recomputes the whole sequence per token (greedy_decode).

    decoded_acc is the share of decoded answers equal token for token to the reference over
    the answer mask; it equals acc by construction of greedy decoding, so a difference is a
    bug. equiv_acc is the share of ALL examples whose decoded answer is well formed and equals
    equivalence_target.
    """
    batch = tasks.batch_for_operands(spec, a_BxW, b_BxW, modulus)
    exact_B, digit_correct_B = exact_match(apply_fn(batch.tokens), batch, spec)
    metrics = {"acc": exact_B.mean(), "digit_acc": digit_correct_B.mean()}
    if decode:
        decoded_BxT = (greedy_decode(apply_fn, batch, spec.answer_len) if decoder is None
                       else greedy_decode_cached(*decoder, batch, spec.answer_len))
        metrics["decoded_acc"] = jnp.all((decoded_BxT == batch.tokens) | ~batch.answer_mask, axis=1).mean()
        c_decoded, well_formed_B = tasks.read_result(spec, decoded_BxT, batch.answer_start)
        target = equivalence_target(spec, batch.a, batch.b, n_train, modulus)
        metrics["equiv_acc"] = (well_formed_B & jnp.all(c_decoded == target, axis=-1)).mean()
    return metrics


# ----------------------------------------------------------------------------------------
# Theory for modular tasks (host, exact)
#
# Write a = a_hi 10^n + a_lo with a_lo < 10^n. Let g = gcd(p, 10^n) and q = p / g; q is
# coprime to 10^n / g (each prime's smaller power is divided out of both), so
#   p | 10^n X   iff   q | X.
# mod_add: the truncated answer is right iff q | a_hi + b_hi.
# mod_mul: a b - a_lo b_lo = 10^n X with X = a_hi b_hi 10^n + a_hi b_lo + a_lo b_hi.
# For exactly-L-digit operands (L > n) a_hi is uniform on the exactly-(L-n)-digit numbers and
# independent of a_lo, which is uniform on [0, 10^n).
# ----------------------------------------------------------------------------------------


def _check_theory_args(task: str, p: int, n_train: int) -> None:
    tasks.check_task(task)
    if task in tasks.MODULAR_TASKS:
        tasks.check_modulus(p)
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
        raise ConfigError("population.train_digits", f"{n_train!r} is not allowed; must be an integer >= 1")


def _coprime_part(p: int, n_train: int) -> int:
    return p // math.gcd(p, 10**n_train)


@functools.cache
def theory_asymptotic(task: str, p: int, n_train: int) -> float | None:
    """Accuracy of the truncated function as the operand length grows; None for add and mul.

    mod_add: gcd(p, 10^n) / p, the ACL-2025 law (the high parts' residues mod q become
    uniform, and q | a_hi + b_hi has probability 1/q).
    mod_mul: the same limit for (a_lo b_lo) mod p, exact: with u, v = a_hi, b_hi uniform mod q
    and T = 10^n mod q (invertible), T X = (T u + x)(T v + y) - x y for x, y = a_lo, b_lo mod q,
    so the chance is N_q(x y) / q^2 with N_q(r) = #{U V = r mod q} = sum over d | gcd(r, q) of
    d phi(q / d), averaged over the exact distribution of (x, y). The paper states no law for
    multiplication; this is the analogue under the same truncation model.
    """
    _check_theory_args(task, p, n_train)
    if task not in tasks.MODULAR_TASKS:
        return None
    q = _coprime_part(int(p), n_train)
    if task == "mod_add" or q == 1:
        return 1.0 / q
    low_mass_by_gcd = _mass_by_gcd(_low_part_probabilities(n_train, q), q)
    total = 0.0
    for g_x, mass_x in low_mass_by_gcd.items():
        for g_y, mass_y in low_mass_by_gcd.items():
            total += mass_x * mass_y * _product_count(math.gcd(g_x * g_y, q), q)
    return total / q**2


@functools.cache
def theory_exact(task: str, p: int, n_train: int, length: int) -> float | None:
    """Exact chance that the truncated function is right on uniform exactly-`length`-digit
    operands (both of that length, as eval_operands draws them); None for add and mul.

    mod_add: count the high parts' residues mod q exactly (Python integers, any length,
    O(q) numpy work, fast for p up to 10^6). mod_mul: exact sum over the residues of
    (a_hi, a_lo, b_hi, b_lo) mod q in float64, O(q^3); for q > MOD_MUL_EXACT_MAX_Q it returns
    None (no estimate is passed off as exact; use theory_asymptotic). 1.0 when length <= n.
    """
    _check_theory_args(task, p, n_train)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError("eval.lengths", f"{length!r} is not allowed; must be an integer >= 1")
    if task not in tasks.MODULAR_TASKS:
        return None
    q = _coprime_part(int(p), n_train)
    if length <= n_train or q == 1:
        return 1.0
    high_lo, high_hi = 10 ** (length - n_train - 1), 10 ** (length - n_train)
    if task == "mod_add":
        return float(_sum_divisible_pairs(high_lo, high_hi, q))
    if q > MOD_MUL_EXACT_MAX_Q:
        return None
    return _mod_mul_exact(_residue_probabilities(high_lo, high_hi, q), _low_part_probabilities(n_train, q),
                          pow(10, n_train, q), q)


def _residue_split(lo: int, hi: int, q: int) -> tuple[int, int, np.ndarray]:
    """Residues mod q of the integers in [lo, hi): each residue occurs `base` times, and the
    `extra` ones in the boolean mask once more (a cyclic run starting at lo mod q)."""
    base, extra = divmod(hi - lo, q)
    once_more_Q = (np.arange(q) - lo % q) % q < extra
    return base, extra, once_more_Q


def _sum_divisible_pairs(lo: int, hi: int, q: int) -> Fraction:
    """P(q | h1 + h2) for h1, h2 independent and uniform on [lo, hi), as an exact fraction."""
    base, extra, once_more_Q = _residue_split(lo, hi, q)
    negated_Q = once_more_Q[(-np.arange(q)) % q]
    # sum over r of count(r) count(-r), with count = base + once_more.
    pairs = q * base * base + 2 * base * extra + int(np.count_nonzero(once_more_Q & negated_Q))
    return Fraction(pairs, (hi - lo) ** 2)


def _residue_probabilities(lo: int, hi: int, q: int) -> np.ndarray:
    base, _, once_more_Q = _residue_split(lo, hi, q)
    n = hi - lo
    return float(Fraction(base, n)) + once_more_Q * float(Fraction(1, n))


def _low_part_probabilities(n_train: int, q: int) -> np.ndarray:
    return _residue_probabilities(0, 10**n_train, q)


def _mass_by_gcd(probabilities_Q: np.ndarray, q: int) -> dict[int, float]:
    gcd_Q = np.gcd(np.arange(q), q)
    mass = np.bincount(gcd_Q, weights=probabilities_Q, minlength=q + 1)
    return {int(g): float(mass[g]) for g in np.flatnonzero(mass)}


@functools.cache
def _product_count(g: int, q: int) -> int:
    """#{(U, V) mod q : U V = r} for any r with gcd(r, q) = g."""
    return sum(d * _euler_phi(q // d) for d in _divisors(g))


def _divisors(m: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(m) + 1) if m % d == 0]
    return sorted(set(small + [m // d for d in small]))


def _euler_phi(m: int) -> int:
    result, rest, prime = m, m, 2
    while prime * prime <= rest:
        if rest % prime == 0:
            while rest % prime == 0:
                rest //= prime
            result -= result // prime
        prime += 1
    if rest > 1:
        result -= result // rest
    return result


def _mod_mul_exact(high_Q: np.ndarray, low_Q: np.ndarray, ten_pow_n: int, q: int) -> float:
    """P(q | v (T u + x) + u y): u, v ~ high_Q (the high parts mod q), x, y ~ low_Q.

    For each u: s = T u + x has probabilities low_Q shifted by T u, and the chance that
    u y = -s v is a lookup into the distribution of u y, indexed by -s v mod q.
    """
    residues_Q = np.arange(q)
    minus_product_QxQ = (-np.outer(residues_Q, residues_Q)) % q  # [s, v] -> -s v mod q
    total = 0.0
    for u in range(q):
        u_times_y_Q = np.bincount((u * residues_Q) % q, weights=low_Q, minlength=q)
        right_given_s_Q = u_times_y_Q[minus_product_QxQ] @ high_Q
        s_Q = (ten_pow_n * u + residues_Q) % q  # s for each x
        total += high_Q[u] * float(low_Q @ right_given_s_Q[s_Q])
    return total
