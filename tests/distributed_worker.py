"""One process for tests/test_distributed.py: trains the tiny population (or, with
--restore_only, restores its latest checkpoint onto this process's devices) and dumps the
parameters and last eval accuracies to an .npz (process 0)."""

import argparse
import json
import sys
import os

sys.path.insert(0, os.path.dirname(__file__))

parser = argparse.ArgumentParser()
parser.add_argument("--workdir", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--coordinator", default="")
parser.add_argument("--num_processes", type=int, default=1)
parser.add_argument("--process_id", type=int, default=0)
parser.add_argument("--restore_only", action="store_true")
args = parser.parse_args()

import jax  # noqa: E402  (after argument parsing, before any computation)
import numpy as np  # noqa: E402

from arith_jax import evaluate_checkpoint, sharding, train  # noqa: E402
from tiny_config import tiny_config  # noqa: E402

sharding.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
config = tiny_config(log__tensorboard=False)
if args.restore_only:
    runs, step, _ = evaluate_checkpoint.restore(config, args.workdir)
    assert runs[0].state["params"]["token_embedding"]["embedding"].value.sharding.mesh.size == jax.device_count()
    result = train.TrainResult(train.evaluate_runs(runs, step, config.task.name), runs, step, np.zeros(0))
else:
    result = train.train(config, args.workdir, console=False)
params = sharding.gather(result.runs[0].state["params"])
if jax.process_index() == 0:
    flat = {jax.tree_util.keystr(path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
    flat["__loss__"] = np.asarray(result.final_loss)
    flat["__devices__"] = np.asarray([jax.device_count(), jax.process_count()])
    np.savez(args.out, **flat)
    with open(args.out + ".records.json", "w") as f:
        json.dump(result.records, f)
