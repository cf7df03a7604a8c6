"""Training data of the chained planner's calls (``dreamvlx.envs.blocksworld.chain``).

Each sample is one call at one query point of a ViPlan-like episode of a random non-benchmark problem (the
states ``dreamvlx data viplan`` plays, labelled with constructive-first optimal moves), in the LLaVA format
the trainer reads. Formats (``FORMATS``):

- the five calls: ``read`` (image -> scene), ``places``, ``standing``, ``tops``, ``move``; ``move`` is
  labelled with the shortest move that its prompt's own order ranks first (``move_label``), and
  ``move-search``, the same prompt, with the shortest plan's first move (constructive first), as the
  shipped model's multitask stage learned it first (``chain.ranked_moves`` says why ``move`` replaced it);
- ``places-simple``: the places call at query points of the simple split's problems only (3 blocks, 4
  columns), which a uniform draw of splits under-trains (``SPLIT_FORMATS``);
- two copies that open the curriculum of ``experiments/demo_model/train_decomposed.sh`` before ``places``:
  ``goal`` (``Goal: c1: r - - | ...`` -> the same layout) and ``goal-paired`` (the places prompt -> the goal's
  layout out of it), the letter copy the comparison needs, asked at every place.

``write_call_data`` writes one format's samples as a JSON list (the read call's images beside it);
``mix_data`` shuffles the first samples of several such lists into one training file (a curriculum stage
with earlier stages replayed).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dreamvlx.envs.blocksworld import chain
from dreamvlx.envs.blocksworld.datagen import (
    SPLIT_SPECS,
    EpisodeConfig,
    EpisodeStep,
    GeneratedProblem,
    play_episode,
    sample_problem,
)
from dreamvlx.envs.blocksworld.planner import find_plan, starts_shortest_plan
from dreamvlx.envs.blocksworld.problems import SPLITS
from dreamvlx.envs.blocksworld.render import render_state
from dreamvlx.envs.blocksworld.replies import STANDING_SEPARATOR, goal_places, goal_standing, plan_reply
from dreamvlx.envs.blocksworld.state import BlocksWorldState, Fact, MoveBlock
from dreamvlx.processing.conversation import IMAGE_PLACEHOLDER

FORMATS = (
    "read",
    "places",
    "places-simple",
    "standing",
    "tops",
    "move",
    "move-search",
    "goal",
    "goal-paired",
)
SPLIT_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {"places-simple": ("places", ("simple",))}
"""Formats that are another format's samples at query points of some splits only: name -> (that format,
the splits). Why ``places-simple``: simple problems' episodes are the shortest, so a uniform draw of splits gives them a
fifth of the query points, and the places call learned on that mixture compared the simple benchmark's
states exactly in 0.725 of them against 0.979 for medium (``experiments/demo_model/README.md``, finding 33)."""


def format_source(fmt: str) -> tuple[str, tuple[str, ...]]:
    """The format whose samples ``fmt`` holds and the splits its query points come from
    (``SPLIT_FORMATS``; any other format: itself, every split)."""
    return SPLIT_FORMATS.get(fmt, (fmt, SPLITS))


def query_points(
    count: int, seed: int, splits: Sequence[str] = SPLITS
) -> Iterator[tuple[GeneratedProblem, EpisodeStep]]:
    """``count`` query points of ViPlan-like episodes of random non-benchmark problems (constructive-first
    optimal labels), played as ``dreamvlx data viplan`` plays them, reproducibly from ``seed``; the split of
    each problem is drawn uniformly from ``splits`` (with every split, as before the argument existed: the
    same points for the same seed). ValueError: an unknown or no split."""
    unknown = [split for split in splits if split not in SPLIT_SPECS]
    if unknown or not splits:
        raise ValueError(f"query points: splits {list(splits)}; choose one or more of {', '.join(SPLITS)}")
    rng = np.random.default_rng(seed)
    config = EpisodeConfig(plan_horizon=1, prompt_style="slots")
    made = 0
    while made < count:
        problem = sample_problem(rng, SPLIT_SPECS[splits[int(rng.integers(len(splits)))]])
        for step in play_episode(problem, rng, config)[: count - made]:
            made += 1
            yield problem, step


def move_label(state: BlocksWorldState, goal: Sequence[Fact]) -> MoveBlock:
    """The ``move`` call's label at ``state``: the first of ``chain.ranked_moves`` (of the true standing and
    tops) that starts a shortest plan to ``goal``. It is the constructive-first label of ``move-search``
    wherever a constructive move is shortest; elsewhere the shortest move the prompt's own order ranks
    first (``chain.ranked_moves`` says why). ValueError when the goal holds or cannot be reached."""
    shortest = find_plan(state, goal)
    if not shortest:
        raise ValueError(
            f"no move to label at {state}: the goal {'holds' if shortest == [] else 'is unreachable'}"
        )
    for move in chain.ranked_moves(goal_standing(state, goal), chain.tops_reply(state)):
        if starts_shortest_plan(state, goal, move, len(shortest)):
            return move
    raise AssertionError(f"no ranked move of {state} starts a shortest plan")


def goal_copy(state: BlocksWorldState, goal: Sequence[Fact]) -> str:
    """The goal's layout in the slots notation, ``c1: r - - | c2: - - -``: what the copy formats answer."""
    return chain.rows_text(chain.goal_rows(state, goal))


