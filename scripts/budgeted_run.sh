# Helpers shared by the one-call GPU scripts (experiments/*/run.sh, gpu_probe.sh); source it, do not run it.
# Such a script runs its phases (data, training, evaluation) under one wall-clock budget of BUDGET_S
# seconds, counted by bash's SECONDS from the script's start, and logs each phase to RESULTS/timeline.log.

# log MESSAGE...: a timestamped line on stdout and in "$RESULTS/timeline.log".
log() { echo "[$(date +%T) +${SECONDS}s] $*" | tee -a "$RESULTS/timeline.log"; }

# training_limit_s: the seconds training may take so that EVAL_RESERVE_S seconds of BUDGET_S are left for the
# evaluations (at least 30).
training_limit_s() {
    local limit=$((BUDGET_S - SECONDS - EVAL_RESERVE_S))
    [ "$limit" -gt 30 ] || limit=30
    echo "$limit"
}

# checkpoint_of RUN_DIR: the run's final model, else its newest periodic checkpoint (checkpoints/LATEST),
# else nothing (the run saved none before the budget stopped it).
checkpoint_of() {
    if [ -d "$1/final" ]; then echo "$1/final"
    elif [ -f "$1/checkpoints/LATEST" ]; then echo "$1/checkpoints/$(cat "$1/checkpoints/LATEST")"
    fi
}
