"""The decoder-only transformer (pre-LayerNorm GPT) and the functional API the trainer uses.

Modules are Flax NNX; the trainer never calls them directly. ``init`` splits a fresh model into
a static ``graphdef`` and a pytree of float32 ``params``, and ``apply`` merges them inside
whatever jit/vmap/scan the caller runs, so a population is just params with a leading member
axis. Randomness (dropout, random position offsets) comes from an explicit ``key`` argument,
never from NNX RNG state, so the params are the model's only state.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arith_jax import positional
from arith_jax.errors import ConfigError

# (num_layers, num_heads, d_model); d_ff = 4 d_model. acl2025 is Xu et al.'s 6 x 6 x 384.
PRESETS = {"nano": (3, 3, 48), "micro": (4, 4, 128), "mini": (6, 6, 192), "acl2025": (6, 6, 384)}
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# 'auto' lets JAX choose (today: XLA everywhere). 'cudnn' is the fused GPU kernel; it needs
# bfloat16 and is not offered with an attention bias, whose shapes and gradient cuDNN restricts.
ATTENTION_IMPLEMENTATIONS = {"auto": None, "xla": "xla", "cudnn": "cudnn"}
# The embedding tables, by the last two names of their parameter path: the token table, and
# the positional encoding's table (learned, Abacus and coupled positions, T5's bias buckets).
EMBEDDING_TABLES = {("token_embedding", "embedding"): "token", ("table", "embedding"): "position"}


def embedding_table(path: tuple) -> str | None:
    """"token", "position" or None for a parameter's path (jax.tree_util keys)."""
    names = tuple(getattr(k, "key", getattr(k, "name", None)) for k in path)
    names = names[:-1] if names and names[-1] == "value" else names  # nnx.Variable's leaf
    return EMBEDDING_TABLES.get(names[-2:])


