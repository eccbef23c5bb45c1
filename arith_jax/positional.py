"""The positional-encoding menu: one class per ``PositionalConfig.pe`` string (``model.pe``),
each encoding's knobs in ``PositionalConfig``.

The transformer asks an encoding three questions per forward pass, and each encoding answers
the ones it cares about (the base class answers "nothing", which is exactly NoPE):

- ``embedding``: a vector added to the token embeddings (learned, sinusoidal, abacus);
- ``rotate``: queries and keys rotated by position before the scores (rope);
- ``attention_bias``: an additive ``1 x N x T x T`` bias on the scores (alibi, t5, fire; the
  coupling window's is ``B x 1 x T x T``), computed once and shared by every layer, as T5 and
  FIRE do; KV-cached decoding asks only for the decoded token's row.

Positions are one ``positions_T`` vector per forward pass, shared by the whole batch: with
``randomized_positions`` (Ruoss et al. 2023) they are a sorted random subset of
``range(max_positions)``, drawn once per batch as in the authors' implementation, which also
keeps every bias ``1 x N x T x T`` instead of ``B x N x T x T``.

Adding an encoding: subclass ``PositionalEncoding`` here, override what it contributes plus
``check`` (its knobs) and ``positions_needed`` (its table size), and add it to ``ENCODINGS``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arith_jax.errors import ConfigError

# Token ids below this are the digits '0'..'9' (the shared vocabulary of arith_jax.tasks).
NUM_DIGIT_TOKENS = 10

# Evaluation (no key) with randomised positions draws from this fixed key: every evaluation
# sees the same positions, from the same distribution as training, rather than 0..T-1, which
# a model trained on random subsets of a large range has rarely seen packed together.
EVAL_POSITIONS_SEED = 0


def table_init(cfg: PositionalConfig):
    """Normal(position_init_std) for the learned, abacus and coupled position tables."""
    return nnx.initializers.normal(stddev=cfg.position_init_std)


@dataclasses.dataclass(frozen=True)
class PositionalConfig:
    """The encoding (``model.pe`` in a config) and every encoding's knobs; the model's sizes
    come to an encoding separately (d_model, num_heads)."""

    pe: str = "learned"
    # Rows of the learned, abacus or coupled table, and the range randomised positions are drawn
    # from (which should be well above the longest sequence). positions_needed(cfg, seq_len)
    # is the smallest value that serves a given sequence length.
    max_positions: int = 1024
    randomized_positions: bool = False
    rope_base: float = 10_000.0
    t5_num_buckets: int = 32
    t5_max_distance: int = 128
    # FIRE's defaults are the paper's: a 32-wide MLP, c = 0.1, threshold 512.
    fire_mlp_width: int = 32
    fire_init_c: float = 0.1
    fire_init_threshold: float = 512.0
    # McLeish et al. train with offsets up to 100.
    abacus_max_offset: int = 100
    # Position coupling's random start offset in training (Cho et al. draw it per example).
    coupling_max_offset: int = 100
    # Coupled encodings: attention only between tokens whose coupled ids differ by at most this
    # many places (0 = no limit), so a long input shows each token only id distances that short
    # training inputs also contain.
    coupling_window: int = 0
    # Std of the learned, abacus and coupled position tables at initialisation (GPT-2's 0.02).
    position_init_std: float = 0.02


FIELDS = tuple(f.name for f in dataclasses.fields(PositionalConfig))


def token_positions(cfg: PositionalConfig, seq_len: int, key: jax.Array | None) -> jax.Array:
    """The positions ``positions_T`` (int32) of one batch's tokens: 0..T-1, or randomised."""
    if not (cfg.randomized_positions and ENCODINGS[cfg.pe].position_indexed):
        return jnp.arange(seq_len, dtype=jnp.int32)
    sample_key = jax.random.key(EVAL_POSITIONS_SEED) if key is None else key
    subset_T = jax.random.choice(sample_key, cfg.max_positions, (seq_len,), replace=False)
    return jnp.sort(subset_T).astype(jnp.int32)


