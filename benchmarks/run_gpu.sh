#!/usr/bin/env bash
# Every accelerator measurement behind benchmarks/RESULTS.md and the GPU recipe sweep in
# docs/recipe_search.md, as one command for a single-GPU machine with JAX (CUDA) and PyTorch:
#
#   OUT=gpu_results bash benchmarks/run_gpu.sh      # ~9 minutes on one H100/H200
#   STAGES="coupling_200 coupling_cpu" OUT=gpu_results bash benchmarks/run_gpu.sh   # chosen stages
#
# STAGES (default: smoke sweep throughput sweep_large) names the stage groups to run, in order:
#   smoke         the CLI end to end on a tiny run; the script stops if it fails
#   sweep         the default's recipe search (nano, micro) at batch 64
#   throughput    nano population scaling, the 10.7M model in bfloat16, the PyTorch peer
#   sweep_large   the same recipe search at batch 256
#   coupling_200  position coupling at the paper's size, 1-30 -> 200 digits (issue #10)
#   coupling_cpu  the CPU-size coupling recipe and two variants, with more seeds than a CPU affords
#   late_decay    the default's recipe with weight decay switched on late, at the CPU's step budget
#   acl2025_large the 10.7M model at 32 members and through cuDNN attention
#   ijcai_mul     IJCAI 2024 multiplication, nano / micro / mini, as shipped (issue #9)
#   acl_mul       ACL 2025 multiplication by training set, as shipped (issue #9)
#   ijcai_add     IJCAI 2024 addition, nano / micro / mini, as shipped (issue #9)
#   profile_large where the 10.7M model's step time goes on the GPU (the XLA profile, raw trace kept)
#   torch_large   the PyTorch peer at 10.7M on the same GPU
#   batch_large   the 10.7M step at batch 256 per member
#   freeze_large  the 10.7M step at 8 members with and without the per-member NaN freeze
#   recipe_cpu    the default's recipe and two-layer variants at the CPU's step budget, 6 moduli
#   recipe_cpu2   recipe_cpu's two helpful changes together, and on the default's three layers
#   ijcai_add_long IJCAI 2024 addition as shipped, evaluated every 2500 steps (fewer decodes)
#   recipe_init   recipe_cpu's grid with the embedding tables started at std 1.0, 0.3 or 0.1
#   pe_cpu        configs/pe_comparison_cpu.py as shipped, at the CPU's float32 precision
#   recipe_mech   the default on recipe_cpu's grid, and six one-change variants of it
#   recipe_long   the default over 54 members at its own steps and at twice them
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

TRAIN="python3 -m arith_jax.cli train"
QUIET="--config.checkpoint.every=0 --config.log.tensorboard=False"
# The 10.7M model (6 x 6 x 384) in bfloat16 on 16-digit addition: every 10.7M row of RESULTS.md.
LARGE="--preset=acl2025 --dtype=bfloat16 --task=add --sampling=exact:16 --format=plain"

# torch_peer_large LIMIT MEMBERS STEPS: the PyTorch peer beside arith_jax at 10.7M on this GPU.
torch_peer_large() {
  XLA_PYTHON_CLIENT_PREALLOCATE=false stage vs_pytorch_acl2025 "$1" python3 benchmarks/bench_vs_pytorch.py \
    --preset=acl2025 --dtype=bfloat16 --digits=16 --format=pad=16/3,reverse_result,eos --members="$2" \
    --torch_runs=1 --steps="$3" --spd=10 --out="$BENCH"
}

# smoke: the CLI end to end (train, eval with decoding, report) on a tiny run. Stop if broken.
smoke() {
  stage smoke 120 $TRAIN --workdir="$WORK/smoke" --config.train.steps=100 \
    --config.eval.every=100 --config.checkpoint.every=0 --config.population.seeds='(0,)' || exit 1
}

