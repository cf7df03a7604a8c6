#!/usr/bin/env bash
# Trains the models of the decomposed planner (decomposed_planner.py), one lane at a time, each stage from
# the weights the lane names; two lanes run side by side on a 2-core machine (THREADS=1 each, the default).
#
#   bash experiments/demo_model/train_decomposed.sh places     # goal-only 1,000 -> goal-paired 1,200 -> places-paired 2,000 + 2,000 + 2,000
#   bash experiments/demo_model/train_decomposed.sh steps      # tops-only 2,000, standing-from-places 2,000, move-from-tops 2,000, each from v2
#   bash experiments/demo_model/train_decomposed.sh multitask  # one model for every step: from dec-places (5,000), then from dec-places-more2 (5,000)
#   bash experiments/demo_model/train_decomposed.sh read       # dec-multitask2 learns to read the image (12,000 of batch 16)
#   bash experiments/demo_model/train_decomposed.sh move-ranked  # dec-read learns the move labels of chain_data.move_label (6,000 of batch 16)
#   bash experiments/demo_model/train_decomposed.sh simple-places  # the shipped model: dec-move-ranked learns the places of 3-block problems (4,000 of batch 16)
#   bash experiments/demo_model/train_decomposed.sh move-more  # dec-simple-places: more of the move call (4,000 of batch 16; not kept, finding 34)
#
# (dreamvlx.train.chain_recipe runs the places lane, dec-multitask2, dec-read, dec-move-ranked and
# dec-simple-places as one curriculum; THREADS=2 for the image lanes, which run alone.)
# Needs runs/v2-init (a copy of src/dreamvlx/assets/demo_model), data/probe-<format>.json made by
# `reasoning_probe.py make data/probe-<format>.json --format <format> --samples 40000 --seed 1`, and for
# `multitask` data/dec-multitask.json and data/dec-multitask2.json made by `reasoning_probe.py mix` (README.md
# gives the commands); its second stage starts from the places lane's last; for `read` data/read (`dreamvlx data
# viplan --out data/read --samples 48000 --seed 21 --modes grounding --questions-per-image 1 --prompt-style slots
# --cot`) and data/read-mix.json (`reasoning_probe.py read data/read data/read-scene.json`, then `mix` with the
# first 36,000 samples of data/dec-multitask2.json); for `move-ranked` data/move-ranked-mix.json (README.md, finding 31),
# for `simple-places` data/simple-places-mix.json (finding 33), for `move-more` data/move-more-mix.json (finding 34).
# Environment knobs (for tests/demo/test_train_decomposed.py, which runs every lane in miniature): RUNS_DIR,
# DATA_DIR, INIT (the weights the lanes start from), STEP_DIVISOR (every stage's steps divided by it),
# BATCH, THREADS.
# Why these lengths: each is what the step took alone (README findings 1, 12-15); the places model needs the
# copies first (finding 13), the others learn from v2 directly; its loss still fell at 2,000 steps, so it gets
# 2,000 more (a second warm-up and cosine, finding 22), and again (finding 25). The multitask model gets each
# step's own length again (finding 19: in a mixture a step needs as many steps of its own data as alone); its
# second version starts from the best places model and gives the places a third of the mixture (finding 26).
set -euo pipefail
lane=${1:?"lane: places, steps, multitask, read, move-ranked, simple-places or move-more"}
threads=${THREADS:-1}
runs=${RUNS_DIR:-runs}
data=${DATA_DIR:-data}
init=${INIT:-runs/v2-init}
divisor=${STEP_DIVISOR:-1}
common=(--preset blocksworld-tiny --data.num_workers 0 --optim.lr 1e-3 --optim.warmup_ratio 0.02
    --run.keep_last 1 --run.log_every 50 --run.seed 1)

stage() {  # stage NAME DATA_JSON STEPS FROM [IMAGE_FOLDER BATCH]: trains $runs/NAME from the weights FROM
    local name=$1 json=$2 steps=$(($3 / divisor)) from=$4 images=${5:-} batch=${BATCH:-${6:-32}}
    if [[ -f $runs/$name/final/model.safetensors ]]; then
        echo "$runs/$name/final exists: skipped"
        return
    fi
    OMP_NUM_THREADS=$threads dreamvlx train "${common[@]}" --model.init "$from" \
        --data.train_json "$json" ${images:+--data.image_folder "$images"} --run.out_dir "$runs/$name" \
        --optim.batch_size "$batch" --optim.max_steps "$steps" --run.save_every $((steps / 2))
}

case $lane in
    places)
        stage dec-goal-only "$data/probe-goal-only.json" 1000 "$init"
        stage dec-goal-paired "$data/probe-goal-paired.json" 1200 "$runs/dec-goal-only/final"
        stage dec-places "$data/probe-places-paired.json" 2000 "$runs/dec-goal-paired/final"
        stage dec-places-more "$data/probe-places-paired.json" 2000 "$runs/dec-places/final"
        stage dec-places-more2 "$data/probe-places-paired.json" 2000 "$runs/dec-places-more/final"
        ;;
    steps)
        stage dec-tops "$data/probe-tops-only.json" 2000 "$init"
        stage dec-standing "$data/probe-standing-from-places.json" 2000 "$init"
        stage dec-move "$data/probe-move-from-tops.json" 2000 "$init"
        ;;
    multitask)
        stage dec-multitask "$data/dec-multitask.json" 5000 "$runs/dec-places/final"
        stage dec-multitask2 "$data/dec-multitask2.json" 5000 "$runs/dec-places-more2/final"
        ;;
    read)
        stage dec-read "$data/read-mix.json" 12000 "$runs/dec-multitask2/final" "$data/read" 16
        ;;
    move-ranked)
        stage dec-move-ranked "$data/move-ranked-mix.json" 6000 "$runs/dec-read/final" "$data/read" 16
        ;;
    simple-places)
        stage dec-simple-places "$data/simple-places-mix.json" 4000 "$runs/dec-move-ranked/final" "$data/read" 16
        ;;
    move-more)
        stage dec-move-more "$data/move-more-mix.json" 4000 "$runs/dec-simple-places/final" "$data/read" 16
        ;;
    *)
        echo "unknown lane '$lane': places, steps, multitask, read, move-ranked, simple-places or move-more" >&2
        exit 2
        ;;
esac
