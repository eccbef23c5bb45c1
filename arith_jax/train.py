"""Population training: one compiled program per group, the whole sweep in one loop.

Reading order: the per-member step (`member_step`, a pure function: loss, AdamW, NaN freezing) -> the chunk (lax.scan over
K steps of vmap(step) over members, data generated inside) -> the group program (jit with
shardings, cached by static shape) -> the loop (dispatch, late metrics, eval, checkpoint,
preemption).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from arith_jax import checkpoint as ckpt_lib
from arith_jax import config as config_lib
from arith_jax import data as data_lib
from arith_jax import evaluate
from arith_jax import model as model_lib
from arith_jax import population
from arith_jax import sharding
from arith_jax import workdir as workdir_lib
from arith_jax import writers
from arith_jax.population import Group

# ---------------------------------------------------------------------------------------
# Static description of a group program. Everything here is baked into the compiled code;
# everything else (learning rates, weight decays, moduli, schedule lengths) is an array.


@dataclasses.dataclass(frozen=True)
class Static:
    model: model_lib.ModelConfig
    spec: Any  # tasks.TaskSpec
    samplings: tuple  # tasks.Sampling per training length in the group
    source_kind: str
    source_size: int
    batch_size: int
    num_members: int
    b1: float
    b2: float
    eps: float
    grad_clip: float
    decode: bool
    mesh_shape: tuple[int, int]
    ema_decay: float  # > 0: evaluate a moving average of the parameters, not the last iterate
    ema_ramp: float  # the average's warm-up: decay (1 + t) / (1 + ema_ramp + t) at step t
    decayed_tables: tuple  # embedding tables under weight decay (train.decayed_tables)
    # Keep each member's best evaluated parameters (eval.select_lengths): the state's "best".
    keep_best: bool = False


def lr_multiplier(step, warmup, total, final_fraction):
    """Linear warmup then cosine decay to `final_fraction`, with traced lengths so that a
    different schedule never recompiles (optax's schedules take Python ints)."""
    step = step.astype(jnp.float32)
    warm = (step + 1.0) / jnp.maximum(warmup, 1.0)
    progress = jnp.clip((step - warmup) / jnp.maximum(total - warmup, 1.0), 0.0, 1.0)
    cosine = final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    return jnp.where(step < warmup, warm, cosine)


def make_optimizer(static: Static) -> optax.GradientTransformation:
    # Learning rate and weight decay are injected hyperparameters: per-member arrays in the
    # optimizer state, set every step, so a sweep over them is one program.
    # Weight decay acts on matrices (not biases, norms or the sink), and on the embedding
    # tables named in train.decayed_tables.
    def decayed(path, x):
        table = model_lib.embedding_table(path)
        return x.ndim >= 2 and (table is None or table in static.decayed_tables)
    decay_mask = lambda params: jax.tree_util.tree_map_with_path(decayed, params)
    return optax.chain(
        optax.clip_by_global_norm(static.grad_clip),
        # `mask` is a callable, which inject_hyperparams would otherwise take for a schedule.
        optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
            learning_rate=0.0, weight_decay=0.0, b1=static.b1, b2=static.b2, eps=static.eps,
            mask=decay_mask))


def _with_hyperparams(opt_state, lr, wd):
    clip_state, inject_state = opt_state
    hp = dict(inject_state.hyperparams, learning_rate=lr, weight_decay=wd)
    return clip_state, inject_state._replace(hyperparams=hp)


def _select(keep, new, old):
    return jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, old)


def ema_update(ema, params, step, decay: float, ramp: float):
    """One step of the parameters' moving average. The decay ramps up as (1 + t) / (1 + ramp + t)
    (with ramp 9, TensorFlow's ExponentialMovingAverage with num_updates), so the average forgets
    the random initialisation. Until `decay` caps it, the average after T steps weighs step s
    about as (s / T)^(ramp - 1): the smaller the ramp, the more of training it averages."""
    step = step.astype(jnp.float32)
    d = jnp.minimum(decay, (1.0 + step) / (1.0 + ramp + step))
    return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


def eval_params(state: dict):
    """The parameters that evaluation reads: the moving average when the run keeps one."""
    return state.get("ema", state["params"])


