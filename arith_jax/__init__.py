"""arith_jax: populations of small transformers trained on arithmetic, as one JAX program."""

__version__ = "0.1.0"
