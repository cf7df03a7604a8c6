"""Turn the GPU machine's output of ``run.sh`` into this folder's committed results.

    python experiments/blocksworld_small_gpu/collect.py RUNS_DIR [RUNS_DIR ...]

Each ``RUNS_DIR`` is a ``runs/`` folder from the GPU machine (later folders add evaluations that an
earlier one lacks). For every run it copies the training record (``train_config.json``,
``metrics.jsonl``, ``loss.png``, ``evaluated_checkpoint.txt``) and merges the per-split evaluations
(``eval-<mode>-<split>/``) into one ``<mode>-summary.json`` (+ ``.png`` and ``-table.txt``), scored
from the episode records with ViPlan's metrics (``runner.score_records``); then it draws
``comparison.png`` over all runs.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from dreamvlx.evals.viplan.report import format_table, plot_comparison, plot_summary
from dreamvlx.evals.viplan.runner import score_records

HERE = Path(__file__).resolve().parent
RUNS = ("small-diffusion", "small-ar", "tiny-diffusion")
MODES = ("planning", "grounding")
SPLITS = ("simple", "medium", "hard")
RECORD_FILES = ("train_config.json", "metrics.jsonl", "loss.png", "evaluated_checkpoint.txt")


def merged_summary(split_dirs: dict[str, Path]) -> dict[str, Any]:
    """One summary (the layout of ``runner.summarize``) from evaluations run one split at a time."""
    parts = {split: json.loads((folder / "summary.json").read_text()) for split, folder in split_dirs.items()}
    mode = next(iter(parts.values()))["mode"]
    records = {
        split: [json.loads(p.read_text()) for p in sorted((folder / "episodes" / split).glob("*.json"))]
        for split, folder in split_dirs.items()
    }
    for split, part in parts.items():
        if part["splits"][split]["episodes"] != len(records[split]):
            raise ValueError(f"{split_dirs[split]}: summary and episode records disagree")
    return {
        "mode": mode,
        "config": next(iter(parts.values()))["config"],
        "max_steps": {split: part["max_steps"][split] for split, part in parts.items()},
        **score_records(records, mode),
        "evaluated_splits": list(parts),
    }


def main(runs_dirs: list[Path]) -> None:
    comparison: dict[str, dict[str, Any]] = {}
    for name in RUNS:
        out = HERE / name
        out.mkdir(exist_ok=True)
        for runs_dir in runs_dirs:
            for file in RECORD_FILES:
                if (runs_dir / name / file).exists():
                    shutil.copy(runs_dir / name / file, out / file)
        for mode in MODES:
            split_dirs = {}
            for split in SPLITS:
                for runs_dir in runs_dirs:
                    folder = runs_dir / name / f"eval-{mode}-{split}"
                    if (folder / "summary.json").exists():
                        split_dirs[split] = folder
            if not split_dirs:
                continue
            summary = merged_summary(split_dirs)
            (out / f"{mode}-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            (out / f"{mode}-table.txt").write_text(format_table(summary) + "\n")
            plot_summary(summary, out / f"{mode}-summary.png")
            comparison[f"{name} {mode}"] = summary
            print(f"{name} {mode}: splits {', '.join(split_dirs)}")
    plot_comparison(comparison, HERE / "comparison.png")
    print("wrote", HERE / "comparison.png")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main([Path(arg) for arg in sys.argv[1:]])