def keep_best(best: dict, params, score, step) -> dict:
    """One member's best checkpoint so far: `params` replace it when their held-out `score`
    is at least the best's (the latest of equals, as report.best_records picks)."""
    better = score >= best["score"]  # a NaN score never wins
    return {"params": _select(better, params, best["params"]),
            "score": jnp.where(better, score, best["score"]),
            "step": jnp.where(better, step, best["step"])}


def train_seq_len(static: Static) -> int:
    """The tokens a training sequence of this group can occupy. A left-aligned layout (no
    fixed padding: plain, reversed, pad=common) puts every generated training example within
    the sequence of its longest training operands, so the eval-length tail is cut from training
    batches: a model trained on 10 digits and evaluated on 100 trains on ~25 tokens, not ~205.
    (Files may hold any length the width allows: they keep the whole sequence.)"""
    spec = static.spec
    if spec.format.pad_operands or spec.format.pad_result or static.source_kind == "files":
        return spec.seq_len
    longest = max(sampling.max_digits for sampling in static.samplings)
    return dataclasses.replace(spec, width=min(longest, spec.width)).seq_len


# ---------------------------------------------------------------------------------------
# One member, one step: a pure function.

# The per-member training state the step reads and returns (the trainer's state may also
# hold "ema", updated after the step).
STEP_STATE = ("params", "opt", "frozen", "dropout_key")


@dataclasses.dataclass(frozen=True)
class StepFunctions:
    """What a member's step needs besides its arrays, fixed per group: the model's graph, the
    optimizer, the data source's device half (data.batch_function) and the batch sharding."""

    graphdef: Any
    tx: optax.GradientTransformation
    make_batch: Any  # (member_data, host_step, key, step, modulus) -> tasks.Batch
    batch_sharding: Any = None  # a NamedSharding for the batch axis, or None (no constraint)
    # Tokens a training sequence can use (train_seq_len); the rest of the spec's width, which
    # longer evaluation operands need, is padding in every training batch and is cut off.
    train_seq_len: int | None = None


def _ramp(value, start, full):
    """How far `value` has moved from `start` towards `full`, in [0, 1]; 1 when `full` is 0 (no ramp)."""
    return jnp.where(full > 0, jnp.clip((value - start) / (full - start), 0.0, 1.0), 1.0)


