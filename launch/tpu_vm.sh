#!/usr/bin/env bash
# Train on Cloud TPU slices: a thin wrapper for `arith-jax launch tpu-vm up`, which creates the
# queued resources, ships this checkout's HEAD, starts the train command on every host and
# re-creates preempted slices until training ends. Every flag goes to the launcher; flags
# after -- go to `arith-jax train`. docs/cloud_tpu.md has the whole walk-through.
#
#   launch/tpu_vm.sh --name acl-mod --zone us-west4-a --accelerator v5litepod-16 \
#       --code gs://my-bucket/code --workdir gs://my-bucket/runs/acl_mod \
#       -- --config=configs/acl2025_mod_addition.py
#
# Add --dry-run to print the gcloud commands instead of running them.
set -euo pipefail
exec arith-jax launch tpu-vm up "$@"
