"""The task and its token layout, inside jit: the vocabulary, `Format` (how a problem becomes
tokens), `TaskSpec` (everything static about a task), encoding a batch and reading answers back.

The other concerns live beside it: digit arithmetic and the task names in `digits`, operand
sampling in `sampling`, human-readable examples in `printing`. Their names are re-exported
here, so `tasks.Sampling` or `tasks.compute_result` keep working for callers.

Layout of one example (every part optional except the numbers, as the Format says):

    [BOS] A (+|*) B = C [EOS] PAD...

Unpadded numbers have variable length, so each sequence is built in a fixed-size layout with
a validity mask and left-aligned by scattering the j-th valid slot to position j; the tail
is PAD. With index hints every digit is preceded by HINT_BASE + k, k its significance.
"""

from __future__ import annotations

import dataclasses
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from arith_jax.digits import (  # noqa: F401  (re-exported)
    MAX_MODULUS, MODULAR_RESULT_DIGITS, MODULAR_TASKS, TASKS, add_digits, check_modulus, check_task, compute_result,
    digits_to_int, int_to_digits, mod_digits, mod_mul_digits, mul_digits, result_digits, value_to_digits)
from arith_jax.errors import ConfigError
from arith_jax.sampling import LengthComponent, Sampling, sample_operands  # noqa: F401  (re-exported)

# ----------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------

DIGITS = tuple(range(10))
NUM_DIGITS = 10
PLUS, TIMES, EQUALS, EOS, BOS, PAD = 10, 11, 12, 13, 14, 15
HINT_BASE = 16
TOKEN_CHARS = "0123456789+*=;$."  # token id -> character, for ids below HINT_BASE


AUTO = -1  # Format.pad_result: pad to the widest result the padded operands can have

_OPERATOR = {"add": PLUS, "mul": TIMES, "mod_add": PLUS, "mod_mul": TIMES}


# ----------------------------------------------------------------------------------------
# Formats
# ----------------------------------------------------------------------------------------

_FLAG_FIELDS = {
    "plain": dict(reverse_operands=False, reverse_result=False, pad_operands=0, pad_result=0, symbols=True,
                  bos=False, eos=True),
    "reversed": dict(reverse_operands=True, reverse_result=True),
    # Xu et al., ACL 2025: $00..0a+00..0b=reversed(c padded to 21);
    "acl2025": dict(reverse_operands=False, reverse_result=True, pad_operands=20, pad_result=21, symbols=True,
                    bos=True, eos=True),
    # Xu et al., IJCAI 2024: 349+705=1054 is 00349 00705 450100, no other tokens.
    "ijcai2024": dict(reverse_operands=False, reverse_result=True, pad_operands=5, pad_result=AUTO, symbols=False,
                      bos=False, eos=False),
    "reverse_result": dict(reverse_result=True),
    "reverse_operands": dict(reverse_operands=True),
    "hints": dict(index_hints=True),
    "symbols": dict(symbols=True),
    "no_symbols": dict(symbols=False),
    "bos": dict(bos=True),
    "no_bos": dict(bos=False),
    "eos": dict(eos=True),
    "no_eos": dict(eos=False),
}
_ALLOWED_FLAGS = ", ".join(list(_FLAG_FIELDS) + ["pad=N[/M|/auto]", "pad=common"])
_PAD_FLAG = re.compile(r"pad=(\d+)(?:/(\d+|auto))?")


