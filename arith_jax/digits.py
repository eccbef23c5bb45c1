"""Exact arithmetic on little-endian digit arrays, inside jit: the tasks' answers.

Numbers are int32 digit arrays (`a_BxW[:, 0]` is the units digit) of a static width, so a
128-digit operand costs what a 3-digit one does and no Python int or int64 ever reaches the
device. The modulus of the modular tasks is a traced int32 scalar, so one compiled program
serves a population of moduli under `jax.vmap`. Also: the task names, the modulus range, the
width of each task's answers, and host conversions between Python ints and digit arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from arith_jax.errors import ConfigError

TASKS = ("add", "mul", "mod_add", "mod_mul")
MODULAR_TASKS = ("mod_add", "mod_mul")
MAX_MODULUS = 10**6
# Every residue below MAX_MODULUS fits this many digits: the width of compute_result's
# answer for the modular tasks, whatever the modulus, so callers need not know it.
MODULAR_RESULT_DIGITS = len(str(MAX_MODULUS - 1))


def check_task(name: str) -> None:
    if name not in TASKS:
        raise ConfigError("task.name", f"unknown task {name!r}; allowed: {', '.join(TASKS)}")


def check_modulus(modulus: int, field: str = "task.moduli") -> None:
    if isinstance(modulus, bool) or not isinstance(modulus, (int, np.integer)) or not 2 <= modulus <= MAX_MODULUS:
        raise ConfigError(field, f"modulus {modulus!r} is not allowed; each modulus must be an integer in "
                                 f"[2, {MAX_MODULUS}]")


def result_digits(name: str, operand_digits: int, max_modulus: int = MAX_MODULUS) -> int:
    """Digits of the widest answer of `name` on operands of `operand_digits` digits."""
    if name == "add":
        return operand_digits + 1
    if name == "mul":
        return 2 * operand_digits
    return len(str(max_modulus - 1))


# ----------------------------------------------------------------------------------------
# Exact arithmetic on digit arrays
# ----------------------------------------------------------------------------------------


def _carry_lookahead(lower, upper):
    """Combines (generate, propagate) of a lower block of columns with the block above it."""
    generate_lo, propagate_lo = lower
    generate_hi, propagate_hi = upper
    return generate_hi | (propagate_hi & generate_lo), propagate_hi & propagate_lo


def _normalise(columns_BxR, bound: int):
    """Base-10 digits of sum_k columns[k] 10^k, for columns in [0, bound]; must fit R digits.

    A few passes of "keep x mod 10, pass x // 10 up" shrink every column to at most 18, where
    a carry is 0 or 1; a parallel-prefix carry-lookahead then finishes in log R depth, so
    neither needs a sequential loop over the digits.
    """
    x_BxR = columns_BxR
    while bound > 18:
        x_BxR = x_BxR % 10 + jnp.pad(x_BxR[:, :-1] // 10, ((0, 0), (1, 0)))
        bound = 9 + bound // 10
    carry_out_BxR, _ = jax.lax.associative_scan(_carry_lookahead, (x_BxR >= 10, x_BxR == 9), axis=1)
    carry_in_BxR = jnp.pad(carry_out_BxR[:, :-1], ((0, 0), (1, 0)))
    return (x_BxR + carry_in_BxR) % 10


def add_digits(a_BxW, b_BxW):
    """a + b as W + 1 digits."""
    return _normalise(jnp.pad(a_BxW + b_BxW, ((0, 0), (0, 1))), 18)


def mul_digits(a_BxW, b_BxW):
    """a * b as 2W digits: digit convolution, then carries.

    The convolution is a batched matmul of a with b's Toeplitz matrix, in float32: digits
    are exact even as bfloat16 and column sums (<= 81 W) stay exact in the float32
    accumulator, and a matmul is what every accelerator does fastest.
    """
    width = a_BxW.shape[1]
    shift_WxK = np.arange(2 * width)[None, :] - np.arange(width)[:, None]  # column k - row i
    in_range_WxK = (shift_WxK >= 0) & (shift_WxK < width)
    toeplitz_BxWxK = jnp.where(in_range_WxK, b_BxW[:, np.clip(shift_WxK, 0, width - 1)], 0)
    columns_BxK = jnp.einsum("bi,bik->bk", a_BxW.astype(jnp.float32), toeplitz_BxWxK.astype(jnp.float32),
                             precision=jax.lax.Precision.HIGHEST)
    return _normalise(jnp.round(columns_BxK).astype(jnp.int32), 81 * width)


def mod_digits(x_BxW, modulus):
    """x mod p by Horner from the top digit; r < p <= 10^6 keeps 10 r + d below 10^7."""
    def step(r_B, digit_B):
        return (10 * r_B + digit_B) % modulus, None

    r_B, _ = jax.lax.scan(step, jnp.zeros(x_BxW.shape[:1], jnp.int32), x_BxW.T[::-1], unroll=8)
    return r_B


def mod_mul_digits(a_BxW, b_BxW, modulus):
    """(a mod p) * b mod p by Horner over b's digits; 10 r + d (a mod p) < 1.9e7 < 2^31."""
    a_mod_B = mod_digits(a_BxW, modulus)

    def step(r_B, digit_B):
        return (10 * r_B + digit_B * a_mod_B) % modulus, None

    r_B, _ = jax.lax.scan(step, jnp.zeros_like(a_mod_B), b_BxW.T[::-1], unroll=8)
    return r_B


def value_to_digits(x_B, width: int):
    """Little-endian digits of non-negative int32 values (width <= 9)."""
    return (x_B[:, None] // (10 ** jnp.arange(width, dtype=jnp.int32))) % 10


def compute_result(name: str, a_BxW, b_BxW, modulus=None):
    """The exact answer as digits c_BxR: R = W + 1 (add), 2W (mul), 6 (modular tasks).

    Modular answers always get MODULAR_RESULT_DIGITS digits, whatever the modulus, so a caller
    never needs the spec's width; encode shows only the spec's result_width of them. The
    modulus (traced int32 scalar) is ignored by add and mul.
    """
    check_task(name)
    a_BxW = jnp.asarray(a_BxW, jnp.int32)
    b_BxW = jnp.asarray(b_BxW, jnp.int32)
    if name == "add":
        return add_digits(a_BxW, b_BxW)
    if name == "mul":
        return mul_digits(a_BxW, b_BxW)
    modulus = jnp.asarray(modulus, jnp.int32)
    if name == "mod_add":
        residue_B = (mod_digits(a_BxW, modulus) + mod_digits(b_BxW, modulus)) % modulus
    else:
        residue_B = mod_mul_digits(a_BxW, b_BxW, modulus)
    return value_to_digits(residue_B, MODULAR_RESULT_DIGITS)


# ----------------------------------------------------------------------------------------
# Host conversions
# ----------------------------------------------------------------------------------------


def digits_to_int(digits_W) -> int:
    return int("".join(str(int(d)) for d in np.asarray(digits_W)[::-1]) or "0")


def int_to_digits(x: int, width: int) -> np.ndarray:
    if x < 0 or len(str(x)) > width:
        raise ValueError(f"{x} does not fit {width} non-negative digits")
    return np.asarray([int(ch) for ch in str(x).zfill(width)[::-1]], np.int32)