def member_step(fns: StepFunctions, state: dict, inputs: dict, step) -> tuple[dict, dict]:
    """One AdamW step of one member on a batch it generates itself.

    state: STEP_STATE's entries. inputs: "hyper" (the member's lr, wd, modulus, data_key and
    schedule), "member_data" (its fixed data, or None), "host_step" (this step's host-fed
    examples, or None). step: the global step (an int32 scalar). Returns (state, metrics).
    A member whose loss or gradient is not finite keeps its last good parameters and is frozen
    for the rest of the run; vmapped over members, the others are untouched by it.
    """
    hyper = inputs["hyper"]
    batch = fns.make_batch(inputs["member_data"], inputs["host_step"], hyper["data_key"], step, hyper["modulus"])
    tokens, answer_mask = batch.tokens[:, :fns.train_seq_len], batch.answer_mask[:, :fns.train_seq_len]
    if fns.batch_sharding is not None:
        tokens, answer_mask = (jax.lax.with_sharding_constraint(x, fns.batch_sharding) for x in (tokens, answer_mask))
    inputs_BxT, targets_BxT = tokens[:, :-1], tokens[:, 1:]
    mask_BxT = answer_mask[:, 1:].astype(jnp.float32)

    def loss_fn(p):
        logits = model_lib.apply(fns.graphdef, p, inputs_BxT, key=jax.random.fold_in(state["dropout_key"], step))
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets_BxT)
        # The share of the batch whose every answer token is the argmax (teacher forced): the
        # accuracy gate's measure of how much of the task the member already has.
        right_B = jnp.all((jnp.argmax(logits, axis=-1) == targets_BxT) | (mask_BxT == 0), axis=1)
        return jnp.sum(ce * mask_BxT) / jnp.maximum(jnp.sum(mask_BxT), 1.0), jnp.mean(right_B)

    params, opt, frozen = state["params"], state["opt"], state["frozen"]
    (loss, batch_acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    grad_norm = optax.tree.norm(grads)
    # Finite when the loss and the gradient's norm are (one scalar each; the clip computes the
    # same norm): with a finite gradient AdamW's update is finite. Known before the update, it
    # lets XLA fuse the freeze's select into the update, where testing every new parameter took a
    # pass of its own and the select another (the GPU profile in benchmarks/RESULTS.md).
    keep = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & ~frozen
    lr = hyper["lr"] * lr_multiplier(step, hyper["warmup"], hyper["total"], hyper["final_fraction"])
    # train.weight_decay_from_step and train.weight_decay_below_loss: a member still on a loss
    # plateau gets only train.weight_decay_while_gated, whatever the step; the gate reads this
    # step's own loss.
    # train.weight_decay_above_accuracy: the same for the share of this step's batch answered
    # exactly, a measure of progress on one scale whatever the modulus.
    decayed = ((step >= hyper["wd_from"]) & (loss < hyper["wd_below_loss"])
               & (batch_acc >= hyper["wd_above_acc"]))
    # train.weight_decay_full_at_loss / _full_at_accuracy: past its gate the decay rises linearly
    # to the member's own as the loss falls (the accuracy rises) to this; 0 keeps the switch (and
    # the member's decay bit for bit).
    loss_full, acc_full = hyper["wd_full_at_loss"], hyper["wd_full_at_acc"]
    rise = jnp.minimum(_ramp(loss, hyper["wd_below_loss"], loss_full),
                       _ramp(batch_acc, hyper["wd_above_acc"], acc_full))
    ramps = (loss_full > 0) | (acc_full > 0)
    ramped = hyper["wd_gated"] + (hyper["wd"] - hyper["wd_gated"]) * rise
    wd = jnp.where(decayed, jnp.where(ramps, ramped, hyper["wd"]), hyper["wd_gated"])
    updates, new_opt = fns.tx.update(grads, _with_hyperparams(opt, lr, wd), params)
    new_params = optax.apply_updates(params, updates)
    new_state = dict(state, params=_select(keep, new_params, params), opt=_select(keep, new_opt, opt),
                     frozen=~keep)
    return new_state, {"loss": loss, "batch_acc": batch_acc, "grad_norm": grad_norm, "lr": lr}


# ---------------------------------------------------------------------------------------
# The compiled programs of one group.


class GroupProgram:
    """jit-compiled init, train chunk and eval of one group on its mesh.

    Everything it traces is a function of its Static description (the data source's device
    half included), so instances are cached by it (`program_for`): a second run with other
    hyperparameter values in the same process reuses the compiled code.
    """

    def __init__(self, static: Static):
        self.static = static
        self.mesh = sharding.make_mesh(static.num_members, static.batch_size)
        self.graphdef, _ = nnx.split(nnx.eval_shape(
            lambda: model_lib.Transformer(static.model, static.spec.vocab_size, nnx.Rngs(params=0))))
        self.tx = make_optimizer(static)
        self.step_functions = StepFunctions(
            self.graphdef, self.tx,
            data_lib.batch_function(static.source_kind, static.spec, static.samplings, static.batch_size,
                                    static.source_size),
            jax.sharding.NamedSharding(self.mesh, sharding.batch_spec()),
            train_seq_len(static))
        self.member = sharding.member_sharding(self.mesh)
        self.replicated = sharding.replicated(self.mesh)
        abstract = jax.eval_shape(self._init, jax.ShapeDtypeStruct((static.num_members,), jnp.uint32))
        self.state_shardings = jax.tree.map(lambda _: self.member, abstract)  # all per member
        self.init = jax.jit(self._init, out_shardings=self.state_shardings)
        self.abstract_state = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, self.state_shardings)
        self.chunk = jax.jit(self._chunk, donate_argnums=0,
                             out_shardings=(self.state_shardings, self.replicated))
        self.eval_length = jax.jit(self._eval_length, out_shardings=self.replicated)
        self.keep_best = jax.jit(self._keep_best, donate_argnums=0, out_shardings=self.state_shardings)

    # -- init --------------------------------------------------------------------------
    def _init(self, seeds_M):
        def one(seed):
            key = jax.random.PRNGKey(seed)
            _, params = model_lib.init(self.static.model, self.static.spec.vocab_size, jax.random.fold_in(key, 0))
            state = {"params": params, "opt": self.tx.init(params), "frozen": jnp.zeros((), bool),
                     "dropout_key": jax.random.fold_in(key, 1)}
            if self.static.ema_decay:
                state["ema"] = params
            if self.static.keep_best:
                state["best"] = {"params": params, "score": jnp.asarray(-jnp.inf, jnp.float32),
                                 "step": jnp.asarray(-1, jnp.int32)}
            return state
        return jax.vmap(one)(seeds_M)

    # -- the best parameters per member ------------------------------------------------
    def _keep_best(self, state, score_M, step):
        best = jax.vmap(keep_best, in_axes=(0, 0, 0, None), spmd_axis_name=sharding.POP)(
            state["best"], eval_params(state), score_M, step)
        return dict(state, best=best)

    # -- K steps of every member -------------------------------------------------------
    def _chunk(self, state, hyper, member_data, host_chunk_KxM, steps_K):
        # Every input has the member axis first (None entries have no arrays); the step is shared.
        step_all = jax.vmap(functools.partial(member_step, self.step_functions), in_axes=(0, 0, None),
                            spmd_axis_name=sharding.POP)

        def body(state, xs):
            step, host_step = xs
            inputs = {"hyper": hyper, "member_data": member_data, "host_step": host_step}
            stepped, metrics = step_all({k: state[k] for k in STEP_STATE}, inputs, step)
            new = dict(state, **stepped)
            if self.static.ema_decay:
                # A frozen member's average stops with its parameters.
                decay, ramp = self.static.ema_decay, self.static.ema_ramp
                average = lambda f, e, p: _select(f, e, ema_update(e, p, step, decay, ramp))
                new["ema"] = jax.vmap(average, spmd_axis_name=sharding.POP)(
                    new["frozen"], state["ema"], new["params"])
            return new, dict(metrics, frozen=new["frozen"])

        return jax.lax.scan(body, state, (steps_K, host_chunk_KxM))

    # -- evaluation at one length ------------------------------------------------------
    def _eval_length(self, params, modulus_M, n_train_M, a_NxW, b_NxW):
        def one(params_m, modulus, n_train):
            apply_fn = lambda tokens: model_lib.apply(self.graphdef, params_m, tokens)
            decoder = (lambda tokens: model_lib.prefill(self.graphdef, params_m, tokens),
                       lambda tokens, cache, position: model_lib.decode_step(self.graphdef, params_m, tokens,
                                                                            cache, position))
            return evaluate.member_metrics(apply_fn, self.static.spec, a_NxW, b_NxW, modulus, n_train,
                                           decode=self.static.decode, decoder=decoder)

        return jax.vmap(one, spmd_axis_name=sharding.POP)(params, modulus_M, n_train_M)


