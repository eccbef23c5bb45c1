"""The embedded default (mod 100 vs mod 101 on a CPU): `arith-jax train` with no --config."""

from arith_jax.default_config import get_config  # noqa: F401  (one source of truth)
