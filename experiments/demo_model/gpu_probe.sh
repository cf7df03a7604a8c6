#!/usr/bin/env bash
# The reasoning probe at the blocksworld-small size (hidden 512, 8 layers), from scratch, on one GPU in one
# call: does width and depth learn the step the 2.4 M-parameter demo model does not, the copy of a goal
# letter into the place-by-place comparison (`places_letter` of the probe's teacher-forced scores: 0.05-0.10
# on the CPU, README "Where the comparison fails")? Four runs share the GPU, like for like (same data
# seed, steps, batch, run seed): `tops-only` (the content-addressed lookup, a sanity check), `places-paired`
# diffusion and its AR control, and `places-keyed` (each place found by a key letter). Each is then scored
# by `reasoning_probe.py eval` on 200 held-out states.
#
# Usage (repository root, dreamvlx installed): bash experiments/demo_model/gpu_probe.sh RESULTS
# RESULTS receives the logs, every run's metrics, loss curve and train config, and the probe records.
# The phases share one wall-clock budget (BUDGET_S seconds): training is stopped by `timeout` in time for
# the evaluations, which then score the newest periodic checkpoint. Every knob is an environment variable,
# so the same script runs on a CPU in miniature (tests/demo/test_gpu_probe_script.py).
set -uo pipefail
RESULTS=${1:?usage: gpu_probe.sh RESULTS_FOLDER}
PY=${PYTHON:-python3}
PROBE="$PY experiments/demo_model/reasoning_probe.py"
BUDGET_S=${BUDGET_S:-540}
EVAL_RESERVE_S=${EVAL_RESERVE_S:-150}
SAMPLES=${SAMPLES:-40000}
STEPS=${STEPS:-3000}
BATCH=${BATCH:-64}
SAVE_EVERY=${SAVE_EVERY:-250}
STATES=${STATES:-200}
TRAIN_ARGS=${TRAIN_ARGS:-}  # extra overrides of every run (the CPU dry run: a tiny model, fp32)
DATA=${DATA:-data/gpu-probe}
RUNS_DIR=${RUNS_DIR:-runs/probe-small}
mkdir -p "$RESULTS" "$DATA"
source scripts/budgeted_run.sh  # log, training_limit_s, checkpoint_of

log "start; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo no GPU)"
for format in tops-only places-paired places-keyed; do
    [ -f "$DATA/$format.json" ] || $PROBE make "$DATA/$format.json" --format "$format" --samples "$SAMPLES" \
        --seed 1 >"$RESULTS/data-$format.log" 2>&1 &
done
wait
for format in tops-only places-paired places-keyed; do
    [ -f "$DATA/$format.json" ] || { log "no data for $format"; tail "$RESULTS/data-$format.log"; exit 1; }
done
log "data ready"

train_limit=$(training_limit_s)
log "training for at most ${train_limit}s"
train() {  # name format [overrides...]
    local name=$1 format=$2
    shift 2
    OMP_NUM_THREADS=2 timeout "$train_limit" $PY -m dreamvlx.cli train --preset blocksworld-small \
        --data.train_json "$DATA/$format.json" --data.num_workers 2 --run.out_dir "$RUNS_DIR/$name" \
        --optim.max_steps "$STEPS" --optim.batch_size "$BATCH" --run.save_every "$SAVE_EVERY" --run.keep_last 1 \
        --run.log_every 50 --run.seed 1 $TRAIN_ARGS "$@" >"$RESULTS/train-$name.log" 2>&1
    log "train $name exit status $? (124: stopped by the budget)"
}
train tops-only tops-only &
pids=($!)
train places-paired places-paired &
pids+=($!)
train places-paired-ar places-paired --objective.kind ar &
pids+=($!)
train places-keyed places-keyed &
pids+=($!)
wait "${pids[@]}"

log "evaluating"
pids=()
for run in tops-only:tops-only:32 places-paired:places-paired:72 places-paired-ar:places-paired:72 \
    places-keyed:places-keyed:120; do
    IFS=: read -r name format canvas <<<"$run"
    model=$(checkpoint_of "$RUNS_DIR/$name")
    [ -n "$model" ] || { log "no checkpoint for $name"; continue; }
    out="$RESULTS/$name"
    mkdir -p "$out"
    cp "$RUNS_DIR/$name"/{metrics.jsonl,train_config.json} "$out/" 2>/dev/null
    cp "$RUNS_DIR/$name/loss.png" "$out/" 2>/dev/null
    echo "$model" >"$out/evaluated_checkpoint.txt"
    $PROBE eval "$model" --format "$format" --canvas "$canvas" --states "$STATES" --forced "$STATES" \
        --out "$out/probe.json" >"$RESULTS/eval-$name.log" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
log "done"
