"""The transformer and every positional encoding: causality, relative-shift invariance, shapes,
parameter and FLOP counts, config errors, vmapped populations, and that each one can learn."""

import dataclasses
import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from arith_jax import model, positional, tasks
from arith_jax.errors import ConfigError

VOCAB = 20  # digits, symbols and a few index-hint tokens
TINY = dict(num_layers=2, num_heads=2, d_model=16, d_ff=32, max_positions=64, abacus_max_offset=8,
            coupling_max_offset=8)
ENCODINGS = list(positional.ENCODINGS)
INDEXED = [pe for pe, cls in positional.ENCODINGS.items() if cls.position_indexed]
FEW = settings(max_examples=10, deadline=None)
# Each test program is tiny and runs once: LLVM's optimisations cost more time than they save.
quick_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def build(cfg, rngs):
    """The model's positional encoding alone."""
    return positional.build(cfg.positional, cfg.d_model, cfg.num_heads, rngs)


def tiny(pe, **overrides):
    return model.ModelConfig.create(**{**TINY, "pe": pe, **overrides})


# ---------------------------------------------------------------------------------------------
# Causality: a later token never changes an earlier position's logits, in training mode
# (abacus offsets and random positions active), for every encoding.


# Position coupling reads the prompt as a whole: an operand digit's id is its significance,
# which depends on the digits after it in its number. The prompt is always complete before the
# first answer token is predicted, so only the answer must be causal (tested below).
CAUSAL_FROM_THE_FIRST_TOKEN = [pe for pe in ENCODINGS if not pe.startswith("coupled")]


@pytest.mark.parametrize("pe,randomized", [(pe, False) for pe in CAUSAL_FROM_THE_FIRST_TOKEN] +
                         [(pe, True) for pe in INDEXED])
