#!/usr/bin/env bash
# The AR control against the diffusion model, like for like, at CPU scale (2 cores, no GPU): the same
# blocksworld-tiny model, data, step count and seed; only --objective.kind differs (diffusion:
# bidirectional attention + masked-diffusion loss + 8-step diffusion decoding; ar: causal attention +
# next-token loss + KV-cache decoding). Both run ViPlan's planning mode on all 75 problems.
# Usage (from the repository root): bash experiments/blocksworld_tiny_ar_vs_diffusion/run.sh
set -euo pipefail
HERE=experiments/blocksworld_tiny_ar_vs_diffusion
DATA=data/bw-compact
BIN=.venv/bin
[ -f "$DATA/index.json" ] || $BIN/dreamvlx data viplan --out "$DATA" --samples 40000 --seed 1 --modes planning \
    --plan-horizon 1 --prompt-style compact --cot --workers 2
for kind in diffusion ar; do
    run="runs/bw-tiny-planning-$kind"
    [ -d "$run/final" ] || OMP_NUM_THREADS=1 $BIN/dreamvlx train --preset blocksworld-tiny --objective.kind "$kind" \
        --data.train_json "$DATA/index.json" --data.image_folder "$DATA" --run.out_dir "$run" \
        --optim.max_steps 4000 --run.save_every 250 --run.log_every 20 --run.seed 1
    mkdir -p "$HERE/$kind"
    cp "$run/metrics.jsonl" "$run/loss.png" "$run/train_config.json" "$HERE/$kind/"
    $BIN/dreamvlx eval viplan --model "$run/final" --mode planning --split all --prompt-style compact --cot \
        --max-new-tokens 64 --diffusion-steps 8 --workers 2 --out "$run/eval-planning" | tee "$HERE/$kind/planning-table.txt"
    cp "$run/eval-planning/summary.json" "$HERE/$kind/planning-summary.json"
done
$BIN/python - <<'PY'
import json
from pathlib import Path

from dreamvlx.evals.viplan.report import plot_comparison

here = Path("experiments/blocksworld_tiny_ar_vs_diffusion")
summaries = {kind: json.loads((here / kind / "planning-summary.json").read_text()) for kind in ("diffusion", "ar")}
plot_comparison(summaries, here / "comparison.png")
print("wrote", here / "comparison.png")
PY
