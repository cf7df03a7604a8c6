"""Probe reports' ViPlan scores side by side: one PNG of bar charts (success and action success per split).

Reads the ``benchmark_text_scene`` of reports written by ``reasoning_probe.py eval`` or
``decomposed_planner.py``, or an evaluator's planning ``summary.json`` (``dreamvlx demo``), and draws them
with the evaluator's own ``plot_comparison``::

    python experiments/demo_model/plot_benchmark.py OUT.png --run "move alone=probe-move.json" \\
        --run "chain=chain.json"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dreamvlx.evals.viplan.report import plot_comparison


def planning_summary(report: dict[str, Any], source: str = "report") -> dict[str, Any]:
    """A probe report's benchmark as a summary ``plot_comparison`` reads (planning mode, per split); an
    evaluator's planning ``summary.json`` (``dreamvlx eval viplan``, ``dreamvlx demo``) as it is."""
    if report.get("mode") == "planning" and "splits" in report:
        return report
    if "benchmark_text_scene" not in report:
        raise ValueError(f"{source} has no benchmark_text_scene: it was scored without the benchmark")
    splits = {
        split: {"task_completion_rate": scores["success"], "action_success_rate": scores["action_success"]}
        for split, scores in report["benchmark_text_scene"].items()
    }
    return {"mode": "planning", "splits": splits}


def parse_run(text: str) -> tuple[str, Path]:
    """``LABEL=PATH`` of ``--run``, split at the last ``=`` (a label may hold one, as ``T=1``)."""
    label, separator, path = text.rpartition("=")
    if not separator or not label or not path:
        raise argparse.ArgumentTypeError(f"--run wants LABEL=PATH, got {text!r}")
    return label, Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--run", type=parse_run, action="append", required=True, help="LABEL=REPORT.json")
    args = parser.parse_args()
    summaries = {label: planning_summary(json.loads(path.read_text()), str(path)) for label, path in args.run}
    plot_comparison(summaries, args.out)


if __name__ == "__main__":
    main()
