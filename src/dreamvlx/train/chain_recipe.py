"""The chained demo model's recipe: a curriculum of ``dreamvlx train`` stages over the chained planner's calls.

The shipped demo model (``dreamvlx/assets/demo_model``) answers the five calls of
``dreamvlx.envs.blocksworld.chain``. It was made by these stages, each a ``dreamvlx train --preset
blocksworld-tiny`` run (lr 1e-3, 2% warm-up, cosine, seed 1) from the previous stage's weights, on data of
``dreamvlx.envs.blocksworld.chain_data`` (``CURRICULUM``):

1. ``dec-goal-only``: copy the goal's layout (format ``goal``, 1,000 steps), then ``dec-goal-paired``: the
   same copy out of the places prompt (``goal-paired``, 1,200): the letter copy the comparison needs, asked
   at every place;
2. ``places`` three times 2,000 steps (``dec-places``, ``-more``, ``-more2``; each stage a new warm-up and
   cosine, as the shipped model was made);
3. ``dec-multitask2``: places, move (as it was labelled then: ``move-search``), standing and tops mixed
   40 : 40 : 25 : 15 (5,000 steps);
4. ``dec-read``: image -> scene (``read``), with the multitask data replayed (48,000 : 36,000 samples;
   12,000 steps of batch 16);
5. ``dec-move-ranked``: the move call with the labels of ``chain_data.move_label`` (``move``), with read,
   places, standing and tops replayed (40,000 : 16,000 : 12,000 : 8,000 : 4,000; 6,000 steps of batch 16);
6. ``dec-simple-places``: the places call on the simple split's problems (``places-simple``), with places of
   every split, read, standing, tops and move replayed (20,000 : 12,000 : 16,000 : 6,000 : 4,000 : 16,000;
   4,000 steps of batch 16). The shipped model's ``places-simple`` samples were drawn with seed 2 (this
   recipe draws every text format with seed 1; the distributions are the same).

The shipped model ran them from the v2 demo model (``experiments/demo_model/README.md``), a GPU-trained
single-call model whose vision tower already read stack heights; ``run_curriculum`` starts from any
checkpoint given, by default from fresh weights with the shipped model's architecture and tokenizer.
Commands, logs and measurements of each stage are in ``experiments/demo_model/README.md``.

``scale`` divides every stage's steps and samples (``scale=100``: a look at the whole pipeline in minutes;
the figures of the README are from ``scale=1``); a batch is never larger than its stage's data. A stage whose ``final`` checkpoint exists is skipped, so an
interrupted curriculum resumes at its first unfinished stage (the trainer itself resumes within a stage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

READ_SEED = 21
TEXT_SEED = 1


@dataclass(frozen=True)
class Stage:
    """One ``dreamvlx train`` run: ``parts`` are ``(format, samples)`` of ``chain_data.FORMATS``, or of an
    earlier stage's name (that stage's data replayed, its first samples), mixed and shuffled."""

    name: str
    parts: tuple[tuple[str, int], ...]
    steps: int
    batch_size: int = 32


CURRICULUM: tuple[Stage, ...] = (
    Stage("dec-goal-only", (("goal", 40000),), 1000),
    Stage("dec-goal-paired", (("goal-paired", 40000),), 1200),
    Stage("dec-places", (("places", 40000),), 2000),
    Stage("dec-places-more", (("places", 40000),), 2000),
    Stage("dec-places-more2", (("places", 40000),), 2000),
    Stage(
        "dec-multitask2",
        (("places", 40000), ("move-search", 40000), ("standing", 25000), ("tops", 15000)),
        5000,
    ),
    Stage("dec-read", (("read", 48000), ("dec-multitask2", 36000)), 12000, batch_size=16),
    Stage(
        "dec-move-ranked",
        (("move", 40000), ("read", 16000), ("places", 12000), ("standing", 8000), ("tops", 4000)),
        6000,
        batch_size=16,
    ),
    Stage(
        "dec-simple-places",
        (
            ("places-simple", 20000),
            ("places", 12000),
            ("read", 16000),
            ("standing", 6000),
            ("tops", 4000),
            ("move", 16000),
        ),
        4000,
        batch_size=16,
    ),
)
"""The stages, named as the runs that made the shipped model (``experiments/demo_model/train_decomposed.sh``);
a stage's name is never a format's, so a part names one or the other."""

FORMAT_SAMPLES = {
    "read": 48000,
    **dict.fromkeys(("goal", "goal-paired", "places", "standing", "tops", "move", "move-search"), 40000),
    "places-simple": 20000,
}
"""Samples written per format (each stage takes the first ones it asks for)."""


def stage_data(data_dir: Path, stage: Stage, scale: int = 1) -> Path:
    """The training file of ``stage`` in ``data_dir`` (``<name>.json``), written with its parts unless it
    exists; each format's samples are written once (``<format>.json``) and shared by the stages. Each file
    is written whole or not at all (``chain_data.write_rows``), so one that exists is complete."""
    from dreamvlx.envs.blocksworld.chain_data import mix_data, write_call_data

    out = data_dir / f"{stage.name}.json"
    if out.is_file():
        return out
    parts = []
    for source, samples in stage.parts:
        count = max(1, samples // scale)
        earlier = data_dir / f"{source}.json"
        if source in {s.name for s in CURRICULUM}:
            if not earlier.is_file():
                raise FileNotFoundError(
                    f"stage {stage.name} replays {source}, whose data {earlier} is missing"
                )
        elif not earlier.is_file():
            seed = READ_SEED if source == "read" else TEXT_SEED
            write_call_data(earlier, source, max(1, FORMAT_SAMPLES[source] // scale), seed)
        parts.append((earlier, count))
    return mix_data(out, parts, seed=0)


def fresh_init(template: Path, out: Path) -> Path:
    """A checkpoint with ``template``'s architecture and processor (tokenizer, image pipeline) and freshly
    initialised weights, in ``out`` (kept when it exists)."""
    from dreamvlx.config import DreamVLConfig
    from dreamvlx.modeling.dream_vl import DreamVL
    from dreamvlx.processing import DreamVLProcessor

    if not (out / "model.safetensors").is_file():
        DreamVL(DreamVLConfig.from_json_file(template / "config.json")).save_pretrained(out)
        DreamVLProcessor.from_pretrained(template).save_pretrained(out)
    return out


def run_curriculum(
    out_dir: Path,
    init: Path,
    scale: int = 1,
    overrides: Sequence[str] = (),
    stages: Sequence[Stage] = CURRICULUM,
) -> Path:
    """Run ``stages`` in order from the checkpoint ``init`` (data in ``out_dir/data``, stage ``s`` in
    ``out_dir/<s.name>``); ``overrides`` (``--section.key value``) go to every stage. Writes the record of
    ``write_curriculum_record`` at the end. Returns the last stage's ``final`` checkpoint."""
    from dreamvlx.settings import apply_overrides, parse_override_args
    from dreamvlx.train.cli import run
    from dreamvlx.train.presets import get_preset

    if scale < 1:
        raise ValueError(f"scale divides steps and samples and must be at least 1, got {scale}")
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    previous = init
    for number, stage in enumerate(stages, start=1):
        final = out_dir / stage.name / "final"
        steps = max(1, stage.steps // scale)
        batch = min(stage.batch_size, sum(max(1, samples // scale) for _, samples in stage.parts))
        data = stage_data(data_dir, stage, scale)
        if (final / "model.safetensors").is_file():
            print(f"stage {number}/{len(stages)} {stage.name}: {final} exists, skipped", flush=True)
            previous = final
            continue
        print(f"stage {number}/{len(stages)} {stage.name}: {steps} steps on {data.name}", flush=True)
        args = [
            "--model.init", str(previous), "--data.train_json", str(data), "--data.image_folder", str(data_dir),
            "--data.num_workers", "0", "--run.out_dir", str(out_dir / stage.name), "--run.seed", "1",
            "--optim.lr", "1e-3", "--optim.warmup_ratio", "0.02", "--optim.batch_size", str(batch),
            "--optim.max_steps", str(steps), "--run.save_every", str(max(1, steps // 2)), "--run.keep_last", "1",
            "--run.log_every", "50", *overrides,
        ]  # fmt: skip
        cfg = apply_overrides(get_preset("blocksworld-tiny"), parse_override_args(args))
        cfg.validate()
        result = run(cfg)
        if result.final_dir is None:
            raise RuntimeError(f"stage {stage.name} ended without a final checkpoint")
        previous = result.final_dir
    write_curriculum_record(out_dir, stages)
    return previous


def write_curriculum_record(out_dir: Path, stages: Sequence[Stage] = CURRICULUM) -> dict:
    """``out_dir/curriculum.json`` and ``curriculum_loss.png``: each stage's training at a glance, for the
    stages of ``stages`` that have metrics (a stopped curriculum gives a partial record).

    Per stage: steps logged, the last logged loss and the mean of the last five records (each record is the
    mean of ``--run.log_every`` steps), mean tokens/s, whether its ``final`` checkpoint exists, and its span
    in seconds from ``train_config.json``'s write to ``metrics.jsonl``'s last write (wall time, including
    any time stopped in between). The PNG draws every stage's loss on one axis of cumulative steps, a line
    at each stage's start. Returns the record."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dreamvlx.train.metrics import loss_records

    record: dict = {"stages": []}
    fig, ax = plt.subplots(figsize=(9, 3.8))
    offset = 0
    for stage in stages:
        run_dir = out_dir / stage.name
        metrics = run_dir / "metrics.jsonl"
        if not metrics.is_file():
            continue
        by_step = loss_records(metrics)
        if not by_step:
            continue
        steps, records = list(by_step), list(by_step.values())
        record["stages"].append(
            {
                "name": stage.name,
                "steps": steps[-1],
                "last_loss": round(records[-1]["loss"], 4),
                "loss_last_5": round(sum(r["loss"] for r in records[-5:]) / len(records[-5:]), 4),
                "tokens_per_s": round(sum(r.get("tokens_per_s", 0.0) for r in records) / len(records)),
                "finished": (run_dir / "final" / "model.safetensors").is_file(),
                "span_s": round(metrics.stat().st_mtime - (run_dir / "train_config.json").stat().st_mtime),
            }
        )
        ax.plot([offset + s for s in steps], [r["loss"] for r in records], lw=1.1)
        ax.axvline(offset, color="grey", lw=0.6, alpha=0.6)
        ax.text(
            offset,
            1.0,
            f" {stage.name}",
            rotation=90,
            va="top",
            fontsize=7,
            transform=ax.get_xaxis_transform(),
        )
        offset += steps[-1]
    ax.set_xlabel("optimizer step, stages one after another")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(f"curriculum {out_dir}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "curriculum_loss.png", dpi=120)
    plt.close(fig)
    (out_dir / "curriculum.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
