"""Where a training step's time goes: the XLA profile of the trainer's own compiled chunk.

Traces a few chunks (lax.scan of vmap(step) over members, data generated inside) with
jax.profiler, then sums the time of every executed XLA operation by

- kind: matmuls, reductions and elementwise work, each with what ran it: a library
  (YNNPACK/XNNPACK/oneDNN on the CPU, cuBLAS/cuDNN on a GPU), Triton (XLA's GPU fusions that
  it emits through Triton) or XLA's own fused loops;
- phase, from the JAX call path XLA records in each op's metadata: the forward pass
  (`jvp(...)`), the backward pass (`transpose(jvp(...))`), and everything else in the step
  (data generation, AdamW, clipping, the per-member NaN freeze). XLA keeps no call path on
  matmuls, so they are counted apart.

    python benchmarks/profile_step.py                          # nano, 1 and 64 members
    python benchmarks/profile_step.py --preset=acl2025 --members=1 --task=add \
        --sampling=exact:16 --format=plain --spd=2 --out=benchmarks/results/cpu-2026-11-26

The shares are of the summed op time (on a CPU with several threads, ops can overlap, so the
sum may exceed the wall time); the top operations are listed with their output shapes. On a
GPU only the kernels on the device count, each under the HLO op it ran; run it with
XLA_FLAGS=--xla_gpu_enable_command_buffer= there, else a whole step is one CUDA graph and one
"op". --keep_trace=DIR keeps each trace and the compiled HLO; --read=DIR reads such a folder
again (with the flags the traced run had), on any machine:

    python benchmarks/profile_step.py --read=benchmarks/results/h100-2026-11-26-lease3/trace_acl2025 \
        --preset=acl2025 --dtype=bfloat16 --task=add --sampling=exact:16 --format=plain \
        --members=8 --spd=5 --chunks=2
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
from arith_jax import population  # noqa: E402

# Host-side events of the runtime, not XLA operations.
RUNTIME_EVENT = re.compile(r"^(\$|Thunk|Slinky|Pjit|CommonPjRt|ParseArguments|end: )")
# Lines of the compiled HLO text: an operation (its shape may be a tuple, with spaces), its call
# path, a library call's target, the emitter XLA chose for a fusion, the header of a
# computation, and the computation a fusion calls.
HLO_OP = re.compile(r"^\s*(?:ROOT )?%(\S+) = (.+?) ([\w-]+)\(")
CALL_PATH = re.compile(r'op_name="([^"]*)"')
CUSTOM_CALL_TARGET = re.compile(r'custom_call_target="([^"]+)"')
FUSION_KIND = re.compile(r'"kind":"(\w+)"')
COMPUTATION = re.compile(r"^%?(\S+) .*\{$")
CALLS = re.compile(r"calls=%(\S+?)[,\s]")


def emitter(line: str) -> str:
    """What runs an HLO op: a library (a custom call: cuBLAS or cuDNN on a GPU; a YNNPACK/XNNPACK
    fusion on the CPU), Triton (XLA's GPU fusions emitted through it), or XLA's own loops."""
    if CUSTOM_CALL_TARGET.search(line):
        return "library"
    kind = FUSION_KIND.search(line)
    if kind:
        return "Triton" if kind.group(1).startswith("__triton") else "library"
    return "XLA"


def op_table(hlo_text: str) -> dict:
    """{op name: (output shape, HLO opcode, JAX call path, emitter)} of the compiled HLO. A
    fusion's opcode is that of its computation's root, and its call path the first recorded
    inside that computation (XLA keeps none on a dot); a library matmul's opcode is `dot`."""
    table, calls, first_path, root, computation = {}, {}, {}, {}, None
    for line in hlo_text.splitlines():
        header = COMPUTATION.match(line)
        if header and not line.startswith(" "):
            computation = header.group(1)
            continue
        m = HLO_OP.match(line)
        if not m:
            continue
        name, shape, opcode = m.groups()
        path, called, target = CALL_PATH.search(line), CALLS.search(line), CUSTOM_CALL_TARGET.search(line)
        if target and re.search("gemm|matmul", target.group(1), re.IGNORECASE):
            opcode = "dot"
        elif target and "cudnn" in target.group(1).lower():
            opcode = "cudnn-attention"
        if path and computation not in first_path:
            first_path[computation] = path.group(1)
        if line.lstrip().startswith("ROOT"):
            root[computation] = opcode
        if called:
            calls[name] = called.group(1)
        table[name] = (shape, opcode, path.group(1) if path else "", emitter(line))
    for name, callee in calls.items():
        shape, opcode, path, how = table[name]
        table[name] = (shape, root.get(callee, opcode), path or first_path.get(callee, ""), how)
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
    opcode, how = (info[1], info[3]) if info else ("", "library" if name.startswith(("ynn_", "xnn_", "onednn")) else "XLA")
    what = {"dot": "matmul", "reduce": "reduction", "cudnn-attention": "attention"}.get(opcode, "elementwise/other")
    return f"{what}, {how}"


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


def model_flops_per_step(args, members: int) -> float:
    """The model's FLOPs of one step of the population (6N + attention per token)."""
    group = population.plan(bench_train.bench_config(args, members))[0]
    seq = group.spec.seq_len - 1
    return model_lib.flops_per_token(group.model, group.spec.vocab_size, seq) * members * args.batch * seq


def trace(args, members: int, keep: str) -> tuple[list, str, float]:
    """(trace events, compiled HLO text, traced wall seconds) of args.chunks chunks."""
    config = bench_train.bench_config(args, members)
    _, state, run_ = bench_train.population_chunk(config)
    steps = np.arange(args.spd, dtype=np.int32)
    # Compiled once: the HLO text names the operations the trace times, and the same executable runs.
    compiled = run_.program.chunk.lower(state, run_.hyper, run_.member_data, None, steps).compile()
    hlo_text = compiled.as_text()

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
        if keep:  # the raw trace and compiled HLO, to read again without the device (--read)
            os.makedirs(keep, exist_ok=True)
            shutil.copy(trace_file, os.path.join(keep, f"trace_{members}.json.gz"))
            with gzip.open(os.path.join(keep, f"hlo_{members}.txt.gz"), "wt") as f:
                f.write(hlo_text)
            with open(os.path.join(keep, "environment.json"), "w") as f:
                json.dump(record.environment(), f, indent=1)
        with gzip.open(trace_file) as f:
            events = json.load(f)["traceEvents"]
    return events, hlo_text, wall


def kept_trace(folder: str, members: int) -> tuple[list, str, None]:
    with gzip.open(os.path.join(folder, f"trace_{members}.json.gz")) as f:
        events = json.load(f)["traceEvents"]
    with gzip.open(os.path.join(folder, f"hlo_{members}.txt.gz"), "rt") as f:
        return events, f.read(), None


def breakdown(args, members: int, events: list, hlo_text: str, wall: float | None) -> tuple[list[dict], list[dict]]:
    """(time per phase and kind, the top single operations) of one traced population."""
    ops = op_table(hlo_text)
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
    if wall is not None:
        rows.append({"members": members, "phase": "wall clock, traced", "kind": "",
                     "ms/step": wall * 1e3 / steps_run, "share": None})
    # The model's FLOPs over the time of the matmuls: how close the matmuls run to the peak.
    matmul_us = sum(us for (p, k), us in by_class.items() if k.startswith("matmul"))
    flops = model_flops_per_step(args, members) * steps_run
    rows.append({"members": members, "phase": "model GFLOP/s during matmuls", "kind": "",
                 "ms/step": None, "share": None, "GFLOP/s": flops / (matmul_us * 1e3) if matmul_us else None})
    top = []
    for name, us in by_op.most_common(args.top):
        info = ops.get(name, ("?", "?", "", ""))
        top.append({"members": members, "op": name, "shape": info[0][:60], "phase": phase(info[2]),
                    "kind": kind(name, info), "ms/step": us / 1e3 / steps_run, "share": us / total})
    return rows, top


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench_train.add_population_arguments(parser, members="1,64", spd=20, chunks=2)  # --chunks: traced chunks
    parser.add_argument("--top", type=int, default=12, help="how many single operations to list")
    parser.add_argument("--out", default="", help="folder for the JSON + Markdown (empty: print only)")
    parser.add_argument("--keep_trace", default="", help="folder to keep each traced run's trace and HLO in")
    parser.add_argument("--read", default="", help="a --keep_trace folder to read instead of tracing")
    args = parser.parse_args()
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "keep_trace")}
    rows, top = [], []
    for members in [int(m) for m in args.members.split(",")]:
        traced = kept_trace(args.read, members) if args.read else trace(args, members, args.keep_trace)
        breakdown_rows, top_ops = breakdown(args, members, *traced)
        rows += breakdown_rows
        top += top_ops
    measured_on = None
    if args.read and os.path.exists(os.path.join(args.read, "environment.json")):
        with open(os.path.join(args.read, "environment.json")) as f:
            measured_on = json.load(f)
    record.write(args.out, f"profile_{args.preset}_{args.dtype}", settings, rows, measured_on=measured_on)
    record.write(args.out, f"profile_{args.preset}_{args.dtype}_top_ops", settings, top, measured_on=measured_on)


if __name__ == "__main__":
    main()