@functools.lru_cache(maxsize=32)
def program_for(static: Static) -> GroupProgram:
    """The group's compiled program, reused across runs in one process when only values change."""
    return GroupProgram(static)


# ---------------------------------------------------------------------------------------
# The run.


@dataclasses.dataclass
class GroupRun:
    group: Group
    program: GroupProgram
    source: Any  # this run's data source (None when only evaluating)
    hyper: dict
    member_data: Any
    eval_sets: dict
    names: list[str]  # TensorBoard/report name per member
    state: Any = None


def _static(group: Group, config: ml_collections.ConfigDict, num_members: int, keep_best: bool) -> Static:
    return Static(model=group.model, spec=group.spec, samplings=group.samplings, keep_best=keep_best,
                  source_kind=config.data.source, source_size=config.data.size, batch_size=config.train.batch_size,
                  num_members=num_members, b1=config.train.b1, b2=config.train.b2,
                  eps=config.train.eps,
                  grad_clip=config.train.grad_clip, decode=config.eval.decode, ema_decay=config.train.ema_decay,
                  ema_ramp=config.train.ema_ramp, decayed_tables=tuple(config.train.decayed_tables),
                  mesh_shape=sharding.mesh_shape(num_members, config.train.batch_size, jax.device_count()))


def _hyper(group: Group, config: ml_collections.ConfigDict, mesh) -> dict:
    t = config.train
    m = group.size
    host = {
        "lr": group.column("lr", np.float32),
        "wd": group.column("wd", np.float32),
        "modulus": np.asarray([mem.get("p", 0) for mem in group.members], np.int32),
        "n_train": np.asarray([group.n_train(mem) for mem in group.members], np.int32),
        "data_key": np.stack([np.asarray(jax.random.key_data(jax.random.fold_in(
            jax.random.PRNGKey(mem["data_seed"]), 2))) for mem in group.members]),
        "warmup": np.full((m,), t.warmup_steps, np.float32),
        "total": np.full((m,), t.steps, np.float32),
        "final_fraction": np.full((m,), t.final_lr_fraction, np.float32),
        "wd_from": np.full((m,), t.weight_decay_from_step, np.int32),
        "wd_below_loss": np.full((m,), t.weight_decay_below_loss or np.inf, np.float32),  # 0: no gate
        "wd_gated": np.full((m,), t.weight_decay_while_gated, np.float32),
        "wd_full_at_loss": np.full((m,), t.weight_decay_full_at_loss, np.float32),
        "wd_above_acc": np.full((m,), t.weight_decay_above_accuracy, np.float32),  # 0: no gate
        "wd_full_at_acc": np.full((m,), t.weight_decay_full_at_accuracy, np.float32),
    }
    return sharding.put_members(host, mesh)


