#!/usr/bin/env bash
# Run one population as N local JAX processes (multi-controller, like a TPU pod slice) on
# this machine's CPU, each with D fake devices. Useful to rehearse a multi-host run.
#
#   launch/local_multiprocess.sh 2 2 --config=configs/default.py --workdir=runs/mp
#
# Process 0 writes results, TensorBoard and the report; all processes save their checkpoint
# shards into the same workdir.
set -euo pipefail
num_processes=${1:?number of processes}
devices_per_process=${2:?devices per process}
shift 2
port=${COORDINATOR_PORT:-12355}
pids=()
for ((i = 0; i < num_processes; i++)); do
  XLA_FLAGS="--xla_force_host_platform_device_count=${devices_per_process}" JAX_PLATFORMS=cpu \
    arith-jax train --coordinator="127.0.0.1:${port}" --num_processes="${num_processes}" --process_id="${i}" \
    "$@" &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' INT TERM
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
