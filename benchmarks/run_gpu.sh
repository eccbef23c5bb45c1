#!/usr/bin/env bash
# Every accelerator measurement behind benchmarks/RESULTS.md and the GPU recipe sweep in
# docs/recipe_search.md, as one command for a single-GPU machine with JAX (CUDA) and PyTorch:
#
#   OUT=gpu_results bash benchmarks/run_gpu.sh      # ~9 minutes on one H100/H200
#
# Stages run in order of value, each under its own time limit, so a short lease still brings
# back the first ones; every stage re-packs what exists so far into $OUT (bench.tgz with JSON +
# Markdown per benchmark, sweeps.tgz with each sweep's results, report and config, and
# log.txt). BUDGET (seconds, default 540) bounds the whole script.
set -u
OUT=${OUT:-gpu_results}
BUDGET=${BUDGET:-540}
mkdir -p "$OUT"
WORK=$(mktemp -d)
BENCH=$WORK/bench
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
START=$(date +%s)
exec > >(tee -a "$OUT/log.txt") 2>&1

left() { echo $((BUDGET - ($(date +%s) - START))); }
pack() {
  tar -C "$WORK" -czf "$OUT/bench.tgz" bench 2>/dev/null
  (cd "$WORK" && tar -czf "$OUT/sweeps.tgz" --exclude='checkpoints' --exclude='*.png' sweep_* 2>/dev/null)
}
# stage NAME SECONDS CMD...: run CMD under min(SECONDS, time left - 5 s), then pack.
stage() {
  local name=$1 limit=$2
  shift 2
  local budget=$(($(left) - 5))
  ((limit > budget)) && limit=$budget
  if ((limit < 20)); then echo "== $name: skipped, ${limit}s left"; return 1; fi
  echo "== $(date +%T) $name (limit ${limit}s): $*"
  local t0=$(date +%s)
  timeout --signal=TERM --kill-after=20 "$limit" "$@"
  local rc=$?
  echo "== $name: rc $rc after $(($(date +%s) - t0))s"
  pack
  return $rc
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
python3 -c "import jax, flax, optax, orbax.checkpoint as o, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, 'torch', torch.__version__, jax.devices())"

# 0. Smoke: the CLI end to end (train, eval with decoding, report) on a tiny run. Stop if broken.
stage smoke 120 python3 -m arith_jax.cli train --workdir="$WORK/smoke" --config.train.steps=100 \
  --config.eval.every=100 --config.checkpoint.every=0 --config.population.seeds='(0,)' || exit 1

# 1. The default's recipe search at sizes a CPU cannot afford: nano and micro, 3 seeds x
#    {100, 101} x lr {1e-3, 3e-3} x weight decay {0.1, 1.0}, 10000 steps evaluated every 2000.
sweep() {  # sweep BATCH LIMIT
  stage "sweep_b$1" "$2" python3 -m arith_jax.cli train --workdir="$WORK/sweep_b$1" \
    --config.population.preset='("nano", "micro")' --config.population.learning_rates='(1e-3, 3e-3)' \
    --config.population.weight_decays='(0.1, 1.0)' --config.train.batch_size="$1" --config.train.steps=10000 \
    --config.train.steps_per_dispatch=100 --config.eval.every=2000 --config.checkpoint.every=0 \
    --config.log.tensorboard=False
}
sweep 64 170

# 2. Throughput (#12): nano population scaling, the 10.7M model in bfloat16 (XLA and cuDNN
#    attention), and the PyTorch peer on the same GPU.
stage nano_scaling 90 python3 benchmarks/bench_train.py --members=1,16,256,1024,4096 --spd=20 --chunks=2 \
  --out="$BENCH" --name=train_nano_float32
for attention in xla cudnn; do
  stage "acl2025_$attention" 60 python3 benchmarks/bench_train.py --preset=acl2025 --dtype=bfloat16 \
    --attention=$attention --task=add --sampling=exact:16 --format=plain --members=1,8,32 --spd=10 --chunks=2 \
    --out="$BENCH" --name="train_acl2025_bfloat16_$attention"
done
XLA_PYTHON_CLIENT_PREALLOCATE=false stage vs_pytorch_nano 70 python3 benchmarks/bench_vs_pytorch.py \
  --members=1,256,4096 --torch_runs=2 --steps=200 --spd=20 --out="$BENCH"
XLA_PYTHON_CLIENT_PREALLOCATE=false stage vs_pytorch_acl2025 70 python3 benchmarks/bench_vs_pytorch.py \
  --preset=acl2025 --dtype=bfloat16 --digits=16 --format=pad=16/3,reverse_result,eos --members=1,8,32 \
  --torch_runs=1 --steps=100 --spd=10 --out="$BENCH"

# 3. With what is left: the same sweep at batch 256.
sweep 256 400
echo "== done after $(($(date +%s) - START))s"
