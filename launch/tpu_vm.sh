#!/usr/bin/env bash
# Train on a Cloud TPU VM or pod slice: installs arith_jax on every worker and starts the same
# command on all of them. --distributed makes jax.distributed.initialize() find the peers by
# itself on TPU, and the trainer joins JAX's preemption sync point so every host checkpoints
# the same step.
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b launch/tpu_vm.sh \
#       --config=configs/acl2025_mod_addition.py --workdir=/mnt/runs/acl_mod
#
# The workdir must be one directory that every host sees (orbax writes each host's shards
# there): mount a bucket with gcsfuse, or an NFS/Filestore share, on all workers first.
# Results, TensorBoard and the report are written by process 0 with ordinary file I/O.
# Rerunning the same command after a preemption resumes from the last checkpoint.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
REPO_URL=${REPO_URL:-}
setup='python3 -m pip install -q --upgrade pip && python3 -m pip install -q "jax[tpu]"'
if [ -n "$REPO_URL" ]; then
  setup="$setup && rm -rf arith_jax_src && git clone -q $REPO_URL arith_jax_src && python3 -m pip install -q -e arith_jax_src"
else
  # Copy this checkout to every worker instead of cloning.
  gcloud compute tpus tpu-vm scp --recurse --worker=all --zone="$ZONE" "$(git rev-parse --show-toplevel)" \
    "$TPU_NAME":arith_jax_src
  setup="$setup && python3 -m pip install -q -e arith_jax_src"
fi
args=$(printf '%q ' "$@")
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all \
  --command="$setup && cd arith_jax_src && arith-jax train --distributed --quiet $args"