# sweep / sweep_large: the default's recipe search at sizes a CPU cannot afford: nano and micro,
# 3 seeds x {100, 101} x lr {1e-3, 3e-3} x weight decay {0.1, 1.0}, 10000 steps evaluated every 2000.
recipe_sweep() {  # recipe_sweep BATCH LIMIT
  stage "sweep_b$1" "$2" $TRAIN --workdir="$WORK/sweep_b$1" $QUIET \
    --config.population.preset='("nano", "micro")' --config.population.learning_rates='(1e-3, 3e-3)' \
    --config.population.weight_decays='(0.1, 1.0)' --config.train.batch_size="$1" --config.train.steps=10000 \
    --config.train.steps_per_dispatch=100 --config.eval.every=2000
}
sweep() { recipe_sweep 64 170; }
sweep_large() { recipe_sweep 256 400; }

# throughput (#12): nano population scaling, the 10.7M model in bfloat16 (XLA and cuDNN
# attention), and the PyTorch peer on the same GPU.
throughput() {
  stage nano_scaling 90 python3 benchmarks/bench_train.py --members=1,16,256,1024,4096 --spd=20 --chunks=2 \
    --out="$BENCH" --name=train_nano_float32
  for attention in xla cudnn; do
    stage "acl2025_$attention" 60 python3 benchmarks/bench_train.py $LARGE --attention=$attention \
      --members=1,8,32 --spd=10 --chunks=2 --out="$BENCH" --name="train_acl2025_bfloat16_$attention"
  done
  XLA_PYTHON_CLIENT_PREALLOCATE=false stage vs_pytorch_nano 70 python3 benchmarks/bench_vs_pytorch.py \
    --members=1,256,4096 --torch_runs=2 --steps=200 --spd=20 --out="$BENCH"
  torch_peer_large 70 1,8,32 100
}

# coupling_200 (#10): configs/coupling_addition_200.py in bfloat16 with 3 seeds x lr {3e-4, 1e-3}
# and the paper's zero weight decay; offsets up to 200 (the paper's 202-id table: every id a
# 200-digit evaluation needs is trained). 8000 steps of batch 256 (the paper: 50,000 of 1000);
# evaluated every 2000 steps so that a run cut short still leaves its last table.
coupling_200() {
  stage sweep_coupling_200 260 $TRAIN --config=configs/coupling_addition_200.py \
    --workdir="$WORK/sweep_coupling_200" $QUIET --config.model.compute_dtype=bfloat16 \
    --config.model.coupling_max_offset=200 --config.population.seeds='(0,1,2)' \
    --config.population.learning_rates='(3e-4,1e-3)' --config.population.weight_decays='(0.0,)' \
    --config.train.steps=8000 --config.train.batch_size=256 --config.train.warmup_steps=500 \
    --config.train.steps_per_dispatch=250 --config.eval.every=2000
}

# coupling_cpu (#10): configs/coupling_addition_cpu.py (1 layer, width 128, 1-10 digits, evaluated
# to 100) without its attention window and at its former 6000 steps (docs/results.md 6), with
# 3 seeds x lr {1e-3, 3e-3} x wd {0, 0.1}; through the learned table, through rotary coupled ids,
# and with 4x the steps.
coupling_cpu() {
  local grid="--config.population.seeds=(0,1,2) --config.population.learning_rates=(1e-3,3e-3)
    --config.population.weight_decays=(0.0,0.1) --config.eval.lengths=(10,20,30,50,100)
    --config.train.steps_per_dispatch=200 --config.model.coupling_window=0"
  stage sweep_coupling_cpu 60 $TRAIN --config=configs/coupling_addition_cpu.py \
    --workdir="$WORK/sweep_coupling_cpu" $QUIET $grid --config.train.steps=6000 --config.eval.every=2000
  stage sweep_coupling_cpu_rope 60 $TRAIN --config=configs/coupling_addition_cpu.py \
    --workdir="$WORK/sweep_coupling_cpu_rope" $QUIET $grid --config.train.steps=6000 --config.eval.every=2000 --config.model.pe=coupled_rope
  stage sweep_coupling_cpu_24k 90 $TRAIN --config=configs/coupling_addition_cpu.py \
    --workdir="$WORK/sweep_coupling_cpu_24k" $QUIET $grid --config.train.steps=24000 --config.eval.every=6000
}

