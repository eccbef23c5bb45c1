"""The IJCAI-2024 paper's two mechanistic views of one member, as PNG plots.

Xu et al. ("It Ain't That Bad", IJCAI 2024) explain length-generalisation failures by what
the model attends to: an APE model ignores operand digits outside the trained range, so its
answer on long inputs is the task applied to the in-distribution representatives. Two views
make that visible for one trained member:
- answer_positions.png: vary one operand digit of significance n_train (never seen in
  training) over 0..9 and show each answer position's output distribution. A model that
  ignores the digit shows the same distribution in every column; one that uses it follows
  the true answer.
- pca_final_token.png: the final-LayerNorm state at the last prompt position over
  in-distribution operands (both below 10^n_train), projected on its top two principal
  components, coloured by the answer's units digit. Clusters per digit mean the answer is
  already laid out in the representation.
- unseen_places.json: which unseen place the model fails to ignore. For each place 10^k
  beyond the trained n_train digits, in-distribution operands with one random nonzero digit
  put at 10^k in a, in b, or in both, scored by equivalence accuracy (the greedy answer is the
  task on the operands truncated to n_train digits). Equivalence on long operands averages
  over every unseen place at once; this splits it, so a member that ignores every place but
  one shows it as one low entry.
- unseen_digits.json: which digit values at an unseen place the model fails to ignore. The
  first unseen place of a (10^n_train) holds each digit 1..9 in turn over in-distribution
  operands, scored by equivalence accuracy and (padded operands) by the attention weight each
  head puts on that place. A head that reads that place by its content (say, only digits
  that are 2 or 3 mod 5) shows as a pattern over the digits that position alone cannot make.
- attention.json (layouts with padded operands): where the answer looks. Over in-distribution
  operands, the attention weight that the positions predicting an answer token put on each
  operand place, per block pass and head, and its share on the trained places (below
  10^n_train) and on the unseen ones (10^n_train up to the operand width): those hold a
  zero in every training example, so any weight there is weight a longer operand's digits
  will later move.

Figures are built with matplotlib's object API (Figure + Agg canvas), so no pyplot state or
display backend is touched.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from arith_jax import evaluate, model, tasks
from arith_jax import workdir as workdir_lib
from arith_jax.writers import png_bytes
from arith_jax.errors import ConfigError

PCA_EXAMPLES = 384
MAX_PANEL_COLUMNS = 5
UNSEEN_PLACE_EXAMPLES = 512
UNSEEN_PLACE_OPERANDS = ("a", "b", "both")
ATTENTION_EXAMPLES = 256
UNSEEN_DIGITS = tuple(range(1, tasks.NUM_DIGITS))


def analyze(graphdef, params, spec: tasks.TaskSpec, n_train: int, modulus: int, out_dir: str, seed: int = 0,
            title: str = "") -> list[str]:
    """Writes answer_positions.png, pca_final_token.png, unseen_places.json,
    unseen_digits.json and (padded operands only) attention.json for one member; returns
    their paths.

    modulus is the member's (ignored by add and mul); seed picks the operands shown.
    """
    if spec.width < n_train + 1:
        raise ConfigError("task.width", f"{spec.width} is too small for analyze, which varies the digit of "
                                        f"significance n_train = {n_train}; use a width (or an eval length) of at "
                                        f"least {n_train + 1}")
    workdir_lib.make_dirs(out_dir)
    rng = np.random.default_rng(seed)
    modulus = jnp.int32(modulus)

    @jax.jit
    def decode_and_score(params, a_BxW, b_BxW):
        batch = tasks.batch_for_operands(spec, a_BxW, b_BxW, modulus)
        apply_fn = lambda tokens_BxT: model.apply(graphdef, params, tokens_BxT)
        decoded_BxT = evaluate.greedy_decode(apply_fn, batch, spec.answer_len)
        # Teacher-forced on its own answer: the distributions the greedy decode walked through.
        return batch, decoded_BxT, jax.nn.softmax(apply_fn(decoded_BxT), axis=-1)

    @jax.jit
    def last_prompt_state(params, a_BxW, b_BxW):
        batch = tasks.batch_for_operands(spec, a_BxW, b_BxW, modulus)
        _, hidden_BxTxD = model.apply(graphdef, params, batch.tokens, return_hidden=True)
        return batch, hidden_BxTxD[jnp.arange(batch.tokens.shape[0]), batch.answer_start - 1]

    answer_path = workdir_lib.join(out_dir, "answer_positions.png")
    a_1xW, b_1xW = (evaluate.exact_length_operands(rng, n_train + 1, spec.width, 1) for _ in range(2))
    _plot_answer_positions(answer_path, decode_and_score(params, *_vary_digit(a_1xW[0], b_1xW[0], n_train)), spec,
                           n_train, title)
    pca_path = workdir_lib.join(out_dir, "pca_final_token.png")
    # In distribution: both operands uniform below 10^n_train (tasks' "below:n").
    a_NxW, b_NxW = (_below(rng, n_train, spec.width, PCA_EXAMPLES) for _ in range(2))
    _plot_pca(pca_path, last_prompt_state(params, a_NxW, b_NxW), title)

    @jax.jit
    def equivalence(params, a_BxW, b_BxW):
        apply_fn = lambda tokens_BxT: model.apply(graphdef, params, tokens_BxT)
        return evaluate.member_metrics(apply_fn, spec, a_BxW, b_BxW, modulus, n_train, decode=True)["equiv_acc"]

    places_path = workdir_lib.join(out_dir, "unseen_places.json")
    places = list(range(n_train, spec.width))
    scores = {operand: [float(equivalence(params, *one_unseen_place(rng, n_train, spec.width, place, operand,
                                                                     UNSEEN_PLACE_EXAMPLES)))
                        for place in places]
              for operand in UNSEEN_PLACE_OPERANDS}
    record = {"member": title, "n_train": n_train, "examples": UNSEEN_PLACE_EXAMPLES, "places": places,
              "equiv_acc": scores}
    _write_json(places_path, record)

    paths = [answer_path, pca_path, places_path]
    if spec.format.pad_operands:  # unpadded, an unseen place holds no token to attend to
        attention_path = workdir_lib.join(out_dir, "attention.json")
        a_NxW, b_NxW = (_below(rng, n_train, spec.width, ATTENTION_EXAMPLES) for _ in range(2))
        record = {"member": title, **attention_on_places(graphdef, params, spec, n_train, modulus, a_NxW, b_NxW)}
        _write_json(attention_path, record)
        paths.append(attention_path)

    # Drawn after the records above, so that they are the same operands as without this one.
    digits_path = workdir_lib.join(out_dir, "unseen_digits.json")
    a_DxNxW, b_DxNxW = one_unseen_place_by_digit(rng, n_train, spec.width, UNSEEN_PLACE_EXAMPLES)
    record = {"member": title, "n_train": n_train, "place": n_train, "operand": "a",
              "examples": UNSEEN_PLACE_EXAMPLES, "digits": list(UNSEEN_DIGITS),
              "equiv_acc": [float(equivalence(params, a_NxW, b_NxW)) for a_NxW, b_NxW in zip(a_DxNxW, b_DxNxW)]}
    if spec.format.pad_operands:
        record["attention"] = attention_on_place_by_digit(graphdef, params, spec, modulus, n_train,
                                                          a_DxNxW[:, :ATTENTION_EXAMPLES],
                                                          b_DxNxW[:, :ATTENTION_EXAMPLES])
    _write_json(digits_path, record)
    return paths + [digits_path]


def _answer_attention(graphdef, params, spec: tasks.TaskSpec, modulus, a_NxW, b_NxW):
    """Per block pass, N x H x T: each example's attention weight onto each key, summed over
    the positions that predict an answer token; and N: how many such positions each has."""
    batch = tasks.batch_for_operands(spec, a_NxW, b_NxW, modulus)
    weights = jax.jit(lambda params, tokens: model.attention_weights(graphdef, params, tokens)[1])(params,
                                                                                                 batch.tokens)
    # Position t predicts token t + 1: the queries are the positions before an answer token.
    queries_NxT = np.zeros(batch.answer_mask.shape)
    queries_NxT[:, :-1] = np.asarray(batch.answer_mask)[:, 1:]
    return ([np.einsum("nhqk,nq->nhk", np.asarray(weights_NxHxTxT), queries_NxT) for weights_NxHxTxT in weights],
            queries_NxT.sum(axis=1))


def attention_on_places(graphdef, params, spec: tasks.TaskSpec, n_train: int, modulus, a_NxW, b_NxW) -> dict:
    """Mean attention weight from the positions that predict an answer token onto each operand
    place, per block pass and head, for the operands given (padded layouts)."""
    a_positions_S, b_positions_S = spec.operand_positions()
    per_pass_NxHxT, queries_N = _answer_attention(graphdef, params, spec, modulus, a_NxW, b_NxW)
    place_S = np.arange(spec.operand_slots)
    unseen_S = (place_S >= n_train) & (place_S < spec.width)
    passes = []
    for per_key_NxHxT in per_pass_NxHxT:
        # Mean over examples and queries of each key's weight: H x T.
        per_key_HxT = per_key_NxHxT.sum(axis=0) / queries_N.sum()
        heads = []
        for per_key_T in per_key_HxT:
            a_S, b_S = per_key_T[a_positions_S], per_key_T[b_positions_S]
            heads.append({"trained": float(a_S[:n_train].sum() + b_S[:n_train].sum()),
                          "unseen": float(a_S[unseen_S].sum() + b_S[unseen_S].sum()),
                          "a_places": [round(float(x), 5) for x in a_S],
                          "b_places": [round(float(x), 5) for x in b_S]})
        passes.append({"heads": heads})
    unseen = [head["unseen"] for block_pass in passes for head in block_pass["heads"]]
    return {"n_train": n_train, "examples": int(a_NxW.shape[0]),
            "unseen_places": [int(k) for k in np.flatnonzero(unseen_S)],
            "unseen_mean": float(np.mean(unseen)), "passes": passes}


def attention_on_place_by_digit(graphdef, params, spec: tasks.TaskSpec, modulus, place: int, a_DxNxW,
                                b_DxNxW) -> list:
    """Per block pass, per head, per digit group d: the mean attention weight from the positions
    that predict an answer token onto a's place `place`, over the d-th group's operands."""
    digits, n = a_DxNxW.shape[:2]
    per_pass_NxHxT, queries_N = _answer_attention(graphdef, params, spec, modulus, a_DxNxW.reshape(digits * n, -1),
                                                  b_DxNxW.reshape(digits * n, -1))
    key = spec.operand_positions()[0][place]
    queries_D = queries_N.reshape(digits, n).sum(axis=1)
    return [[[round(float(x), 5) for x in per_key_NxHxT[:, head, key].reshape(digits, n).sum(axis=1) / queries_D]
             for head in range(per_key_NxHxT.shape[1])]
            for per_key_NxHxT in per_pass_NxHxT]


def _write_json(path: str, record: dict) -> None:
    workdir_lib.write_atomically(path, (json.dumps(record, indent=1) + "\n").encode())


def one_unseen_place(rng: np.random.Generator, n_train: int, width: int, place: int, operand: str,
                     n: int) -> tuple[np.ndarray, np.ndarray]:
    """n pairs (a, b) of little-endian digits: uniform below 10^n_train, plus a digit 1..9 at
    10^place in `operand` ("a", "b" or "both"), zero at every other place."""
    a_NxW, b_NxW = (_below(rng, n_train, width, n) for _ in range(2))
    for name, digits_NxW in (("a", a_NxW), ("b", b_NxW)):
        if operand in (name, "both"):
            digits_NxW[:, place] = rng.integers(1, tasks.NUM_DIGITS, size=n)
    return a_NxW, b_NxW


def one_unseen_place_by_digit(rng: np.random.Generator, n_train: int, width: int,
                              n: int) -> tuple[np.ndarray, np.ndarray]:
    """D x n pairs (a, b) of little-endian digits, D = len(UNSEEN_DIGITS): uniform below
    10^n_train, and a's digit at 10^n_train set to the d-th of UNSEEN_DIGITS in group d."""
    a_DxNxW = np.stack([_below(rng, n_train, width, n) for _ in UNSEEN_DIGITS])
    b_DxNxW = np.stack([_below(rng, n_train, width, n) for _ in UNSEEN_DIGITS])
    a_DxNxW[:, :, n_train] = np.array(UNSEEN_DIGITS)[:, None]
    return a_DxNxW, b_DxNxW


