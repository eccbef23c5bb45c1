"""Examples as people read them: `arith-jax data`'s lines."""

from __future__ import annotations

import jax

from arith_jax.digits import MODULAR_TASKS, check_modulus, digits_to_int
from arith_jax.errors import ConfigError
from arith_jax.sampling import Sampling
from arith_jax.tasks import _OPERATOR, PLUS, TaskSpec, detokenize, make_batch


def describe(name: str, a: int, b: int, c: int, modulus: int | None = None) -> str:
    """`A + B = C`, `A * B = C`, `A + B (mod P) = C`, `A * B (mod P) = C` in decimal."""
    operator = "+" if _OPERATOR[name] == PLUS else "*"
    modular = f" (mod {modulus})" if name in MODULAR_TASKS else ""
    return f"{a} {operator} {b}{modular} = {c}"


def print_examples(spec: TaskSpec, sampling: Sampling, n: int, seed: int, modulus: int | None = None,
                   raw: bool = False) -> list[str]:
    """The lines `arith-jax data` prints: n decoded examples, with the raw tokens if raw."""
    if spec.is_modular:
        check_modulus(modulus)
        if modulus > spec.max_modulus:
            raise ConfigError("task.moduli", f"modulus {modulus} is above the task's largest modulus "
                                             f"{spec.max_modulus}")
    generate = jax.jit(make_batch, static_argnums=(0, 1, 3))
    batch = jax.device_get(generate(spec, sampling, jax.random.key(seed), n, modulus))
    lines = [describe(spec.name, digits_to_int(a), digits_to_int(b), digits_to_int(c), modulus)
             for a, b, c in zip(batch.a, batch.b, batch.c)]
    if raw:
        column = max(len(line) for line in lines)
        lines = [f"{line:<{column}}   {detokenize(tokens)}" for line, tokens in zip(lines, batch.tokens)]
    return lines
