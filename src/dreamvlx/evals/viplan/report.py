"""Human-facing views of a ViPlan summary: a text table and a PNG of bar charts (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (metric key, column title) per mode: the headline success rate first, then ViPlan's action numbers.
_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "grounding": [
        ("task_accuracy", "success"),
        ("action_accuracy", "action acc"),
        ("predicate_accuracy", "pred acc"),
        ("macro_predicate_accuracy", "macro pred"),
        ("fail_ratio", "fail ratio"),
        ("actions_correct", "correct"),
        ("actions_attempted", "attempted"),
        ("actions_total", "total"),
        ("replans", "replans"),
    ],
    "planning": [
        ("task_completion_rate", "success"),
        ("action_success_rate", "action succ"),
        ("total_actions", "actions"),
        ("total_success", "succeeded"),
        ("total_failed", "failed"),
        ("unparsable_replies", "unparsable"),
    ],
}
_HEADLINE = {
    "grounding": ("task_accuracy", "action_accuracy"),
    "planning": ("task_completion_rate", "action_success_rate"),
}


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(text.rjust(w) if i else text.ljust(w) for i, (text, w) in enumerate(zip(row, widths)))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_table(summary: dict[str, Any]) -> str:
    """ViPlan's metrics as text: one row per split (and all); per-predicate accuracy for grounding."""
    mode = summary["mode"]
    columns = _COLUMNS[mode]
    rows = [
        [name, str(m["episodes"])] + [_cell(m[key]) for key, _ in columns]
        for name, m in [*summary["splits"].items(), ("all", summary["all"])]
    ]
    text = f"ViPlan BlocksWorld, {mode} mode\n" + _table(
        ["split", "episodes"] + [t for _, t in columns], rows
    )
    if mode == "grounding":
        predicates = sorted(summary["all"]["per_predicate"])
        rows = [
            [name]
            + [
                _cell(m["per_predicate"][p]["accuracy"]) if p in m["per_predicate"] else "-"
                for p in predicates
            ]
            for name, m in [*summary["splits"].items(), ("all", summary["all"])]
        ]
        text += "\n\nPredicate accuracy (enumeration answers)\n" + _table(["split", *predicates], rows)
    return text


def plot_summary(summary: dict[str, Any], path: Path) -> None:
    """Bar charts: success and action metric per split; for grounding also accuracy per predicate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mode = summary["mode"]
    splits = list(summary["splits"])
    grounding = mode == "grounding"
    fig, axes = plt.subplots(1, 2 if grounding else 1, figsize=(11 if grounding else 6, 4), squeeze=False)
    ax = axes[0][0]
    width = 0.38
    for offset, key in zip((-width / 2, width / 2), _HEADLINE[mode]):
        values = [summary["splits"][s][key] for s in splits]
        bars = ax.bar([i + offset for i in range(len(splits))], values, width, label=key.replace("_", " "))
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(range(len(splits)), splits)
    ax.set_ylim(0, 1.1)
    ax.set_title(f"ViPlan BlocksWorld {mode}")
    ax.legend(loc="upper right", fontsize=8)
    if grounding:
        ax = axes[0][1]
        predicates = sorted(summary["all"]["per_predicate"])
        step = 0.8 / max(len(splits), 1)
        for i, s in enumerate(splits):
            stats = summary["splits"][s]["per_predicate"]
            values = [stats[p]["accuracy"] if p in stats else 0.0 for p in predicates]
            ax.bar(
                [j + (i - (len(splits) - 1) / 2) * step for j in range(len(predicates))],
                values,
                step,
                label=s,
            )
        ax.set_xticks(range(len(predicates)), predicates)
        ax.set_ylim(0, 1.1)
        ax.set_title("predicate accuracy (enumeration)")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_comparison(summaries: dict[str, dict[str, Any]], path: Path) -> None:
    """Several runs side by side per split: for each mode present, a panel with its headline success metric
    and one with its action metric (``_HEADLINE``).

    ``summaries`` maps a run label (e.g. ``"diffusion"``) to a summary of ``runner.summarize``; runs of both
    modes may be mixed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not summaries:
        raise ValueError("plot_comparison needs at least one summary")
    modes = sorted({s["mode"] for s in summaries.values()}, key=list(_HEADLINE).index)
    panels = [(mode, key) for mode in modes for key in _HEADLINE[mode]]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (mode, key) in zip(axes[0], panels):
        runs = {label: s for label, s in summaries.items() if s["mode"] == mode}
        splits = list(next(iter(runs.values()))["splits"])
        width = 0.8 / len(runs)
        for i, (label, summary) in enumerate(runs.items()):
            values = [summary["splits"][s][key] for s in splits]
            xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(splits))]
            ax.bar_label(ax.bar(xs, values, width, label=label), fmt="%.2f", fontsize=8)
        ax.set_xticks(range(len(splits)), splits)
        ax.set_ylim(0, 1.1)
        ax.set_title(f"ViPlan {mode}: {key.replace('_', ' ')}")
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
