"""Running ViPlan episodes over problem splits, in parallel processes, and saving what they produced.

Outputs of ``write_outputs(out_dir, ...)``:
- ``episodes/<split>/<problem>.json``: the full episode record (every prompt, reply, action, outcome);
- ``summary.json``: the run settings and ViPlan's metrics per split and over all episodes;
- ``summary.png``: the same numbers as bar charts (``dreamvlx.evals.viplan.report``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dreamvlx.envs.blocksworld.problems import Problem
from dreamvlx.evals.viplan.backends import BackendSpec, Mode, VLMBackend, make_backend
from dreamvlx.evals.viplan.grounding import GroundingConfig, run_grounding_episode
from dreamvlx.evals.viplan.metrics import grounding_metrics, planning_metrics
from dreamvlx.evals.viplan.planning import MAX_STEPS, PlanningConfig, run_planning_episode
from dreamvlx.evals.viplan.querying import ImageSource


@dataclass(frozen=True)
class RunConfig:
    """One evaluation run.

    Attributes:
        mode: ``"grounding"`` or ``"planning"``.
        backend: the model to build in every worker.
        max_steps: overrides the budget (grounding: attempted actions, default 20; planning: steps,
            default 10/20/30 by split).
        render: render images even when the backend does not need them.
        cot: use ViPlan's chain-of-thought prompt files.
        exact_viplan: keep ViPlan's grounding-prompt quirk (question without its final "?").
        enum_batch_size: grounding questions per backend call during enumeration.
        seed: run seed (episode seeds derive from it and the problem name).
        prompt_style: ``"viplan"`` (the prompt files), ``"compact"`` or ``"slots"`` (per-query content only,
            for small models trained from scratch; ``dreamvlx.envs.blocksworld.prompts``).
    """

    mode: Mode
    backend: BackendSpec
    max_steps: int | None = None
    render: bool = False
    cot: bool = False
    exact_viplan: bool = True
    enum_batch_size: int = 4
    seed: int = 1
    prompt_style: str = "viplan"


def step_budget(config: RunConfig, split: str) -> int:
    """Action budget of an episode: the override, else ViPlan's default for the mode and split."""
    if config.max_steps is not None:
        return config.max_steps
    if config.mode == "grounding":
        return GroundingConfig.max_actions
    if split not in MAX_STEPS:
        raise ValueError(f"no default planning step limit for split {split!r}; pass max_steps (--max-steps)")
    return MAX_STEPS[split]


def run_episode(split: str, problem: Problem, backend: VLMBackend, config: RunConfig) -> dict[str, Any]:
    """One episode of ``config.mode`` on ``problem``."""
    images = ImageSource(enabled=config.render or backend.needs_image)
    budget = step_budget(config, split)
    if config.mode == "grounding":
        settings = GroundingConfig(
            budget, config.enum_batch_size, config.cot, config.exact_viplan, config.seed, config.prompt_style
        )
        record = run_grounding_episode(problem, backend, images, settings)
    elif config.mode == "planning":
        record = run_planning_episode(
            problem, backend, images, PlanningConfig(budget, config.cot, config.seed, config.prompt_style)
        )
    else:
        raise ValueError(f"unknown mode {config.mode!r}; use 'grounding' or 'planning'")
    return {"split": split, **record}


_worker_backend: VLMBackend | None = None
_worker_config: RunConfig | None = None


def _init_worker(config: RunConfig, threads: int) -> None:
    global _worker_backend, _worker_config
    import torch

    torch.set_num_threads(threads)  # workers x threads = cores: oversubscribed BLAS threads thrash
    _worker_backend, _worker_config = make_backend(config.backend), config


def _run_job(job: tuple[int, str, Problem]) -> tuple[int, dict[str, Any]]:
    index, split, problem = job
    return index, run_episode(split, problem, _worker_backend, _worker_config)


def evaluate(
    problems: Mapping[str, Sequence[Problem]], config: RunConfig, workers: int = 1, progress: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """Run every problem of every split; ``workers`` > 1 uses that many spawned processes.

    Returns the episode records per split, in problem order.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    for split in problems:
        step_budget(config, split)
    jobs = [(i, split, p) for i, (split, p) in enumerate((s, p) for s, ps in problems.items() for p in ps)]
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=f"viplan {config.mode}", unit="episode", disable=not progress)
    if workers == 1:
        backend = make_backend(config.backend)
        for index, split, problem in jobs:
            results[index] = run_episode(split, problem, backend, config)
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")
        processes = min(workers, len(jobs))
        threads = max(1, (os.cpu_count() or 1) // processes)
        with context.Pool(processes, initializer=_init_worker, initargs=(config, threads)) as pool:
            for index, record in pool.imap_unordered(_run_job, jobs):
                results[index] = record
                bar.update()
    bar.close()
    out: dict[str, list[dict[str, Any]]] = {split: [] for split in problems}
    for record in results:
        out[record["split"]].append(record)
    return out


def score_records(records: Mapping[str, Sequence[dict[str, Any]]], mode: str) -> dict[str, Any]:
    """ViPlan's metrics of ``mode`` from episode records: ``{"splits": {split: metrics}, "all": metrics}``."""
    score = grounding_metrics if mode == "grounding" else planning_metrics
    return {
        "splits": {split: score(rs) for split, rs in records.items()},
        "all": score([r for rs in records.values() for r in rs]),
    }


def summarize(records: Mapping[str, Sequence[dict[str, Any]]], config: RunConfig) -> dict[str, Any]:
    """ViPlan metrics per split and over all episodes, with the run settings."""
    return {
        "mode": config.mode,
        "config": asdict(config),
        "max_steps": {split: step_budget(config, split) for split in records},
        **score_records(records, config.mode),
    }


def write_outputs(
    out_dir: Path, records: Mapping[str, Sequence[dict[str, Any]]], summary: dict[str, Any]
) -> None:
    """Write per-episode JSON, ``summary.json`` and ``summary.png`` under ``out_dir``."""
    from dreamvlx.evals.viplan.report import plot_summary

    out_dir = Path(out_dir)
    for split, split_records in records.items():
        folder = out_dir / "episodes" / split
        folder.mkdir(parents=True, exist_ok=True)
        for record in split_records:
            (folder / f"{record['problem']}.json").write_text(json.dumps(record, indent=1))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_summary(summary, out_dir / "summary.png")
