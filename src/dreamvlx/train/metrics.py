"""Run observability: JSON-lines metrics, optional TensorBoard, and the loss-curve PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Appends one JSON object per logged step to ``metrics.jsonl`` (and TensorBoard when asked)."""

    def __init__(self, out_dir: str | Path, tensorboard: bool = False) -> None:
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def log(self, step: int, values: dict[str, Any]) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": step, **values}) + "\n")
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def loss_records(metrics_path: str | Path) -> dict[int, dict[str, Any]]:
    """The records of ``metrics.jsonl`` that hold a loss, by optimizer step, in step order. A resumed run
    appends to the same file; when steps repeat, the last record of a step wins."""
    by_step = {r["step"]: r for r in read_metrics(metrics_path) if "loss" in r}
    return dict(sorted(by_step.items()))


def plot_loss(metrics_path: str | Path, png_path: str | Path, title: str = "training loss") -> None:
    """Loss (and learning rate) against optimizer step, from ``metrics.jsonl`` (``loss_records``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_step = loss_records(metrics_path)
    steps = list(by_step)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [by_step[s]["loss"] for s in steps], lw=1.2, label="loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if steps and "lr" in by_step[steps[0]]:
        ax2 = ax.twinx()
        ax2.plot(steps, [by_step[s]["lr"] for s in steps], color="tab:orange", lw=0.8, alpha=0.7)
        ax2.set_ylabel("learning rate", color="tab:orange")
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
