"""Examples per second: the jitted on-device generator against a seed-paper-style host loop.

The host generator is written the way the seed papers' notebooks write theirs: random.randint
operands, str(), string concatenation and a char -> id list per example, then one padded
array per batch (no device transfer counted, which flatters it). Both run in this process on
the default JAX device. Finally the default training batch (the `nano` default config) is
timed as the trainer makes it: vmapped over the population's members inside a lax.scan over
train.steps_per_dispatch steps, to compare with a training step.

    python benchmarks/bench_data.py --digits 3 20 128 --task add --batch 1024
"""

from __future__ import annotations

import argparse
import random
import time

import jax
import jax.numpy as jnp
import numpy as np

from arith_jax import default_config, tasks

CHAR_TO_ID = {ch: token for token, ch in enumerate(tasks.TOKEN_CHARS)}


def seconds_per_call(run, min_seconds: float) -> float:
    """Mean wall time of run() over enough calls to fill min_seconds (after one warm-up)."""
    run()
    calls, start = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def host_batch(task: str, digits: int, batch: int, modulus: int, seq_len: int) -> np.ndarray:
    """One batch, notebook style: `a+b=reversed(c);` per example, padded to seq_len."""
    rows = []
    for _ in range(batch):
        a = random.randint(10 ** (digits - 1), 10**digits - 1)
        b = random.randint(10 ** (digits - 1), 10**digits - 1)
        c = {"add": a + b, "mul": a * b, "mod_add": (a + b) % modulus, "mod_mul": (a * b) % modulus}[task]
        text = str(a) + ("+" if task in ("add", "mod_add") else "*") + str(b) + "=" + str(c)[::-1] + ";"
        ids = [CHAR_TO_ID[ch] for ch in text]
        rows.append(ids + [tasks.PAD] * (seq_len - len(ids)))
    return np.asarray(rows, np.int32)


def device_generator(spec: tasks.TaskSpec, sampling: tasks.Sampling, batch: int, modulus: int):
    """A call making the next fresh batch (key from fold_in(key, step), as the sources do)."""
    make = jax.jit(lambda step: tasks.make_batch(spec, sampling, jax.random.fold_in(jax.random.key(0), step), batch,
                                                 jnp.int32(modulus)))
    steps = iter(range(10**9))
    return lambda: jax.block_until_ready(make(next(steps)))


def compare(task: str, digits_list: list[int], batch: int, modulus: int, min_seconds: float) -> None:
    print(f"{task}, exactly-n-digit operands, reverse_result layout, batch {batch}, device {jax.devices()[0]}")
    print(f"{'digits':>6} {'device ex/s':>14} {'host ex/s':>12} {'device/host':>12}")
    for digits in digits_list:
        spec = tasks.TaskSpec(task, digits, tasks.Format.parse("reverse_result"), modulus)
        device_s = seconds_per_call(device_generator(spec, tasks.Sampling.parse(f"exact:{digits}"), batch, modulus),
                                    min_seconds)
        host_s = seconds_per_call(lambda: host_batch(task, digits, batch, modulus, spec.seq_len), min_seconds)
        print(f"{digits:>6} {batch / device_s:>14,.0f} {batch / host_s:>12,.0f} {host_s / device_s:>11.1f}x")


def default_training_batch(min_seconds: float) -> None:
    """Per-step generation time of the default config's population, as the trainer runs it."""
    config = default_config.get_config()
    task = config.task
    moduli = list(task.moduli) if task.name in tasks.MODULAR_TASKS else [0]
    sampling = tasks.Sampling.parse(task.train_sampling, field="task.train_sampling")
    width = task.width or max([sampling.max_digits, *config.eval.lengths])
    spec = tasks.TaskSpec(task.name, width, tasks.Format.parse(task.format, task=task.name), max(moduli))
    batch, steps = config.train.batch_size, config.train.steps_per_dispatch

    @jax.jit
    def chunk(member_keys, moduli_M, first_step):
        def one_step(_, step):
            make = jax.vmap(lambda key, p: tasks.make_batch(spec, sampling, jax.random.fold_in(key, step), batch, p))
            return None, make(member_keys, moduli_M).tokens.sum()  # keep the batch alive, return little

        return jax.lax.scan(one_step, None, first_step + jnp.arange(steps))[1]

    member_keys = jax.random.split(jax.random.key(0), len(moduli))
    moduli_M = jnp.asarray(moduli, jnp.int32)
    per_chunk = seconds_per_call(lambda: jax.block_until_ready(chunk(member_keys, moduli_M, 0)), min_seconds)
    single = device_generator(spec, sampling, batch, max(moduli) or 2)
    print(f"\ndefault training batch: {task.name} moduli {moduli}, {task.train_sampling!r}, format {task.format!r}, "
          f"batch {batch}, T={spec.seq_len}")
    print(f"  in the trainer's scan ({steps} steps x {len(moduli)} members): {per_chunk / steps * 1e3:.3f} ms per step")
    print(f"  one jitted call, one member (includes dispatch): {seconds_per_call(single, min_seconds) * 1e3:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="add", choices=tasks.TASKS)
    parser.add_argument("--digits", type=int, nargs="+", default=[3, 20, 128], help="operand lengths to time")
    parser.add_argument("--batch", type=int, default=1024, help="examples per generated batch")
    parser.add_argument("--modulus", type=int, default=999983, help="for mod_add and mod_mul")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="time spent per measurement")
    args = parser.parse_args()
    compare(args.task, args.digits, args.batch, args.modulus, args.min_seconds)
    default_training_batch(args.min_seconds)


if __name__ == "__main__":
    main()
