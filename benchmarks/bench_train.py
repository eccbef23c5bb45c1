"""Training throughput of a population: steps/s, tokens/s, model FLOP/s and MFU.

Times the real compiled chunk (lax.scan of vmap(step) over members, data generated inside)
for several population sizes, after a warm-up chunk that compiles, and the share of a step
spent generating data (the same chunk length of vmap(make batch) alone).

    python benchmarks/bench_train.py                       # nano, 1/4/16 members, CPU-sized
    python benchmarks/bench_train.py --preset=acl2025 --members=1,8,64 --dtype=bfloat16 \
        --attention=cudnn --out=benchmarks/results     # also writes JSON + Markdown there

MFU = model FLOPs per token (model.flops_per_token: 6N + 12 L T d) x tokens/s / peak, with the
peak from benchmarks/record.py's table of known devices, else measured on the device (its best
1024^3 matmul rate; on a CPU MFU is then the share of that), or --peak_tflops. "compile s" is the
first chunk's wall time (compile + one chunk): it should stay flat as the population grows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from arith_jax import config as config_lib  # noqa: E402
from arith_jax import model as model_lib  # noqa: E402
from arith_jax import population, train  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import record  # noqa: E402  (benchmarks/record.py)


def bench_config(args, members: int):
    c = config_lib.base()
    c.task.name = args.task
    c.task.moduli = (101,)
    c.task.train_sampling = args.sampling
    c.task.format = args.format
    c.model.preset = args.preset
    c.model.pe = args.pe
    c.model.compute_dtype = args.dtype
    c.model.attention_impl = getattr(args, "attention", "auto")
    c.population.seeds = tuple(range(members))
    c.train.batch_size = args.batch
    c.train.steps_per_dispatch = args.spd
    c.eval.lengths = (1,)
    return c


def time_chunks(fn, state, n: int) -> tuple[float, float]:
    """(seconds per timed call, seconds of the first call: compile + warm-up)."""
    start = time.perf_counter()
    state = fn(state)
    jax.block_until_ready(state)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        state = fn(state)
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / n, first


def population_chunk(config):
    """(train_chunk: state -> state after steps_per_dispatch steps, initial state, the run)
    for the config's first group: the trainer's own compiled chunk."""
    group = population.plan(config)[0]
    run_ = train.build_runs(config, [group])[0]
    steps = np.arange(config.train.steps_per_dispatch, dtype=np.int32)

    def train_chunk(state):
        return run_.program.chunk(state, run_.hyper, run_.member_data, None, steps)[0]

    return train_chunk, run_.program.init(group.column("seed", np.uint32)), run_


def run(args, members: int) -> dict:
    config = bench_config(args, members)
    train_chunk, state, run_ = population_chunk(config)
    program, group, k = run_.program, run_.group, args.spd
    chunk_seconds, compile_seconds = time_chunks(train_chunk, state, args.chunks)
    seconds = chunk_seconds / k  # per step

    # Data generation alone: the same K steps x M members of batches, nothing else.
    make_batch, keys = program.step_functions.make_batch, run_.hyper["data_key"]
    modulus = run_.hyper["modulus"]

    @jax.jit
    def generate(acc):
        def body(acc, step):
            batch = jax.vmap(make_batch, in_axes=(None, None, 0, None, 0))(None, None, keys, step, modulus)
            return acc + jnp.sum(batch.tokens), None
        return jax.lax.scan(body, acc, jnp.arange(k))[0]

    gen_seconds = time_chunks(generate, jnp.zeros((), jnp.int32), args.chunks)[0] / k
    seq = group.spec.seq_len - 1
    tokens_per_sec = members * args.batch * seq / seconds
    flops = model_lib.flops_per_token(group.model, group.spec.vocab_size, seq) * tokens_per_sec
    peak = args.peak
    return {"members": members, "ms/step": seconds * 1e3, "member-steps/s": members / seconds,
            "tokens/s": tokens_per_sec, "TFLOP/s": flops / 1e12,
            "MFU": flops / (peak * 1e12) if peak else None,
            "data share": gen_seconds / seconds, "compile s": compile_seconds}


def add_population_arguments(parser: argparse.ArgumentParser, members: str, spd: int, chunks: int) -> None:
    """The flags `bench_config` and `population_chunk` read (shared with profile_step.py), with
    this script's defaults for the population sizes, chunk length and number of chunks."""
    parser.add_argument("--preset", default="nano")
    parser.add_argument("--pe", default="learned")
    parser.add_argument("--task", default="mod_add")
    parser.add_argument("--sampling", default="below:3")
    parser.add_argument("--format", default="pad=6/3,reverse_result,eos")
    parser.add_argument("--members", default=members, help="comma-separated population sizes")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--spd", type=int, default=spd, help="steps per dispatch (chunk length)")
    parser.add_argument("--chunks", type=int, default=chunks, help="timed chunks after the warm-up")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--attention", default="auto", help="model.attention_impl: auto | xla | cudnn")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_population_arguments(parser, members="1,4,16", spd=50, chunks=3)
    parser.add_argument("--peak_tflops", type=float, default=0.0,
                        help="device peak for MFU; 0: benchmarks/record.py's table of known devices, else "
                             "the device's measured matmul rate")
    parser.add_argument("--without_nan_freeze", action="store_true",
                        help="time the step without its per-member NaN freeze (a `where` over every parameter "
                             "and optimizer leaf, on the loss's and gradient norm's finiteness), to measure what "
                             "the freeze costs; not a training mode")
    parser.add_argument("--out", default="", help="folder for <name>.json and <name>.md (empty: print only)")
    parser.add_argument("--name", default="", help="file name of this run (default: train_<preset>_<dtype>)")
    args = parser.parse_args()
    if args.without_nan_freeze:  # before any program is built: the step calls these at trace time
        train._select = lambda keep, new, old: new
    if args.peak_tflops:
        args.peak, args.peak_source = args.peak_tflops, "--peak_tflops"
    else:
        args.peak, args.peak_source = record.peak_tflops(args.dtype)

    print(f"preset {args.preset}, pe {args.pe}, attention {args.attention}, task {args.task} {args.sampling}, "
          f"batch {args.batch}/member, {args.spd} steps/dispatch, {args.dtype}; "
          f"peak {args.peak:.4g} TFLOP/s ({args.peak_source})", flush=True)
    rows, settings = [], {k: v for k, v in vars(args).items() if k not in ("out", "name")}
    for members in [int(m) for m in args.members.split(",")]:
        rows.append(run(args, members))
        # Written after every row, so a run stopped by a time limit keeps what it measured.
        record.write(args.out, args.name or f"train_{args.preset}_{args.dtype}", settings, rows,
                     echo=members == int(args.members.split(",")[-1]))

if __name__ == "__main__":
    main()