class PositionalEncoding(nnx.Module):
    """No positional information at all (NoPE): causal attention alone must infer order."""

    # Whether the encoding reads ``positions_T`` (so randomised positions apply to it).
    position_indexed: ClassVar[bool] = False
    # Whether it adds a bias to the attention scores (fused kernels may not train one).
    adds_attention_bias: ClassVar[bool] = False
    # Whether that bias has one row per attention head (so every layer needs the same head count).
    bias_per_head: ClassVar[bool] = False

    def __init__(self, cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs):
        del cfg, d_model, num_heads, rngs

    @classmethod
    def check(cls, cfg: PositionalConfig, d_model: int, num_heads: int) -> None:
        """Raise ConfigError if this encoding's own knobs are out of range."""

    @classmethod
    def positions_needed(cls, cfg: PositionalConfig, seq_len: int) -> int:
        """The smallest ``max_positions`` (table rows) that serves sequences of ``seq_len`` tokens."""
        return 0

    def embedding(self, tokens_BxT: jax.Array, positions_T: jax.Array, key: jax.Array | None) -> jax.Array | None:
        """Added to the token embeddings: ``TxD`` or ``BxTxD`` float32, or None."""
        return None

    def rotary_positions(self, tokens_BxT: jax.Array, positions_T: jax.Array, key: jax.Array | None) -> jax.Array:
        """The positions ``rotate`` sees: ``positions_T``, or per-example ``BxT`` ones read from the
        tokens (coupled_rope); ``key`` (training only) draws any random offsets."""
        return positions_T

    def rotate(self, q_BxTxNxH: jax.Array, k_BxTxNxH: jax.Array, positions_T: jax.Array) -> tuple[jax.Array, jax.Array]:
        return q_BxTxNxH, k_BxTxNxH

    def attention_bias(self, tokens_BxT: jax.Array, positions_T: jax.Array,
                       query_B: jax.Array | None = None) -> jax.Array | None:
        """Added to the attention scores, float32, or None. For every query position (``query_B``
        None): ``1xNxTxT`` (by position) or ``Bx1xTxT`` (read from the tokens). For one query
        position per example (``query_B``, KV-cached decoding): only those rows, ``BxNxT`` or
        ``Bx1xT``, so a decoded token costs O(T), not O(T^2)."""
        return None

    @classmethod
    def biases_attention(cls, cfg: PositionalConfig) -> bool:
        """Whether ``attention_bias`` returns a bias under ``cfg`` (fused kernels may not take one)."""
        return cls.adds_attention_bias


class Learned(PositionalEncoding):
    """A learned absolute table of ``max_positions`` rows (GPT-2)."""

    position_indexed = True

    def __init__(self, cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs):
        self.table = nnx.Embed(cfg.max_positions, d_model, embedding_init=table_init(cfg), rngs=rngs)

    @classmethod
    def positions_needed(cls, cfg: PositionalConfig, seq_len: int) -> int:
        # A lookup past the table would silently read a clamped row: validate refuses it instead.
        return seq_len

    def embedding(self, tokens_BxT, positions_T, key):
        return self.table(positions_T)


class Sinusoidal(PositionalEncoding):
    """Fixed sines and cosines of geometrically spaced frequencies (Vaswani et al. 2017)."""

    position_indexed = True

    def __init__(self, cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs):
        self.d_model = d_model

    def embedding(self, tokens_BxT, positions_T, key):
        num_frequencies = math.ceil(self.d_model / 2)
        inverse_frequency_F = 10_000.0 ** (-jnp.arange(num_frequencies, dtype=jnp.float32) / num_frequencies)
        angle_TxF = positions_T.astype(jnp.float32)[:, None] * inverse_frequency_F
        return jnp.concatenate([jnp.sin(angle_TxF), jnp.cos(angle_TxF)], axis=-1)[:, : self.d_model]


