"""Operand lengths and operand digits for training and evaluation: the `Sampling` mixtures
(exact:n, below:n, uniform:lo-hi, dn:n) and their jitted sampler."""

from __future__ import annotations

import dataclasses
import math
import re

import jax
import jax.numpy as jnp
import numpy as np

from arith_jax.errors import ConfigError

# ----------------------------------------------------------------------------------------
# Operand-length sampling
# ----------------------------------------------------------------------------------------

_KINDS_HELP = "exact:N, below:N, uniform:LO-HI or dn:N, each optionally @WEIGHT"
_COMPONENT = re.compile(r"(exact|below|dn):(-?\d+)|uniform:(-?\d+)-(-?\d+)")


@dataclasses.dataclass(frozen=True)
class LengthComponent:
    """One mixture component. exact/below/dn use lo == hi == n."""

    kind: str  # 'exact' | 'below' | 'uniform' | 'dn'
    lo: int
    hi: int
    weight: float

    def length_classes(self) -> set[tuple[int, int]]:
        """The (digits of a, digits of b) pairs this component can produce."""
        n = self.hi
        if self.kind == "exact":
            return {(n, n)}
        if self.kind == "below":
            return {(i, j) for i in range(1, n + 1) for j in range(1, n + 1)}
        if self.kind == "uniform":
            return {(i, j) for i in range(self.lo, n + 1) for j in range(self.lo, n + 1)}
        return {(n, j) for j in range(1, n + 1)} | {(i, n) for i in range(1, n + 1)}

    def __str__(self) -> str:
        lengths = f"{self.lo}-{self.hi}" if self.kind == "uniform" else str(self.hi)
        return f"{self.kind}:{lengths}@{self.weight:g}"


@dataclasses.dataclass(frozen=True)
class Sampling:
    """A weighted mixture of operand-length schemes; one component is drawn per example.

    exact:n   n digits, leading digit nonzero (n = 1: any of 0..9), per operand
    below:n   a value uniform in [0, 10^n), per operand
    uniform:lo-hi  a length uniform in [lo, hi], then exactly that many digits, per operand
    dn:n      the ACL-2025 D_n: one operand (chosen at random) exactly n digits, the other
              any value below 10^n
    """

    components: tuple[LengthComponent, ...]

    @classmethod
    def parse(cls, text: str, field: str = "task.sampling") -> Sampling:
        components = []
        for item in ["".join(item.split()) for item in str(text).split(",")]:
            spec, _, weight_text = item.partition("@")
            match = _COMPONENT.fullmatch(spec)
            if not match:
                raise ConfigError(field, f"bad component {item!r} in {text!r}; expected {_KINDS_HELP}")
            if match.group(1):
                kind, lo, hi = match.group(1), int(match.group(2)), int(match.group(2))
            else:
                kind, lo, hi = "uniform", int(match.group(3)), int(match.group(4))
            if lo < 1 or hi < 1:
                raise ConfigError(field, f"{item!r}: digit counts must be >= 1")
            if lo > hi:
                raise ConfigError(field, f"{item!r}: lower length {lo} is above upper length {hi}")
            try:
                weight = float(weight_text) if weight_text else 1.0
            except ValueError:
                weight = math.nan
            if not (math.isfinite(weight) and weight > 0):
                raise ConfigError(field, f"{item!r}: the weight after '@' must be a positive number")
            components.append((kind, lo, hi, weight))
        total = sum(c[3] for c in components)
        return cls(tuple(LengthComponent(kind, lo, hi, weight / total) for kind, lo, hi, weight in components))

    @property
    def max_digits(self) -> int:
        return max(c.hi for c in self.components)

    def length_classes(self) -> frozenset[tuple[int, int]]:
        """Every (digits of a, digits of b) the mixture can produce."""
        return frozenset().union(*(c.length_classes() for c in self.components))

    @property
    def num_pairs(self) -> int:
        """How many distinct operand pairs the mixture can produce (a Python int)."""
        return sum(_numbers_with_digits(i) * _numbers_with_digits(j) for i, j in self.length_classes())

    def __str__(self) -> str:
        return ",".join(str(c) for c in self.components)


def _numbers_with_digits(n: int) -> int:
    return 10 if n == 1 else 9 * 10 ** (n - 1)


def _uniform_below(u, n: int):
    """Integers uniform in [0, n) from uniforms in [0, 1)."""
    return jnp.minimum(jnp.floor(u * n).astype(jnp.int32), n - 1)


def _component_lengths(component: LengthComponent, u_3xB):
    """(length_a, nonzero_top_a, length_b, nonzero_top_b), each [B], from three uniforms.

    Every component reads the same uniforms: an example uses only its own component, so
    sharing them keeps the draws independent and the random-number program small.
    """
    n = component.hi
    full_B = jnp.full(u_3xB.shape[1:], n, jnp.int32)
    if component.kind in ("exact", "below"):
        top_B = jnp.full(u_3xB.shape[1:], component.kind == "exact" and n > 1)
        return full_B, top_B, full_B, top_B
    if component.kind == "uniform":
        length_a = component.lo + _uniform_below(u_3xB[0], n - component.lo + 1)
        length_b = component.lo + _uniform_below(u_3xB[1], n - component.lo + 1)
        return length_a, length_a > 1, length_b, length_b > 1
    a_is_exact_B = u_3xB[2] < 0.5
    return full_B, a_is_exact_B & (n > 1), full_B, ~a_is_exact_B & (n > 1)


def sample_operands(key, sampling: Sampling, width: int, batch: int):
    """(a_BxW, b_BxW) int32 digit arrays drawn from `sampling` (static with width and batch)."""
    if width < sampling.max_digits:
        raise ConfigError("task.width", f"{width} digits cannot hold the {sampling.max_digits}-digit operands of "
                                        f"sampling {str(sampling)!r}")
    key_lengths, key_digits = jax.random.split(key)
    u_4xB = jax.random.uniform(key_lengths, (4, batch))  # component, then its three uniforms
    per_component = [_component_lengths(c, u_4xB[1:]) for c in sampling.components]
    stacked = [jnp.stack(parts) for parts in zip(*per_component)]  # 4 x [C, B]
    upper_bounds_C = np.cumsum([c.weight for c in sampling.components])[:-1]
    component_B = jnp.sum(u_4xB[0][:, None] >= upper_bounds_C[None, :], axis=1)
    length_a, top_a, length_b, top_b = [jnp.take_along_axis(s, component_B[None], axis=0)[0] for s in stacked]

    # Digits and a 1..9 top digit for each operand from one block of uniforms (float32
    # uniforms have 23 random bits: the bias of floor(10 u) is below 1e-6).
    u_2xBxW1 = jax.random.uniform(key_digits, (2, batch, width + 1))
    position_W = jnp.arange(width)
    operands = []
    for u_BxW1, length_B, top_B in ((u_2xBxW1[0], length_a, top_a), (u_2xBxW1[1], length_b, top_b)):
        digits_BxW = _uniform_below(u_BxW1[:, :width], 10)
        is_top_BxW = (position_W == length_B[:, None] - 1) & top_B[:, None]
        digits_BxW = jnp.where(is_top_BxW, 1 + _uniform_below(u_BxW1[:, width:], 9), digits_BxW)
        operands.append(jnp.where(position_W < length_B[:, None], digits_BxW, 0))
    return tuple(operands)