@dataclasses.dataclass(frozen=True)
class Format:
    """How a problem becomes tokens. The defaults are the `plain` preset: `a+b=c;`."""

    reverse_operands: bool = False  # operands units digit first
    reverse_result: bool = False  # result units digit first
    pad_operands: int = 0  # zero-pad each operand to this many digits; 0 = no padding
    pad_result: int = 0  # zero-pad the result to this many digits; 0 = none, AUTO = by task
    index_hints: bool = False  # HINT_BASE + k before each digit of significance k
    symbols: bool = True  # '+'/'*' between the operands and '=' before the result
    bos: bool = False
    eos: bool = True
    # Zero-pad both operands to the longer one's digit count, and the result to the widest
    # answer of that length (add: + 1, mul: x 2; modular: the task's result width), per example
    # (position coupling's layout, Cho et al. 2024). Exclusive with pad=N.
    pad_common: bool = False

    @classmethod
    def parse(cls, text: str, field: str = "task.format", task: str | None = None) -> Format:
        """Comma-separated presets and flags, applied left to right (a later one wins).

        Presets: plain, reversed, acl2025, ijcai2024. Flags: reverse_result,
        reverse_operands, hints, [no_]symbols, [no_]bos, [no_]eos, pad=N (result padded by
        task), pad=N/M, pad=N/auto. With `task` given, `auto` is resolved now for add and
        mul; modular tasks resolve it from their largest modulus (TaskSpec).
        """
        items = [item.strip() for item in str(text).split(",")]
        if not any(items):
            raise ConfigError(field, f"is empty; give a preset or flags from: {_ALLOWED_FLAGS}")
        values = {}
        for item in items:
            pad = _PAD_FLAG.fullmatch(item)
            if item in _FLAG_FIELDS:
                values.update(_FLAG_FIELDS[item])
            elif item == "pad=common":
                values.update(pad_common=True, pad_operands=0, pad_result=0)
            elif pad:
                result = pad.group(2)
                values["pad_operands"] = int(pad.group(1))
                values["pad_common"] = False
                values["pad_result"] = AUTO if result in (None, "auto") else int(result)
            else:
                raise ConfigError(field, f"unknown flag {item!r} in {text!r}; allowed: {_ALLOWED_FLAGS}")
        fmt = cls(**values)
        if task in ("add", "mul") and fmt.pad_result == AUTO and fmt.pad_operands:
            fmt = dataclasses.replace(fmt, pad_result=result_digits(task, fmt.pad_operands))
        return fmt

    def __str__(self) -> str:
        """The canonical spec text, which Format.parse reads back to this Format."""
        flags = ["plain"]
        if self.reverse_operands:
            flags.append("reverse_operands")
        if self.reverse_result:
            flags.append("reverse_result")
        if self.pad_operands or self.pad_result:
            flags.append(f"pad={self.pad_operands}/{'auto' if self.pad_result == AUTO else self.pad_result}")
        if self.pad_common:
            flags.append("pad=common")
        if self.index_hints:
            flags.append("hints")
        if not self.symbols:
            flags.append("no_symbols")
        if self.bos:
            flags.append("bos")
        if not self.eos:
            flags.append("no_eos")
        return ",".join(flags)


