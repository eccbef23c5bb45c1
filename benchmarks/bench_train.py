"""Training throughput of a population: steps/s, tokens/s, model FLOP/s and MFU.

Times the real compiled chunk (lax.scan of vmap(step) over members, data generated inside)
for several population sizes, after a warm-up chunk that compiles, and the share of a step
spent generating data (the same chunk length of vmap(make batch) alone).

    python benchmarks/bench_train.py                       # nano, 1/4/16 members, CPU-sized
    python benchmarks/bench_train.py --preset=acl2025 --members=1,8,64 --batch=64 \
        --peak_tflops=989 --dtype=bfloat16                 # H100 dense bf16 peak for MFU

MFU = model FLOPs per token (model.flops_per_token: 6N + 12 L T d) x tokens/s / peak.
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


def bench_config(args, members: int):
    c = config_lib.default()
    c.task.name = args.task
    c.task.moduli = (101,)
    c.task.train_sampling = args.sampling
    c.task.format = args.format
    c.model.preset = args.preset
    c.model.pe = args.pe
    c.model.compute_dtype = args.dtype
    c.population.seeds = tuple(range(members))
    c.train.batch_size = args.batch
    c.train.steps_per_dispatch = args.spd
    c.eval.lengths = (1,)
    return c


def time_chunks(fn, state, n: int):
    state = fn(state)  # compile + warm up
    jax.block_until_ready(state)
    start = time.perf_counter()
    for _ in range(n):
        state = fn(state)
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / n


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
    seconds = time_chunks(train_chunk, state, args.chunks) / k  # per step

    # Data generation alone: the same K steps x M members of batches, nothing else.
    source, keys = program.source, run_.hyper["data_key"]
    modulus = run_.hyper["modulus"]

    @jax.jit
    def generate(acc):
        def body(acc, step):
            batch = jax.vmap(source.batch, in_axes=(None, None, 0, None, 0))(None, None, keys, step, modulus)
            return acc + jnp.sum(batch.tokens), None
        return jax.lax.scan(body, acc, jnp.arange(k))[0]

    gen_seconds = time_chunks(generate, jnp.zeros((), jnp.int32), args.chunks) / k
    seq = group.spec.seq_len - 1
    tokens_per_sec = members * args.batch * seq / seconds
    flops = model_lib.flops_per_token(group.model, group.spec.vocab_size, seq) * tokens_per_sec
    return {"members": members, "ms/step": seconds * 1e3, "member-steps/s": members / seconds,
            "tokens/s": tokens_per_sec, "TFLOP/s": flops / 1e12,
            "MFU": flops / (args.peak_tflops * 1e12) if args.peak_tflops else None,
            "data share": gen_seconds / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="nano")
    parser.add_argument("--pe", default="learned")
    parser.add_argument("--task", default="mod_add")
    parser.add_argument("--sampling", default="below:3")
    parser.add_argument("--format", default="pad=6/3,reverse_result,eos")
    parser.add_argument("--members", default="1,4,16", help="comma-separated population sizes")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--spd", type=int, default=50, help="steps per dispatch (chunk length)")
    parser.add_argument("--chunks", type=int, default=3, help="timed chunks after the warm-up")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--peak_tflops", type=float, default=0.0, help="device peak for MFU (0: not shown)")
    args = parser.parse_args()

    device = jax.devices()[0]
    print(f"device: {jax.device_count()} x {device.device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    print(f"preset {args.preset}, pe {args.pe}, task {args.task} {args.sampling}, batch {args.batch}/member, "
          f"{args.spd} steps/dispatch, {args.dtype}")
    header = ["members", "ms/step", "member-steps/s", "tokens/s", "TFLOP/s", "MFU", "data share"]
    print(" | ".join(f"{h:>14}" for h in header))
    for members in [int(m) for m in args.members.split(",")]:
        row = run(args, members)
        cells = [f"{row['members']:>14d}", f"{row['ms/step']:>14.2f}", f"{row['member-steps/s']:>14.1f}",
                 f"{row['tokens/s']:>14.0f}", f"{row['TFLOP/s']:>14.4f}",
                 f"{row['MFU']:>14.2%}" if row["MFU"] is not None else f"{'-':>14}",
                 f"{row['data share']:>14.2%}"]
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