class RoPE(PositionalEncoding):
    """Rotary embeddings (Su et al. 2021): q.k depends only on the distance between positions."""

    position_indexed = True

    def __init__(self, cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs):
        self.base = cfg.rope_base

    @classmethod
    def check(cls, cfg: PositionalConfig, d_model: int, num_heads: int) -> None:
        head_dim = d_model // num_heads
        if head_dim % 2:
            raise ConfigError("model.num_heads", f"rope rotates pairs of dimensions, so d_model / num_heads "
                                                 f"must be even, got {d_model} / {num_heads} = {head_dim}")
        if cfg.rope_base <= 1:
            raise ConfigError("model.rope_base", f"must be > 1, got {cfg.rope_base}")

    def rotate(self, q_BxTxNxH, k_BxTxNxH, positions_T):
        half = q_BxTxNxH.shape[-1] // 2
        inverse_frequency_F = self.base ** (-jnp.arange(half, dtype=jnp.float32) / half)
        # positions_T may also be BxT (per-example positions): the angles broadcast either way.
        angle_Tx1xF = positions_T.astype(jnp.float32)[..., None, None] * inverse_frequency_F
        cos, sin = jnp.cos(angle_Tx1xF), jnp.sin(angle_Tx1xF)

        def rotated(x_BxTxNxH):
            first, second = jnp.split(x_BxTxNxH.astype(jnp.float32), 2, axis=-1)
            both = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
            return both.astype(x_BxTxNxH.dtype)

        return rotated(q_BxTxNxH), rotated(k_BxTxNxH)


def alibi_slopes(num_heads: int) -> np.ndarray:
    """Per-head slopes of Press et al. 2022, including their recipe for non-powers of two."""

    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    closest_power = 2 ** math.floor(math.log2(num_heads))
    extra = geometric(2 * closest_power)[0::2][: num_heads - closest_power]
    return np.asarray(geometric(closest_power) + extra, dtype=np.float32)


def _distance_QxT(positions_T: jax.Array, query_B: jax.Array | None) -> jax.Array:
    """Query position minus key position (>= 0 wherever causal attention looks), for every query
    (``TxT``) or for the one query ``query_B`` of each example (``BxT``)."""
    return _query_positions(positions_T, query_B)[:, None] - positions_T[None, :]


def _query_positions(positions_T: jax.Array, query_B: jax.Array | None) -> jax.Array:
    return positions_T if query_B is None else positions_T[query_B]


def _heads_first(bias_QxTxN: jax.Array, query_B: jax.Array | None) -> jax.Array:
    """A per-position bias in attention_bias's layout: ``1xNxTxT``, or ``BxNxT`` for decoding."""
    return jnp.transpose(bias_QxTxN, (2, 0, 1))[None] if query_B is None else jnp.transpose(bias_QxTxN, (0, 2, 1))


class ALiBi(PositionalEncoding):
    """A fixed linear penalty on distance, one slope per head (Press et al. 2022)."""

    position_indexed = True
    adds_attention_bias = True
    bias_per_head = True

    def __init__(self, cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs):
        self.num_heads = num_heads

    def attention_bias(self, tokens_BxT, positions_T, query_B=None):
        slopes_N = jnp.asarray(alibi_slopes(self.num_heads))
        return _heads_first(-_distance_QxT(positions_T, query_B).astype(jnp.float32)[..., None] * slopes_N, query_B)


def t5_buckets(distance: jax.Array, num_buckets: int, max_distance: int) -> jax.Array:
    """T5's unidirectional buckets: exact below num_buckets/2, then log-spaced up to max_distance."""
    distance = jnp.maximum(distance, 0)
    exact = num_buckets // 2
    log_ratio = jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / exact) / math.log(max_distance / exact)
    far = exact + (log_ratio * (num_buckets - exact)).astype(jnp.int32)
    return jnp.where(distance < exact, distance, jnp.minimum(far, num_buckets - 1))