# ----------------------------------------------------------------------------------------
# The task and its token layout
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Everything static about a task: name, operand capacity W, layout, largest modulus."""

    name: str
    width: int
    format: Format
    max_modulus: int = 0  # the largest modulus used with it (modular tasks); sets result_width

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        check_task(self.name)
        if self.is_modular:
            check_modulus(self.max_modulus)
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            raise ConfigError("task.width", f"{self.width!r} is not allowed; the operand width must be >= 1 digit")
        fmt = self.format
        if fmt.pad_operands and fmt.pad_operands < self.width:
            raise ConfigError("task.format", f"pad={fmt.pad_operands}/.. is narrower than the {self.width}-digit "
                                             f"operands; pad operands to at least {self.width}")
        if fmt.pad_result != AUTO and fmt.pad_result and fmt.pad_result < self.result_width:
            raise ConfigError("task.format", f"result padding {fmt.pad_result} is narrower than the "
                                             f"{self.result_width}-digit results of {self.name}; use pad="
                                             f"{fmt.pad_operands}/{self.result_width} or pad={fmt.pad_operands}/auto")
        if not fmt.symbols and not fmt.pad_operands:
            raise ConfigError("task.format", "no_symbols needs padded operands (pad=N): without '+' and '=' only "
                                             "fixed widths separate the numbers")
        if not fmt.eos and not fmt.pad_result:
            raise ConfigError("task.format", "an unpadded result needs eos: without it the model is never taught "
                                             "where its answer ends; add eos or pad the result (pad=N/M)")

    @property
    def is_modular(self) -> bool:
        return self.name in MODULAR_TASKS

    @property
    def result_width(self) -> int:
        """Digits of the widest answer: W + 1 (add), 2W (mul), digits of max_modulus - 1."""
        return result_digits(self.name, self.width, self.max_modulus)

    @property
    def operand_slots(self) -> int:
        """Digits the layout reserves per operand."""
        return self.format.pad_operands or self.width

    @property
    def result_slots(self) -> int:
        """Digits the layout reserves for the result."""
        if self.format.pad_result == AUTO:
            return result_digits(self.name, self.operand_slots, self.max_modulus)
        return self.format.pad_result or self.result_width

    @property
    def _tokens_per_digit(self) -> int:
        return 2 if self.format.index_hints else 1

    @property
    def num_hints(self) -> int:
        return max(self.operand_slots, self.result_slots) if self.format.index_hints else 0

    @property
    def vocab_size(self) -> int:
        return HINT_BASE + self.num_hints

    @property
    def answer_len(self) -> int:
        """Most answer tokens: result digits (with hints) and EOS."""
        return self.result_slots * self._tokens_per_digit + self.format.eos

    @property
    def seq_len(self) -> int:
        fmt = self.format
        prompt = fmt.bos + 2 * self.operand_slots * self._tokens_per_digit + 2 * fmt.symbols
        return prompt + self.answer_len

    def operand_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Token index of each place of a and of b (index k: significance 10^k), for layouts
        with padded operands, where every place has a fixed token; [operand_slots] each."""
        if not self.format.pad_operands:
            raise ValueError("operand places have fixed token positions only with padded operands (pad=N)")
        fmt, slots, per_digit = self.format, self.operand_slots, self._tokens_per_digit
        slot_S = np.arange(slots) if fmt.reverse_operands else slots - 1 - np.arange(slots)
        a_S = fmt.bos + slot_S * per_digit + per_digit - 1  # a hint comes before its digit
        return a_S, a_S + slots * per_digit + fmt.symbols


class Batch(NamedTuple):
    tokens: jax.Array  # [B, T] int32
    answer_mask: jax.Array  # [B, T] bool: the answer tokens (loss mask)
    answer_start: jax.Array  # [B] int32: index of the first answer token
    a: jax.Array  # [B, W] int32 digits
    b: jax.Array  # [B, W] int32 digits
    c: jax.Array  # [B, R] int32 digits, as compute_result returns them


def _num_digits(digits_BxN):
    """Digits without leading zeros; 0 has one digit."""
    position_N = jnp.arange(1, digits_BxN.shape[1] + 1)
    return jnp.maximum(jnp.max(jnp.where(digits_BxN != 0, position_N, 0), axis=1), 1)


def _number_layout(digits_BxN, slots: int, reverse: bool, padded: bool, hints: bool, length_B=None):
    """(tokens, valid) of one number in `slots` digit positions, in the format's order: all
    slots (padded), its own digits, or, with `length_B`, that many low digits per example."""
    digits_BxS = jnp.pad(digits_BxN[:, :slots], ((0, 0), (0, max(0, slots - digits_BxN.shape[1]))))
    significance_S = np.arange(slots) if reverse else np.arange(slots)[::-1]
    tokens_BxS = digits_BxS[:, significance_S]
    if length_B is not None:
        valid_BxS = significance_S[None, :] < length_B[:, None]
    elif padded:
        valid_BxS = jnp.ones(tokens_BxS.shape, bool)
    else:
        valid_BxS = significance_S[None, :] < _num_digits(digits_BxS)[:, None]
    if hints:
        hints_BxS = jnp.broadcast_to(HINT_BASE + significance_S, tokens_BxS.shape)
        tokens_BxS = jnp.stack([hints_BxS, tokens_BxS], axis=2).reshape(tokens_BxS.shape[0], 2 * slots)
        valid_BxS = jnp.repeat(valid_BxS, 2, axis=1)
    return tokens_BxS, valid_BxS