# The embedding noise's key is fold_in(key, this), not another split of the forward pass's key,
# so every other random stream (dropout, position offsets) is the same with or without it.
EMBEDDING_NOISE_STREAM = 0x6E6F


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    num_layers: int
    num_heads: int
    d_model: int
    d_ff: int
    dropout: float = 0.0
    # Training only: Gaussian noise added to every input embedding (token + position), with a
    # standard deviation of this fraction of that embedding's RMS. It penalises attention that
    # reads positions whose content never bears on the answer (noise there only hurts), e.g.
    # the padding zeros of digits never seen in training.
    embedding_noise: float = 0.0
    # Initialisation of the linear layers: 0 = Flax's LeCun normal (std 1/sqrt(fan_in), 0.14 for
    # nano's width 48); > 0 = GPT-2's, as in the nanoGPT and minGPT code the seed papers train:
    # normal with this std, and std / sqrt(2 x block passes) for the projections that write
    # into the residual stream.
    init_std: float = 0.0
    # Std of the token embedding table at initialisation. GPT-2's is 0.02; beside LeCun-initialised
    # blocks, whose first writes into the residual stream have RMS ~0.6, a token's own embedding
    # is then ~3% of the stream after one block (docs/recipe_search.md 12).
    token_init_std: float = 0.02
    tied_embeddings: bool = False
    compute_dtype: str = "float32"
    attention_impl: str = "auto"
    # Looped transformer (McLeish et al. 2024): the block stack is applied `recurrences` times
    # with the same weights; with input injection the embedded input is added back to the
    # residual stream before every pass after the first.
    recurrences: int = 1
    input_injection: bool = False
    # Attention heads of each layer, first to last, e.g. (4, 3); empty = num_heads in every layer.
    layer_heads: tuple = ()
    # A learned attention sink per head (as in gpt-oss; "softmax off by one" with a learned
    # offset): one more score, a scalar with no key and a zero value, so a head can put weight
    # on nothing. Without it a head that has nothing to read parks its weight on positions whose
    # content never varies in training, e.g. the zero padding of digits never seen, and longer
    # operands then write into what it reads. The scalar is not weight-decayed.
    attention_sink: bool = False
    # The positional encoding (model.pe) and its knobs: arith_jax/positional.py.
    positional: positional.PositionalConfig = positional.PositionalConfig()

    @classmethod
    def create(cls, **fields) -> ModelConfig:
        """From the flat fields of a config's ``model`` section: the encoding's (pe, max_positions,
        rope_base, ...) go to ``positional``, the rest are the model's own."""
        own = {f.name for f in dataclasses.fields(cls)} - {"positional"}
        for field in fields:
            if field not in own and field not in positional.FIELDS:
                raise ConfigError(f"model.{field}", "not a model setting; allowed: "
                                                    f"{', '.join(sorted(own | set(positional.FIELDS)))}")
        encoding = positional.PositionalConfig(**{k: v for k, v in fields.items() if k in positional.FIELDS})
        return cls(**{k: v for k, v in fields.items() if k in own}, positional=encoding)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> ModelConfig:
        if name not in PRESETS:
            raise ConfigError("model.preset", f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
        num_layers, num_heads, d_model = PRESETS[name]
        sizes = dict(num_layers=num_layers, num_heads=num_heads, d_model=d_model, d_ff=4 * d_model)
        return cls.create(**{**sizes, **overrides})

    @property
    def pe(self) -> str:
        return self.positional.pe

    def heads(self, layer: int) -> int:
        """The attention heads of block `layer` (0 = the first)."""
        return self.layer_heads[layer] if self.layer_heads else self.num_heads

    def validate(self, vocab_size: int, seq_len: int, task_format=None) -> None:
        """Raise ConfigError unless this model can run on ``vocab_size`` tokens and sequences
        up to ``seq_len`` (the longest train or evaluation sequence) laid out as ``task_format``."""
        if vocab_size < 1 or seq_len < 1:
            raise ValueError(f"vocab_size and seq_len must be positive, got {vocab_size} and {seq_len}")
        for field in ("num_layers", "num_heads", "d_model", "d_ff"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.{field}", f"must be a positive integer, got {value!r}")
        # With layer_heads set no layer uses num_heads, so only the per-layer counts are checked.
        if not self.layer_heads and self.d_model % self.num_heads:
            raise ConfigError("model.num_heads", f"must divide d_model = {self.d_model}, got {self.num_heads}")
        self._validate_layer_heads()
        if isinstance(self.recurrences, bool) or not isinstance(self.recurrences, int) or self.recurrences < 1:
            raise ConfigError("model.recurrences", f"must be a positive integer, got {self.recurrences!r}")
        if self.input_injection and self.recurrences == 1:
            raise ConfigError("model.input_injection", "needs model.recurrences > 1 (it re-adds the input "
                                                       "before each pass after the first)")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("model.dropout", f"must be in [0, 1), got {self.dropout}")
        _check_number("model.init_std", self.init_std, 0.0, 1.0, "0 = LeCun normal")
        for field, std in (("token_init_std", self.token_init_std),
                           ("position_init_std", self.positional.position_init_std)):
            _check_number(f"model.{field}", std, 0.0, 10.0, "0.02 = GPT-2's", low_open=True)
        _check_number("model.embedding_noise", self.embedding_noise, 0.0, 10.0, "a fraction of the embedding's RMS")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ConfigError("model.compute_dtype", f"{self.compute_dtype!r} is not allowed; use one of "
                                                     f"{', '.join(COMPUTE_DTYPES)}")
        if not isinstance(self.attention_sink, bool):
            raise ConfigError("model.attention_sink", f"must be True or False, got {self.attention_sink!r}")
        self._validate_attention_impl()
        positional.validate(self.positional, self.d_model, self.heads(0), seq_len, task_format)

    def _validate_layer_heads(self) -> None:
        if not self.layer_heads:
            return
        heads = self.layer_heads
        if not isinstance(heads, tuple) or len(heads) != self.num_layers or not all(
                isinstance(h, int) and not isinstance(h, bool) and h >= 1 and self.d_model % h == 0 for h in heads):
            raise ConfigError("model.layer_heads", f"must be empty or {self.num_layers} positive head counts (one per "
                                                   f"layer), each dividing d_model = {self.d_model}, got {heads!r}")
        encoding = positional.encoding_class(self.pe)
        if encoding.bias_per_head:
            raise ConfigError("model.layer_heads", f"{self.pe!r} learns one attention bias per head for every layer "
                                                   "alike; leave it empty")
        for layer, count in enumerate(heads):  # e.g. rope's even head width, under this field's name
            try:
                encoding.check(self.positional, self.d_model, count)
            except ConfigError as error:
                raise error.under("model.layer_heads", f"layer {layer} ({count} heads): ") from None

    def _validate_attention_impl(self) -> None:
        if self.attention_impl not in ATTENTION_IMPLEMENTATIONS:
            raise ConfigError("model.attention_impl", f"{self.attention_impl!r} is not allowed; use one of "
                                                      f"{', '.join(ATTENTION_IMPLEMENTATIONS)}")
        if self.attention_impl == "cudnn":
            if self.compute_dtype != "bfloat16":
                raise ConfigError("model.attention_impl", "cudnn needs compute_dtype 'bfloat16'")
            if positional.encoding_class(self.pe).biases_attention(self.positional):
                raise ConfigError("model.attention_impl", f"cudnn is not offered with {self.pe!r}, which adds "
                                                          "an attention bias; use 'auto'")
            if self.attention_sink:
                raise ConfigError("model.attention_impl", "cudnn is not offered with model.attention_sink, "
                                                          "whose extra score the fused kernel has no slot for; "
                                                          "use 'auto'")


def _check_number(field: str, value, low: float, high: float, meaning: str, low_open: bool = False) -> None:
    """A real number in [low, high], or in (low, high] with `low_open`."""
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not number or not (low < value if low_open else low <= value) or not value <= high:
        raise ConfigError(field, f"must be a number in {'(' if low_open else '['}{low:g}, {high:g}] ({meaning}), "
                                 f"got {value!r}")


def kernel_init(cfg: ModelConfig, writes_residual: bool = False) -> dict:
    """`nnx.Linear` keyword arguments for its kernel's initialisation under `cfg.init_std`."""
    if cfg.init_std == 0:
        return {}  # Flax's default, LeCun normal
    std = cfg.init_std / (2 * cfg.num_layers * cfg.recurrences) ** 0.5 if writes_residual else cfg.init_std
    return {"kernel_init": nnx.initializers.normal(stddev=std)}


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, num_heads: int, rngs: nnx.Rngs):
        dtype = COMPUTE_DTYPES[cfg.compute_dtype]
        self.num_heads = num_heads
        self.implementation = ATTENTION_IMPLEMENTATIONS[cfg.attention_impl]
        self.qkv = nnx.Linear(cfg.d_model, 3 * cfg.d_model, dtype=dtype, rngs=rngs, **kernel_init(cfg))
        self.out = nnx.Linear(cfg.d_model, cfg.d_model, dtype=dtype, rngs=rngs, **kernel_init(cfg, True))
        # Starts at 0: the sink weighs like one more key scoring 0.
        self.sink = nnx.Param(jnp.zeros((num_heads,), jnp.float32)) if cfg.attention_sink else None

    def _sink_scores(self):
        """The heads' sink scores (N), or None without a sink."""
        return None if self.sink is None else self.sink[...]

    def _projected(self, x_BxTxD, encoding, positions_T):
        batch, seq_len, d_model = x_BxTxD.shape
        qkv_BxTx3xNxH = self.qkv(x_BxTxD).reshape(batch, seq_len, 3, self.num_heads, d_model // self.num_heads)
        q_BxTxNxH, k_BxTxNxH, v_BxTxNxH = (qkv_BxTx3xNxH[:, :, i] for i in range(3))
        q_BxTxNxH, k_BxTxNxH = encoding.rotate(q_BxTxNxH, k_BxTxNxH, positions_T)
        return q_BxTxNxH, k_BxTxNxH, v_BxTxNxH

    def __call__(self, x_BxTxD, encoding: positional.PositionalEncoding, positions_T, bias_BxNxTxT,
                 kv_out: list | None = None, weights_out: list | None = None):
        batch, seq_len, d_model = x_BxTxD.shape
        q_BxTxNxH, k_BxTxNxH, v_BxTxNxH = self._projected(x_BxTxD, encoding, positions_T)
        if kv_out is not None:  # prefill: the keys and values a KV-cached decoder starts from
            kv_out.append((k_BxTxNxH, v_BxTxNxH))
        sink_N = self._sink_scores()
        if weights_out is not None or sink_N is not None:
            # A probe of the attention pattern (the same attention, spelled out), or the sink's
            # extra score, which dot_product_attention has no slot for.
            weights_BxNxTxT = causal_attention_weights(q_BxTxNxH, k_BxTxNxH, bias_BxNxTxT, sink_N)
            if weights_out is not None:
                weights_out.append(weights_BxNxTxT)
            heads_BxTxNxH = jnp.einsum("bnts,bsnh->btnh", weights_BxNxTxT.astype(v_BxTxNxH.dtype), v_BxTxNxH)
        elif self.implementation == "cudnn":
            heads_BxTxNxH = causal_attention_padded(q_BxTxNxH, k_BxTxNxH, v_BxTxNxH, CUDNN_SEQ_MULTIPLE, "cudnn")
        else:
            heads_BxTxNxH = jax.nn.dot_product_attention(q_BxTxNxH, k_BxTxNxH, v_BxTxNxH, bias=bias_BxNxTxT,
                                                         is_causal=True, implementation=self.implementation)
        return self.out(heads_BxTxNxH.reshape(batch, seq_len, d_model))


    def decode(self, x_BxD, encoding, rotary_B, bias_BxNxT, cache, position_B):
        """Attention of one new token per row, at `position_B` (rotary position `rotary_B`, score
        bias row `bias_BxNxT` or None), over the cached keys and values (this token's own written
        in first): (out_BxD, updated cache)."""
        k_cache_BxTxNxH, v_cache_BxTxNxH = cache
        rows_B = jnp.arange(x_BxD.shape[0])
        # rotate() works position by position: the rows stand in for its T axis.
        q_1xBxNxH, k_1xBxNxH, v_1xBxNxH = self._projected(x_BxD[None], encoding, rotary_B)
        k_cache_BxTxNxH = k_cache_BxTxNxH.at[rows_B, position_B].set(k_1xBxNxH[0])
        v_cache_BxTxNxH = v_cache_BxTxNxH.at[rows_B, position_B].set(v_1xBxNxH[0])
        q_BxNxH = q_1xBxNxH[0]
        scores_BxNxT = jnp.einsum("bnh,btnh->bnt", q_BxNxH, k_cache_BxTxNxH).astype(jnp.float32)
        scores_BxNxT = scores_BxNxT / jnp.sqrt(jnp.float32(q_BxNxH.shape[-1]))
        if bias_BxNxT is not None:  # BxNxT, or Bx1xT (the same for every head)
            scores_BxNxT = scores_BxNxT + bias_BxNxT
        seen_BxT = jnp.arange(k_cache_BxTxNxH.shape[1])[None, :] <= position_B[:, None]
        scores_BxNxT = jnp.where(seen_BxT[:, None, :], scores_BxNxT, -jnp.inf)
        weights_BxNxT = _softmax_with_sink(scores_BxNxT, self._sink_scores())
        weights_BxNxT = weights_BxNxT.astype(v_cache_BxTxNxH.dtype)
        heads_BxNxH = jnp.einsum("bnt,btnh->bnh", weights_BxNxT, v_cache_BxTxNxH)
        return self.out(heads_BxNxH.reshape(x_BxD.shape)), (k_cache_BxTxNxH, v_cache_BxTxNxH)


def causal_attention_weights(q_BxTxNxH, k_BxTxNxH, bias_BxNxTxT=None, sink_N=None):
    """softmax(q k / sqrt(H) + bias) under the causal mask, float32: what dot_product_attention
    weighs the values with, for probes that read the pattern. With a sink (one score per head)
    the weights of each row sum to 1 minus the sink's share."""
    scores_BxNxTxT = jnp.einsum("btnh,bsnh->bnts", q_BxTxNxH, k_BxTxNxH).astype(jnp.float32)
    scores_BxNxTxT = scores_BxNxTxT / jnp.sqrt(jnp.float32(q_BxTxNxH.shape[-1]))
    if bias_BxNxTxT is not None:
        scores_BxNxTxT = scores_BxNxTxT + bias_BxNxTxT
    seq_len = q_BxTxNxH.shape[1]
    causal_TxT = jnp.tril(jnp.ones((seq_len, seq_len), bool))
    return _softmax_with_sink(jnp.where(causal_TxT, scores_BxNxTxT, -jnp.inf), sink_N)


def _softmax_with_sink(scores_BxNx___xT, sink_N=None):
    """Softmax over the last axis (heads on axis 1), with each head's sink score as one more
    entry whose weight is dropped (its value is zero)."""
    if sink_N is None:
        return jax.nn.softmax(scores_BxNx___xT, axis=-1)
    sink = jnp.broadcast_to(sink_N.reshape((1, -1) + (1,) * (scores_BxNx___xT.ndim - 2)),
                            scores_BxNx___xT.shape[:-1] + (1,))
    return jax.nn.softmax(jnp.concatenate([scores_BxNx___xT, sink], axis=-1), axis=-1)[..., :-1]


# cuDNN's fused kernel rejects odd sequence lengths in training ("Unsupported sequence length Q 51,
# KV 51", seen on an H200 with JAX 0.11.2); a multiple of 8 also keeps its tiles aligned.
CUDNN_SEQ_MULTIPLE = 8


def causal_attention_padded(q_BxTxNxH, k_BxTxNxH, v_BxTxNxH, multiple: int, implementation: str | None):
    """Causal attention over the sequence zero-padded at the end to a multiple of `multiple`.

    Exact: under the causal mask no real query attends to a padded key (they all come after
    it), and the padded query rows are dropped."""
    seq_len = q_BxTxNxH.shape[1]
    pad = (-seq_len) % multiple
    padded = [jnp.pad(t, ((0, 0), (0, pad), (0, 0), (0, 0))) for t in (q_BxTxNxH, k_BxTxNxH, v_BxTxNxH)]
    heads_BxTxNxH = jax.nn.dot_product_attention(*padded, is_causal=True, implementation=implementation)
    return heads_BxTxNxH[:, :seq_len]


class Block(nnx.Module):
    """LN -> causal self-attention -> residual, LN -> MLP(GELU) -> residual."""

    def __init__(self, cfg: ModelConfig, num_heads: int, rngs: nnx.Rngs):
        dtype = COMPUTE_DTYPES[cfg.compute_dtype]
        self.attention_norm = nnx.LayerNorm(cfg.d_model, dtype=dtype, rngs=rngs)
        self.attention = Attention(cfg, num_heads, rngs)
        self.mlp_norm = nnx.LayerNorm(cfg.d_model, dtype=dtype, rngs=rngs)
        self.mlp_in = nnx.Linear(cfg.d_model, cfg.d_ff, dtype=dtype, rngs=rngs, **kernel_init(cfg))
        self.mlp_out = nnx.Linear(cfg.d_ff, cfg.d_model, dtype=dtype, rngs=rngs, **kernel_init(cfg, True))
        self.dropout = nnx.Dropout(cfg.dropout)

    def __call__(self, x_BxTxD, encoding, positions_T, bias_BxNxTxT, key: jax.Array | None,
                 kv_out: list | None = None, weights_out: list | None = None):
        attention_key, mlp_key = (None, None) if key is None else jax.random.split(key)
        # The residual stream stays float32: bfloat16 sublayer outputs are promoted on addition.
        attended_BxTxD = self.attention(self.attention_norm(x_BxTxD), encoding, positions_T, bias_BxNxTxT, kv_out,
                                        weights_out)
        x_BxTxD = x_BxTxD + self.dropout(attended_BxTxD, deterministic=key is None, rngs=attention_key)
        mlp_BxTxD = self.mlp_out(jax.nn.gelu(self.mlp_in(self.mlp_norm(x_BxTxD))))
        return x_BxTxD + self.dropout(mlp_BxTxD, deterministic=key is None, rngs=mlp_key)

    def decode(self, x_BxD, encoding, rotary_B, bias_BxNxT, cache, position_B):
        """The block for one new token per row (evaluation: no dropout), with its KV cache."""
        attended_BxD, cache = self.attention.decode(self.attention_norm(x_BxD), encoding, rotary_B,
                                                    bias_BxNxT, cache, position_B)
        x_BxD = x_BxD + attended_BxD
        return x_BxD + self.mlp_out(jax.nn.gelu(self.mlp_in(self.mlp_norm(x_BxD)))), cache


class Transformer(nnx.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int, rngs: nnx.Rngs):
        self.cfg = cfg
        self.compute_dtype = COMPUTE_DTYPES[cfg.compute_dtype]
        self.token_embedding = nnx.Embed(vocab_size, cfg.d_model,
                                         embedding_init=nnx.initializers.normal(stddev=cfg.token_init_std), rngs=rngs)
        self.encoding = positional.build(cfg.positional, cfg.d_model, cfg.num_heads, rngs)
        self.embedding_dropout = nnx.Dropout(cfg.dropout)
        self.blocks = nnx.List([Block(cfg, cfg.heads(i), rngs) for i in range(cfg.num_layers)])
        self.final_norm = nnx.LayerNorm(cfg.d_model, rngs=rngs)
        self.head = None if cfg.tied_embeddings else nnx.Linear(
            cfg.d_model, vocab_size, use_bias=False, dtype=self.compute_dtype, rngs=rngs, **kernel_init(cfg))

    def forward(self, tokens_BxT: jax.Array, key: jax.Array | None, return_hidden: bool, kv_out: list | None = None,
                weights_out: list | None = None):
        seq_len = tokens_BxT.shape[1]
        passes = self.cfg.recurrences * len(self.blocks)
        if key is None:
            positions_key = encoding_key = embedding_dropout_key = None
            block_keys = [None] * passes
        else:
            positions_key, encoding_key, embedding_dropout_key, *block_keys = jax.random.split(key, 3 + passes)
        positions_T = positional.token_positions(self.cfg.positional, seq_len, positions_key)

        x_BxTxD = self.token_embedding(tokens_BxT)
        position_embedding = self.encoding.embedding(tokens_BxT, positions_T, encoding_key)
        if position_embedding is not None:
            x_BxTxD = x_BxTxD + position_embedding
        if key is not None and self.cfg.embedding_noise > 0:
            x_BxTxD = x_BxTxD + self._embedding_noise(x_BxTxD, jax.random.fold_in(key, EMBEDDING_NOISE_STREAM))
        x_BxTxD = self.embedding_dropout(x_BxTxD, deterministic=key is None, rngs=embedding_dropout_key)
        # 1xNxTxT (by position) or Bx1xTxT (read from the tokens): it broadcasts either way.
        bias_BxNxTxT = self.encoding.attention_bias(tokens_BxT, positions_T)
        rotary = self.encoding.rotary_positions(tokens_BxT, positions_T, encoding_key)  # T or BxT
        input_BxTxD = x_BxTxD
        for i, (block, inject_input) in enumerate(self._block_passes()):
            if inject_input:
                x_BxTxD = x_BxTxD + input_BxTxD
            x_BxTxD = block(x_BxTxD, self.encoding, rotary, bias_BxNxTxT, block_keys[i], kv_out, weights_out)
        return self._head(x_BxTxD, return_hidden)

    def _embedding_noise(self, x_BxTxD, key):
        # Relative to each embedding's own RMS (not differentiated through), so the model cannot
        # outgrow the noise by scaling its embeddings up.
        rms_BxTx1 = jax.lax.stop_gradient(jnp.sqrt(jnp.mean(jnp.square(x_BxTxD), axis=-1, keepdims=True)))
        return self.cfg.embedding_noise * rms_BxTx1 * jax.random.normal(key, x_BxTxD.shape, x_BxTxD.dtype)

    def _block_passes(self):
        """(block, whether the embedded input is added back before it) for every block pass in
        order: the blocks `recurrences` times over, with input injection before each repeat."""
        for recurrence in range(self.cfg.recurrences):
            for i, block in enumerate(self.blocks):
                yield block, recurrence > 0 and i == 0 and self.cfg.input_injection

    def __call__(self, tokens_BxT: jax.Array, key: jax.Array | None = None, return_hidden: bool = False):
        return self.forward(tokens_BxT, key, return_hidden)

    def prefill(self, tokens_BxT: jax.Array) -> list:
        """Evaluation forward pass that returns only every block pass's (keys, values): the
        KV cache `decode_step` starts from."""
        kv_out = []
        self.forward(tokens_BxT, None, False, kv_out)
        return kv_out

    def attention_weights(self, tokens_BxT: jax.Array) -> tuple[jax.Array, list]:
        """Evaluation forward pass that also returns every block pass's attention weights
        (BxNxTxT, float32, rows over the keys): (logits_BxTxV, weights per pass, in order)."""
        weights_out = []
        logits_BxTxV = self.forward(tokens_BxT, None, False, weights_out=weights_out)
        return logits_BxTxV, weights_out

    def decode_step(self, tokens_BxT: jax.Array, cache: list, position_B: jax.Array):
        """Logits ``BxV`` at ``position_B`` (per row) for the token there, attending to the cached
        positions before it; returns (logits, cache with this position written). Positions from
        0 to ``position_B - 1`` must be in the cache (prefilled or written by earlier steps); the
        tokens at and before ``position_B`` are read, later ones are not."""
        rows_B = jnp.arange(tokens_BxT.shape[0])
        positions_T = positional.token_positions(self.cfg.positional, tokens_BxT.shape[1], None)
        x_BxD = self.token_embedding(tokens_BxT[rows_B, position_B])
        # Position embeddings of the whole row (cheap: a lookup), taken at the new token: an
        # encoding that reads the tokens (abacus, coupled) sees the row as written so far.
        # Encodings answer per position (T...) or per example and position (BxT...).
        at_new_token = lambda x, per_example: x[rows_B, position_B] if per_example else x[position_B]
        position_embedding = self.encoding.embedding(tokens_BxT, positions_T, None)
        if position_embedding is not None:
            x_BxD = x_BxD + at_new_token(position_embedding, position_embedding.ndim == 3)
        bias_BxNxT = self.encoding.attention_bias(tokens_BxT, positions_T, position_B)  # the new token's row
        rotary = self.encoding.rotary_positions(tokens_BxT, positions_T, None)
        rotary_B = at_new_token(rotary, rotary.ndim == 2)
        input_BxD, new_cache = x_BxD, []
        for i, (block, inject_input) in enumerate(self._block_passes()):
            if inject_input:
                x_BxD = x_BxD + input_BxD
            x_BxD, block_cache = block.decode(x_BxD, self.encoding, rotary_B, bias_BxNxT, cache[i], position_B)
            new_cache.append(block_cache)
        return self._head(x_BxD, False), new_cache

    def _head(self, x, return_hidden: bool):
        hidden_BxTxD = self.final_norm(x)
        hidden_for_head = hidden_BxTxD.astype(self.compute_dtype)
        if self.head is None:
            table_VxD = self.token_embedding.embedding[...].astype(self.compute_dtype)
            logits_BxTxV = jnp.einsum("...d,vd->...v", hidden_for_head, table_VxD)
        else:
            logits_BxTxV = self.head(hidden_for_head)
        logits_BxTxV = logits_BxTxV.astype(jnp.float32)
        return (logits_BxTxV, hidden_BxTxD) if return_hidden else logits_BxTxV


def init(cfg: ModelConfig, vocab_size: int, key: jax.Array) -> tuple[nnx.GraphDef, nnx.State]:
    """A fresh model as ``(graphdef, params)``; vmap it over keys for a population's params."""
    return nnx.split(Transformer(cfg, vocab_size, nnx.Rngs(params=key)))


def apply(graphdef: nnx.GraphDef, params: nnx.State, tokens_BxT: jax.Array, key: jax.Array | None = None,
          return_hidden: bool = False):
    """``logits_BxTxV`` float32 (and the final-LayerNorm output ``hidden_BxTxD`` with ``return_hidden``).

    ``key`` None is evaluation: deterministic, no dropout, no random offsets, and randomised
    positions from a fixed key. A key is training: dropout, abacus offsets, random positions.
    """
    return nnx.merge(graphdef, params)(tokens_BxT, key=key, return_hidden=return_hidden)


def prefill(graphdef: nnx.GraphDef, params: nnx.State, tokens_BxT: jax.Array) -> list:
    """The KV cache of an evaluation pass over ``tokens_BxT`` (Transformer.prefill)."""
    return nnx.merge(graphdef, params).prefill(tokens_BxT)


def attention_weights(graphdef: nnx.GraphDef, params: nnx.State, tokens_BxT: jax.Array) -> tuple[jax.Array, list]:
    """(logits_BxTxV, attention weights BxNxTxT of every block pass): Transformer.attention_weights."""
    return nnx.merge(graphdef, params).attention_weights(tokens_BxT)


def decode_step(graphdef: nnx.GraphDef, params: nnx.State, tokens_BxT: jax.Array, cache: list,
                position_B: jax.Array):
    """(logits_BxV at position_B, updated cache): one KV-cached step (Transformer.decode_step)."""
    return nnx.merge(graphdef, params).decode_step(tokens_BxT, cache, position_B)


def param_count(params: nnx.State) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(params))


def flops_per_token(cfg: ModelConfig, vocab_size: int, seq_len: int) -> float:
    """Training FLOPs (forward + backward) per token, as in PaLM's appendix B: 6 N + 12 L T d.

    N counts only the weights that take part in matmuls: per layer the q, k, v and output
    projections (4 d^2) and the MLP (2 d d_ff), plus the output projection (d V, also when tied).
    Each weight costs 2 FLOPs per token forward and 4 backward, hence 6 N. The attention scores
    and their weighted sum cost 2 x 2 T d per token and layer forward, 3x that with backward:
    12 L T d, counting the full T x T (the causal half is not subtracted, by convention).
    Embedding lookups, norms, biases and the positional encodings' own work are left out. A
    looped model counts its blocks once per recurrence: it does their work R times with the
    same weights.
    """
    passes = cfg.num_layers * cfg.recurrences
    block_params = 4 * cfg.d_model ** 2 + 2 * cfg.d_model * cfg.d_ff
    return 6.0 * (passes * block_params + cfg.d_model * vocab_size) + 12.0 * passes * seq_len * cfg.d_model