def _below(rng: np.random.Generator, n_digits: int, width: int, n: int) -> np.ndarray:
    digits_NxW = np.zeros((n, width), np.int32)
    digits_NxW[:, :n_digits] = rng.integers(0, 10, size=(n, n_digits))
    return digits_NxW


def _vary_digit(a_W: np.ndarray, b_W: np.ndarray, significance: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten copies of (a, b), a's digit at `significance` set to 0..9 in turn."""
    a_VxW = np.tile(a_W, (tasks.NUM_DIGITS, 1))
    a_VxW[:, significance] = np.arange(tasks.NUM_DIGITS)
    return a_VxW, np.tile(b_W, (tasks.NUM_DIGITS, 1))


def _plot_answer_positions(path: str, scored, spec: tasks.TaskSpec, n_train: int, title: str) -> None:
    batch, decoded_VxT, probs_VxTxV = jax.device_get(scored)
    varied_V = np.arange(tasks.NUM_DIGITS)
    # Answer token k sits at answer_start + k in every row (a row's prompt may be shorter if
    # the format does not pad operands). Panels for the offsets where some reference token is
    # a digit: index hints and EOS carry no digit distribution worth a panel.
    position_VxL = batch.answer_start[:, None] + np.arange(spec.answer_len)
    reference_VxL = np.take_along_axis(batch.tokens, position_VxL, axis=1)
    offsets = np.flatnonzero(np.any(reference_VxL < tasks.NUM_DIGITS, axis=0))

    n_cols = min(len(offsets), MAX_PANEL_COLUMNS)
    n_rows = -(-len(offsets) // n_cols)
    fig = Figure(figsize=(2.6 * n_cols + 1.0, 2.6 * n_rows + 0.9), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[len(offsets):]:
        ax.set_visible(False)
    for ax, offset in zip(axes.flat, offsets):
        position_V = position_VxL[:, offset]
        # Rows: output digit; columns: the varied digit's value.
        distribution_DxV = probs_VxTxV[varied_V, position_V - 1, : tasks.NUM_DIGITS].T
        image = ax.imshow(distribution_DxV, origin="lower", vmin=0.0, vmax=1.0, cmap="viridis")
        is_digit_V = reference_VxL[:, offset] < tasks.NUM_DIGITS
        ax.scatter(varied_V[is_digit_V], reference_VxL[is_digit_V, offset], s=30, facecolors="none",
                   edgecolors="white", linewidths=1.0, label="true digit")
        ax.scatter(varied_V, decoded_VxT[varied_V, position_V], s=10, c="red", marker="x", label="greedy output")
        ax.set_title(f"answer token {offset}", fontsize=9)
        ax.set_xticks(varied_V)
        ax.set_yticks(varied_V)
        ax.set_ylim(-0.5, tasks.NUM_DIGITS - 0.5)  # a non-digit greedy output falls off the panel
    for ax in axes[-1]:
        ax.set_xlabel(f"a's digit at 10^{n_train}")
    for ax in axes[:, 0]:
        ax.set_ylabel("output digit")
    axes.flat[0].legend(loc="upper left", fontsize=6, framealpha=0.5)
    fig.colorbar(image, ax=axes, label="probability", shrink=0.8)
    a, b = tasks.digits_to_int(batch.a[0]), tasks.digits_to_int(batch.b[0])
    heading = f"a = {a} with its digit at 10^{n_train} varied, b = {b}; trained on {n_train} digits"
    fig.suptitle(f"{title}\n{heading}" if title else heading, fontsize=10)
    workdir_lib.write_atomically(path, png_bytes(fig))


def _plot_pca(path: str, batch_and_state, title: str) -> None:
    batch, state_NxD = jax.device_get(batch_and_state)
    centred_NxD = np.asarray(state_NxD, np.float64) - np.mean(state_NxD, axis=0)
    _, singular_values, components_CxD = np.linalg.svd(centred_NxD, full_matrices=False)
    projected_Nx2 = centred_NxD @ components_CxD[:2].T
    explained = singular_values**2 / np.sum(singular_values**2)

    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    ax = fig.subplots()
    points = ax.scatter(projected_Nx2[:, 0], projected_Nx2[:, 1], c=batch.c[:, 0], cmap="tab10", vmin=-0.5,
                        vmax=9.5, s=14)
    fig.colorbar(points, ax=ax, ticks=range(tasks.NUM_DIGITS), label="units digit of the answer")
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    heading = f"final-LayerNorm state at the last prompt token, {len(projected_Nx2)} in-distribution examples"
    fig.suptitle(f"{title}\n{heading}" if title else heading, fontsize=10)
    workdir_lib.write_atomically(path, png_bytes(fig))
