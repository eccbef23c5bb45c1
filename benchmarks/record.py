"""What every benchmark records beside its numbers: the machine, the versions, the date, the
exact command, and the device's peak FLOP/s for MFU, taken from a table of known devices (never
typed by hand). `write` saves one run as JSON and as a Markdown table.

Peaks are the vendors' dense (no sparsity) datasheet rates in TFLOP/s. float32 on NVIDIA GPUs
is TF32's rate: JAX's default matmul precision there runs float32 dots on the TF32 tensor
cores. A device not in the table (a CPU) gets its peak measured instead: the best rate of a
large square matmul in JAX on it (`measured_matmul_peak_tflops`), which is what "MFU" means
there: the share of the machine's own matmul rate.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
import time

import jax
import jax.numpy as jnp

# device_kind substring (lower case) -> {compute dtype: dense peak TFLOP/s}. The first match wins,
# so longer names come before their prefixes.
PEAK_TFLOPS = [
    ("h200", {"bfloat16": 989.4, "float32": 494.7}),
    ("h100", {"bfloat16": 989.4, "float32": 494.7}),  # SXM
    ("a100", {"bfloat16": 312.0, "float32": 156.0}),
    ("tpu v6", {"bfloat16": 918.0}),  # v6e (Trillium)
    ("tpu v5p", {"bfloat16": 459.0}),
    ("tpu v5", {"bfloat16": 197.0}),  # v5e, which JAX names "TPU v5 lite"
    ("tpu v4", {"bfloat16": 275.0}),
]


def device_peak_tflops(dtype: str, device=None) -> float | None:
    """The dense peak of `device` (default: the first JAX device) for `dtype`, or None."""
    kind = (device or jax.devices()[0]).device_kind.lower()
    for name, peaks in PEAK_TFLOPS:
        if name in kind:
            return peaks.get(dtype)
    return None


def measured_matmul_peak_tflops(dtype: str, n: int = 1024, repeats: int = 20) -> float:
    """The best rate (TFLOP/s) of an n x n x n `dtype` matmul on the first JAX device, over
    `repeats` timed calls after a warm-up: the peak that MFU on a device without a datasheet
    entry is measured against."""
    x = jnp.ones((n, n), dtype)
    matmul = jax.jit(lambda a, b: a @ b)
    matmul(x, x).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(x, x).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e12


def peak_tflops(dtype: str) -> tuple[float, str]:
    """(peak TFLOP/s, where it comes from): the table of known devices, else measured."""
    peak = device_peak_tflops(dtype)
    if peak:
        return peak, "datasheet"
    return measured_matmul_peak_tflops(dtype), "measured matmul"


def environment() -> dict:
    device = jax.devices()[0]
    versions = {"python": platform.python_version(), "jax": jax.__version__}
    for module in ("jaxlib", "flax", "optax", "torch"):
        mod = sys.modules.get(module)
        if mod is not None:
            versions[module] = getattr(mod, "__version__", "?")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "backend": jax.default_backend(),
        "device": f"{jax.device_count()} x {device.device_kind}",
        "host": f"{platform.machine()}, {os.cpu_count()} logical cores",
        "versions": versions,
    }


def markdown_table(rows: list[dict]) -> str:
    header = list(dict.fromkeys(key for row in rows for key in row))  # every row's columns, in order
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(h)) for h in header) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def describe(env: dict) -> str:
    """One line naming the date, device, host and versions of an `environment()`."""
    return (f"{env['date']}, {env['device']} ({env['backend']}), host {env['host']}, "
            f"{', '.join(f'{k} {v}' for k, v in env['versions'].items())}")


def write(out: str, name: str, settings: dict, rows: list[dict], echo: bool = True, measured_on: dict | None = None) -> None:
    """Print the Markdown table (unless not `echo`, then only the last row); with `out` (a
    folder), also write `out/name.json` and `out/name.md`, replacing earlier writes.
    `measured_on`: the environment() of the machine that measured, when this one only reads
    its recording (a kept profile trace)."""
    env = environment()
    table = markdown_table(rows) if rows else "(no rows)"
    source = f"Measured on: {describe(measured_on)}; read on: " if measured_on else ""
    md = f"### {name}\n\n{source}{describe(env)}\n\n`{env['command']}`\n\n{table}\n"
    if measured_on:
        env = dict(env, measured_on=measured_on)
    print("\n" + md if echo else rows[-1], flush=True)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump({"name": name, **env, "settings": settings, "rows": rows}, f, indent=1)
        with open(os.path.join(out, f"{name}.md"), "w") as f:
            f.write(md)