# late_decay (#9): the default (3000 steps, what 5 CPU minutes afford) with weight decay off until
# step 1500 or 2000, then {1.0, 3.0}; lr {2e-3, 3e-3}, 3 seeds per modulus.
late_decay() {
  local from
  for from in 1500 2000; do
    stage "sweep_late_decay_$from" 60 $TRAIN --workdir="$WORK/sweep_late_decay_$from" $QUIET \
      --config.train.weight_decay_from_step=$from --config.population.learning_rates='(2e-3,3e-3)' \
      --config.population.weight_decays='(1.0,3.0)' --config.train.steps_per_dispatch=100
  done
}

# acl2025_large (#12): the 10.7M model in bfloat16 at 32 members (its compile outran the earlier
# stage) and through cuDNN attention (sequence padded to a multiple of 8 since the last lease).
acl2025_large() {
  stage acl2025_xla_32 100 python3 benchmarks/bench_train.py $LARGE --attention=xla --members=32 --spd=2 \
    --chunks=2 --out="$BENCH" --name=train_acl2025_bfloat16_xla_32
  stage acl2025_cudnn 60 python3 benchmarks/bench_train.py $LARGE --attention=cudnn --members=1,8 --spd=5 \
    --chunks=2 --out="$BENCH" --name=train_acl2025_bfloat16_cudnn
}

# ijcai_mul, acl_mul, ijcai_add (#9): the shipped accelerator configs as written, evaluated every
# 2000 steps (1000 for addition) so that a run cut short still leaves its last table. On one H100
# (2026-11-26): ijcai_mul 177 s; acl_mul ~260 s (104 steps/s; stopped at 7800 steps by a 110 s
# limit, resumed to 19,200 in 150 s); ijcai_add did not finish in 90 s (evaluations of 3 groups every 1000 steps).
ijcai_mul() {
  stage paper_ijcai_mul 200 $TRAIN --config=configs/ijcai2024_multiplication.py \
    --workdir="$WORK/sweep_ijcai_mul" $QUIET
}
acl_mul() {
  stage paper_acl_mul 300 $TRAIN --config=configs/acl2025_multiplication.py \
    --workdir="$WORK/sweep_acl_mul" $QUIET
}
ijcai_add() {
  stage paper_ijcai_add 300 $TRAIN --config=configs/ijcai2024_addition.py \
    --workdir="$WORK/sweep_ijcai_add" $QUIET
}

# profile_large, torch_large, batch_large (#12): the XLA profile of the 10.7M step at 8 members in
# bfloat16 (the trace and compiled HLO kept in bench.tgz), the PyTorch peer at 10.7M on the same
# GPU, and the same step at 4x the batch (does MFU grow with the work per step?).
profile_large() {  # without command buffers: else a whole step is one CUDA graph, one "op" in the trace
  XLA_FLAGS=--xla_gpu_enable_command_buffer= stage profile_acl2025 70 python3 benchmarks/profile_step.py $LARGE \
    --attention=xla --members=8 --spd=5 --chunks=2 --top=25 --out="$BENCH" --keep_trace="$BENCH/trace_acl2025"
}
torch_large() { torch_peer_large 90 1,8 60; }
batch_large() {
  stage acl2025_batch256 50 python3 benchmarks/bench_train.py $LARGE --attention=xla --members=8 --batch=256 \
    --spd=5 --chunks=2 --out="$BENCH" --name=train_acl2025_bfloat16_xla_batch256
}