def test_later_tokens_never_change_earlier_logits(pe, randomized):
    cfg = tiny(pe, randomized_positions=randomized)
    seq_len = 12
    cfg.validate(VOCAB, seq_len)
    graphdef, params = model.init(cfg, VOCAB, jax.random.key(0))
    forward = quick_jit(lambda tokens_BxT: model.apply(graphdef, params, tokens_BxT, jax.random.key(2)))

    tokens_BxT = jax.random.randint(jax.random.key(1), (seq_len, seq_len), 0, VOCAB)
    # Row r changes only its token r. Both calls use one key, so each row sees the same random
    # positions and abacus offsets twice and only the token differs.
    rows = jnp.arange(seq_len)
    changed_BxT = tokens_BxT.at[rows, rows].set((tokens_BxT[rows, rows] + 7) % VOCAB)
    before_BxTxV = np.asarray(forward(tokens_BxT))
    after_BxTxV = np.asarray(forward(changed_BxT))
    for r in range(seq_len):
        np.testing.assert_allclose(after_BxTxV[r, :r], before_BxTxV[r, :r], atol=1e-6)
        assert not np.allclose(after_BxTxV[r, r:], before_BxTxV[r, r:], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Relative encodings: scores/biases unchanged when every position shifts by the same amount.

HEAD_DIM = 8
positions_and_shift = dict(
    positions=st.lists(st.integers(0, 200), min_size=6, max_size=6, unique=True).map(sorted),
    shift=st.integers(1, 250),
)


def encoding(pe):
    return build(tiny(pe), nnx.Rngs(params=jax.random.key(3)))


@pytest.fixture(scope="module")
def rope_scores():
    rope = encoding("rope")
    q_1xTxNxH, k_1xTxNxH = jax.random.normal(jax.random.key(4), (2, 1, 6, 2, HEAD_DIM))

    @quick_jit
    def scores(positions_T):
        q, k = rope.rotate(q_1xTxNxH, k_1xTxNxH, positions_T)
        return jnp.einsum("btnh,bsnh->bnts", q, k)

    return scores


@FEW
@given(**positions_and_shift)
def test_rope_scores_depend_only_on_distance(rope_scores, positions, shift):
    positions_T = jnp.asarray(positions)
    np.testing.assert_allclose(rope_scores(positions_T + shift), rope_scores(positions_T), atol=2e-4)


@pytest.fixture(scope="module", params=["alibi", "t5", "fire"])
def bias_function(request):
    bias = encoding(request.param).attention_bias
    return quick_jit(lambda positions_T: bias(None, positions_T))


@FEW
@given(**positions_and_shift)
def test_relative_biases_are_shift_invariant(bias_function, positions, shift):
    # FIRE is relative only while positions stay under its threshold (512 at init), which these do.
    positions_T = jnp.asarray(positions)
    bias_1xNxTxT = np.asarray(bias_function(positions_T))
    assert bias_1xNxTxT.shape == (1, TINY["num_heads"], 6, 6)
    np.testing.assert_allclose(np.asarray(bias_function(positions_T + shift)), bias_1xNxTxT, atol=1e-6)


@pytest.mark.parametrize("pe", ["alibi", "t5", "fire"])
def test_a_decoded_row_of_a_bias_is_that_row_of_the_full_bias(pe):
    # KV-cached decoding asks for one query row per example instead of the whole T x T bias.
    bias = encoding(pe).attention_bias
    positions_T, query_B = jnp.arange(3, 12), jnp.array([8, 0, 4])
    full_1xNxTxT = np.asarray(bias(None, positions_T))
    rows_BxNxT = np.asarray(bias(None, positions_T, query_B))
    assert rows_BxNxT.shape == (3, TINY["num_heads"], 9)
    np.testing.assert_allclose(rows_BxNxT, np.transpose(full_1xNxTxT[0][:, query_B], (1, 0, 2)), atol=1e-6)


def test_learned_absolute_scores_change_under_a_shift():
    learned = encoding("learned")
    positions_T = jnp.arange(6)

    def scores(positions_T):
        e_TxD = learned.embedding(None, positions_T, None)
        return e_TxD @ e_TxD.T

    assert not np.allclose(scores(positions_T + 5), scores(positions_T), atol=1e-3)


def test_fire_interpolates_past_its_threshold():
    # With threshold 4, a query at 40 sees distance 40 as psi(40)/psi(40) = 1, like one at 8
    # sees distance 8: longer inputs map into the trained range.
    fire = build(tiny("fire", fire_init_threshold=4.0), nnx.Rngs(params=jax.random.key(3)))
    bias = quick_jit(lambda positions_T: fire.attention_bias(None, positions_T))
    bias_8 = bias(jnp.arange(9))[0, :, 8, 0]
    bias_40 = bias(jnp.arange(41))[0, :, 40, 0]
    np.testing.assert_allclose(bias_40, bias_8, atol=1e-6)


def test_alibi_slopes_follow_press_et_al():
    np.testing.assert_allclose(positional.alibi_slopes(8), [2.0 ** -k for k in range(1, 9)])
    # 6 heads: the 4-head slopes, then every other slope of the 8-head sequence.
    np.testing.assert_allclose(positional.alibi_slopes(6), [2.0 ** -k for k in (2, 4, 6, 8, 1, 3)])


def t5_bucket_reference(distance, num_buckets=32, max_distance=128):
    """The unidirectional branch of T5's _relative_position_bucket, in plain Python."""
    exact = num_buckets // 2
    if distance < exact:
        return distance
    far = exact + int(math.log(distance / exact) / math.log(max_distance / exact) * (num_buckets - exact))
    return min(far, num_buckets - 1)


def test_t5_buckets_match_the_reference():
    distances = np.arange(0, 600)
    buckets = np.asarray(positional.t5_buckets(jnp.asarray(distances), 32, 128))
    assert buckets.tolist() == [t5_bucket_reference(int(d)) for d in distances]


# ---------------------------------------------------------------------------------------------
# Abacus and randomised positions.


def digit_places_reference(tokens):
    places, run = [], 0
    for token in tokens:
        run = run + 1 if token < 10 else 0
        places.append(run)
    return places


@FEW
@given(st.lists(st.lists(st.integers(0, VOCAB - 1), min_size=10, max_size=10), min_size=3, max_size=3))
def test_digit_places_count_within_each_number(rows):
    places = np.asarray(positional.digit_places(jnp.asarray(rows)))
    assert places.tolist() == [digit_places_reference(row) for row in rows]


def test_abacus_training_shifts_each_sequence_by_one_offset():
    cfg = tiny("abacus")
    abacus = build(cfg, nnx.Rngs(params=jax.random.key(3)))
    tokens_BxT = jax.random.randint(jax.random.key(5), (16, 12), 0, 14)
    places_BxT = np.asarray(positional.digit_places(tokens_BxT))
    table = np.asarray(abacus.table.embedding[...])
    trained_BxTxD = np.asarray(abacus.embedding(tokens_BxT, None, jax.random.key(6)))
    offsets = []
    for row, place_T in enumerate(places_BxT):
        matches = [o for o in range(cfg.positional.abacus_max_offset + 1)
                   if np.array_equal(trained_BxTxD[row], table[np.where(place_T > 0, place_T + o, 0)])]
        assert len(matches) >= 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 1
    np.testing.assert_array_equal(abacus.embedding(tokens_BxT, None, None), table[places_BxT])


def test_randomized_positions_are_sorted_distinct_and_fixed_at_eval():
    cfg = tiny("rope", randomized_positions=True)
    eval_T = np.asarray(positional.token_positions(cfg.positional, 10, None))
    assert np.all(np.diff(eval_T) > 0) and eval_T[0] >= 0 and eval_T[-1] < cfg.positional.max_positions
    np.testing.assert_array_equal(positional.token_positions(cfg.positional, 10, None), eval_T)
    train_T = np.asarray(positional.token_positions(cfg.positional, 10, jax.random.key(7)))
    assert np.all(np.diff(train_T) > 0) and train_T[-1] < cfg.positional.max_positions
    assert not np.array_equal(train_T, eval_T)
    np.testing.assert_array_equal(positional.token_positions(tiny("rope").positional, 10, jax.random.key(7)), np.arange(10))


# ---------------------------------------------------------------------------------------------
# Shapes, dtypes, parameter and FLOP counts.


@pytest.mark.parametrize("preset", list(model.PRESETS))
@pytest.mark.parametrize("pe", ENCODINGS)
def test_shapes_and_dtypes_for_every_preset(preset, pe):
    cfg = model.ModelConfig.from_preset(preset, pe=pe, compute_dtype="bfloat16", max_positions=128,
                                        abacus_max_offset=16)
    batch, seq_len = 4, 24
    cfg.validate(VOCAB, seq_len)

    def shapes(key):
        graphdef, params = model.init(cfg, VOCAB, key)
        tokens_BxT = jnp.zeros((batch, seq_len), jnp.int32)
        return (params, *model.apply(graphdef, params, tokens_BxT, key, return_hidden=True))

    params, logits, hidden = jax.eval_shape(shapes, jax.random.key(0))
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    d_model = model.PRESETS[preset][2]
    assert (logits.shape, logits.dtype) == ((batch, seq_len, VOCAB), jnp.float32)
    assert (hidden.shape, hidden.dtype) == ((batch, seq_len, d_model), jnp.float32)
    if preset == "acl2025" and pe == "rope":
        assert round(model.param_count(params) / 1e6, 1) == 10.7  # the paper's "10.7M"


def test_param_count_matches_a_hand_count():
    cfg = model.ModelConfig.from_preset("nano", pe="learned", max_positions=64)
    _, params = jax.eval_shape(functools.partial(model.init, cfg, VOCAB), jax.random.key(0))
    d, d_ff, layers = 48, 192, 3
    per_layer = (
        2 * (2 * d)  # two LayerNorms, scale and bias
        + d * 3 * d + 3 * d  # q, k, v projection with bias
        + d * d + d  # attention output projection
        + d * d_ff + d_ff + d_ff * d + d  # MLP
    )
    expected = VOCAB * d + 64 * d + layers * per_layer + 2 * d + d * VOCAB
    assert model.param_count(params) == expected == 89_904
    _, tied = jax.eval_shape(functools.partial(model.init, dataclasses.replace(cfg, tied_embeddings=True), VOCAB),
                             jax.random.key(0))
    assert model.param_count(tied) == expected - d * VOCAB


def test_flops_per_token_is_six_n_plus_attention():
    cfg = model.ModelConfig.from_preset("nano")
    matmul_params = 3 * (4 * 48 * 48 + 2 * 48 * 192) + 48 * VOCAB
    assert model.flops_per_token(cfg, VOCAB, 30) == 6 * matmul_params + 12 * 3 * 30 * 48


# ---------------------------------------------------------------------------------------------
# Config errors, named by field.


def test_learned_table_too_small_is_a_config_error():
    cfg = tiny("learned", max_positions=16)
    cfg.validate(VOCAB, 16)
    message = "model.max_positions: 'learned' needs at least 40 for sequences of 40 tokens, got 16"
    with pytest.raises(ConfigError, match=re.escape(message)):
        cfg.validate(VOCAB, 40)


def test_unknown_encoding_lists_the_allowed():
    message = ("model.pe: unknown positional encoding 'xpos'; allowed: none, learned, sinusoidal, rope, alibi, t5, "
               "fire, abacus, coupled, coupled_rope")
    with pytest.raises(ConfigError, match=re.escape(message)):
        tiny("xpos").validate(VOCAB, 8)
    with pytest.raises(ConfigError, match=re.escape(message)):
        model.init(tiny("xpos"), VOCAB, jax.random.key(0))


@pytest.mark.parametrize("overrides,message", [
    (dict(num_heads=3), "model.num_heads: must divide d_model = 16, got 3"),
    (dict(dropout=1.0), "model.dropout: must be in [0, 1), got 1.0"),
    (dict(dropout=-0.1), "model.dropout: must be in [0, 1), got -0.1"),
    (dict(embedding_noise=-0.5), "model.embedding_noise: must be a number in [0, 10] (a fraction of the "
                                 "embedding's RMS), got -0.5"),
    (dict(embedding_noise="0.1"), "model.embedding_noise: must be a number in [0, 10]"),
    (dict(init_std=-0.02), "model.init_std: must be a number in [0, 1] (0 = LeCun normal), got -0.02"),
    (dict(token_init_std=0.0), "model.token_init_std: must be a number in (0, 10] (0.02 = GPT-2's), got 0.0"),
    (dict(position_init_std="1"), "model.position_init_std: must be a number in (0, 10] (0.02 = GPT-2's), got '1'"),
    (dict(compute_dtype="float16"), "model.compute_dtype: 'float16' is not allowed; use one of float32, bfloat16"),
    (dict(num_layers=0), "model.num_layers: must be a positive integer, got 0"),
    (dict(pe="abacus", randomized_positions=True),
     "model.randomized_positions: applies only to position-indexed encodings (learned, sinusoidal, rope, alibi, "
     "t5, fire), not 'abacus'"),
    (dict(pe="rope", randomized_positions=True, max_positions=8),
     "model.max_positions: 'rope' with randomized_positions needs at least 10 for sequences of 10 tokens, got 8"),
    (dict(pe="abacus", max_positions=12),
     "model.max_positions: 'abacus' needs at least 18 for sequences of 10 tokens, got 12"),
    (dict(pe="rope", num_heads=4, d_model=12), "model.num_heads: rope rotates pairs of dimensions"),
    (dict(pe="alibi", attention_impl="cudnn", compute_dtype="bfloat16"),
     "model.attention_impl: cudnn is not offered with 'alibi'"),
    (dict(attention_impl="cudnn"), "model.attention_impl: cudnn needs compute_dtype 'bfloat16'"),
    (dict(recurrences=0), "model.recurrences: must be a positive integer, got 0"),
    (dict(coupling_window=3), "model.coupling_window: applies only to the coupled encodings (coupled, "
                              "coupled_rope), not 'learned'"),
    (dict(pe="coupled", coupling_window=-1), "model.coupling_window: must be >= 0 (0 = no limit), got -1"),
    (dict(pe="coupled_rope", coupling_window=2, attention_impl="cudnn", compute_dtype="bfloat16"),
     "model.attention_impl: cudnn is not offered with 'coupled_rope', which adds an attention bias"),
    (dict(input_injection=True), "model.input_injection: needs model.recurrences > 1"),
    (dict(layer_heads=(4,)), "model.layer_heads: must be empty or 2 positive head counts (one per layer), each "
                             "dividing d_model = 16, got (4,)"),
    (dict(layer_heads=(4, 3)), "model.layer_heads: must be empty or 2 positive head counts (one per layer), each "
                               "dividing d_model = 16, got (4, 3)"),
    (dict(pe="t5", layer_heads=(4, 2)), "model.layer_heads: 't5' learns one attention bias per head for every "
                                        "layer alike; leave it empty"),
    (dict(pe="rope", d_model=24, num_heads=2, layer_heads=(2, 8)), "model.layer_heads: layer 1 (8 heads): rope rotates "
                                                                   "pairs of dimensions"),
])
def test_bad_model_settings_name_their_field(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        tiny(overrides.pop("pe", "learned"), **overrides).validate(VOCAB, 10)


def test_positions_needed_sizes_each_table():
    assert positional.positions_needed(tiny("rope").positional, 30) == 0
    assert positional.positions_needed(tiny("learned").positional, 30) == 30
    assert positional.positions_needed(tiny("abacus").positional, 30) == 30 + TINY["abacus_max_offset"]
    assert positional.positions_needed(tiny("coupled").positional, 30) == 30 + 2 + TINY["coupling_max_offset"]
    assert positional.positions_needed(tiny("alibi", randomized_positions=True).positional, 30) == 30


def test_presets_and_overrides_are_checked():
    with pytest.raises(ConfigError, match=re.escape("model.preset: unknown preset 'huge'; allowed: nano, micro")):
        model.ModelConfig.from_preset("huge")
    with pytest.raises(ConfigError, match=re.escape("model.n_layers: not a model setting; allowed: ")):
        model.ModelConfig.from_preset("nano", n_layers=2)
    assert model.ModelConfig.from_preset("micro", pe="rope").d_ff == 512


# ---------------------------------------------------------------------------------------------
# Populations: apply under vmap over stacked params gives each member its own result.


def test_vmapped_apply_gives_each_member_its_own_result():
    cfg = tiny("t5", dropout=0.1)
    graphdef, params = quick_jit(jax.vmap(functools.partial(model.init, cfg, VOCAB)))(
        jax.random.split(jax.random.key(0), 2))
    tokens_BxT = jax.random.randint(jax.random.key(1), (3, 10), 0, VOCAB)
    member_keys = jax.random.split(jax.random.key(2), 2)
    forward = functools.partial(model.apply, graphdef)
    population_logits = quick_jit(jax.vmap(forward, in_axes=(0, None, 0)))(params, tokens_BxT, member_keys)
    single = quick_jit(forward)
    for member in range(2):
        own_params = jax.tree.map(lambda leaf: leaf[member], params)
        np.testing.assert_allclose(population_logits[member], single(own_params, tokens_BxT, member_keys[member]),
                                   atol=1e-5)
    assert not np.allclose(population_logits[0], population_logits[1], atol=1e-3)


def test_dropout_acts_only_with_a_key():
    tokens_BxT = jax.random.randint(jax.random.key(1), (2, 8), 0, VOCAB)
    graphdef, params = model.init(tiny("rope", dropout=0.5), VOCAB, jax.random.key(0))
    forward = quick_jit(functools.partial(model.apply, graphdef, params, tokens_BxT))
    assert not np.allclose(forward(jax.random.key(1)), forward(None), atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Learning: every encoding memorises a fixed small batch.


@pytest.mark.parametrize("pe", ENCODINGS)
def test_each_encoding_overfits_a_fixed_batch(pe):
    cfg = tiny(pe, d_model=32, d_ff=64, abacus_max_offset=4)
    # Distinct first tokens, so every prefix determines its next token.
    tokens_BxT = jax.random.randint(jax.random.key(1), (4, 12), 0, 16).at[:, 0].set(jnp.arange(4))
    optimizer = optax.adam(1e-2)

    graphdef, params = model.init(cfg, VOCAB, jax.random.key(0))

    @quick_jit
    def train(params, step_keys):
        def loss_fn(params, key):
            logits_BxTxV = model.apply(graphdef, params, tokens_BxT[:, :-1], key)
            return optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, tokens_BxT[:, 1:]).mean()

        def step(carry, key):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, key)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.lax.scan(step, (params, optimizer.init(params)), step_keys)[1]

    losses = train(params, jax.random.split(jax.random.key(2), 150))
    assert losses[0] > 5 * losses[-10:].mean(), (pe, float(losses[0]), float(losses[-10:].mean()))


@settings(max_examples=10, deadline=None)
@given(seq_len=st.integers(1, 20), multiple=st.sampled_from([2, 8, 64]), seed=st.integers(0, 2**16))
def test_padding_the_sequence_for_cudnn_leaves_causal_attention_unchanged(seq_len, multiple, seed):
    # The cuDNN path pads T to a multiple; the padding logic is checked here with XLA's kernel.
    q, k, v = jax.random.normal(jax.random.PRNGKey(seed), (3, 2, seq_len, 3, 8))
    want = jax.nn.dot_product_attention(q, k, v, is_causal=True)
    got = model.causal_attention_padded(q, k, v, multiple, "xla")
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Position coupling.


def _tokens(text: str) -> jax.Array:
    return jnp.asarray([[tasks.TOKEN_CHARS.index(ch) for ch in text]])


@pytest.mark.parametrize("text, ids", [
    # 653 + 49 = 702: every digit of significance s is id s + 2, '=' (the place below the units) 1.
    ("653+049=2070;..", [4, 3, 2, 0, 4, 3, 2, 1, 2, 3, 4, 5, 0, 0, 0]),
    # 653 * 49 = 31997 (N x 2 multiplication), with BOS.
    ("$653*049=799130;", [0, 4, 3, 2, 0, 4, 3, 2, 1, 2, 3, 4, 5, 6, 7, 0]),
    # (653 + 49) mod 101 = 96, a 3-digit modular result.
    ("653+049=690;", [4, 3, 2, 0, 4, 3, 2, 1, 2, 3, 4, 0]),
    ("7+5=21;", [2, 0, 2, 1, 2, 3, 0]),
])
def test_coupled_ids_of_hand_made_examples(text, ids):
    assert positional.EQUALS_TOKEN == tasks.EQUALS
    assert np.asarray(positional.coupled_ids(_tokens(text)))[0].tolist() == ids


def test_coupled_ids_follow_the_encoder_layout():
    # Digits of significance s in a, b and c share one id; the token predicting c's digit s has
    # the id below it, which no earlier token of the result has (Cho et al.'s construction of a
    # one-layer adder reads the carry from its own id and the digits s from the next).
    spec = tasks.TaskSpec("add", 6, tasks.Format.parse("pad=common,reverse_result,bos,eos", task="add"))
    a, b = jax.random.randint(jax.random.key(1), (2, 64, 6), 0, 10)
    a = a * (jnp.arange(6) < jax.random.randint(jax.random.key(2), (64, 1), 1, 7))  # lengths 1..6
    batch = tasks.batch_for_operands(spec, a, b, None)
    ids_BxT = np.asarray(positional.coupled_ids(batch.tokens))
    tokens_BxT = np.asarray(batch.tokens)
    for row in range(64):
        text = tasks.detokenize(tokens_BxT[row])
        equals = text.index("=")
        length = text.index("+") - 1  # after BOS
        for s in range(length):
            a_at, b_at = 1 + length - 1 - s, text.index("+") + length - s
            predicting = equals + s  # '=' predicts digit 0; result digit s - 1 predicts digit s
            assert ids_BxT[row, a_at] == ids_BxT[row, b_at] == ids_BxT[row, predicting + 1] == s + 2, text
            assert ids_BxT[row, predicting] == s + 1, text
            assert s + 2 not in ids_BxT[row, equals:predicting + 1].tolist(), text


def test_coupling_offsets_shift_every_id_of_a_sequence_together():
    cfg = tiny("coupled")
    coupled = build(cfg, nnx.Rngs(params=jax.random.key(3)))
    tokens_BxT = jnp.concatenate([_tokens("653+049=2070;.")] * 32)
    ids_T = np.asarray(positional.coupled_ids(tokens_BxT))[0]
    table = np.asarray(coupled.table.embedding[...])
    trained_BxTxD = np.asarray(coupled.embedding(tokens_BxT, None, jax.random.key(6)))
    offsets = set()
    for row in range(32):
        matches = [o for o in range(cfg.positional.coupling_max_offset + 1)
                   if np.array_equal(trained_BxTxD[row], table[np.where(ids_T > 0, ids_T + o, 0)])]
        assert len(matches) == 1  # one offset explains the whole row: differences between ids are kept
        offsets.add(matches[0])
    assert len(offsets) > 1  # drawn per example
    np.testing.assert_array_equal(coupled.embedding(tokens_BxT, None, None), table[np.broadcast_to(ids_T, (32, 14))])


@pytest.mark.parametrize("layout, problem", [
    ("pad=common,reverse_operands,reverse_result", "operands in written order (no reverse_operands)"),
    ("pad=common", "a reversed result (reverse_result)"),
    ("pad=6/7,reverse_result,hints", "no index hints"),
    ("reverse_result", "operands padded to a common length (pad=common or pad=N)"),
    ("pad=6/7,reverse_result,no_symbols", "'+'/'*' and '=' symbols (no_symbols removes them)"),
])
def test_layouts_coupling_cannot_read_are_config_errors(layout, problem):
    fmt = tasks.Format.parse(layout, task="add")
    for pe in ("coupled", "coupled_rope"):
        with pytest.raises(ConfigError, match=r"^model\.pe: coupling cannot read the layout .*" + re.escape(problem)):
            tiny(pe).validate(VOCAB, 30, fmt)
        tiny(pe).validate(VOCAB, 30, tasks.Format.parse("pad=common,reverse_result", task="add"))


@pytest.mark.parametrize("pe", ["coupled", "coupled_rope"])
def test_coupled_answers_never_see_later_answer_tokens(pe):
    cfg = tiny(pe)
    graphdef, params = model.init(cfg, VOCAB, jax.random.key(0))
    forward = quick_jit(lambda tokens_BxT: model.apply(graphdef, params, tokens_BxT, jax.random.key(2)))
    prompt = "653+049="
    answers = jax.random.randint(jax.random.key(1), (6, 6), 0, VOCAB)
    tokens_BxT = jnp.concatenate([jnp.repeat(_tokens(prompt), 6, axis=0), answers], axis=1)
    rows, start = jnp.arange(6), len(prompt)
    changed_BxT = tokens_BxT.at[rows, start + rows].set((tokens_BxT[rows, start + rows] + 7) % VOCAB)
    before, after = np.asarray(forward(tokens_BxT)), np.asarray(forward(changed_BxT))
    for r in range(6):
        np.testing.assert_allclose(after[r, :start + r], before[r, :start + r], atol=1e-6)
        assert not np.allclose(after[r, start + r:], before[r, start + r:], atol=1e-6)


@pytest.mark.parametrize("window", [1, 3])
def test_the_coupling_window_hides_exactly_the_pairs_of_far_ids(window):
    tokens_BxT = jnp.concatenate([_tokens("$653+049=2070;"), _tokens("$007+005=2100;")])
    ids_BxT = np.asarray(positional.coupled_ids(tokens_BxT))
    bias_Bx1xTxT = np.asarray(positional.coupling_window_bias(tokens_BxT, window))
    assert bias_Bx1xTxT.shape == (2, 1, 14, 14)
    for row in range(2):
        for q in range(14):
            for k in range(14):
                far = abs(int(ids_BxT[row, q]) - int(ids_BxT[row, k])) > window
                assert bias_Bx1xTxT[row, 0, q, k] == (positional.MASKED_SCORE if far else 0.0)
    query_B = jnp.array([9, 3])  # one decoded row per example
    rows_Bx1xT = np.asarray(positional.coupling_window_bias(tokens_BxT, window, query_B))
    np.testing.assert_array_equal(rows_Bx1xT, np.stack([bias_Bx1xTxT[0, :, 9], bias_Bx1xTxT[1, :, 3]]))
    # "653" + "049" with window 1: '=' (id 1) sees the units (id 2) and the symbols (id 0), not the
    # tens (id 3); the units digit of the answer (id 2) sees the tens (id 3) but not the hundreds.
    text = "$653+049=2070;"
    equals, tens_a, hundreds_a = text.index("="), 2, 1
    if window == 1:
        assert bias_Bx1xTxT[0, 0, equals, text.index("+") - 1] == 0.0
        assert bias_Bx1xTxT[0, 0, equals, tens_a] == positional.MASKED_SCORE
        assert bias_Bx1xTxT[0, 0, equals + 1, tens_a] == 0.0
        assert bias_Bx1xTxT[0, 0, equals + 1, hundreds_a] == positional.MASKED_SCORE


@pytest.mark.parametrize("pe", ["coupled", "coupled_rope"])
def test_a_window_wider_than_every_id_distance_changes_nothing_and_a_narrow_one_does(pe):
    tokens_BxT = jnp.concatenate([_tokens("$653+049=2070;"), _tokens("$107+095=2020;")])
    logits = {}
    for window in (0, 10, 1):
        graphdef, params = model.init(tiny(pe, coupling_window=window), VOCAB, jax.random.key(0))
        logits[window] = np.asarray(model.apply(graphdef, params, tokens_BxT, jax.random.key(5)))
    np.testing.assert_allclose(logits[10], logits[0], atol=1e-6)
    assert not np.allclose(logits[1], logits[0], atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Looped transformer with input injection.


def test_looped_model_reapplies_its_blocks_with_the_input_added_back():
    cfg = tiny("learned", recurrences=3, input_injection=True)
    looped = model.Transformer(cfg, VOCAB, nnx.Rngs(params=jax.random.key(0)))
    tokens_BxT = jax.random.randint(jax.random.key(1), (2, 9), 0, VOCAB)
    positions_T = jnp.arange(9)
    input_BxTxD = looped.token_embedding(tokens_BxT) + looped.encoding.embedding(tokens_BxT, positions_T, None)
    x_BxTxD = input_BxTxD
    for recurrence in range(3):
        x_BxTxD = x_BxTxD + input_BxTxD if recurrence else x_BxTxD
        for block in looped.blocks:
            x_BxTxD = block(x_BxTxD, looped.encoding, positions_T, None, None)
    by_hand = looped.head(looped.final_norm(x_BxTxD))
    np.testing.assert_allclose(looped(tokens_BxT), by_hand, rtol=1e-5, atol=1e-5)
    without = model.Transformer(dataclasses.replace(cfg, input_injection=False), VOCAB,
                                nnx.Rngs(params=jax.random.key(0)))
    assert not np.allclose(without(tokens_BxT), by_hand, atol=1e-4)  # injection changes the function


def test_loops_share_weights_and_count_their_flops_per_pass():
    once, thrice = tiny("learned"), tiny("learned", recurrences=3)
    count = lambda cfg: model.param_count(model.init(cfg, VOCAB, jax.random.key(0))[1])
    assert count(thrice) == count(once)
    d, ff, L, T = TINY["d_model"], TINY["d_ff"], TINY["num_layers"], 30
    block = 4 * d * d + 2 * d * ff
    assert model.flops_per_token(thrice, VOCAB, T) == 6 * (3 * L * block + d * VOCAB) + 12 * 3 * L * T * d


# ---------------------------------------------------------------------------------------------
# KV-cached decoding: the same tokens as recomputing the whole sequence per token.


@pytest.mark.parametrize("pe, overrides", [(pe, {}) for pe in ENCODINGS] + [
    ("coupled", dict(coupling_window=1)), ("coupled_rope", dict(coupling_window=2)),
    ("rope", dict(randomized_positions=True)), ("learned", dict(recurrences=2, input_injection=True)),
    ("learned", dict(tied_embeddings=True)), ("learned", dict(attention_sink=True)),
    ("alibi", dict(attention_sink=True))])
def test_cached_decoding_writes_what_full_recomputation_writes(pe, overrides):
    from arith_jax import evaluate
    cfg = tiny(pe, **overrides)
    spec = tasks.TaskSpec("add", 4, tasks.Format.parse("pad=common,reverse_result,eos", task="add"))
    graphdef, params = model.init(cfg, VOCAB, jax.random.key(0))
    a, b = jax.random.randint(jax.random.key(1), (2, 8, 4), 0, 10)
    lengths = jnp.arange(8)[:, None] % 4 + 1  # 1..4 digits: each row's answer starts at its own place
    a, b = a * (jnp.arange(4) < lengths), b * (jnp.arange(4) < lengths)
    batch = tasks.batch_for_operands(spec, a, b, None)
    apply_fn = lambda tokens: model.apply(graphdef, params, tokens)
    full = quick_jit(lambda: evaluate.greedy_decode(apply_fn, batch, spec.answer_len))()
    cached = quick_jit(lambda: evaluate.greedy_decode_cached(
        lambda tokens: model.prefill(graphdef, params, tokens),
        lambda tokens, cache, position: model.decode_step(graphdef, params, tokens, cache, position),
        batch, spec.answer_len))()
    np.testing.assert_array_equal(cached, full)
    assert len(set(np.asarray(batch.answer_start).tolist())) > 1


def test_a_cached_step_gives_the_full_forward_logits():
    cfg = tiny("alibi", recurrences=2)
    graphdef, params = model.init(cfg, VOCAB, jax.random.key(3))
    tokens_BxT = jax.random.randint(jax.random.key(4), (4, 10), 0, VOCAB)
    full_BxTxV = model.apply(graphdef, params, tokens_BxT)
    cache = model.prefill(graphdef, params, tokens_BxT)
    position_B = jnp.asarray([3, 9, 0, 6])
    logits_BxV, _ = model.decode_step(graphdef, params, tokens_BxT, cache, position_B)
    np.testing.assert_allclose(logits_BxV, full_BxTxV[jnp.arange(4), position_B], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pe, overrides", [("learned", {}), ("alibi", {}), ("t5", {}), ("rope", {}),
                                          ("learned", dict(recurrences=2))])
def test_attention_weights_are_the_pattern_the_model_computes_with(pe, overrides):
    # Weighing the values with the probed weights gives the model's own logits, so the weights
    # carry its scaling, bias and causal mask; each row is a distribution over earlier keys.
    cfg = tiny(pe, **overrides)
    graphdef, params = model.init(cfg, VOCAB, jax.random.key(5))
    tokens_BxT = jax.random.randint(jax.random.key(6), (3, 11), 0, VOCAB)
    logits_BxTxV, weights = model.attention_weights(graphdef, params, tokens_BxT)
    np.testing.assert_allclose(logits_BxTxV, model.apply(graphdef, params, tokens_BxT), rtol=1e-5, atol=1e-5)
    assert len(weights) == cfg.num_layers * cfg.recurrences
    for weights_BxNxTxT in weights:
        assert weights_BxNxTxT.shape == (3, cfg.num_heads, 11, 11)
        np.testing.assert_allclose(weights_BxNxTxT.sum(-1), 1.0, rtol=1e-5)
        assert not np.any(np.triu(np.asarray(weights_BxNxTxT), k=1))
        assert np.all(np.asarray(weights_BxNxTxT)[..., 1:, 0] < 1)  # not a trivial pattern


def _with_sinks(params, value: float):
    """params with every attention sink score set to `value`."""
    return jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.full_like(x, value) if "sink" in jax.tree_util.keystr(path) else x, params)


