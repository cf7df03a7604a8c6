"""Plot the places call's exact rate, stage by stage, for the curriculum from fresh weights and for the v2 line.

Reads the ``reasoning_probe.py places-eval`` files ``{full,from_v2}/<stage>-places.json`` beside this script
(held-out states, true scene and goal given) and writes ``places_by_stage.png``: one panel per split, one line
per start. Stages without a file are left out of their line.

    python experiments/demo_model/demo_train/plot_places.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
STAGES = ("dec-places", "dec-places-more", "dec-places-more2", "dec-multitask2")
LINES = {"full": "fresh weights (demo --train)", "from_v2": "v2 line (shipped model's start)"}
SPLITS = ("simple", "medium", "hard")


def exact_rates(line: str) -> dict[str, list[tuple[int, float]]]:
    """Per split, ``(stage index, exact rate)`` for the stages of ``line`` that have a places-eval file."""
    rates: dict[str, list[tuple[int, float]]] = {split: [] for split in SPLITS}
    for index, stage in enumerate(STAGES):
        path = HERE / line / f"{stage}-places.json"
        if not path.is_file():
            continue
        held_out = json.loads(path.read_text())["places"]["held_out"]
        for split in SPLITS:
            value = held_out[split]
            rates[split].append((index, value["exact"] if isinstance(value, dict) else value))
    return rates


def main() -> None:
    figure, axes = plt.subplots(1, len(SPLITS), figsize=(12, 3.6), sharey=True)
    for line, label in LINES.items():
        rates = exact_rates(line)
        for axis, split in zip(axes, SPLITS):
            if rates[split]:
                xs, ys = zip(*rates[split])
                axis.plot(xs, ys, marker="o", label=label)
    for axis, split in zip(axes, SPLITS):
        axis.set_title(f"{split} (200 held-out states)")
        axis.set_xticks(range(len(STAGES)), STAGES, rotation=25, ha="right", fontsize=8)
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("places call exactly right")
    axes[0].legend(fontsize=8, loc="lower right")
    figure.suptitle("the places call after each curriculum stage (true scene and goal given)")
    figure.tight_layout()
    out = HERE / "places_by_stage.png"
    figure.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