class T5(PositionalEncoding):
    """A learned scalar per (distance bucket, head) (Raffel et al. 2020)."""

    position_indexed = True
    adds_attention_bias = True
    bias_per_head = True

    def __init__(self, cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs):
        self.num_buckets = cfg.t5_num_buckets
        self.max_distance = cfg.t5_max_distance
        # T5's own initialisation of the bias table: normal with std d_model**-0.5.
        init = nnx.initializers.normal(stddev=d_model ** -0.5)
        self.table = nnx.Embed(cfg.t5_num_buckets, num_heads, embedding_init=init, rngs=rngs)

    @classmethod
    def check(cls, cfg: PositionalConfig, d_model: int, num_heads: int) -> None:
        if cfg.t5_num_buckets < 2:
            raise ConfigError("model.t5_num_buckets", f"must be >= 2, got {cfg.t5_num_buckets}")
        if cfg.t5_max_distance <= cfg.t5_num_buckets // 2:
            raise ConfigError("model.t5_max_distance", f"must exceed t5_num_buckets / 2 = "
                                                       f"{cfg.t5_num_buckets // 2}, got {cfg.t5_max_distance}")

    def attention_bias(self, tokens_BxT, positions_T, query_B=None):
        bucket_QxT = t5_buckets(_distance_QxT(positions_T, query_B), self.num_buckets, self.max_distance)
        return _heads_first(self.table(bucket_QxT), query_B)