def encode(spec: TaskSpec, a_BxW, b_BxW, c_BxR):
    """(tokens_BxT int32, answer_mask_BxT bool, answer_start_B int32) for `[BOS] A op B = C [EOS]`.

    c may be wider than spec.result_width (compute_result's modular answers are); only its
    low result_width digits are shown, the rest are zero for any answer the spec admits.
    """
    fmt = spec.format
    batch = a_BxW.shape[0]
    hints = fmt.index_hints

    def constant(token):
        return jnp.full((batch, 1), token, jnp.int32), jnp.ones((batch, 1), bool)

    operand_padded = bool(fmt.pad_operands)
    result_padded = bool(fmt.pad_result)
    operand_len_B = result_len_B = None
    if fmt.pad_common:
        operand_len_B = jnp.maximum(_num_digits(a_BxW), _num_digits(b_BxW))
        result_len_B = (jnp.full_like(operand_len_B, spec.result_slots) if spec.is_modular
                        else jnp.minimum(result_digits(spec.name, operand_len_B), spec.result_slots))
    prompt = []
    if fmt.bos:
        prompt.append(constant(BOS))
    prompt.append(_number_layout(a_BxW, spec.operand_slots, fmt.reverse_operands, operand_padded, hints,
                                 operand_len_B))
    if fmt.symbols:
        prompt.append(constant(_OPERATOR[spec.name]))
    prompt.append(_number_layout(b_BxW, spec.operand_slots, fmt.reverse_operands, operand_padded, hints,
                                 operand_len_B))
    if fmt.symbols:
        prompt.append(constant(EQUALS))
    c_shown = c_BxR[:, : spec.result_width]
    answer = [_number_layout(c_shown, spec.result_slots, fmt.reverse_result, result_padded, hints, result_len_B)]
    if fmt.eos:
        answer.append(constant(EOS))

    prompt_tokens = jnp.concatenate([t for t, _ in prompt], axis=1).astype(jnp.int32)
    prompt_valid = jnp.concatenate([v for _, v in prompt], axis=1)
    answer_tokens = jnp.concatenate([t for t, _ in answer], axis=1).astype(jnp.int32)
    answer_valid = jnp.concatenate([v for _, v in answer], axis=1)
    tokens_BxT = jnp.concatenate([prompt_tokens, answer_tokens], axis=1)
    valid_BxT = jnp.concatenate([prompt_valid, answer_valid], axis=1)
    in_answer_T = np.arange(spec.seq_len) >= prompt_tokens.shape[1]
    answer_start_B = prompt_valid.sum(axis=1).astype(jnp.int32)
    if operand_padded and result_padded:  # every slot is used: nothing to move
        return tokens_BxT, jnp.broadcast_to(in_answer_T, tokens_BxT.shape), answer_start_B

    # Left-align: the j-th valid slot goes to position j (a scatter; invalid slots drop).
    destination_BxT = jnp.where(valid_BxT, jnp.cumsum(valid_BxT, axis=1) - 1, spec.seq_len)
    rows_Bx1 = jnp.arange(batch)[:, None]
    tokens_BxT = jnp.full_like(tokens_BxT, PAD).at[rows_Bx1, destination_BxT].set(tokens_BxT, mode="drop")
    answer_mask_BxT = jnp.zeros(valid_BxT.shape, bool).at[rows_Bx1, destination_BxT].set(
        jnp.broadcast_to(in_answer_T, valid_BxT.shape), mode="drop")
    return tokens_BxT, answer_mask_BxT, answer_start_B


