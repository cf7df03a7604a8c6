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


def _grouped_bars(
    ax: Any,
    categories: list[str],
    series: dict[str, list[float]],
    title: str,
    group_width: float = 0.8,
    value_labels: bool = True,
    legend_loc: str | None = "upper right",
) -> None:
    """One bar per (series, category), the series side by side within each category, on a 0-1.1 axis;
    ``legend_loc`` None: no legend in the panel (the caller draws one for the figure)."""
    width = group_width / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(categories))]
        bars = ax.bar(xs, values, width, label=label)
        if value_labels:
            ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(range(len(categories)), categories)
    ax.set_ylim(0, 1.1)
    ax.set_title(title)
    if legend_loc is not None:
        ax.legend(loc=legend_loc, fontsize=8)


def _save(fig: Any, path: Path, bottom: float = 0.0) -> None:
    """Lay out (panels above ``bottom``, a fraction of the height kept free for a figure legend) and write."""
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=(0.0, bottom, 1.0, 1.0))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _figure(panels: int, panel_width: float, height: float = 4.0) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(panel_width * panels, height), squeeze=False)
    return fig, list(axes[0])


def plot_summary(summary: dict[str, Any], path: Path) -> None:
    """Bar charts: success and action metric per split; for grounding also accuracy per predicate."""
    mode = summary["mode"]
    splits = list(summary["splits"])
    grounding = mode == "grounding"
    fig, axes = _figure(2, 5.5) if grounding else _figure(1, 6)
    headline = {key.replace("_", " "): [summary["splits"][s][key] for s in splits] for key in _HEADLINE[mode]}
    _grouped_bars(axes[0], splits, headline, f"ViPlan BlocksWorld {mode}", group_width=0.76)
    if grounding:
        predicates = sorted(summary["all"]["per_predicate"])
        accuracy = {}
        for split in splits:
            stats = summary["splits"][split]["per_predicate"]
            accuracy[split] = [stats[p]["accuracy"] if p in stats else 0.0 for p in predicates]
        _grouped_bars(
            axes[1], predicates, accuracy, "predicate accuracy (enumeration)",
            value_labels=False, legend_loc="lower right",
        )  # fmt: skip
    _save(fig, path)


_LABELLED_RUNS = 6  # plot_comparison: most runs whose bars carry value labels


def plot_comparison(summaries: dict[str, dict[str, Any]], path: Path) -> None:
    """Several runs side by side per split: for each mode present, a panel with its headline success metric
    and one with its action metric (``_HEADLINE``).

    ``summaries`` maps a run label (e.g. ``"diffusion"``) to a summary of ``runner.summarize``; runs of both
    modes may be mixed. A split that a run lacks (not evaluated) is left blank. The legend goes below the
    panels, where it hides no bar; beyond ``_LABELLED_RUNS`` runs the bars carry no value labels (they would
    overlap).
    """
    if not summaries:
        raise ValueError("plot_comparison needs at least one summary")
    modes = sorted({s["mode"] for s in summaries.values()}, key=list(_HEADLINE).index)
    panels = [(mode, key) for mode in modes for key in _HEADLINE[mode]]
    legend_columns = 3
    legend_height = 0.25 * -(-len(summaries) // legend_columns) + 0.1  # inches: one line per row of labels
    fig, axes = _figure(len(panels), 5, height=4.0 + legend_height)
    for ax, (mode, key) in zip(axes, panels):
        runs = {label: s for label, s in summaries.items() if s["mode"] == mode}
        splits = list(dict.fromkeys(split for summary in runs.values() for split in summary["splits"]))
        values = {
            label: [summary["splits"][s][key] if s in summary["splits"] else float("nan") for s in splits]
            for label, summary in runs.items()
        }
        title = f"ViPlan {mode}: {key.replace('_', ' ')}"
        labelled = len(runs) <= _LABELLED_RUNS
        _grouped_bars(ax, splits, values, title, value_labels=labelled, legend_loc=None)
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="lower center",
        ncol=legend_columns,
        fontsize=8,
        frameon=False,
    )
    _save(fig, path, bottom=legend_height / (4.0 + legend_height))