# freeze_large (#12): what the per-member NaN freeze costs the 10.7M step on the GPU since it
# decides from the loss and gradient norm (the third lease's profile: up to 1.6 of 13.1 ms before).
freeze_large() {
  local variant
  for variant in with without; do
    local flag=""
    [[ $variant == without ]] && flag=--without_nan_freeze
    stage "freeze_${variant}_acl2025" 60 python3 benchmarks/bench_train.py $LARGE --attention=xla --members=8 \
      --spd=10 --chunks=4 $flag --out="$BENCH" --name="train_acl2025_bfloat16_xla_8_${variant}_freeze"
  done
}

# recipe_cpu (#9): the default's recipe (3 layers, 3000 steps) and two layers at 4200 steps (what
# 5 CPU minutes buy) with variants of the gated decay, each over moduli 50, 51, 100, 101, 150, 151
# x 3 seeds x 2 data seeds x lr {2e-3, 3e-3, 4e-3}: 108 members a program. float32 at full matmul
# precision, as on a CPU (JAX's GPU default is TF32), so that only the float rounding differs.
RECIPE_RUN="env JAX_DEFAULT_MATMUL_PRECISION=highest $TRAIN $QUIET
  --config.task.moduli=(50,51,100,101,150,151) --config.population.data_seeds=(0,1)
  --config.population.learning_rates=(2e-3,3e-3,4e-3)"
TWO_LAYERS="--config.model.num_layers=2 --config.train.steps=4200 --config.eval.every=2100"
# recipe_stage NAME SECONDS FLAGS...: one program of that grid, with FLAGS, into $WORK/sweep_NAME.
recipe_stage() {
  local name=$1 limit=$2
  shift 2
  stage "sweep_$name" "$limit" $RECIPE_RUN --workdir="$WORK/sweep_$name" "$@"
}
recipe_cpu() {
  recipe_stage recipe_d3 75 --config.eval.every=1500
  recipe_stage recipe_d2 75 $TWO_LAYERS
  recipe_stage recipe_d2_gate02 75 $TWO_LAYERS \
    --config.train.weight_decay_below_loss=0.2
  recipe_stage recipe_d2_wd3 75 $TWO_LAYERS --config.population.weight_decays='(3.0,)'
  recipe_stage recipe_d2_free 75 $TWO_LAYERS \
    --config.train.weight_decay_while_gated=0.0
}

# recipe_cpu2 (#9): recipe_cpu's two helpful changes (decay gated at loss 0.2, none while gated)
# together and on the default's three layers at 3000 steps.
recipe_cpu2() {
  local gate02="--config.train.weight_decay_below_loss=0.2" free="--config.train.weight_decay_while_gated=0.0"
  recipe_stage recipe_d2_gate02_free 70 $TWO_LAYERS $gate02 $free
  recipe_stage recipe_d3_free 70 --config.eval.every=1500 $free
  recipe_stage recipe_d3_gate02 70 --config.eval.every=1500 $gate02
  recipe_stage recipe_d3_gate02_free 70 --config.eval.every=1500 \
    $gate02 $free
}

# ijcai_add_long (#9): ijcai_add with 4 evaluations instead of 10, so that the three groups'
# 10,000 steps fit one stage (137 s on one H100, 2026-11-27).
ijcai_add_long() {
  stage paper_ijcai_add 160 $TRAIN --config=configs/ijcai2024_addition.py \
    --workdir="$WORK/sweep_ijcai_add" $QUIET --config.eval.every=2500
}

