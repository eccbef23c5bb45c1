"""Opening a trained workdir for `arith-jax eval` and `arith-jax analyze`.

Runs on whatever devices this process has (a laptop CPU will do): orbax restores the
checkpoint onto a mesh built here, whatever mesh trained it.
"""

from __future__ import annotations

import copy
import json

import jax

from arith_jax import checkpoint as ckpt_lib
from arith_jax import population, train
from arith_jax import workdir as workdir_lib
from arith_jax.errors import ConfigError


def _eval_config(config, trained_width, lengths):
    """The trained config, widened to `lengths`."""
    config = copy.deepcopy(config)
    if lengths:
        config.eval.lengths = list(lengths)
        # Selection lengths only pick checkpoints in training; the best parameters are restored
        # whatever lengths are evaluated here (build_runs' keep_best says so).
        config.eval.select_lengths = [n for n in config.eval.select_lengths if n in lengths]
    # Without index hints, parameter shapes do not depend on the operand width (a learned
    # table has model.max_positions rows whatever the sequence), so widening is safe; a
    # sequence longer than the table is the model's own clear error.
    config.task.width = max([trained_width] + list(config.eval.lengths))
    return config


def restore(config, workdir: str, lengths=None):
    """(runs with restored states, step, config) for the latest checkpoint in `workdir`."""
    keep_best = bool(config.eval.select_lengths)
    checkpointer = ckpt_lib.Checkpointer(workdir, keep=1, read_only=True)
    step = checkpointer.latest_step()
    if step is None:
        raise ConfigError("--workdir", f"{workdir} holds no complete checkpoint")
    trained_groups = population.plan(config)
    trained_width = trained_groups[0].spec.width  # one operand width for every group
    config = _eval_config(config, trained_width, lengths)
    groups = population.plan(config)
    if any(new.spec.vocab_size != old.spec.vocab_size for new, old in zip(groups, trained_groups)):
        # Index hints name each digit's place, so their tokens end at the trained width.
        raise ConfigError("--lengths", f"longer than the trained width ({trained_width} digits) needs index "
                                       "hints the model has no tokens for; evaluate at lengths up to "
                                       f"{trained_width}")
    runs = train.build_runs(config, groups, for_training=False, keep_best=keep_best)
    states, _ = checkpointer.restore({r.group.name: r.program.abstract_state for r in runs}, step)
    for run in runs:
        run.state = states[run.group.name]
    checkpointer.close()
    return runs, step, config


def run(config, workdir: str, lengths=None, best: bool = False) -> tuple[list[dict], str]:
    """Evaluate the latest checkpoint; records go to eval/step_<N>.jsonl in the workdir.

    `best`: each member's best parameters instead (kept in training when eval.select_lengths
    is set), each record at the step they come from; to eval/best_at_step_<N>.jsonl."""
    if best and not config.eval.select_lengths:
        raise ConfigError("--best", f"{workdir} kept no best checkpoint: train with eval.select_lengths set "
                                    "(the held-out lengths that pick each member's best step)")
    runs, step, config = restore(config, workdir, lengths)
    records = train.evaluate_runs(runs, step, config.task.name, best=best)
    name = f"best_at_step_{step}.jsonl" if best else f"step_{step}.jsonl"
    path = workdir_lib.join(workdir, workdir_lib.EVAL_DIR, name)
    if jax.process_index() == 0:
        workdir_lib.write_atomically(path, "".join(json.dumps(r) + "\n" for r in records).encode())
    return records, path


def analyze_members(config, workdir: str, only: str = "") -> list[str]:
    """The mechanistic plots for every member (or the one named `only`)."""
    from arith_jax import analyze
    runs, _, config = restore(config, workdir)
    known = [name for run in runs for name in run.names]
    if only and only not in known:
        raise ConfigError("--member", f"{only!r} is not a member of {workdir}; members: {', '.join(known)}")
    paths = []
    for run in runs:
        params = jax.device_get(train.eval_params(run.state))
        for i, (name, member) in enumerate(zip(run.names, run.group.members)):
            if only and name != only:
                continue
            params_i = jax.tree.map(lambda x: x[i], params)
            out_dir = workdir_lib.join(workdir, workdir_lib.REPORT_DIR, workdir_lib.ANALYSIS_DIR, name)
            paths += analyze.analyze(run.program.graphdef, params_i, run.group.spec, run.group.n_train(member),
                                     member.get("p", 0), out_dir, title=name)
    return paths
