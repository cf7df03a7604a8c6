"""Training data for ViPlan BlocksWorld: random scenes and goals rendered as LLaVA conversations.

Problems are drawn like ViPlan's generator (``blocksworld_problem_generator.py``) with the parameters
measured on the 75 benchmark problems (:data:`SPLIT_SPECS`; a test re-measures them): blocks sampled
without replacement from the six colours, each placed on a random column below the initial height cap,
a random goal configuration (goal columns at most 3 high) kept when its *optimal* plan length (BFS)
falls in the benchmark's range. Every benchmark problem is excluded by its canonical
``(initial configuration, goal facts)`` pair, and so is every planning sample whose ``(shown state,
goal)`` equals one.

Each problem is played as an episode along optimal plans that take a constructive move whenever one is
optimal (:func:`constructive_first_plan`), with injected failed actions (illegal moves,
wrong parameters, unknown actions) and occasional legal detours that force a replan. Every visited
state is rendered once (:mod:`dreamvlx.envs.blocksworld.render`) and gives:

- ``grounding`` samples: ViPlan's predicate questions about the image, half true and half false when
  possible, answered ``"Yes"`` / ``"No"``;
- ``planning`` samples: the planning-mode prompt (goal + JSON history of previous actions with their
  outcomes) answered with the JSON plan of the remaining optimal actions.

Prompts, replies and feedback records come from :mod:`dreamvlx.envs.blocksworld.prompts` and
:mod:`dreamvlx.envs.blocksworld.replies`, the functions the evaluator uses (no-CoT prompt files, ViPlan's
dropped final "?" included). The chat messages become a LLaVA sample through
:func:`dreamvlx.processing.conversation.chat_to_llava`, the conversion the evaluator's model backend
uses too: ViPlan's system text goes to the sample's ``"system"`` field, the user text with its
``<image>`` placeholder to the human turn.

Samples are LLaVA conversations ``{"id", "image", "system", "conversations": [{"from": "human", "value":
"...<image>"}, {"from": "gpt", "value": ...}], "meta": {...}}`` (``meta`` holds the split, mode, true
state and goal for checks; loaders ignore it). Output layout (``write_dataset``)::

    OUT/index.json                      seed, splits, modes, counts, shard list
    OUT/shard_00000.json ...            list of samples (K per shard, the last one possibly shorter)
    OUT/images/00000/000000.png ...     images, referenced relative to OUT

Shard ``s`` is generated from ``numpy.random.SeedSequence([seed, s])`` alone, so the files are the same
for any number of worker processes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dreamvlx.envs.blocksworld.planner import find_plan
from dreamvlx.envs.blocksworld.problems import SPLITS, load_split
from dreamvlx.envs.blocksworld.prompts import (
    PROMPT_STYLES,
    check_prompt_style,
    goal_layout,
    goal_text,
    grounding_prompt,
    grounding_questions,
    is_compact,
    planning_prompt,
    question_text,
)
from dreamvlx.envs.blocksworld.render import render_columns_array, scene_of
from dreamvlx.envs.blocksworld.replies import (
    history_record,
    plan_reply,
    planning_explanation,
    state_explanation,
    yes_no_reply,
)
from dreamvlx.envs.blocksworld.state import ACTION_NAME, BLOCK_COLORS, BlocksWorldState, Fact, MoveBlock
from dreamvlx.processing.conversation import chat_to_llava

MODES: tuple[str, ...] = ("grounding", "planning")


@dataclass(frozen=True)
class SplitSpec:
    """Generation parameters of one benchmark split (measured on its 25 problems)."""

    name: str
    n_blocks: int
    columns: tuple[str, ...]
    max_init_height: int
    max_goal_height: int
    min_plan_length: int  # optimal (BFS) plan length range of the benchmark problems
    max_plan_length: int


SPLIT_SPECS: dict[str, SplitSpec] = {
    "simple": SplitSpec("simple", 3, ("c1", "c2", "c3", "c4"), 2, 3, 3, 5),
    "medium": SplitSpec("medium", 5, ("c1", "c2", "c3", "c4", "c5"), 4, 3, 4, 7),
    "hard": SplitSpec("hard", 6, ("c1", "c2", "c3", "c4"), 3, 3, 5, 10),
}


@dataclass(frozen=True)
class EpisodeConfig:
    """How episodes are played and turned into samples.

    ``fail_probability``: chance that the next history entry is a failed action;
    ``detour_probability``: chance of a legal but non-optimal move (the plan is recomputed after it);
    ``questions_per_image``: grounding questions asked about each rendered state;
    ``randomize_rendering``: draw lighting, yaw, jitter and colour shifts per image (off: ViPlan-like
    deterministic frames); ``png_compress_level``: 0-9 (1 is fast and still small at 300x200);
    ``plan_horizon``: planning answers hold the first ``plan_horizon`` actions of the optimal plan (None:
    the whole plan). ViPlan executes only ``plan[0]`` of every reply and asks again, so a one-action plan
    is a complete, valid reply; a short horizon makes answers (and diffusion canvases) much shorter, which
    is what the small CPU models of ``dreamvlx demo`` are trained with;
    ``prompt_style``: ``"viplan"`` (the prompt files), ``"compact"`` (only goal, history and image) or
    ``"slots"`` (compact with fixed places per column; see :mod:`dreamvlx.envs.blocksworld.prompts`);
    ``cot``: answers start with the state explanation the CoT oracle writes (``replies.state_explanation`` in the prompt style: for planning an ``"explanation"``
    field before ``"plan"``, for grounding ``<explanation>``/``<answer>`` tags), and viplan-style prompts
    use the CoT prompt files. Spelling the scene out before the decision gives every sample a dense
    image-reading target and lets the diffusion sampler commit the (easy) scene tokens before the move;
    ``standing`` (with ``cot`` in a compact style): planning explanations go on with every column's standing
    against the goal (``replies.goal_standing``: ``c1 - | c2 y | c3 no``), a local comparison of
    the scene with the goal from which the constructive move is a lookup: the reasoning a small model does
    not find by itself (``experiments/demo_model/README.md``); ``places`` (with ``standing`` and the
    ``"slots"`` style): the place-by-place comparison of scene and goal (``replies.goal_places``) comes
    before the standing, so every word the model writes depends on a few tokens at fixed distances.
    """

    fail_probability: float = 0.25
    detour_probability: float = 0.1
    questions_per_image: int = 4
    randomize_rendering: bool = False
    png_compress_level: int = 1
    plan_horizon: int | None = None
    prompt_style: str = "viplan"
    cot: bool = False
    standing: bool = False
    places: bool = False

    def __post_init__(self) -> None:
        if self.standing and not (self.cot and is_compact(self.prompt_style)):
            raise ValueError(
                f"standing explanations need cot=True and a compact prompt style, got cot={self.cot}, "
                f"prompt_style={self.prompt_style!r}"
            )
        if self.places and not (self.standing and self.prompt_style == "slots"):
            raise ValueError(
                f"place-by-place explanations need standing=True and the 'slots' prompt style, got "
                f"standing={self.standing}, prompt_style={self.prompt_style!r}"
            )


# --------------------------------------------------------------------------------------------- problems
def canonical_key(state: BlocksWorldState, goal: Sequence[Fact]) -> tuple:
    """Order-free identity of a problem: the configuration (columns, stacks) and the set of goal facts."""
    return (state.key, frozenset(goal))


@cache
def benchmark_keys() -> frozenset[tuple]:
    """Canonical keys of the 75 benchmark problems (all three splits)."""
    return frozenset(canonical_key(p.initial_state, p.goal) for split in SPLITS for p in load_split(split))


def _random_configuration(
    rng: np.random.Generator, blocks: Sequence[str], columns: Sequence[str], max_height: int
) -> BlocksWorldState:
    """Place the blocks one by one on a uniformly chosen column that still has room (ViPlan's rule)."""
    stacks: list[list[str]] = [[] for _ in columns]
    for block in blocks:
        open_columns = [i for i, stack in enumerate(stacks) if len(stack) < max_height]
        stacks[open_columns[int(rng.integers(len(open_columns)))]].append(block)
    return BlocksWorldState(tuple(blocks), tuple(columns), tuple(tuple(s) for s in stacks))


def goal_facts(goal: BlocksWorldState) -> tuple[Fact, ...]:
    """ViPlan's goal for a target configuration: ``on`` for every stacked pair, ``clear`` for every top,
    ``incolumn`` for every block (each group in the problem's block order)."""
    blocks = goal.blocks
    on = [("on", b, goal.below(b)) for b in blocks if goal.below(b) is not None]
    on.sort(key=lambda fact: blocks.index(fact[2]))
    clear = [("clear", b) for b in blocks if goal.top(goal.column_of(b)) == b]
    incolumn = [("incolumn", b, goal.column_of(b)) for b in blocks]
    return (*on, *clear, *incolumn)


def constructive_moves(state: BlocksWorldState, goal: Sequence[Fact]) -> list[MoveBlock]:
    """Legal moves that put a block in its goal place on a column whose stack below that place is already
    final (each block where the goal wants it), in ``legal_actions`` order; ``[]`` for a goal that does not
    fix one configuration (``prompts.goal_layout``)."""
    try:
        layout = dict(goal_layout(state.column_names, goal))
    except ValueError:
        return []
    stacks = dict(state.columns())
    return [
        move
        for move in state.legal_actions()
        if layout[move.column][: len(stacks[move.column]) + 1] == [*stacks[move.column], move.block]
    ]


def constructive_first_plan(state: BlocksWorldState, goal: Sequence[Fact]) -> list[MoveBlock] | None:
    """A shortest plan (``planner.find_plan``) that, at every step, takes the first optimal constructive
    move when there is one (``constructive_moves``), else the search's own first move; None when no plan
    exists.

    Why: in ~40% of the generated states several first moves are optimal and the search's tie-break picks
    one for reasons no image shows, so training labels would look random among them; a constructive move
    exists in ~75% of states (and was optimal in every one of 600 sampled), and "put a block where it
    belongs when you can" is a rule a small model can read off the goal and the scene.
    """
    plan = find_plan(state, goal)
    if plan is None:
        return None
    chosen: list[MoveBlock] = []
    while plan:
        for move in constructive_moves(state, goal):
            if move == plan[0]:
                break
            after, _ = state.step(move)
            rest = find_plan(after, goal)
            if rest is not None and len(rest) == len(plan) - 1:
                plan = [move, *rest]
                break
        chosen.append(plan[0])
        state, _ = state.step(plan[0])
        plan = plan[1:]
    return chosen


@dataclass(frozen=True)
class GeneratedProblem:
    split: str
    initial_state: BlocksWorldState
    goal: tuple[Fact, ...]
    plan: tuple[MoveBlock, ...]


def sample_problem(rng: np.random.Generator, spec: SplitSpec, max_tries: int = 1000) -> GeneratedProblem:
    """A random non-benchmark problem of the split whose optimal plan length is in the split's range."""
    excluded = benchmark_keys()
    for _ in range(max_tries):
        letters = sorted(BLOCK_COLORS)
        blocks = [letters[i] for i in rng.permutation(len(letters))[: spec.n_blocks]]
        init = _random_configuration(rng, blocks, spec.columns, spec.max_init_height)
        target = _random_configuration(rng, blocks, spec.columns, spec.max_goal_height)
        goal = goal_facts(target)
        if canonical_key(init, goal) in excluded:
            continue
        plan = find_plan(init, goal)
        if plan is not None and spec.min_plan_length <= len(plan) <= spec.max_plan_length:
            return GeneratedProblem(spec.name, init, goal, tuple(constructive_first_plan(init, goal) or ()))
    raise RuntimeError(f"no {spec.name} problem with an optimal plan of {spec.min_plan_length}-"
                       f"{spec.max_plan_length} steps after {max_tries} tries")  # fmt: skip


# ---------------------------------------------------------------------------------------------- prompts
# --------------------------------------------------------------------------------------------- episodes
PLANNING_STEP_BUDGET: dict[str, int] = {"simple": 10, "medium": 20, "hard": 30}
"""ViPlan's planning-mode ``max_steps`` per split; histories never grow beyond it."""

_UNKNOWN_ACTIONS = ("move", "pickup", "stack", "moveblocks")


@dataclass(frozen=True)
class EpisodeStep:
    """A query point of an episode: the true ``state``, the ``history`` shown so far (ViPlan's feedback
    entries) and the optimal ``plan`` from ``state``."""

    state: BlocksWorldState
    history: tuple[dict, ...]
    plan: tuple[MoveBlock, ...]


def _failed_entry(rng: np.random.Generator, state: BlocksWorldState) -> dict:
    """A failed action as the evaluator records it: mostly an illegal move (``"not legal"``), otherwise an
    unknown action name or a block/column that is not an object of the problem (both recorded by ViPlan
    as ``"action does not exist"``)."""
    if rng.random() < 0.8:
        illegal = [
            (block, column)
            for column_name, stack in state.columns()
            for level, block in enumerate(stack)
            for column in state.column_names
            if level < len(stack) - 1 or column == column_name
        ]
        block, column = illegal[int(rng.integers(len(illegal)))]
        return history_record(MoveBlock(block, column), ACTION_NAME, False, "not legal")
    if rng.random() < 0.5:  # the right name with parameters that are not objects of the problem
        return history_record(None, ACTION_NAME, False, "")
    return history_record(None, _UNKNOWN_ACTIONS[int(rng.integers(len(_UNKNOWN_ACTIONS)))], False, "")


def play_episode(
    problem: GeneratedProblem, rng: np.random.Generator, config: EpisodeConfig
) -> list[EpisodeStep]:
    """Query points of one episode, from the initial state until the goal holds or the split's step
    budget is used. Each move is the first optimal action, a failed action (state unchanged) with
    ``fail_probability``, or a legal detour (then the optimal plan is recomputed) with
    ``detour_probability``."""
    state, plan, history = problem.initial_state, list(problem.plan), []
    steps: list[EpisodeStep] = []
    while plan and len(history) < PLANNING_STEP_BUDGET[problem.split]:
        steps.append(EpisodeStep(state, tuple(history), tuple(plan)))
        draw = rng.random()
        if draw < config.fail_probability:
            history.append(_failed_entry(rng, state))
            continue
        detours = [a for a in state.legal_actions() if a != plan[0]]
        if draw < config.fail_probability + config.detour_probability and detours:
            action = detours[int(rng.integers(len(detours)))]
            state, _ = state.step(action)
            plan = list(constructive_first_plan(state, problem.goal) or [])
        else:
            action = plan.pop(0)
            state, _ = state.step(action)
        history.append(history_record(action, ACTION_NAME, True, "success"))
    return steps


# ---------------------------------------------------------------------------------------------- samples
def _grounding_facts(
    rng: np.random.Generator, state: BlocksWorldState, count: int
) -> list[tuple[Fact, bool]]:
    """``count`` distinct questions about ``state``, half true and half false where possible, shuffled."""
    true_facts = state.facts()
    facts = [(name, *args) for name, args, _ in grounding_questions(state)]
    positives = [f for f in facts if f in true_facts]
    negatives = [f for f in facts if f not in true_facts]
    n_pos = min(len(positives), (count + int(rng.integers(2))) // 2)
    n_neg = min(len(negatives), count - n_pos)
    chosen = [(positives[i], True) for i in rng.choice(len(positives), n_pos, replace=False)]
    chosen += [(negatives[i], False) for i in rng.choice(len(negatives), n_neg, replace=False)]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def _meta(problem: GeneratedProblem, step: EpisodeStep, mode: str) -> dict:
    return {
        "split": problem.split,
        "mode": mode,
        "blocks": list(step.state.blocks),
        "state": step.state.columns(),
        "goal": [list(f) for f in problem.goal],
        "history_length": len(step.history),
    }


def generate_samples(
    n: int,
    seed: int,
    splits: Sequence[str] = SPLITS,
    modes: Sequence[str] = MODES,
    config: EpisodeConfig = EpisodeConfig(),
    shard: int = 0,
) -> Iterator[tuple[dict, Image.Image]]:
    """Yield ``n`` ``(sample, image)`` pairs, reproducibly from ``(seed, shard)``.

    ``sample["image"]`` is the relative file name ``images/<shard>/<k>.png``; consecutive samples of one
    rendered state share the name and the same ``PIL.Image`` object (RGB, 300x200).
    """
    _check_choices(splits, SPLIT_SPECS, "split")
    _check_choices(modes, MODES, "mode")
    check_prompt_style(config.prompt_style)
    if n < 0:
        raise ValueError(f"the number of samples must be >= 0, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, shard]))
    render_rng = rng if config.randomize_rendering else None
    excluded = benchmark_keys()
    made = images = 0
    while made < n:
        problem = sample_problem(rng, SPLIT_SPECS[splits[int(rng.integers(len(splits)))]])
        for step in play_episode(problem, rng, config):
            if made >= n:
                return
            questions = (
                _grounding_facts(rng, step.state, config.questions_per_image) if "grounding" in modes else []
            )
            planning = "planning" in modes and canonical_key(step.state, problem.goal) not in excluded
            if not questions and not planning:
                continue
            image = Image.fromarray(render_columns_array(scene_of(step.state), render_rng), mode="RGB")
            name = f"images/{shard:05d}/{images:06d}.png"
            images += 1
            style = config.prompt_style
            explanation = state_explanation(step.state, style) if config.cot else None
            turns = [
                (
                    grounding_prompt(question_text(f[0], f[1:]), config.cot, style=style),
                    yes_no_reply(truth, explanation),
                    "grounding",
                    f,
                )
                for f, truth in questions
            ]
            if planning:
                goal = goal_text(step.state.blocks, step.state.column_names, problem.goal, style)
                messages = planning_prompt(goal, step.history, config.cot, style)
                reasoning = (
                    planning_explanation(step.state, problem.goal, style, config.standing, config.places)
                    if config.cot
                    else None
                )
                answer = plan_reply(step.plan[: config.plan_horizon], reasoning)
                turns.append((messages, answer, "planning", None))
            for messages, answer, mode, fact in turns:
                if made >= n:
                    return
                meta = _meta(problem, step, mode)
                if fact is not None:
                    meta["fact"] = list(fact)
                system, human_turns = chat_to_llava(messages)
                sample = {
                    "id": f"{shard:05d}-{made:06d}",
                    "image": name,
                    "system": system,
                    "conversations": [*human_turns, {"from": "gpt", "value": answer}],
                }
                sample["meta"] = meta
                yield sample, image
                made += 1


def _check_choices(values: Sequence[str], allowed: Sequence[str], what: str) -> None:
    if isinstance(values, str) or not values:
        raise ValueError(f"give a non-empty list of {what}s from {list(allowed)}, got {values!r}")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; choose from {list(allowed)}")


# ---------------------------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class _ShardTask:
    out_dir: str
    shard: int
    samples: int
    seed: int
    splits: tuple[str, ...]
    modes: tuple[str, ...]
    config: EpisodeConfig


def _write_shard(task: _ShardTask) -> dict:
    """Generate one shard, write its images and ``shard_<s>.json``; return its index entry."""
    out = Path(task.out_dir)
    (out / "images" / f"{task.shard:05d}").mkdir(parents=True, exist_ok=True)
    samples, written = [], set()
    for sample, image in generate_samples(
        task.samples, task.seed, task.splits, task.modes, task.config, shard=task.shard
    ):
        if sample["image"] not in written:
            image.save(out / sample["image"], format="PNG", compress_level=task.config.png_compress_level)
            written.add(sample["image"])
        samples.append(sample)
    name = f"shard_{task.shard:05d}.json"
    (out / name).write_text(json.dumps(samples))
    return {"file": name, "samples": len(samples), "images": len(written)}


def write_dataset(
    out_dir: str | os.PathLike,
    samples: int,
    seed: int = 0,
    splits: Sequence[str] = SPLITS,
    modes: Sequence[str] = MODES,
    config: EpisodeConfig = EpisodeConfig(),
    shard_size: int = 1000,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Write ``samples`` samples as sharded LLaVA JSON + PNG images and ``index.json``; return the index path.

    Shards are generated by ``workers`` processes (``spawn``); the output does not depend on ``workers``.
    """
    _check_choices(splits, SPLIT_SPECS, "split")
    _check_choices(modes, MODES, "mode")
    check_prompt_style(config.prompt_style)
    if samples < 1 or shard_size < 1 or workers < 1:
        raise ValueError(
            f"samples, shard_size and workers must be >= 1, got {samples}, {shard_size}, {workers}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    benchmark_keys()  # fail early (missing assets) before starting workers
    sizes = [min(shard_size, samples - start) for start in range(0, samples, shard_size)]
    tasks = [
        _ShardTask(str(out), s, size, seed, tuple(splits), tuple(modes), config)
        for s, size in enumerate(sizes)
    ]
    bar = tqdm(total=samples, unit="sample", desc="viplan data", disable=not progress)
    entries = []
    if workers == 1 or len(tasks) == 1:
        for task in tasks:
            entries.append(_write_shard(task))
            bar.update(task.samples)
    else:
        with multiprocessing.get_context("spawn").Pool(min(workers, len(tasks))) as pool:
            for entry in pool.imap(_write_shard, tasks):
                entries.append(entry)
                bar.update(entry["samples"])
    bar.close()
    index = {
        "format": "llava",
        "seed": seed,
        "samples": samples,
        "splits": list(splits),
        "modes": list(modes),
        "shard_size": shard_size,
        "config": asdict(config),
        "split_specs": {name: asdict(SPLIT_SPECS[name]) for name in splits},
        "shards": entries,
    }
    path = out / "index.json"
    path.write_text(json.dumps(index, indent=2))
    return path


def read_dataset(out_dir: str | os.PathLike) -> list[dict]:
    """All samples of a dataset written by :func:`write_dataset`, in order (image paths stay relative)."""
    out = Path(out_dir)
    index_path = out / "index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"no index.json in {out}; write the dataset with write_dataset() first")
    index = json.loads(index_path.read_text())
    return [sample for entry in index["shards"] for sample in json.loads((out / entry["file"]).read_text())]


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    """``dreamvlx data viplan --out DIR --samples N --seed S [--splits ...] [--workers N] ...``."""
    parser = argparse.ArgumentParser(prog="dreamvlx data viplan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--samples", type=int, required=True, help="number of samples to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--splits", type=_comma_list, default=list(SPLITS), help="comma list of simple,medium,hard"
    )
    parser.add_argument(
        "--modes", type=_comma_list, default=list(MODES), help="comma list of grounding,planning"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard file")
    parser.add_argument("--questions-per-image", type=int, default=EpisodeConfig.questions_per_image)
    parser.add_argument("--fail-probability", type=float, default=EpisodeConfig.fail_probability)
    parser.add_argument("--detour-probability", type=float, default=EpisodeConfig.detour_probability)
    parser.add_argument(
        "--randomize-rendering", action="store_true", help="random lighting/yaw/jitter/colour"
    )
    parser.add_argument("--png-compress-level", type=int, default=EpisodeConfig.png_compress_level)
    parser.add_argument(
        "--plan-horizon", type=int, default=None, help="actions per planning answer (default: the whole plan)"
    )
    parser.add_argument(
        "--prompt-style", choices=PROMPT_STYLES, default="viplan", help="prompt text (see EpisodeConfig)"
    )
    parser.add_argument("--cot", action="store_true", help="answers start with the state explanation")
    parser.add_argument(
        "--standing", action="store_true", help="CoT planning explanations add each column's goal standing"
    )
    parser.add_argument(
        "--places",
        action="store_true",
        help="with --standing and slots: the scene compared with the goal place by place before the standing",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = EpisodeConfig(
        fail_probability=args.fail_probability,
        detour_probability=args.detour_probability,
        questions_per_image=args.questions_per_image,
        randomize_rendering=args.randomize_rendering,
        png_compress_level=args.png_compress_level,
        plan_horizon=args.plan_horizon,
        prompt_style=args.prompt_style,
        cot=args.cot,
        standing=args.standing,
        places=args.places,
    )
    index = write_dataset(
        args.out, args.samples, args.seed, args.splits, args.modes, config,
        shard_size=args.shard_size, workers=args.workers, progress=not args.no_progress,
    )  # fmt: skip
    print(f"wrote {args.samples} samples; index: {index}")
    return 0