class FIRE(PositionalEncoding):
    """Functional interpolation for relative positions (Li et al. 2023).

    bias(i, j) = MLP(psi(i - j) / psi(max(i, L))), psi(x) = log(|c x| + 1), with learnable c and
    threshold L (as ``|scale * L0|``, the authors' parameterisation, so a unit-size Adam step
    moves L by a fraction of itself). Below the threshold the bias depends only on i - j; past it
    the distances are squeezed into [0, 1] so longer inputs interpolate rather than extrapolate.
    """

    position_indexed = True
    adds_attention_bias = True
    bias_per_head = True
    # Keeps psi(max(i, L)) away from zero if c or L is driven to 0.
    EPSILON: ClassVar[float] = 1e-6

    def __init__(self, cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(1, cfg.fire_mlp_width, rngs=rngs)
        self.out = nnx.Linear(cfg.fire_mlp_width, num_heads, rngs=rngs)
        self.c = nnx.Param(jnp.asarray(cfg.fire_init_c, jnp.float32))
        self.threshold_scale = nnx.Param(jnp.asarray(1.0, jnp.float32))
        self.initial_threshold = cfg.fire_init_threshold

    @classmethod
    def check(cls, cfg: PositionalConfig, d_model: int, num_heads: int) -> None:
        if cfg.fire_mlp_width < 1:
            raise ConfigError("model.fire_mlp_width", f"must be a positive integer, got {cfg.fire_mlp_width}")
        if cfg.fire_init_c <= 0:
            raise ConfigError("model.fire_init_c", f"must be > 0, got {cfg.fire_init_c}")
        if cfg.fire_init_threshold <= 0:
            raise ConfigError("model.fire_init_threshold", f"must be > 0, got {cfg.fire_init_threshold}")

    def attention_bias(self, tokens_BxT, positions_T, query_B=None):
        c = self.c[...]
        psi = lambda x: jnp.log(jnp.abs(c * x) + 1.0)
        position_T = positions_T.astype(jnp.float32)
        threshold = jnp.abs(self.threshold_scale[...] * self.initial_threshold)
        query_Q = _query_positions(position_T, query_B)
        normaliser_Qx1 = psi(jnp.maximum(query_Q, threshold))[:, None] + self.EPSILON
        relative_QxTx1 = (psi(_distance_QxT(position_T, query_B)) / normaliser_Qx1)[..., None]
        return _heads_first(self.out(jax.nn.relu(self.hidden(relative_QxTx1))), query_B)


def shift_by_random_offset(ids_BxT: jax.Array, key: jax.Array | None, max_offset: int) -> jax.Array:
    """Every nonzero id of a sequence shifted by one offset in [0, max_offset] drawn per sequence
    (training: `key`); id 0 stays. Unchanged without a key (evaluation). Abacus and position
    coupling train their long-number ids this way on short numbers."""
    if key is None:
        return ids_BxT
    offset_Bx1 = jax.random.randint(key, (ids_BxT.shape[0], 1), 0, max_offset + 1)
    return jnp.where(ids_BxT > 0, ids_BxT + offset_Bx1, 0)


def digit_places(tokens_BxT: jax.Array) -> jax.Array:
    """1-based place of each digit token within its run of consecutive digits; 0 elsewhere."""
    is_digit_BxT = tokens_BxT < NUM_DIGIT_TOKENS
    index_BxT = jnp.broadcast_to(jnp.arange(tokens_BxT.shape[1]), tokens_BxT.shape)
    last_non_digit_BxT = jax.lax.cummax(jnp.where(is_digit_BxT, -1, index_BxT), axis=1)
    return jnp.where(is_digit_BxT, index_BxT - last_non_digit_BxT, 0).astype(jnp.int32)


class Abacus(PositionalEncoding):
    """Each digit's place within its own number (McLeish et al. 2024), read from the tokens.

    Row 0 of the table embeds every non-digit token. A number is a run of consecutive digit
    tokens, so a format that interleaves index hints gives every digit place 1. In training, one
    random offset per sequence in [0, abacus_max_offset] shifts all its places, so the rows a long
    evaluation number needs have been trained on short ones.
    """

    def __init__(self, cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs):
        self.table = nnx.Embed(cfg.max_positions + 1, d_model, embedding_init=table_init(cfg), rngs=rngs)
        self.max_offset = cfg.abacus_max_offset

    @classmethod
    def check(cls, cfg: PositionalConfig, d_model: int, num_heads: int) -> None:
        if cfg.abacus_max_offset < 0:
            raise ConfigError("model.abacus_max_offset", f"must be >= 0, got {cfg.abacus_max_offset}")

    @classmethod
    def positions_needed(cls, cfg: PositionalConfig, seq_len: int) -> int:
        # A number is at most the whole sequence, pushed up by at most the largest offset.
        return seq_len + cfg.abacus_max_offset

    def embedding(self, tokens_BxT, positions_T, key):
        return self.table(shift_by_random_offset(digit_places(tokens_BxT), key, self.max_offset))


# The '=' token of arith_jax.tasks (tests check they agree): where a result starts.
EQUALS_TOKEN = 12


def coupled_ids(tokens_BxT: jax.Array) -> jax.Array:
    """Position coupling's ids (Cho et al. 2024) for ``A op B = C`` with the operands written
    most significant digit first and the result reversed (units first).

    Digits of equal significance share an id, in the operands and in the result alike, as in the
    authors' code: a digit of significance s has id s + 2, and '=' has id 1, the place below the
    units. Every other token has id 0. So the token that predicts result digit s ('=' for s = 0,
    else result digit s - 1) has id s + 1: it shares its id with operand digits s - 1 (whose sum
    and its own digit give the carry into s) and finds operand digits s at id + 1, where no
    earlier token of the result is. (Coupling each token with the digits it predicts instead puts
    result digit s - 2 beside operand digits s - 1, and a one-layer model cannot tell them apart.)
    Runs of digits are numbers, so the layout must separate them by symbols and carry no index
    hints (checked at config time).
    """
    is_digit_BxT = tokens_BxT < NUM_DIGIT_TOKENS
    from_left_BxT = digit_places(tokens_BxT)  # 1-based place within its number, from the left
    from_right_BxT = digit_places(tokens_BxT[:, ::-1])[:, ::-1]  # ... from the right
    is_equals_BxT = tokens_BxT == EQUALS_TOKEN
    in_result_BxT = jnp.cumsum(is_equals_BxT, axis=1) > 0
    ids_BxT = jnp.where(in_result_BxT, from_left_BxT, from_right_BxT) + 1
    ids_BxT = jnp.where(is_digit_BxT, ids_BxT, 0)
    return jnp.where(is_equals_BxT, 1, ids_BxT).astype(jnp.int32)


# Added to the score of a masked pair: exp() of it is 0 in float32, and a sum of two stays finite.
MASKED_SCORE = -1e9


def coupling_window_bias(tokens_BxT: jax.Array, window: int, query_B: jax.Array | None = None) -> jax.Array:
    """``Bx1xTxT`` (or ``Bx1xT``, the rows ``query_B``): 0 where the coupled ids of query and key
    differ by at most ``window``, MASKED_SCORE elsewhere. Read from the unshifted ids (a random
    offset moves every digit's id alike), so a token always sees itself."""
    ids_BxT = coupled_ids(tokens_BxT)
    query_ids_BxQ = ids_BxT if query_B is None else ids_BxT[jnp.arange(ids_BxT.shape[0]), query_B][:, None]
    far_BxQxT = jnp.abs(query_ids_BxQ[:, :, None] - ids_BxT[:, None, :]) > window
    far = far_BxQxT if query_B is None else far_BxQxT[:, 0]
    return jnp.where(far, MASKED_SCORE, 0.0).astype(jnp.float32)[:, None]


class CouplingWindow:
    """The coupled encodings' optional attention window (``coupling_window``), for both."""

    window: int

    @classmethod
    def biases_attention(cls, cfg: PositionalConfig) -> bool:
        return cfg.coupling_window > 0

    def attention_bias(self, tokens_BxT, positions_T, query_B=None):
        return coupling_window_bias(tokens_BxT, self.window, query_B) if self.window else None


class Coupled(CouplingWindow, PositionalEncoding):
    """Position coupling (Cho et al., NeurIPS 2024): a learned table indexed by `coupled_ids`,
    so the attention that adds digit s of both operands finds them by equal position.

    In training, one random offset per sequence in [0, coupling_max_offset] shifts every nonzero
    id (id 0, the symbols, stays), so the rows a long evaluation needs have been trained on short
    sequences; evaluation uses no offset.
    """

    def __init__(self, cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs):
        self.table = nnx.Embed(cfg.max_positions, d_model, embedding_init=table_init(cfg), rngs=rngs)
        self.max_offset = cfg.coupling_max_offset
        self.window = cfg.coupling_window

    @classmethod
    def check(cls, cfg: PositionalConfig, d_model: int, num_heads: int) -> None:
        if cfg.coupling_max_offset < 0:
            raise ConfigError("model.coupling_max_offset", f"must be >= 0, got {cfg.coupling_max_offset}")
        if cfg.coupling_window < 0:
            raise ConfigError("model.coupling_window", f"must be >= 0 (0 = no limit), got {cfg.coupling_window}")

    @classmethod
    def check_layout(cls, fmt) -> None:
        problems = [what for what, bad in (
            ("'+'/'*' and '=' symbols (no_symbols removes them)", not fmt.symbols),
            ("no index hints", fmt.index_hints),
            ("operands in written order (no reverse_operands)", fmt.reverse_operands),
            ("a reversed result (reverse_result)", not fmt.reverse_result),
            ("operands padded to a common length (pad=common or pad=N)", not (fmt.pad_common or fmt.pad_operands)),
        ) if bad]
        if problems:
            raise ConfigError("model.pe", f"coupling cannot read the layout {fmt}: it needs "
                                          f"{'; '.join(problems)}")

    @classmethod
    def positions_needed(cls, cfg: PositionalConfig, seq_len: int) -> int:
        # Ids count digits of one number (at most the whole sequence) plus 2, plus the offset.
        return seq_len + 2 + cfg.coupling_max_offset

    def embedding(self, tokens_BxT, positions_T, key):
        return self.table(shift_by_random_offset(coupled_ids(tokens_BxT), key, self.max_offset))


class CoupledRoPE(CouplingWindow, RoPE):
    """Position coupling through rotary embeddings: queries and keys rotated by `coupled_ids`
    instead of token positions, so a score depends only on the difference of ids. "Same
    significance" and "one place lower", the relations addition needs, are then one rule for
    every digit place. The symbols keep id 0, so their distance to a digit grows with its
    significance; in training one random offset per sequence in [0, coupling_max_offset] shifts
    every digit's id, so the distances long operands put between digits and symbols are trained.
    """

    position_indexed = False  # it reads the tokens

    def __init__(self, cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs):
        super().__init__(cfg, d_model, num_heads, rngs)
        self.max_offset = cfg.coupling_max_offset
        self.window = cfg.coupling_window

    @classmethod
    def check(cls, cfg: PositionalConfig, d_model: int, num_heads: int) -> None:
        super().check(cfg, d_model, num_heads)
        Coupled.check(cfg, d_model, num_heads)

    @classmethod
    def check_layout(cls, fmt) -> None:
        Coupled.check_layout(fmt)

    def rotary_positions(self, tokens_BxT, positions_T, key):
        return shift_by_random_offset(coupled_ids(tokens_BxT), key, self.max_offset)


ENCODINGS: dict[str, type[PositionalEncoding]] = {
    "none": PositionalEncoding,
    "learned": Learned,
    "sinusoidal": Sinusoidal,
    "rope": RoPE,
    "alibi": ALiBi,
    "t5": T5,
    "fire": FIRE,
    "abacus": Abacus,
    "coupled": Coupled,
    "coupled_rope": CoupledRoPE,
}


def encoding_class(pe: str) -> type[PositionalEncoding]:
    if pe not in ENCODINGS:
        raise ConfigError("model.pe", f"unknown positional encoding {pe!r}; allowed: {', '.join(ENCODINGS)}")
    return ENCODINGS[pe]


def positions_needed(cfg: PositionalConfig, seq_len: int) -> int:
    """The smallest ``max_positions`` with which ``cfg`` serves sequences of ``seq_len`` tokens."""
    needed = encoding_class(cfg.pe).positions_needed(cfg, seq_len)
    return max(needed, seq_len) if cfg.randomized_positions else needed


def validate(cfg: PositionalConfig, d_model: int, num_heads: int, seq_len: int, task_format=None) -> None:
    """Config-time checks of ``cfg.pe`` and its knobs, for a model of these sizes and sequences
    of up to ``seq_len`` tokens (and, given the task's ``tasks.Format``, that the encoding can
    read that layout)."""
    encoding = encoding_class(cfg.pe)
    if task_format is not None and hasattr(encoding, "check_layout"):
        encoding.check_layout(task_format)
    if cfg.randomized_positions and not encoding.position_indexed:
        indexed = [name for name, cls in ENCODINGS.items() if cls.position_indexed]
        raise ConfigError("model.randomized_positions", f"applies only to position-indexed encodings "
                                                        f"({', '.join(indexed)}), not {cfg.pe!r}")
    if cfg.coupling_window and not issubclass(encoding, CouplingWindow):
        raise ConfigError("model.coupling_window", f"applies only to the coupled encodings (coupled, coupled_rope), "
                                                   f"not {cfg.pe!r}")
    encoding.check(cfg, d_model, num_heads)
    needed = positions_needed(cfg, seq_len)
    if cfg.max_positions < needed:
        what = f"{cfg.pe!r} with randomized_positions" if cfg.randomized_positions else repr(cfg.pe)
        raise ConfigError("model.max_positions", f"{what} needs at least {needed} for sequences of {seq_len} "
                                                 f"tokens, got {cfg.max_positions}")


def build(cfg: PositionalConfig, d_model: int, num_heads: int, rngs: nnx.Rngs) -> PositionalEncoding:
    return encoding_class(cfg.pe)(cfg, d_model, num_heads, rngs)