def conversation(
    state: BlocksWorldState, goal: Sequence[Fact], move: MoveBlock, fmt: str
) -> tuple[str | None, str, str]:
    """``(system, user, reply)`` of one sample of ``fmt`` at ``state`` (system None: the chat template's
    default; the read call's user turn is the image placeholder alone). ``move``: the shortest plan's first
    move there (the ``move-search`` label; the other formats ignore it)."""
    fmt, _splits = format_source(fmt)
    scene, wanted = chain.scene_rows(state), chain.goal_rows(state, goal)
    if fmt == "read":
        return chain.read_system(state.blocks), IMAGE_PLACEHOLDER, chain.read_reply(state)
    if fmt == "places":
        reply = goal_places(state, goal) + STANDING_SEPARATOR + goal_standing(state, goal)
        return None, chain.places_prompt(scene, wanted), reply
    if fmt == "standing":
        return None, chain.standing_prompt(goal_places(state, goal)), goal_standing(state, goal)
    if fmt == "tops":
        return None, chain.tops_prompt(chain.rows_text(scene)), chain.tops_reply(state)
    if fmt in ("move", "move-search"):
        prompt = chain.move_prompt(goal_standing(state, goal), chain.tops_reply(state))
        return None, prompt, plan_reply([move_label(state, goal) if fmt == "move" else move])
    if fmt == "goal":
        return None, f"Goal: {goal_copy(state, goal)}", goal_copy(state, goal)
    if fmt == "goal-paired":
        return None, chain.places_prompt(scene, wanted), goal_copy(state, goal)
    _check_format(fmt)
    raise AssertionError(f"format {fmt!r} is in FORMATS but has no conversation")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown chain data format {fmt!r}; choose from {', '.join(FORMATS)}")


def write_call_data(out: Path, fmt: str, samples: int, seed: int, progress: bool = True) -> Path:
    """Write ``samples`` samples of ``fmt`` (``query_points(samples, seed)``, of the format's splits:
    ``SPLIT_FORMATS``) to the JSON list ``out``; the read call's images go to ``<out without
    suffix>-images/`` (paths relative to ``out``'s folder, which is the trainer's ``--data.image_folder``).
    Returns ``out``."""
    _check_format(fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = out.with_name(f"{out.stem}-images")
    if fmt == "read":
        images.mkdir(exist_ok=True)
    rows = []
    points = query_points(samples, seed, format_source(fmt)[1])
    for problem, step in tqdm(points, total=samples, desc=f"chain data ({fmt})", disable=not progress):
        system, user, reply = conversation(step.state, problem.goal, step.plan[0], fmt)
        row: dict = {"id": f"{fmt}-{len(rows):06d}"}
        if fmt == "read":
            name = images / f"{len(rows):06d}.png"
            render_state(step.state).save(name, compress_level=1)
            row["image"] = str(name.relative_to(out.parent))
        if system is not None:
            row["system"] = system
        row["conversations"] = [{"from": "human", "value": user}, {"from": "gpt", "value": reply}]
        rows.append(row)
    return write_rows(out, rows)


def parse_part(text: str) -> tuple[Path, int | None]:
    """``PATH`` or ``PATH:COUNT`` of a ``mix_data`` part: a data file and how many of its first samples to take
    (all when no count is given)."""
    path, separator, count = text.rpartition(":")
    if separator and count.isdigit():
        return Path(path), int(count)
    return Path(text), None


def mix_data(out: Path, parts: Sequence[tuple[Path, int | None]], seed: int) -> Path:
    """One shuffled LLaVA JSON list of the first ``count`` samples of each part (a curriculum stage's data with
    earlier stages' data replayed beside it). Each sample's id becomes ``<file stem>-<index>`` so ids stay
    unique across parts. Image paths are kept as they are: the parts must share one image folder. ValueError:
    a part with fewer samples than asked, a file given twice, or one prompt (system, user turn, image) that
    two parts answer differently (a model could not tell which reply is asked)."""
    stems = [path.stem for path, _ in parts]
    if len(set(stems)) != len(stems):
        raise ValueError(f"mix: a data file is given twice ({stems}); give each once with the count wanted")
    rows: list[dict] = []
    # prompt (system, user, image) -> (part, reply)
    answered: dict[tuple[str | None, str, str | None], tuple[str, str]] = {}
    for path, count in parts:
        samples = json.loads(path.read_text())
        if count is not None and count > len(samples):
            raise ValueError(f"mix: {path} holds {len(samples)} samples, {count} were asked")
        for index, sample in enumerate(samples[:count]):
            (user, reply) = (turn["value"] for turn in sample["conversations"])
            key = (sample.get("system"), user, sample.get("image"))
            part, known = answered.setdefault(key, (path.stem, reply))
            if part != path.stem and known != reply:
                raise ValueError(
                    f"mix: {part} and {path.stem} answer the same prompt {user!r} differently; a model cannot "
                    "tell which is asked"
                )
            rows.append({**sample, "id": f"{path.stem}-{index:06d}"})
    random.Random(seed).shuffle(rows)
    return write_rows(out, rows)


def write_rows(out: Path, rows: list[dict]) -> Path:
    """Write the JSON list ``rows`` to ``out`` whole or not at all: into a temporary file beside it, then
    renamed (``os.replace``), so a run killed while writing leaves no truncated file for a resumed
    curriculum (``chain_recipe.stage_data`` keeps a data file that exists) to trust. Returns ``out``."""
    partial = out.with_name(f"{out.name}.partial")
    partial.write_text(json.dumps(rows))
    os.replace(partial, out)
    return out