def _make_source(group: Group, config: ml_collections.ConfigDict, eval_sets: dict):
    exclude = list(eval_sets.values()) if config.data.exclude_eval else []
    moduli = sorted({mem.get("p", 0) for mem in group.members})
    sources = [data_lib.make_source(config.data.source, group.spec, sampling, config.train.batch_size,
                                    size=config.data.size, exclude=exclude, paths=list(config.data.files),
                                    moduli=moduli)
               for sampling in group.samplings]
    if len(sources) == 1:
        return sources[0]
    return data_lib.SamplingSwitch(sources, [group.sampling_index(m) for m in group.members])


def build_runs(config: ml_collections.ConfigDict, groups: list[Group], *, for_training: bool = True,
               keep_best: bool | None = None) -> list[GroupRun]:
    """Programs, per-member arrays, eval sets and member names of every group (data sources
    only for training). `keep_best`: whether the state holds each member's best parameters
    (default: when eval.select_lengths is set)."""
    keep_best = bool(config.eval.select_lengths) if keep_best is None else keep_best
    runs = []
    for group in groups:
        eval_sets = evaluate.eval_operands(group.spec, list(config.eval.lengths),
                                           config.eval.examples_per_length, config.eval.seed)
        source = _make_source(group, config, eval_sets) if for_training else None
        program = program_for(_static(group, config, group.size, keep_best))
        hyper = _hyper(group, config, program.mesh)
        member_data = None
        if for_training:
            member_data = source.device_data([m["data_seed"] for m in group.members])
            if member_data is not None:
                member_data = sharding.put_members(member_data, program.mesh)
        runs.append(GroupRun(group, program, source, hyper, member_data, eval_sets, list(group.names)))
    return runs


def evaluate_runs(runs: list[GroupRun], step: int, task: str, *, best: bool = False) -> list[dict]:
    """Every group at every eval length: one results record per member x length. `best`:
    each member's best parameters (eval.select_lengths), at the step they come from."""
    records = []
    for run in runs:
        params = run.state["best"]["params"] if best else eval_params(run.state)
        steps = sharding.gather(run.state["best"]["step"]) if best else [step] * run.group.size
        for length, (a, b) in sorted(run.eval_sets.items()):
            a_dev, b_dev = (sharding.put_replicated(x, run.program.mesh) for x in (a, b))
            metrics = jax.device_get(run.program.eval_length(params, run.hyper["modulus"],
                                                             run.hyper["n_train"], a_dev, b_dev))
            for i, member in enumerate(run.group.members):
                p, n_train = member.get("p"), run.group.n_train(member)
                records.append({
                    "group": run.group.name, "member": member, "member_name": run.names[i], "task": task,
                    "n_train": n_train, "step": int(steps[i]), "length": length,
                    "acc": float(metrics["acc"][i]), "digit_acc": float(metrics["digit_acc"][i]),
                    "equiv_acc": float(metrics["equiv_acc"][i]) if "equiv_acc" in metrics else None,
                    "theory": evaluate.theory_exact(task, p, n_train, length) if p else None,
                    "theory_asymptotic": evaluate.theory_asymptotic(task, p, n_train) if p else None,
                })
    return records


