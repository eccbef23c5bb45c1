"""Evaluation throughput at long operand lengths: examples/s of a population's evaluation,
teacher-forced exact match (one forward pass) and greedy decoding, with the KV cache
(evaluate.greedy_decode_cached: one prefill, then one token per step) and without it
(evaluate.greedy_decode: the whole sequence again for every answer token).

    python benchmarks/bench_eval.py                                   # 10 / 50 / 100 digits
    python benchmarks/bench_eval.py --lengths=50,100,200 --members=8 --out=benchmarks/results

Addition in the `pad=common,reverse_result,eos` layout with the coupled encoding by default
(the long-addition setting of configs/coupling_addition_cpu.py; `--pe` picks another);
random weights, since speed does not depend on them. Each row: one jit-compiled program
vmapped over the members, timed after a compiling call.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import record  # noqa: E402  (benchmarks/record.py)
from arith_jax import evaluate, model, tasks  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float]:
    """(seconds per call after the first, seconds of the first: compile + run)."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn())
    return (time.perf_counter() - start) / repeats, first


def programs(cfg: model.ModelConfig, spec: tasks.TaskSpec, params_M, a_NxW, b_NxW):
    graphdef = model.init(cfg, spec.vocab_size, jax.random.key(0))[0]

    def per_member(mode):
        def one(params):
            batch = tasks.batch_for_operands(spec, a_NxW, b_NxW, None)
            apply_fn = lambda tokens: model.apply(graphdef, params, tokens)
            if mode == "exact":
                return evaluate.exact_match(apply_fn(batch.tokens), batch, spec)[0].mean()
            if mode == "cached":
                decoded = evaluate.greedy_decode_cached(
                    lambda tokens: model.prefill(graphdef, params, tokens),
                    lambda tokens, cache, position: model.decode_step(graphdef, params, tokens, cache, position),
                    batch, spec.answer_len)
            else:
                decoded = evaluate.greedy_decode(apply_fn, batch, spec.answer_len)
            return jnp.all((decoded == batch.tokens) | ~batch.answer_mask, axis=1).mean()
        return jax.jit(lambda: jax.vmap(one)(params_M))

    return {mode: per_member(mode) for mode in ("exact", "cached", "full")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="10,50,100", help="operand digits, comma-separated")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--examples", type=int, default=64, help="examples per length and member")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--d_model", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--pe", default="coupled", help="model.pe (an encoding with an attention bias, e.g. fire, "
                                                       "pays for it at every decoded token)")
    parser.add_argument("--coupling_window", type=int, default=0, help="model.coupling_window (coupled encodings)")
    parser.add_argument("--skip_full_above", type=int, default=100,
                        help="lengths above this skip the uncached decoder (it grows as length^2)")
    parser.add_argument("--out", default="", help="folder for eval_throughput.json and .md (empty: print only)")
    args = parser.parse_args()

    rows = []
    settings = vars(args)
    for length in [int(x) for x in args.lengths.split(",")]:
        spec = tasks.TaskSpec("add", length, tasks.Format.parse("pad=common,reverse_result,eos", task="add"))
        cfg = model.ModelConfig.create(num_layers=args.layers, num_heads=4, d_model=args.d_model, d_ff=4 * args.d_model,
                                pe=args.pe, max_positions=spec.seq_len + 2, coupling_max_offset=0,
                                coupling_window=args.coupling_window)
        keys = jax.random.split(jax.random.key(1), args.members)
        params_M = jax.vmap(lambda k: model.init(cfg, spec.vocab_size, k)[1])(keys)
        rng = np.random.default_rng(0)
        a, b = (evaluate.exact_length_operands(rng, length, length, args.examples) for _ in range(2))
        examples = args.members * args.examples
        row = {"digits": length, "tokens": spec.seq_len}
        for mode, program in programs(cfg, spec, params_M, a, b).items():
            if mode == "full" and length > args.skip_full_above:
                row[f"{mode} examples/s"] = row[f"{mode} compile s"] = None
                continue
            seconds, first = timed(program, args.repeats)
            row[f"{mode} examples/s"] = examples / seconds
            row[f"{mode} compile s"] = first - seconds
        full = row["full examples/s"]
        row["cached / full"] = row["cached examples/s"] / full if full else None
        rows.append(row)
        record.write(args.out, "eval_throughput", settings, rows, echo=length == int(args.lengths.split(",")[-1]))


if __name__ == "__main__":
    main()
