#!/usr/bin/env bash
# One GPU, one pass: blocksworld-small in both variants (diffusion and its AR control, like for like:
# same data, steps, batch, seed; only --objective.kind differs) and a blocksworld-tiny diffusion model
# (the demo's size, trained on the GPU with a 4x larger batch), then every model evaluated in both
# ViPlan modes on all 75 problems. The GPU tests (`pytest -m gpu`) run while the data is generated.
#
# Usage (repository root of the GPU machine, PyTorch present): bash experiments/blocksworld_small_gpu/run.sh RESULTS
# RESULTS receives logs, metrics, loss curves, evaluation summaries and the tiny model's final checkpoint.
# The phases share one wall-clock budget (BUDGET_S seconds): training is stopped by `timeout` in time
# for the evaluations, which then use the newest periodic checkpoint (the run's `checkpoints/LATEST`).
# Every knob is an environment variable so that the same script runs on CPU in miniature.
set -uo pipefail
RESULTS=${1:?usage: run.sh RESULTS_FOLDER}
PY=${PYTHON:-python3}
DX="$PY -m dreamvlx.cli"
BUDGET_S=${BUDGET_S:-540}
SAMPLES=${SAMPLES:-80000}
DATA_WORKERS=${DATA_WORKERS:-14}
LOADER_WORKERS=${LOADER_WORKERS:-4}
SMALL_STEPS=${SMALL_STEPS:-3000}
TINY_STEPS=${TINY_STEPS:-3000}
SAVE_EVERY=${SAVE_EVERY:-250}
EVAL_RESERVE_S=${EVAL_RESERVE_S:-170}
EVAL_WORKERS=${EVAL_WORKERS:-2}
EVAL_SPLITS=${EVAL_SPLITS:-simple medium hard}
EVAL_ARGS=${EVAL_ARGS:-}
SMALL_ARGS=${SMALL_ARGS:-}  # extra overrides of the small runs (the CPU dry run: fp32, a small batch)
DATA=data/bw-layout
mkdir -p "$RESULTS"
source scripts/budgeted_run.sh  # log, training_limit_s, checkpoint_of

log "start; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo no GPU)"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$RESULTS/timeline.log"

nvidia-smi dmon -s um -d 10 >"$RESULTS/gpu_dmon.log" 2>&1 &
dmon=$!
# GPU tests while the CPU generates data (the GPU is idle then).
(timeout "${TEST_TIMEOUT:-200}" $PY -m pytest -q -p no:cacheprovider -m gpu tests/modeling/test_modeling_gpu.py \
    tests/engine/test_engine_gpu.py tests/diffusion/test_diffusion_generation.py >"$RESULTS/gpu_tests.log" 2>&1
 echo "exit status $?" >>"$RESULTS/gpu_tests.log") &

[ -f "$DATA/index.json" ] || $DX data viplan --out "$DATA" --samples "$SAMPLES" --seed 3 --modes grounding,planning \
    --questions-per-image 1 --plan-horizon 1 --prompt-style compact --cot --workers "$DATA_WORKERS" --no-progress \
    >"$RESULTS/data.log" 2>&1 || { log "data generation failed"; tail "$RESULTS/data.log"; exit 1; }
log "data ready"

train_limit=$(training_limit_s)
log "training for at most ${train_limit}s"
train() {  # name preset steps [overrides...]
    local name=$1 preset=$2 steps=$3
    shift 3
    OMP_NUM_THREADS=2 timeout "$train_limit" $DX train --preset "$preset" --optim.max_steps "$steps" --data.train_json "$DATA/index.json" \
        --data.image_folder "$DATA" --data.num_workers "$LOADER_WORKERS" --run.out_dir "runs/$name" \
        --run.save_every "$SAVE_EVERY" --run.log_every 20 --run.seed 3 "$@" >"$RESULTS/train-$name.log" 2>&1
    log "train $name exit status $? (124: stopped by the budget)"
}
train small-diffusion blocksworld-small "$SMALL_STEPS" $SMALL_ARGS &
pids=($!)
train small-ar blocksworld-small "$SMALL_STEPS" --objective.kind ar $SMALL_ARGS &
pids+=($!)
train tiny-diffusion blocksworld-tiny "$TINY_STEPS" --optim.batch_size 32 --optim.warmup_ratio 0.03 &
pids+=($!)
wait "${pids[@]}"

pids=()
log "evaluating for at most $((BUDGET_S - SECONDS - 15))s"
for name in small-diffusion small-ar tiny-diffusion; do
    model=$(checkpoint_of "runs/$name")
    [ -n "$model" ] || { log "no checkpoint for $name"; continue; }
    echo "$model" >"runs/$name/evaluated_checkpoint.txt"
    [ "$name" = tiny-diffusion ] && cp -r "$model" runs/tiny-diffusion/model && rm -f runs/tiny-diffusion/model/*.pt
    for mode in planning grounding; do
        if [ "$mode" = planning ]; then tokens=(--max-new-tokens 64 --diffusion-steps 8)
        else tokens=(--max-new-tokens 48 --diffusion-steps 6 --enum-batch-size 64); fi
        (for split in $EVAL_SPLITS; do  # one split at a time: a split cut off by the budget costs only itself
            left=$((BUDGET_S - SECONDS - 15))
            [ "$left" -gt 10 ] || { log "eval $name $mode $split skipped: budget spent"; continue; }
            timeout "$left" $DX eval viplan --model "$model" --mode "$mode" --split "$split" \
                $EVAL_ARGS --prompt-style compact --cot "${tokens[@]}" --workers "$EVAL_WORKERS" \
                --out "runs/$name/eval-$mode-$split" >"$RESULTS/eval-$name-$mode-$split.log" 2>&1
            log "eval $name $mode $split exit status $?"
        done) &
        pids+=($!)
    done
done
wait "${pids[@]}"
kill "$dmon" 2>/dev/null

for name in small-diffusion small-ar tiny-diffusion; do
    [ -f "runs/$name/metrics.jsonl" ] && [ ! -f "runs/$name/loss.png" ] && $PY -c \
        "from dreamvlx.train.metrics import plot_loss; plot_loss('runs/$name/metrics.jsonl', 'runs/$name/loss.png', title='$name loss')"
done
tar -czf "$RESULTS/runs.tar.gz" --exclude='checkpoints' --exclude='*.pt' runs/*/metrics.jsonl runs/*/loss.png \
    runs/*/train_config.json runs/*/evaluated_checkpoint.txt runs/*/eval-* runs/tiny-diffusion/model 2>>"$RESULTS/timeline.log"
log "done"