def _due(previous: int, step: int, every: int, total: int) -> bool:
    """True when the chunk (previous, step] reached the end or crossed a multiple of `every`."""
    return step == total or (every > 0 and step // every > previous // every)


@dataclasses.dataclass
class TrainResult:
    records: list[dict]  # the last evaluation, one record per member x length
    runs: list[GroupRun]  # each group's program and final state (parameters on device)
    step: int
    final_loss: np.ndarray  # every member's training loss at the last step


def train(config: ml_collections.ConfigDict, workdir: str, *, console: bool = True) -> TrainResult:
    """Train (or resume) the population in `workdir`.

    Raises ConfigError on bad input (before compiling) and Interrupted after a SIGTERM/SIGINT
    or preemption stop has saved a checkpoint.
    """
    groups = population.plan(config)  # every ConfigError surfaces here, before compiling
    primary = jax.process_index() == 0
    workdir_lib.make_dirs(workdir)
    checkpointer = ckpt_lib.Checkpointer(workdir, keep=config.checkpoint.keep)
    resume_step = checkpointer.latest_step()
    config_dict = json.loads(config_lib.to_json(config))  # tuples as lists, as saved
    if resume_step is not None:
        saved_config = checkpointer.read_meta(resume_step)["config"]
        ckpt_lib.check_resumable(saved_config, config_dict, workdir)
        ckpt_lib.check_same_layout(population.plan(config_lib.from_json(json.dumps(saved_config))), groups,
                                   "eval.lengths" if config.task.width == 0 else "task.width")
    if primary:
        workdir_lib.write_atomically(workdir_lib.join(workdir, workdir_lib.CONFIG_FILE),
                                     config_lib.to_json(config).encode())

    runs = build_runs(config, groups)
    members = population.all_members(groups)
    names = [name for run in runs for name in run.names]

    # -- fresh start or exact resume --------------------------------------------------
    step = resume_step or 0
    if resume_step is None:
        for run in runs:
            run.state = run.program.init(run.group.column("seed", np.uint32))
    else:
        states, meta = checkpointer.restore({r.group.name: r.program.abstract_state for r in runs}, resume_step)
        for run in runs:
            run.state = states[run.group.name]
            run.source.set_state(meta["source_state"][run.group.name])

    results = writers.ResultsWriter(workdir) if primary else None
    if results is not None:
        results.truncate_after(step)  # drop what a killed run logged after its last checkpoint
    tb = (writers.TensorBoardWriter(workdir, names, members, resume_step=step,
                                    eval_lengths=list(config.eval.lengths))
          if primary and config.log.tensorboard else None)
    progress = writers.Progress(config.train.steps, len(names), enabled=console and primary)
    reporter = TrainingReporter(names, tb, progress, config.log.every, step)
    last_records: list[dict] = []
    saved_step = resume_step

    def save(at_step: int) -> None:
        nonlocal saved_step, in_flight
        if at_step == saved_step:
            return
        # TensorBoard gets every point up to the checkpoint now: a run killed later resumes
        # from here and must find nothing missing before it.
        if in_flight is not None:
            reporter.report(*in_flight)
            in_flight = None
        if tb is not None:
            tb.flush(force=True)
        meta = {"step": at_step, "config": config_dict,
                "source_state": {r.group.name: r.source.get_state() for r in runs}}
        checkpointer.save(at_step, {r.group.name: r.state for r in runs}, meta)
        saved_step = at_step

    # -- the loop ----------------------------------------------------------------------
    total = config.train.steps
    in_flight = None  # (step at the chunk's end, its metrics on device)
    interrupted = False
    with ckpt_lib.StopRequest() as stop, progress:
        while step < total:
            k = min(config.train.steps_per_dispatch, total - step)
            steps_k = np.arange(step, step + k, dtype=np.int32)  # host values: replicated on every process
            metrics = []
            for run in runs:
                host_chunk = run.source.next_host_chunk(k)
                if host_chunk is not None:
                    host_chunk = sharding.put_host_chunk(host_chunk, run.program.mesh)
                run.state, m = run.program.chunk(run.state, run.hyper, run.member_data, host_chunk, steps_k)
                metrics.append(m)
            # Metrics leave the device one chunk late, so the host never waits on the device.
            if in_flight is not None:
                reporter.report(*in_flight)
            in_flight = (step + k, metrics)
            step += k
            if _due(step - k, step, config.eval.every, total):
                last_records = evaluate_runs(runs, step, config.task.name)
                if results is not None:
                    results.append(last_records)
                if tb is not None:
                    _write_eval_scalars(tb, last_records, names, step)
                if config.eval.select_lengths:
                    for run in runs:
                        scores = selection_scores(last_records, run.names, config.eval.select_lengths, step)
                        run.state = run.program.keep_best(run.state, sharding.put_members(scores, run.program.mesh),
                                                          np.int32(step))
                longest = max(config.eval.lengths)
                reporter.latest_acc = np.asarray([r["acc"] for r in last_records if r["length"] == longest])
            if _due(step - k, step, config.checkpoint.every, total):
                save(step)
            if step < total and stop.should_stop(step):
                save(step)
                interrupted = True
                break
        if in_flight is not None:
            reporter.report(*in_flight)
    checkpointer.close()
    if tb is not None:
        tb.close()
    if interrupted:
        raise Interrupted(step, f"{stop.signal_name or 'preemption'}: saved step {step} in {workdir}; "
                                "run the same command again to resume")
    return TrainResult(last_records, runs, step, reporter.latest_loss)


def selection_scores(records: list[dict], names: list[str], select_lengths, step: int) -> np.ndarray:
    """Per member of `names`: its score (writers.selection_scores, the rule report applies too)
    at the evaluation of `step` in `records`; NaN where it has none."""
    scores = writers.selection_scores(records, select_lengths)
    return np.asarray([scores.get((name, step), np.nan) for name in names], np.float32)


class Interrupted(Exception):
    """Training stopped early on a signal after saving; the CLI prints how to resume."""

    def __init__(self, step: int, message: str):
        self.step = step
        super().__init__(message)


def _write_eval_scalars(tb, records: list[dict], names: list[str], step: int) -> None:
    lengths = sorted({r["length"] for r in records})
    acc = np.full((len(names), len(lengths)), np.nan)
    position = {n: i for i, n in enumerate(names)}
    for key in ("acc", "digit_acc", "equiv_acc"):
        for length in lengths:
            values = np.full((len(names),), np.nan)
            for r in records:
                if r["length"] == length and r[key] is not None:
                    values[position[r["member_name"]]] = r[key]
            tb.scalars(step, {f"eval/{key}/len_{length}": values})
    for r in records:
        acc[position[r["member_name"]], lengths.index(r["length"])] = r["acc"]
    tb.heatmap(step, acc, names, lengths)


class TrainingReporter:
    """Training metrics to TensorBoard and the progress display, one chunk late."""

    def __init__(self, names, tb, progress, log_every: int, step: int):
        self.names, self.tb, self.progress, self.log_every = names, tb, progress, log_every
        self.clock = (time.perf_counter(), step)
        self.frozen_reported: set[str] = set()
        self.latest_acc = None  # per member, at the longest eval length
        self.latest_loss = np.full((len(names),), np.nan)

    def report(self, end_step: int, per_run: list[dict]) -> None:
        fetched = jax.device_get(per_run)  # per run: {field: [K, M]}
        column = lambda key, j: np.concatenate([m[key][j] for m in fetched])
        now = time.perf_counter()
        steps_per_sec = (end_step - self.clock[1]) / max(now - self.clock[0], 1e-9)
        self.clock = (now, end_step)
        frozen = column("frozen", -1)
        self.latest_loss = column("loss", -1)
        for name, is_frozen in zip(self.names, frozen):
            if is_frozen and name not in self.frozen_reported:
                self.frozen_reported.add(name)
                message = f"member {name} diverged (loss not finite); frozen at its last good parameters"
                self.progress.log(message)
                logging.warning("step %d: %s", end_step, message)  # also seen with --quiet
        if self.tb is not None:
            k = fetched[0]["loss"].shape[0]
            for j in range(k):
                s = end_step - k + j + 1
                if s % self.log_every == 0 or s == end_step:
                    values = {f"train/{key}": column(key, j) for key in ("loss", "batch_acc", "lr", "grad_norm")}
                    self.tb.scalars(s, dict(values, **{"train/frozen": column("frozen", j).astype(np.float32)}))
            self.tb.scalars(end_step, {"train/steps_per_sec": np.full((len(self.names),), steps_per_sec)})
            self.tb.flush()
        self.progress.update(end_step, np.where(frozen, np.nan, column("loss", -1)), steps_per_sec,
                             self.latest_acc)