def test_an_attention_sink_takes_weight_from_every_key_and_gives_back_nothing():
    """model.attention_sink: one more score per head with a zero value. Probed weights then sum
    to 1 minus the sink's share, and weighing the values with them still gives the model's own
    logits; a sink scoring -inf is the plain attention, one scoring above every key takes all."""
    cfg = tiny("learned", attention_sink=True)
    graphdef, params = model.init(cfg, VOCAB, jax.random.key(5))
    plain_graphdef, plain_params = model.init(tiny("learned"), VOCAB, jax.random.key(5))
    tokens_BxT = jax.random.randint(jax.random.key(6), (3, 11), 0, VOCAB)
    sinks = [x for path, x in jax.tree_util.tree_leaves_with_path(params) if "sink" in jax.tree_util.keystr(path)]
    assert [x.shape for x in sinks] == [(cfg.num_heads,)] * cfg.num_layers
    logits_BxTxV, weights = model.attention_weights(graphdef, params, tokens_BxT)
    np.testing.assert_allclose(logits_BxTxV, model.apply(graphdef, params, tokens_BxT), rtol=1e-5, atol=1e-5)
    total_BxNxT = np.asarray(weights[0]).sum(-1)
    assert np.all(total_BxNxT < 1.0) and np.all(total_BxNxT > 0.0)
    np.testing.assert_allclose(model.apply(graphdef, _with_sinks(params, -jnp.inf), tokens_BxT),
                               model.apply(plain_graphdef, plain_params, tokens_BxT), rtol=1e-5, atol=1e-5)
    _, swamped = model.attention_weights(graphdef, _with_sinks(params, 1e4), tokens_BxT)
    assert all(float(np.abs(np.asarray(w)).max()) < 1e-6 for w in swamped)


