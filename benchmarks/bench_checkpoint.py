"""The training stall an asynchronous orbax checkpoint save causes.

    python benchmarks/bench_checkpoint.py                                  # nano x 1/16/64, the 10.7M model
    python benchmarks/bench_checkpoint.py --members=1,256 --out=benchmarks/results

The trainer saves with orbax's async checkpointing: `save` returns once the device buffers are
copied to host memory, and the write goes on in a background thread while training continues.
What the training loop loses per save is that call plus whatever the background write takes
from the chunks that run beside it. Each row trains one population (the default task, online
data) chunk by chunk: `chunks` chunks without saving (the baseline chunk time: median), then
`saves` times a save followed by one chunk, waiting for the write to finish before the next
save. Columns:

- `save call ms`: time until `save` returns (median);
- `chunk after save ms`: the chunk that runs while the write goes on (median);
- `stall ms`: save call + (chunk after save - baseline chunk), the loop's loss per save;
- `write total ms`: save call to the end of the background write (median), for reference;
- `stall / chunk`: the stall as a share of one chunk.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import record  # noqa: E402  (benchmarks/record.py)
from arith_jax import checkpoint as ckpt_lib  # noqa: E402
from arith_jax import config as config_lib  # noqa: E402
from arith_jax import model, population, train  # noqa: E402


def population_config(preset: str, members: int, steps_per_chunk: int):
    config = config_lib.base()
    config.model.preset = preset
    config.task.moduli = (100,)
    config.population.seeds = tuple(range(members))
    config.train.steps_per_dispatch = steps_per_chunk
    config.log.tensorboard = False
    return config


def run_chunk(runs, step: int, k: int) -> float:
    start = time.perf_counter()
    steps_k = np.arange(step, step + k, dtype=np.int32)
    for run in runs:
        run.state, metrics = run.program.chunk(run.state, run.hyper, run.member_data, None, steps_k)
    jax.block_until_ready([run.state for run in runs])
    return time.perf_counter() - start


def measure(preset: str, members: int, args) -> dict:
    config = population_config(preset, members, args.steps_per_chunk)
    runs = train.build_runs(config, population.plan(config))
    for run in runs:
        run.state = run.program.init(run.group.column("seed", np.uint32))
    k, step = args.steps_per_chunk, 0
    run_chunk(runs, step, k)  # compiles
    step += k
    baseline = []
    for _ in range(args.chunks):
        baseline.append(run_chunk(runs, step, k))
        step += k
    calls, after, totals = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        checkpointer = ckpt_lib.Checkpointer(workdir, keep=2)
        for _ in range(args.saves + 1):  # the first save also builds orbax's handlers: not counted
            start = time.perf_counter()
            checkpointer.save(step, {r.group.name: r.state for r in runs}, {"step": step})
            call = time.perf_counter() - start
            chunk = run_chunk(runs, step, k)
            step += k
            checkpointer.manager.wait_until_finished()
            total = time.perf_counter() - start - chunk
            calls.append(call), after.append(chunk), totals.append(total)
        checkpointer.close()
    calls, after, totals = calls[1:], after[1:], totals[1:]
    base = statistics.median(baseline)
    stall = statistics.median(calls) + statistics.median(after) - base
    params = sum(x.size for x in jax.tree.leaves(runs[0].state["params"]))
    cfg = model.ModelConfig.from_preset(preset)
    return {"model": f"{preset} ({cfg.num_layers}x{cfg.num_heads}x{cfg.d_model})", "members": members,
            "state MB": 3 * 4 * params / 1e6,  # params + AdamW's two moments, float32
            "baseline chunk ms": 1e3 * base, "save call ms": 1e3 * statistics.median(calls),
            "chunk after save ms": 1e3 * statistics.median(after), "stall ms": 1e3 * stall,
            "write total ms": 1e3 * statistics.median(totals), "stall / chunk": stall / base}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="nano,acl2025", help="model presets, comma-separated")
    parser.add_argument("--members", default="1,16,64", help="population sizes for nano (other presets: 1)")
    parser.add_argument("--steps_per_chunk", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=5, help="baseline chunks without a save")
    parser.add_argument("--saves", type=int, default=3)
    parser.add_argument("--out", default="", help="folder for checkpoint_stall.json and .md (empty: print only)")
    args = parser.parse_args()
    rows = []
    for preset in args.presets.split(","):
        for members in [int(m) for m in args.members.split(",")] if preset == "nano" else [1]:
            rows.append(measure(preset, members, args))
            record.write(args.out, "checkpoint_stall", vars(args), rows, echo=False)
    record.write(args.out, "checkpoint_stall", vars(args), rows)


if __name__ == "__main__":
    main()