def batch_for_operands(spec: TaskSpec, a_BxW, b_BxW, modulus) -> Batch:
    """The encoded batch for given operands under `modulus` (traced; ignored by add, mul)."""
    a_BxW = jnp.asarray(a_BxW, jnp.int32)
    b_BxW = jnp.asarray(b_BxW, jnp.int32)
    c_BxR = compute_result(spec.name, a_BxW, b_BxW, modulus)
    tokens_BxT, answer_mask_BxT, answer_start_B = encode(spec, a_BxW, b_BxW, c_BxR)
    return Batch(tokens_BxT, answer_mask_BxT, answer_start_B, a_BxW, b_BxW, c_BxR)


def make_batch(spec: TaskSpec, sampling: Sampling, key, batch_size: int, modulus=None) -> Batch:
    """batch_size fresh examples; jit with spec, sampling and batch_size static."""
    a_BxW, b_BxW = sample_operands(key, sampling, spec.width, batch_size)
    return batch_for_operands(spec, a_BxW, b_BxW, modulus)


def read_result(spec: TaskSpec, tokens_BxT, answer_start_B):
    """Parses generated answers: (c_BxR digits as compute_result gives them, well_formed_B).

    Reads the result digits in the format's order from answer_start, skipping index hints.
    An unpadded result ends at the first non-digit, which must be EOS (or, without EOS in the
    format, PAD or the end). Not well formed: no digit, a wrong terminator, a non-digit inside
    a padded result, or a value wider than the task's answers. c is meaningful only where
    well formed.
    """
    fmt = spec.format
    batch, seq_len = tokens_BxT.shape
    per_digit = spec._tokens_per_digit
    slots = spec.result_slots
    index_BxL = answer_start_B[:, None] + jnp.arange(spec.answer_len)
    window_BxL = jnp.take_along_axis(tokens_BxT, jnp.minimum(index_BxL, seq_len - 1), axis=1)
    window_BxL = jnp.where(index_BxL < seq_len, window_BxL, PAD)
    digit_slots_BxS = window_BxL[:, per_digit - 1: per_digit * slots: per_digit]
    is_digit_BxS = digit_slots_BxS < NUM_DIGITS
    if fmt.pad_result:
        n_B = jnp.full((batch,), slots)
        well_formed_B = jnp.all(is_digit_BxS, axis=1)
    else:
        n_B = jnp.where(jnp.all(is_digit_BxS, axis=1), slots, jnp.argmin(is_digit_BxS, axis=1))
        well_formed_B = n_B >= 1
    after_index_B = jnp.minimum(n_B * per_digit, spec.answer_len - 1)
    after_B = jnp.take_along_axis(window_BxL, after_index_B[:, None], axis=1)[:, 0]
    if fmt.eos:
        well_formed_B &= after_B == EOS
    elif not fmt.pad_result:
        well_formed_B &= (n_B == slots) | (after_B == PAD)

    significance_S = jnp.arange(slots)
    source_BxS = significance_S[None, :] if fmt.reverse_result else n_B[:, None] - 1 - significance_S[None, :]
    values_BxS = jnp.take_along_axis(digit_slots_BxS, jnp.clip(source_BxS, 0, slots - 1), axis=1)
    c_BxS = jnp.where(significance_S[None, :] < n_B[:, None], values_BxS, 0).astype(jnp.int32)
    width = MODULAR_RESULT_DIGITS if spec.is_modular else spec.result_width
    if slots > spec.result_width:
        well_formed_B &= jnp.all(c_BxS[:, spec.result_width:] == 0, axis=1)
        c_BxS = c_BxS[:, : spec.result_width]
    return jnp.pad(c_BxS, ((0, 0), (0, width - c_BxS.shape[1]))), well_formed_B


def detokenize(tokens_T) -> str:
    """The raw token view: digits and symbols as characters, index hints as <k>."""
    return "".join(TOKEN_CHARS[t] if t < HINT_BASE else f"<{t - HINT_BASE}>" for t in np.asarray(tokens_T).tolist())