def test_an_attention_sink_needs_a_bool_and_no_cudnn():
    with pytest.raises(ConfigError, match=r"^model\.attention_sink: must be True or False, got 1$"):
        tiny("learned", attention_sink=1).validate(VOCAB, 11)
    with pytest.raises(ConfigError, match=r"^model\.attention_impl: cudnn is not offered with model\.attention_sink"):
        tiny("learned", attention_sink=True, attention_impl="cudnn", compute_dtype="bfloat16").validate(VOCAB, 11)


@pytest.mark.parametrize("pe", ["learned", "rope"])
def test_each_layer_attends_with_its_own_head_count(pe):
    # Layers of 4 and 2 heads: the first block's query, key and value split into heads of width
    # 4, the second's into heads of 8; the probed pattern has each layer's head count, and
    # KV-cached decoding (whose cache shapes follow each layer's heads) matches the full pass.
    cfg = tiny(pe, layer_heads=(4, 2))
    cfg.validate(VOCAB, 11)
    assert [cfg.heads(i) for i in range(cfg.num_layers)] == [4, 2]
    graphdef, params = model.init(cfg, VOCAB, jax.random.key(7))
    tokens_BxT = jax.random.randint(jax.random.key(8), (3, 11), 0, VOCAB)
    logits_BxTxV, weights = model.attention_weights(graphdef, params, tokens_BxT)
    assert [w.shape for w in weights] == [(3, 4, 11, 11), (3, 2, 11, 11)]
    np.testing.assert_allclose(logits_BxTxV, model.apply(graphdef, params, tokens_BxT), rtol=1e-5, atol=1e-5)
    cache = model.prefill(graphdef, params, tokens_BxT)
    position_B = jnp.asarray([2, 10, 5])
    logits_BxV, _ = model.decode_step(graphdef, params, tokens_BxT, cache, position_B)
    np.testing.assert_allclose(logits_BxV, logits_BxTxV[jnp.arange(3), position_B], rtol=1e-5, atol=1e-5)
    # The parameters are those of two heads in every layer; read with that split they give
    # other logits, so the per-layer split is what the forward pass uses.
    uniform_graphdef, uniform_params = model.init(tiny(pe), VOCAB, jax.random.key(7))
    assert jax.tree.map(jnp.shape, uniform_params) == jax.tree.map(jnp.shape, params)
    other_BxTxV = model.apply(uniform_graphdef, params, tokens_BxT)
    assert not np.allclose(other_BxTxV, logits_BxTxV, atol=1e-4)


