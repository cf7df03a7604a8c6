"""``experiments/demo_model/gpu_probe.sh`` in miniature on the CPU (a 1-layer model, a few steps, a few
states): the one-call GPU probe makes its data, trains its four runs and scores each, so a GPU session's
minutes are not spent finding a broken script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNS = ("tops-only", "places-paired", "places-paired-ar", "places-keyed")
TINY = (
    "--model.hidden_size 32 --model.intermediate_size 64 --model.num_hidden_layers 1 --model.num_attention_heads 2 "
    "--model.num_key_value_heads 1 --model.vision_depth 1 --model.vision_embed_dim 32 --model.vision_num_heads 1 "
    "--model.tokenizer_vocab_size 300 --run.precision fp32"
)


@pytest.mark.timeout(600)
def test_the_gpu_probe_script_trains_and_scores_every_run(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "SAMPLES": "48",
        "STEPS": "4",
        "BATCH": "4",
        "SAVE_EVERY": "2",
        "STATES": "4",
        "BUDGET_S": "500",
        "EVAL_RESERVE_S": "200",
        "DATA": str(tmp_path / "data"),
        "RUNS_DIR": str(tmp_path / "runs"),
        "TRAIN_ARGS": TINY,
    }
    results = tmp_path / "results"
    done = subprocess.run(
        ["bash", "experiments/demo_model/gpu_probe.sh", str(results)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    timeline = (results / "timeline.log").read_text()
    assert "done" in timeline and "no checkpoint" not in timeline
    for name in RUNS:
        assert f"train {name} exit status 0" in timeline
        record = json.loads((results / name / "probe.json").read_text())
        assert record["held_out_states"] == 4
        forced = record["teacher_forced"]
        assert "section0" in forced and all(0.0 <= value <= 1.0 for value in forced.values())
        if name != "tops-only":
            assert {"places_equal", "places_no", "places_letter"} & set(forced)
        assert (results / name / "metrics.jsonl").is_file()