# recipe_init (#9): the embedding tables' starting std (model.token_init_std and
# model.position_init_std, docs/recipe_search.md 12) on recipe_cpu's 108-member grid, with the
# default's recipe and with the two-layer variants of recipe_cpu that carried mod 100 (no decay
# while gated) and mod 101's mechanism (decay gated at loss 0.2) furthest. One evaluation each.
# On one H100 (2026-11-27): 64-78 s per program, the seven in 8 min 30 s.
tables() { echo "--config.model.token_init_std=$1 --config.model.position_init_std=$1"; }
recipe_init() {
  local t1=$(tables 1.0) t03=$(tables 0.3) t01=$(tables 0.1)
  local free="--config.train.weight_decay_while_gated=0.0" gate02="--config.train.weight_decay_below_loss=0.2"
  local d3="--config.eval.every=3000" d2="--config.model.num_layers=2 --config.train.steps=4200 --config.eval.every=4200"
  recipe_stage recipe_d3_t1 85 $d3 $t1
  recipe_stage recipe_d3_t03 85 $d3 $t03
  recipe_stage recipe_d2_t1_free 85 $d2 $t1 $free
  recipe_stage recipe_d2_t1_gate02 85 $d2 $t1 $gate02
  recipe_stage recipe_d3_t01 85 $d3 $t01
  recipe_stage recipe_d2_t03_free 85 $d2 $t03 $free
  recipe_stage recipe_d3_t1_wd3 85 $d3 $t1 \
    --config.population.weight_decays='(3.0,)'
}

# recipe_mech (#9): the default (two layers, tables 0.3, decay gated at loss 0.2) on recipe_cpu's
# 108-member grid, i.e. on a second machine, and one change each aimed at what it still misses
# (mod 101's equivalence beyond 3 digits, mod 100's worst seed): the gate at loss 0.5, operands
# reversed like the result, the position table or the token table at 1.0, noise on the input
# embeddings, dropout. Each costs the same CPU time as the default. One evaluation each.
# On one H100 (2026-11-27): 67-74 s per program, the seven in 8 min 31 s.
recipe_mech() {
  recipe_stage recipe_default 85
  recipe_stage recipe_gate05 85 --config.train.weight_decay_below_loss=0.5
  recipe_stage recipe_revops 85 --config.task.format=pad=6/3,reverse_operands,reverse_result,bos,eos
  recipe_stage recipe_pos1 85 --config.model.position_init_std=1.0
  recipe_stage recipe_noise01 85 --config.model.embedding_noise=0.1
  recipe_stage recipe_drop01 85 --config.model.dropout=0.1
  recipe_stage recipe_tok1 85 --config.model.token_init_std=1.0
}

# recipe_long (#9): the default on a second machine, over the 27 seeds x data seeds per modulus
# that docs/recipe_search.md 16 measured on the CPU (54 members, lr 3e-3, the CPU's precision),
# at its own 8400 steps and at twice them. The batch-64, 4200-step default of 2026-11-27 ran
# 36 members at 1x, 2x and 4x its steps here on one H100 in 60, 68 and 83 s (recipe_search 14).
recipe_long() {
  local run="env JAX_DEFAULT_MATMUL_PRECISION=highest $TRAIN $QUIET
    --config.population.seeds=(0,1,2,3,4,5,6,7,8) --config.population.data_seeds=(0,1,2)"
  local steps  # the default's own, so that the stage follows it when it changes
  steps=$(python3 -c "from arith_jax.default_config import get_config; print(get_config().train.steps)")
  stage sweep_long_1x 150 $run --workdir="$WORK/sweep_long_1x"
  stage sweep_long_2x 250 $run --workdir="$WORK/sweep_long_2x" --config.train.steps=$((2 * steps)) \
    --config.eval.every="$steps"
}

# pe_cpu (#9): docs/results.md 4's comparison as shipped, on another machine at the CPU's
# precision (its nine programs are small, so this measures the float rounding, not speed).
# 226 s on one H100 (2026-11-27).
pe_cpu() {
  JAX_DEFAULT_MATMUL_PRECISION=highest stage sweep_pe_cpu 280 $TRAIN --config=configs/pe_comparison_cpu.py \
    --workdir="$WORK/sweep_pe_cpu" $QUIET
}

for group in ${STAGES:-smoke sweep throughput sweep_large}; do
  "$group"
done
echo "== done after $(($(date +%s) - START))s"