def test_per_layer_heads_are_the_only_head_counts_checked():
    # With layer_heads set no layer uses num_heads, so a count that does not divide d_model (3
    # of 16) or gives rope an odd head width is no reason to refuse the model.
    for pe in ("learned", "rope"):
        tiny(pe, num_heads=3, layer_heads=(4, 2)).validate(VOCAB, 11)
    with pytest.raises(ConfigError, match=re.escape("model.num_heads: must divide d_model = 16, got 3")):
        tiny("learned", num_heads=3).validate(VOCAB, 11)


def test_coupled_rope_scores_depend_only_on_the_difference_of_significances():
    # The same problem written with 3-digit and with 5-digit zero-padded operands: the '='
    # query's scores against the units digits of a and b (both id 2, one above its own) are equal.
    cfg = tiny("coupled_rope")
    rope = build(cfg, nnx.Rngs(params=jax.random.key(0)))
    q, k = jax.random.normal(jax.random.key(1), (2, 1, 1, 2, 8))
    for text in ("653+049=", "00653+00049="):
        ids_1xT = positional.coupled_ids(_tokens(text))
        equals, units_a, units_b = text.index("="), text.index("+") - 1, len(text) - 2
        T = len(text)
        q_T, k_T = jnp.broadcast_to(q, (1, T, 2, 8)), jnp.broadcast_to(k, (1, T, 2, 8))
        rq, rk = rope.rotate(q_T, k_T, ids_1xT)
        scores = jnp.einsum("bqnh,bknh->bnqk", rq, rk)[0, :, equals]
        np.testing.assert_allclose(scores[:, units_a], scores[:, units_b], rtol=1e-5)
        if text.startswith("653"):
            reference = scores[:, units_a]
        np.testing.assert_allclose(scores[:, units_a], reference, rtol=1e-5)


