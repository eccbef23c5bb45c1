"""One training process for tests/test_distributed.py: trains the tiny population and dumps
its final parameters and last eval accuracies to an .npz (process 0)."""

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
args = parser.parse_args()

import jax  # noqa: E402  (after argument parsing, before any computation)

from arith_jax import sharding, train  # noqa: E402
from tiny_config import tiny_config  # noqa: E402

sharding.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
config = tiny_config(log__tensorboard=False)
result = train.train(config, args.workdir, console=False)
params = sharding.gather(result.runs[0].state["params"])
if jax.process_index() == 0:
    import numpy as np
    flat = {jax.tree_util.keystr(path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
    flat["__loss__"] = np.asarray(result.final_loss)
    flat["__devices__"] = np.asarray([jax.device_count(), jax.process_count()])
    np.savez(args.out, **flat)
    with open(args.out + ".records.json", "w") as f:
        json.dump(result.records, f)
