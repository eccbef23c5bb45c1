"""Where a training step's time goes: the XLA profile of the trainer's own compiled chunk.

Traces a few chunks (lax.scan of vmap(step) over members, data generated inside) with
jax.profiler, then sums the time of every executed XLA operation by

- kind: matmuls, reductions and elementwise work, each run by a library (YNNPACK/XNNPACK on
  the CPU) or by XLA's own fused loops;
- phase, from the JAX call path XLA records in each op's metadata: the forward pass
  (`jvp(...)`), the backward pass (`transpose(jvp(...))`), and everything else in the step
  (data generation, AdamW, clipping, the per-member NaN freeze). XLA keeps no call path on
  matmuls, so they are counted apart.

    python benchmarks/profile_step.py                          # nano, 1 and 64 members
    python benchmarks/profile_step.py --preset=acl2025 --members=1 --task=add \
        --sampling=exact:16 --format=plain --spd=2 --out=benchmarks/results/cpu-2026-11-26

The shares are of the summed op time (on a CPU with several threads, ops can overlap, so the
sum may exceed the wall time); the top operations are listed with their output shapes.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import shutil
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_train  # noqa: E402  (benchmarks/bench_train.py: the trainer's chunk, as benchmarked)
import record  # noqa: E402
from arith_jax import model as model_lib  # noqa: E402

# Host-side events of the runtime, not XLA operations.
RUNTIME_EVENT = re.compile(r"^(\$|Thunk|Slinky|Pjit|CommonPjRt|ParseArguments|end: )")
# Lines of the compiled HLO text: an operation, its call path and library kind, the header of a
# computation, and the computation a fusion calls.
HLO_OP = re.compile(r"^\s*(?:ROOT )?%(\S+) = (\S+) ([\w-]+)\(")
CALL_PATH = re.compile(r'op_name="([^"]*)"')
LIBRARY_KIND = re.compile(r'"kind":"(\w+)"')
COMPUTATION = re.compile(r"^%?(\S+) .*\{$")
CALLS = re.compile(r"calls=%(\S+?)[,\s]")
# A library call's target on a GPU: cuBLAS/cuBLASLt matmuls and cuDNN's fused attention.
CUSTOM_CALL_TARGET = re.compile(r'custom_call_target="([^"]+)"')


def op_table(hlo_text: str) -> dict:
    """{op name: (output shape, HLO opcode, JAX call path, library fusion kind)} of the compiled HLO.
    A fusion's opcode is that of its computation's root, and its call path the first recorded
    inside that computation (XLA keeps none on a dot)."""
    table, calls, first_path, root, computation = {}, {}, {}, {}, None
    for line in hlo_text.splitlines():
        header = COMPUTATION.match(line)
        if header and not line.startswith(" "):
            computation = header.group(1)
            continue
        m = HLO_OP.match(line)
        if not m:
            continue
        path, lib, called = CALL_PATH.search(line), LIBRARY_KIND.search(line), CALLS.search(line)
        target = CUSTOM_CALL_TARGET.search(line)
        if target:  # a GPU library call: a matmul (cuBLAS) or fused attention (cuDNN)
            lib = target
            if "gemm" in target.group(1).lower() or "matmul" in target.group(1).lower():
                m = HLO_OP.match(line.replace(" custom-call(", " dot("))
        if path and computation not in first_path:
            first_path[computation] = path.group(1)
        if line.lstrip().startswith("ROOT"):
            root[computation] = m.group(3)
        if called:
            calls[m.group(1)] = called.group(1)
        table[m.group(1)] = (m.group(2), m.group(3), path.group(1) if path else "", lib.group(1) if lib else "")
    for name, callee in calls.items():
        shape, opcode, path, lib = table[name]
        table[name] = (shape, root.get(callee, opcode), path or first_path.get(callee, ""), lib)
    return table


def phase(call_path: str) -> str:
    if not call_path:
        return "unattributed (XLA keeps no call path on dots)"
    if "transpose(jvp" in call_path:
        return "backward"
    if "jvp(" in call_path:
        return "forward"
    return "rest of the step (data, AdamW, NaN freeze)"


def kind(name: str, info) -> str:
    opcode = info[1] if info else ""
    library = bool(info and info[3]) or name.startswith(("ynn_", "xnn_", "onednn"))
    what = {"dot": "matmul", "reduce": "reduction"}.get(opcode, "elementwise/other")
    if info and "cudnn" in info[3].lower():
        what = "attention"
    return f"{what}, {'library (YNNPACK/XNNPACK/oneDNN; cuBLAS/cuDNN on a GPU)' if library else 'XLA'}"


def device_op_times(events: list) -> collections.Counter:
    """Summed duration (us) per XLA operation of a trace. On a GPU only the kernels on the
    device's streams count (the host's launch events would count each op twice), named by the
    HLO op each kernel ran (its `hlo_op` argument); on a CPU, the host's op events."""
    gpu_pids = {e["pid"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
                and "/device:GPU" in e.get("args", {}).get("name", "")}
    by_op = collections.Counter()
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        if gpu_pids:
            if e.get("pid") in gpu_pids:
                by_op[e.get("args", {}).get("hlo_op") or e["name"]] += e["dur"]
        elif not RUNTIME_EVENT.match(e["name"]):
            by_op[e["name"]] += e["dur"]
    return by_op


def profile(args, members: int) -> tuple[list[dict], list[dict]]:
    config = bench_train.bench_config(args, members)
    _, state, run_ = bench_train.population_chunk(config)
    steps = np.arange(args.spd, dtype=np.int32)
    # Compiled once: the HLO text names the operations the trace times, and the same executable runs.
    compiled = run_.program.chunk.lower(state, run_.hyper, run_.member_data, None, steps).compile()
    ops = op_table(compiled.as_text())

    def train_chunk(state):
        return compiled(state, run_.hyper, run_.member_data, None, steps)[0]

    state = train_chunk(state)  # warm up
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory() as trace_dir:
        start = time.perf_counter()
        with jax.profiler.trace(trace_dir):
            for _ in range(args.chunks):
                state = train_chunk(state)
            jax.block_until_ready(state)
        wall = time.perf_counter() - start
        (trace_file,) = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
        if args.keep_trace:  # the raw trace and compiled HLO, to read again without the device
            os.makedirs(args.keep_trace, exist_ok=True)
            shutil.copy(trace_file, os.path.join(args.keep_trace, f"trace_{members}.json.gz"))
            with gzip.open(os.path.join(args.keep_trace, f"hlo_{members}.txt.gz"), "wt") as f:
                f.write(compiled.as_text())
        with gzip.open(trace_file) as f:
            events = json.load(f)["traceEvents"]
    steps_run = args.chunks * args.spd
    by_op = device_op_times(events)
    total = sum(by_op.values())
    by_class = collections.Counter()
    for name, us in by_op.items():
        info = ops.get(name)
        by_class[(phase(info[2] if info else ""), kind(name, info))] += us
    rows = [{"members": members, "phase": p, "kind": k, "ms/step": us / 1e3 / steps_run, "share": us / total}
            for (p, k), us in sorted(by_class.items(), key=lambda item: -item[1])]
    rows.append({"members": members, "phase": "all (sum of op times)", "kind": "",
                 "ms/step": total / 1e3 / steps_run, "share": 1.0})
    rows.append({"members": members, "phase": "wall clock, traced", "kind": "",
                 "ms/step": wall * 1e3 / steps_run, "share": None})
    # The model's FLOPs (6N + attention per token) over the time of the matmuls: how close the
    # matmuls run to the machine's matmul peak.
    group = run_.group
    seq = group.spec.seq_len - 1
    flops = model_lib.flops_per_token(group.model, group.spec.vocab_size, seq) * members * args.batch * seq
    matmul_us = sum(us for (p, k), us in by_class.items() if k.startswith("matmul"))
    rows.append({"members": members, "phase": "model GFLOP/s during matmuls", "kind": "",
                 "ms/step": None, "share": None, "GFLOP/s": flops * steps_run / (matmul_us * 1e3) if matmul_us else None})
    top = []
    for name, us in by_op.most_common(args.top):
        info = ops.get(name, ("?", "?", "", ""))
        top.append({"members": members, "op": name, "shape": info[0], "phase": phase(info[2]),
                    "ms/step": us / 1e3 / steps_run, "share": us / total})
    return rows, top


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench_train.add_population_arguments(parser, members="1,64", spd=20, chunks=2)  # --chunks: traced chunks
    parser.add_argument("--top", type=int, default=12, help="how many single operations to list")
    parser.add_argument("--out", default="", help="folder for the JSON + Markdown (empty: print only)")
    parser.add_argument("--keep_trace", default="", help="folder to keep each traced run's trace and HLO in")
    args = parser.parse_args()
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "keep_trace")}
    rows, top = [], []
    for members in [int(m) for m in args.members.split(",")]:
        breakdown, ops = profile(args, members)
        rows += breakdown
        top += ops
    record.write(args.out, f"profile_{args.preset}_{args.dtype}", settings, rows)
    record.write(args.out, f"profile_{args.preset}_{args.dtype}_top_ops", settings, top)


if __name__ == "__main__":
    main()