def test_embedding_noise_perturbs_training_passes_only():
    tokens_BxT = jax.random.randint(jax.random.key(4), (3, 10), 0, VOCAB)
    logits = {}
    for noise in (0.0, 0.5):
        graphdef, params = model.init(tiny("learned", embedding_noise=noise), VOCAB, jax.random.key(0))
        logits[noise, "train"] = np.asarray(model.apply(graphdef, params, tokens_BxT, jax.random.key(5)))
        logits[noise, "eval"] = np.asarray(model.apply(graphdef, params, tokens_BxT))
    np.testing.assert_array_equal(logits[0.5, "eval"], logits[0.0, "eval"])  # evaluation: no noise
    np.testing.assert_array_equal(logits[0.0, "train"], logits[0.0, "eval"])  # no dropout either
    assert not np.allclose(logits[0.5, "train"], logits[0.0, "train"], atol=1e-4)


@pytest.mark.parametrize("pe", ["learned", "abacus", "coupled"])
def test_token_and_position_tables_start_at_their_own_std(pe):
    cfg = model.ModelConfig.from_preset("nano", pe=pe, token_init_std=1.0, position_init_std=0.3)
    _, params = model.init(cfg, VOCAB, jax.random.key(0))
    std = lambda table: float(np.std(np.asarray(table[...])))
    assert std(params["token_embedding"]["embedding"]) == pytest.approx(1.0, rel=0.1)
    assert std(params["encoding"]["table"]["embedding"]) == pytest.approx(0.3, rel=0.1)
    _, gpt2 = model.init(model.ModelConfig.from_preset("nano", pe=pe), VOCAB, jax.random.key(0))
    assert std(gpt2["token_embedding"]["embedding"]) == pytest.approx(0.02, rel=0.1)
    assert std(gpt2["encoding"]["table"]["embedding"]) == pytest.approx(0.02, rel=0.1)


def test_gpt2_init_draws_linear_kernels_at_its_std_and_scales_residual_writes():
    cfg = model.ModelConfig.from_preset("nano", init_std=0.02)  # 3 blocks: residual writes at 0.02 / sqrt(6)
    _, params = model.init(cfg, VOCAB, jax.random.key(0))
    std = lambda kernel: float(np.std(np.asarray(kernel[...])))
    block = params["blocks"][0]
    for kernel in (block["attention"]["qkv"]["kernel"], block["mlp_in"]["kernel"], params["head"]["kernel"]):
        assert std(kernel) == pytest.approx(0.02, rel=0.1)
    for kernel in (block["attention"]["out"]["kernel"], block["mlp_out"]["kernel"]):
        assert std(kernel) == pytest.approx(0.02 / 6 ** 0.5, rel=0.1)
    _, lecun = model.init(model.ModelConfig.from_preset("nano"), VOCAB, jax.random.key(0))
    assert std(lecun["blocks"][0]["attention"]["qkv"]["kernel"]) == pytest.approx(48 ** -0.5, rel=0.1)
