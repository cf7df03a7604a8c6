"""Can the demo model's language model choose the move when the scene is given as text?

The image-trained runs (v3-v5, ``README.md``) read the scene but choose moves at about chance. This probe
takes the image out: the scene is written in the prompt in the ``slots`` notation, beside the goal, and the
reply is a JSON plan of one move, optionally preceded by an explanation. Whatever a model of the demo's size
learns here in a given number of steps is an upper bound of what it can learn with the image, so the probe
tells which reply format (which reasoning written out) a 4-layer diffusion LM can learn at all, in minutes
instead of hours.

Reply formats (``--format``; the ``"explanation"`` before ``"plan"``):

- ``move``: no explanation;
- ``standing``: the columns' standing against the goal (``replies.goal_standing``: ``c1 no | c2 - | c3 y``);
- ``places``: the place-by-place comparison, then the standing (``replies.goal_places``);
- ``tops``: the standing, then every column's top block (``c1 y | c2 - | c3 b``), so that a constructive
  move is a standing letter that is also a top;
- ``paired``: the prompt of ``standing-paired`` (no goal in the system turn: scene and goal column by
  column), the reply the place-by-place comparison, the standing and the tops: every step but the last
  compares tokens a short distance apart;
- ``interleaved``: the prompt of ``standing-interleaved`` (each scene place beside its goal place), the
  reply the standing and the tops;
- ``keyed``: the prompt of ``places-keyed`` (a key letter before every scene place and its goal place), the
  reply the keyed place-by-place comparison, the standing and the tops;
- ``move-from-tops``: the chain's last step alone: the prompt is the true standing and tops (``Standing: c1
  no | c2 y ; tops: c1 y | c2 -``), with no scene and no goal, the reply the move without explanation. A
  constructive move is read off it (a standing letter that is also a top goes to that column); when there
  is none, the label's deconstructive move may depend on more of the scene than the prompt gives.

The step formats train one step of that reasoning alone, the reply being the section as plain text (no
plan): ``tops-only`` (the scene alone in the prompt, the columns' top blocks; a pure in-context lookup),
``standing-only`` (goal and scene, the standing), ``standing-paired`` (the standing, with every column of
the goal written right after the same column of the scene, ``c1: r o - = r g - | ...``, so each word
compares tokens a fixed, short distance apart instead of two layouts in the same notation),
``places-paired`` (the same prompt; the place-by-place comparison, then the standing), ``places-fixed``
(the same with ``FIXED_SLOTS`` places in every column of every problem, so that a scene place and its goal
place are the same distance apart in every sample, not 5, 7 or 8 tokens by the problem's size),
``standing-from-places`` (the place-by-place comparison given in the prompt, the standing asked) and
``standing-interleaved`` (every scene place written beside the goal's same place, ``c1: r=r o=g -=- |
...``, the standing asked: each place's comparison is of two adjacent tokens, and a column is found by its
name, with no place to locate by position), ``places-interleaved`` (scene and goal place by place as
separate tokens, ``c1: r = r o = g``; the place-by-place comparison, then the standing) and ``places-keyed``
(the same with a key letter before every place, ``c1: A r = r B o = g | c2: C - = - ...``, and before every
word of the comparison, ``c1: A - B no | ...``, so a place is found by the content of its key instead of
its position); ``goal-keyed`` (that prompt; the reply copies every goal place by its key, ``c1: A r B -
| ...``: the letter copy the comparison needs, asked at every place instead of the ~9% that need it) and ``goal-paired`` (the same copy without keys, from
the ``places-paired`` prompt, ``c1: r - | ...``: the letter found by its position), and ``tops-paired``
(the lookup of ``tops-only``, every column's top block, from the ``places-paired`` prompt, which holds the
goal's layout of the same letters beside the scene's) and ``goal-only`` (the copy of ``goal-paired`` from a
prompt that holds the goal's places alone, ``Goal: c1: r - - | ...``). They tell whether a step is learnable at all by this model,
and the weights they leave are a curriculum's first stage for the plan formats.

Usage::

    python experiments/demo_model/reasoning_probe.py make OUT.json --format tops --samples 40000 --seed 1
    dreamvlx train --preset blocksworld-tiny --model.init MODEL --data.train_json OUT.json ...
    python experiments/demo_model/reasoning_probe.py eval RUN/final --format tops --out probe.json
    # a curriculum stage's data with an earlier stage's replayed beside it (its first 10,000 samples);
    # formats that share a prompt are told apart only when both are made (and evaluated) with --tagged:
    python experiments/demo_model/reasoning_probe.py mix MIX.json --part NEW.json --part OLD.json:10000 --seed 0

``eval`` scores held-out states (the move legal, optimal, constructive; each explanation section exactly
right; for the step formats each section of the reply), measures each section's decision tokens
teacher-forced (the rest of the true reply given; the place-by-place comparison and the goal copies also by
kind of word, ``word_kind``), and for the plan formats plays the 75 ViPlan problems
in planning mode (``PlanningEpisode``, ViPlan's step budgets 10 / 20 / 30) with the true scene given
as text at every step, with the demo's decoding (8 steps, ``entropy`` order), and keeps each episode's
trace (every reply's action and the optimal distance to the goal after it, ``play_benchmark``); ``--staged`` decodes the reply one section at a time
(``generate_in_sections``), each after the sections before it, as given-prefix runs are trained.
"""

from __future__ import annotations

import argparse
import json
import re
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from diagnose import move_quality, rates
from tqdm import tqdm

from dreamvlx.envs.blocksworld import chain
from dreamvlx.envs.blocksworld.chain import (
    goal_rows,
    move_prompt,
    parse_scene,
    places_of,
    places_prompt,
    read_reply,
    read_system,
    scene_rows,
    standing_prompt,
    text_rows,
    tops_prompt,
    tops_reply,
)
from dreamvlx.envs.blocksworld.chain_data import mix_data, move_label, parse_part, query_points
from dreamvlx.envs.blocksworld.datagen import (
    GeneratedProblem,
    constructive_moves,
    read_dataset,
)
from dreamvlx.envs.blocksworld.planner import find_plan
from dreamvlx.envs.blocksworld.problems import SPLITS, Problem, load_split
from dreamvlx.envs.blocksworld.prompts import goal_layout, goal_text, layout_text
from dreamvlx.envs.blocksworld.replies import (
    STANDING_SEPARATOR,
    goal_places,
    goal_standing,
    parse_plan_reply,
    plan_reply,
    state_explanation,
)
from dreamvlx.envs.blocksworld.state import BLOCK_COLORS, BlocksWorldState, Fact, MoveBlock
from dreamvlx.evals.viplan.chained import (
    ChainConfig,
    ChainedPlanner,
    read_messages,
    text_messages,
)
from dreamvlx.evals.viplan.metrics import planning_metrics
from dreamvlx.evals.viplan.planning import MAX_STEPS, PlanningConfig, PlanningEpisode
from dreamvlx.inference import (
    DreamVL,
    DreamVLProcessor,
    build_prompt_batch,
    generate_in_sections,
    generate_tokens,
    load_dream_vl,
    reply_text,
)
from dreamvlx.processing.conversation import IGNORE_INDEX, IMAGE_PLACEHOLDER, build_training_sequence

PLAN_FORMATS = ("move", "standing", "places", "tops", "paired", "interleaved", "keyed", "move-from-tops")
KEYED_FORMATS = ("places-keyed", "goal-keyed", "keyed")
PLACES_FORMATS = (
    "places",
    "paired",
    "keyed",
    "places-paired",
    "places-fixed",
    "places-interleaved",
    "places-keyed",
)
"""The formats whose first section is the place-by-place comparison (scored by kind of word, ``word_kind``)."""
COPY_FORMATS = ("goal-keyed", "goal-paired", "goal-only")
"""The formats whose reply copies the goal's places (scored by kind of word, ``word_kind``)."""
STEP_FORMATS = (
    "tops-only",
    "standing-only",
    "standing-paired",
    "places-paired",
    "places-fixed",
    "standing-from-places",
    "standing-interleaved",
    "places-interleaved",
    "places-keyed",
    "goal-keyed",
    "goal-paired",
    "tops-paired",
    "goal-only",
)
PAIRED_FORMATS = ("standing-paired", "places-paired", "places-fixed", "paired", "goal-paired", "tops-paired")
INTERLEAVED_FORMATS = ("standing-interleaved", "interleaved")
PLACE_KEYS = string.ascii_uppercase
"""One key letter per place in ``places-keyed``: 26 >= the largest split's 25 places (5 columns x 5 blocks)."""
FIXED_SLOTS = 6
"""Places per column in ``places-fixed``: the most blocks of any split, so every problem has the same layout."""
FORMATS = PLAN_FORMATS + STEP_FORMATS


def sections(state: BlocksWorldState, goal: tuple[Fact, ...], reply_format: str) -> list[str]:
    """The reply sections of ``reply_format`` for ``state``: a plan format's explanation (none for ``move``),
    or what a step format writes as plain text."""
    standing = goal_standing(state, goal)
    places = (
        keyed_places(state, goal)
        if reply_format in KEYED_FORMATS
        else goal_places(state, goal, format_slots(reply_format))
    )
    tops = tops_reply(state)
    return {
        "move": [],
        "move-from-tops": [],
        "standing": [standing],
        "places": [places, standing],
        "tops": [standing, tops],
        "paired": [places, standing, tops],
        "interleaved": [standing, tops],
        "keyed": [places, standing, tops],
        "tops-only": [tops],
        "tops-paired": [tops],
        "standing-only": [standing],
        "standing-paired": [standing],
        "places-paired": [places, standing],
        "places-fixed": [places, standing],
        "standing-from-places": [standing],
        "standing-interleaved": [standing],
        "places-interleaved": [places, standing],
        "places-keyed": [places, standing],
        "goal-keyed": [keyed_goal(state, goal)],
        "goal-paired": [goal_copy(state, goal)],
        "goal-only": [goal_copy(state, goal)],
    }[reply_format]


def explanation(state: BlocksWorldState, goal: tuple[Fact, ...], reply_format: str) -> str | None:
    """The explanation of a plan format ``reply_format`` for ``state`` (None for ``move``)."""
    return STANDING_SEPARATOR.join(sections(state, goal, reply_format)) or None


def format_slots(reply_format: str) -> int | None:
    """Places per column of the format's layouts: ``FIXED_SLOTS`` for ``places-fixed``, else None (one per
    block of the problem)."""
    return FIXED_SLOTS if reply_format == "places-fixed" else None


def paired_layout(state: BlocksWorldState, goal: tuple[Fact, ...], slots: int | None = None) -> str:
    """Scene and goal column by column in the slots notation (``chain.paired_layout``), ``slots`` places per
    column (default one per block of the problem)."""
    return chain.paired_layout(scene_rows(state, slots), goal_rows(state, goal, slots))


def pairs_layout(
    state: BlocksWorldState, goal: tuple[Fact, ...], joiner: str = "=", keyed: bool = False
) -> str:
    """Scene and goal place by place, each scene place beside the goal's same place, joined by ``joiner``:
    ``c1: r=r o=g -=- | c2: -=- -=- -=-``. A column's standing is then a function of its own adjacent pairs,
    found by the column's name (content), with no place to locate by its position in the column.

    ``joiner=" = "`` writes the pair as separate tokens, ``c1: r = r o = g``: glued (``r=r``), the goal letters
    are other token ids than a reply's `` r``. With ``keyed`` a key letter (``PLACE_KEYS``, one per place,
    running across the columns) stands before every place, ``c1: A r = r B o = g | c2: C - = - ...``, so that
    a place is found by its key's content instead of its position."""
    keys = iter(PLACE_KEYS)
    return " | ".join(
        f"{column}: "
        + " ".join(f"{next(keys) + ' ' if keyed else ''}{a}{joiner}{b}" for a, b in zip(here, there))
        for (column, here), (_, there) in zip(scene_rows(state), goal_rows(state, goal))
    )


def keyed_words(rows: list[tuple[str, list[str]]]) -> str:
    """``(column, words)`` rows written with each place's key of ``pairs_layout`` before its word: ``c1: A -
    B no | c2: C g D -``."""
    keys = iter(PLACE_KEYS)
    return " | ".join(
        f"{column}: " + " ".join(f"{next(keys)} {word}" for word in words) for column, words in rows
    )


def keyed_places(state: BlocksWorldState, goal: tuple[Fact, ...]) -> str:
    """``goal_places`` keyed (``keyed_words``): ``c1: A - B no | c2: C g D -``."""
    return keyed_words(text_rows(goal_places(state, goal)))


def goal_copy(state: BlocksWorldState, goal: tuple[Fact, ...]) -> str:
    """The goal's places in the slots notation, ``c1: r - - | c2: - - -``: the reply of ``goal-paired``, every
    word a copy of the paired prompt's goal place at the same position in its column."""
    return layout_text(goal_layout(state.column_names, goal), len(state.blocks))


def keyed_goal(state: BlocksWorldState, goal: tuple[Fact, ...]) -> str:
    """The goal's places keyed (``keyed_words``), ``c1: A r B - | c2: C - D -``: every word a copy of the
    prompt's goal place with the same key."""
    return keyed_words(text_rows(goal_copy(state, goal)))


def prompt(
    state: BlocksWorldState, goal: tuple[Fact, ...], reply_format: str, tagged: bool = False
) -> tuple[str | None, str]:
    """(system, user) text of ``format_prompt``; ``tagged`` names the task first, ``Task places-paired. Scene =
    goal: ...``. Why: several formats share one prompt (the paired step formats and ``paired`` all ask from
    ``Scene = goal: ...``) and want different replies, so a mixture of them (``mix``) is ill-posed unless each
    prompt says which reply is asked. (Tagging alone did not lift a short mixed stage: finding 19 of
    ``README.md``.)"""
    system, user = format_prompt(state, goal, reply_format)
    return system, f"Task {reply_format}. {user}" if tagged else user


def format_prompt(
    state: BlocksWorldState, goal: tuple[Fact, ...], reply_format: str
) -> tuple[str | None, str]:
    """(system, user) text: the goal and the scene, both in the slots notation; ``tops-only`` gives the scene
    alone, the paired formats scene and goal column by column (``paired_layout``), the interleaved formats
    place by place (``pairs_layout``), ``standing-from-places`` the place-by-place comparison alone,
    ``move-from-tops`` the standing and the tops alone (system None: the chat template's default system
    message)."""
    scene = tops_prompt(state_explanation(state, "slots"))
    if reply_format == "tops-only":
        return None, scene
    if reply_format == "goal-only":
        return None, f"Goal: {goal_copy(state, goal)}"
    if reply_format == "standing-from-places":
        return None, standing_prompt(goal_places(state, goal))
    if reply_format == "move-from-tops":
        return None, move_prompt(goal_standing(state, goal), tops_reply(state))
    if reply_format in PAIRED_FORMATS:
        return None, f"Scene = goal: {paired_layout(state, goal, format_slots(reply_format))}"
    if reply_format in INTERLEAVED_FORMATS:
        return None, f"Scene=goal: {pairs_layout(state, goal)}"
    if reply_format in ("places-interleaved", *KEYED_FORMATS):
        return None, f"Scene = goal: {pairs_layout(state, goal, ' = ', reply_format in KEYED_FORMATS)}"
    return f"Goal: {goal_text(state.blocks, state.column_names, goal, 'slots')}", scene


def answer(state: BlocksWorldState, goal: tuple[Fact, ...], move: MoveBlock, reply_format: str) -> str:
    """The training reply: a JSON plan of ``move`` with the format's explanation, or for the step formats
    their ``sections`` as plain text."""
    if reply_format in STEP_FORMATS:
        return STANDING_SEPARATOR.join(sections(state, goal, reply_format))
    return plan_reply([move], explanation(state, goal, reply_format))


def make(out: Path, reply_format: str, samples: int, seed: int, tagged: bool = False) -> None:
    """Write ``samples`` text-only planning samples (``query_points``) as one LLaVA JSON list (``tagged``: the
    prompts name the task, ``prompt``)."""
    rows: list[dict] = []
    points = query_points(samples, seed)
    for problem, step in tqdm(points, total=samples, desc=f"probe data ({reply_format})"):
        system, user = prompt(step.state, problem.goal, reply_format, tagged)
        reply = answer(step.state, problem.goal, step.plan[0], reply_format)
        row = {"id": f"probe-{len(rows):06d}", "system": system}
        row["conversations"] = [{"from": "human", "value": user}, {"from": "gpt", "value": reply}]
        rows.append(row if system is not None else {k: v for k, v in row.items() if k != "system"})
    out.write_text(json.dumps(rows))


def score_reading(model_dir: str, states: int, seed: int, steps: int, batch: int) -> dict[str, float]:
    """The read call (``chain``) on ``states`` held-out states (``query_points``), rendered, greedy, as the
    chained planner asks it (its canvas fitted to the longest reply of each batch): the scene exactly right, a scene of the problem at all (``parse_scene``), and
    the share of its words right (``words``: column names, places and separators, by position), as rates."""
    planner = ChainedPlanner(model_dir, ChainConfig(steps=steps))
    points = list(query_points(states, seed))
    marks = []
    for start in tqdm(range(0, len(points), batch), desc="read held-out states"):
        chunk = [step.state for _, step in points[start : start + batch]]
        messages = [read_messages(state.blocks) for state in chunk]
        canvas = planner.canvas("read", [p for p, _ in points[start : start + batch]])
        replies = planner.ask("read", messages, [planner.images(state) for state in chunk], canvas=canvas)
        for state, reply in zip(chunk, replies):
            truth = read_reply(state)
            said, wanted = reply.split(), truth.split()
            right = sum(a == b for a, b in zip(said, wanted))
            marks.append(
                {
                    "exact": reply == truth,
                    "scene": parse_scene(reply, state.column_names, state.blocks) is not None,
                    "words": right / len(wanted),
                }
            )
    return dict(sorted(rates(marks).items()))


def place_word_kinds(state: BlocksWorldState, goal: tuple[Fact, ...]) -> list[str]:
    """The kind of each word of the places reply (``goal_places``), place by place in reply order:
    ``agree`` (``-``), ``no, goal empty`` / ``no, goal another block`` (a block the goal does not want, where
    the goal wants no block / another block) and ``copy`` (the goal's letter, the place empty)."""
    kinds = []
    for (_, here), (_, wanted) in zip(scene_rows(state), goal_rows(state, goal)):
        for scene_place, goal_place in zip(here, wanted):
            if scene_place == goal_place:
                kinds.append("agree")
            elif scene_place == chain.EMPTY_PLACE:
                kinds.append("copy")
            else:
                empty = goal_place == chain.EMPTY_PLACE
                kinds.append(f"no, goal {'empty' if empty else 'another block'}")
    return kinds


def places_marks(
    planner: ChainedPlanner,
    queries: list[tuple[BlocksWorldState, tuple[Fact, ...], Problem | GeneratedProblem]],
    batch: int,
) -> dict[str, float | int]:
    """The places call with the true scene and goal on ``queries`` (state, goal, the problem that fixes the
    canvas), greedy, as the chained planner asks it: the comparison exactly right (``exact``), and the
    share of each kind of word right (``place_word_kinds``; a reply whose layout does not parse has every
    word wrong), with ``states``: how many."""
    exact, right, words = 0, Counter(), Counter()
    for start in range(0, len(queries), batch):
        chunk = queries[start : start + batch]
        prompts = [places_prompt(scene_rows(state), goal_rows(state, goal)) for state, goal, _ in chunk]
        canvas = planner.canvas("places", [problem for _, _, problem in chunk])
        replies = planner.ask("places", [text_messages(prompt) for prompt in prompts], canvas=canvas)
        for (state, goal, _), reply in zip(chunk, replies):
            truth, said = goal_places(state, goal), places_of(reply)
            exact += said == truth
            wanted = [word for _, places in text_rows(truth) for word in places]
            try:
                given = [word for _, places in text_rows(said) for word in places]
            except ValueError:
                given = []
            for kind, want, got in zip(place_word_kinds(state, goal), wanted, given + [""] * len(wanted)):
                words[kind] += 1
                right[kind] += want == got
    shares = {kind: round(right[kind] / words[kind], 3) for kind in sorted(words)}
    return {"states": len(queries), "exact": round(exact / len(queries), 3), **shares}


def score_placing(model_dir: str, states: int, seed: int, steps: int, batch: int) -> dict[str, dict]:
    """The places call (``places_marks``) per split on ``states`` held-out states of that split
    (``query_points``) and on every state of a shortest plan of each benchmark problem, from its initial
    state (the states a planner that makes no mistake meets)."""
    planner = ChainedPlanner(model_dir, ChainConfig(steps=steps))
    report: dict[str, dict] = {"held_out": {}, "benchmark_shortest_plans": {}}
    for split in tqdm(SPLITS, desc="places per split"):
        points = query_points(states, seed, splits=[split])
        held = [(step.state, problem.goal, problem) for problem, step in points]
        report["held_out"][split] = places_marks(planner, held, batch)
        benchmark = []
        for problem in load_split(split):
            state = problem.initial_state
            for move in find_plan(state, problem.goal):
                benchmark.append((state, problem.goal, problem))
                state, _ = state.step(move)
        report["benchmark_shortest_plans"][split] = places_marks(planner, benchmark, batch)
    return report


def score_moving(
    model_dir: str, states: int, seed: int, steps: int, batch: int
) -> dict[str, dict[str, float]]:
    """The move call (``chain.move_prompt`` with the true standing and tops) on ``states`` held-out states
    (``query_points``), greedy, as the chained planner asks it: its training label exactly
    (``label``: ``chain_data.move_label``), a legal move (``legal``), a move of a shortest plan
    (``optimal``), a constructive one where one exists (``constructive``, for those states only); over all
    states and apart for the states with and without a constructive move, as rates (``states``: how
    many)."""
    planner = ChainedPlanner(model_dir, ChainConfig(steps=steps))
    points = list(query_points(states, seed))
    marks: dict[str, list[dict[str, bool]]] = {
        "all": [],
        "constructive_state": [],
        "no_constructive_state": [],
    }
    for start in tqdm(range(0, len(points), batch), desc="move held-out states"):
        chunk = points[start : start + batch]
        prompts = [
            move_prompt(goal_standing(step.state, p.goal), tops_reply(step.state)) for p, step in chunk
        ]
        canvas = planner.canvas("move", [p for p, _ in chunk])
        replies = planner.ask("move", [text_messages(prompt) for prompt in prompts], canvas=canvas)
        for (problem, step), reply in zip(chunk, replies):
            state, move = step.state, parse_plan_reply(reply).named_move
            quality = move_quality(state, list(problem.goal), reply, len(find_plan(state, problem.goal)))
            mark = {"label": move == move_label(state, problem.goal), **quality}
            marks["all"].append(mark)
            constructive = constructive_moves(state, problem.goal)
            if constructive:
                marks["constructive_state"].append({**mark, "constructive": move in constructive})
            else:
                marks["no_constructive_state"].append(mark)
    return {kind: {"states": len(group), **rates(group)} for kind, group in marks.items() if group}


def make_read(data_dir: Path, out: Path) -> None:
    """Write the read call's samples (``dreamvlx.envs.blocksworld.chain``) from a ``dreamvlx data viplan``
    dataset: one per rendered state (its image, relative to ``data_dir``), system ``Blocks: ...``, the reply
    the scene in the slots notation. Train with ``--data.image_folder data_dir``."""
    rows: list[dict] = []
    seen: set[str] = set()
    for sample in read_dataset(data_dir):
        if sample["image"] in seen:
            continue
        seen.add(sample["image"])
        meta = sample["meta"]
        state = BlocksWorldState.from_columns(meta["state"], meta["blocks"])
        rows.append(
            {
                "id": f"read-{len(rows):06d}",
                "image": sample["image"],
                "system": read_system(state.blocks),
                "conversations": [
                    {"from": "human", "value": IMAGE_PLACEHOLDER},
                    {"from": "gpt", "value": read_reply(state)},
                ],
            }
        )
    out.write_text(json.dumps(rows))


def ask(
    model: DreamVL,
    processor: DreamVLProcessor,
    prompts: list[tuple[str | None, str]],
    canvas: int,
    steps: int,
    staged: bool = False,
    temperature: float | Sequence[float] = 0.0,
) -> list[str]:
    """The model's free replies to text-only ``(system, user)`` prompts (system None: the chat template's
    default), decoded as the demo decodes (``DreamVLBackend``): ``steps`` diffusion steps over a
    ``canvas``-token reply, ``entropy`` order, greedy unless a ``temperature`` > 0 is asked for; ``staged``
    decodes one section at a time (``generate_in_sections`` at ``STANDING_SEPARATOR``). The temperature is
    always passed: the official effective default is 1.0 (sampling, top-k 50), which this probe used without
    saying so until 2026-12-07 (``README.md``, finding 20). ``temperature`` is one value for every prompt or
    one per prompt; then each distinct value's prompts are decoded as one batch."""
    if not isinstance(temperature, int | float):
        temperatures = list(temperature)
        if len(temperatures) != len(prompts):
            raise ValueError(f"{len(temperatures)} temperatures for {len(prompts)} prompts")
        replies = [""] * len(prompts)
        for value in sorted(set(temperatures)):
            rows = [row for row, row_value in enumerate(temperatures) if row_value == value]
            decoded = ask(model, processor, [prompts[row] for row in rows], canvas, steps, staged, value)
            for row, reply in zip(rows, decoded):
                replies[row] = reply
        return replies
    messages = []
    for system, user in prompts:
        turns = [{"role": "system", "content": system}] if system is not None else []
        messages.append([*turns, {"role": "user", "content": user}])
    device = next(model.parameters()).device
    inputs = build_prompt_batch(processor, [[] for _ in prompts], messages, device=device)
    decoding = {"max_new_tokens": canvas, "steps": steps, "alg": "entropy", "temperature": temperature}
    if staged:
        tokenizer = processor.tokenizer
        separator = tokenizer.encode(STANDING_SEPARATOR.rstrip())
        tokens = generate_in_sections(
            model, inputs, separator, pad_id=tokenizer.special_ids.endoftext, **decoding
        )
    else:
        tokens = generate_tokens(model, inputs, **decoding).tokens
    return [reply_text(processor.tokenizer, row.tolist()) for row in tokens]


class TextScenePlanner(Protocol):
    """Anything that answers a batch of (state, goal) queries, given as text, with one plan reply each;
    ``retries`` (one per query, or None: none) marks the queries ``play_benchmark``'s retry rule calls
    retries (asked again after a failed action, or in a state seen before)."""

    def replies(
        self,
        queries: list[tuple[BlocksWorldState, tuple[Fact, ...]]],
        retries: Sequence[bool] | None = None,
    ) -> list[str]: ...


def query_temperatures(
    count: int, temperature: float, retry_temperature: float | None, retries: Sequence[bool] | None
) -> list[float]:
    """Each of ``count`` queries' decoding temperature: ``retry_temperature`` for a retried query (when it is
    not None), else ``temperature``. Why: a prompt without history is the same question after a failed
    action, so a greedy reply repeats the failure until the step budget ends (``README.md``, finding 21);
    greedy first and sampled on a retry keeps greedy's better first choices and leaves such loops."""
    if retries is not None and len(retries) != count:
        raise ValueError(f"{len(retries)} retry flags for {count} queries")
    if retry_temperature is None or retries is None:
        return [temperature] * count
    return [retry_temperature if retry else temperature for retry in retries]


class Planner:
    """One model asked for one reply of ``reply_format`` from (state, goal) given as text, the demo's
    decoding at ``temperature`` (a retried query at ``retry_temperature`` when given: ``query_temperatures``)."""

    def __init__(
        self,
        model_dir: str,
        reply_format: str,
        canvas: int,
        steps: int,
        staged: bool = False,
        tagged: bool = False,
        temperature: float = 0.0,
        retry_temperature: float | None = None,
    ) -> None:
        self.model, self.processor = load_dream_vl(model_dir)
        self.reply_format, self.canvas, self.steps, self.staged = reply_format, canvas, steps, staged
        self.tagged, self.temperature, self.retry_temperature = tagged, temperature, retry_temperature

    def replies(
        self,
        queries: list[tuple[BlocksWorldState, tuple[Fact, ...]]],
        retries: Sequence[bool] | None = None,
    ) -> list[str]:
        prompts = [prompt(state, goal, self.reply_format, self.tagged) for state, goal in queries]
        temperatures = query_temperatures(len(queries), self.temperature, self.retry_temperature, retries)
        return ask(self.model, self.processor, prompts, self.canvas, self.steps, self.staged, temperatures)


def held_out(count: int, seed: int) -> list[tuple[BlocksWorldState, tuple[Fact, ...], MoveBlock]]:
    """``count`` (state, goal, labelled move) query points of episodes drawn with ``seed``."""
    return [(step.state, problem.goal, step.plan[0]) for problem, step in query_points(count, seed)]


def _decision_tokens(pieces: list[str], plain: bool) -> dict[str, list[int]]:
    """Indices of the reply's decision tokens (block letters, ``no``, ``-``, column digits) by section:
    ``section0``, ``section1``, ... of the explanation, then ``plan`` (its block letter and column digit);
    a ``plain`` reply (the step formats) is one section, ``section0``."""
    words = {*BLOCK_COLORS, "no", "-"}
    found: dict[str, list[int]] = {}
    text = ""
    for index, piece in enumerate(pieces):
        in_plan = '"plan"' in text
        section = "plan" if in_plan else f"section{text.count(STANDING_SEPARATOR.strip())}"
        word = piece.strip().strip('"')
        decides = (
            (word in BLOCK_COLORS or word.isdigit())
            if in_plan
            else (plain or '"explanation": "' in text) and word in words
        )
        if decides:
            found.setdefault(section, []).append(index)
        text += piece
    return found


def teacher_forced(planner: Planner, queries) -> dict[str, float]:
    """Accuracy of each section's decision tokens when only that section's decision tokens are masked and
    everything else of the true reply is given (argmax, Dream shift: logit row ``i - 1`` predicts token
    ``i``): which step of the reasoning the model can do when the steps before and after it are right. An
    AR control (causal attention) gets the true reply unmasked: its mask already hides every token's future,
    and mask tokens in its past are inputs it never saw in training (adjacent decision tokens, as in the
    place-by-place section, would otherwise each be predicted from a mask)."""
    model, tokenizer = planner.model, planner.processor.tokenizer
    masks = not model.config.is_causal
    device = next(model.parameters()).device
    hits: dict[str, float] = {}
    totals: dict[str, float] = {}
    for state, goal, move in tqdm(queries, desc="teacher-forced sections"):
        system, user = prompt(state, goal, planner.reply_format, planner.tagged)
        reply = answer(state, goal, move, planner.reply_format)
        turns = [{"from": "human", "value": user}, {"from": "gpt", "value": reply}]
        sequence = build_training_sequence(turns, tokenizer, system=system)
        reply_at = [i for i, label in enumerate(sequence.labels.tolist()) if label != IGNORE_INDEX]
        pieces = [tokenizer.decode([int(sequence.input_ids[i])]) for i in reply_at]
        for section, indices in _decision_tokens(pieces, planner.reply_format in STEP_FORMATS).items():
            positions = torch.tensor([reply_at[i] for i in indices])
            noised = sequence.input_ids.clone()
            if masks:
                noised[positions] = model.config.mask_token_id
            with torch.inference_mode():
                logits = model(input_ids=noised[None].to(device)).logits[0].cpu()
            right = (logits[positions - 1].argmax(-1) == sequence.input_ids[positions]).tolist()
            for index, hit in zip(indices, right):
                kind = word_kind(pieces[index], planner.reply_format) if section == "section0" else None
                for group in filter(None, (section, kind)):
                    hits[group] = hits.get(group, 0.0) + hit
                    totals[group] = totals.get(group, 0.0) + 1
    return {group: round(hits[group] / totals[group], 3) for group in sorted(hits)}


def word_kind(word: str, reply_format: str) -> str | None:
    """What a true word of the first section has to do, for the formats that write one word per place (else
    None). The place-by-place comparison: ``places_equal`` (scene and goal agree: ``-``), ``places_no`` (a
    scene block the goal does not want there) or ``places_letter`` (an empty place the goal fills: the goal's
    letter, copied). The goal copies: ``copy_empty`` (``-``) or ``copy_letter``."""
    word = word.strip().strip('"')
    if reply_format in PLACES_FORMATS:
        return {"-": "places_equal", "no": "places_no"}.get(word, "places_letter")
    if reply_format in COPY_FORMATS:
        return "copy_empty" if word == "-" else "copy_letter"
    return None


def plan_marks(state: BlocksWorldState, goal: tuple[Fact, ...], reply: str, reply_format: str) -> dict:
    """One free reply of a plan format: the move's quality and each explanation section's exactness."""
    marks = move_quality(state, list(goal), reply, len(find_plan(state, goal)))
    parsed = parse_plan_reply(reply)
    move = MoveBlock(parsed.block, parsed.column) if marks["legal"] else None
    marks["constructive"] = move is not None and move in constructive_moves(state, goal)
    truth = explanation(state, goal, reply_format)
    if truth is not None:
        said = parsed.plan if parsed.status == "ok" else {}
        marks.update(_sections_exact(truth, str(said.get("explanation", ""))))
    return marks


def _sections_exact(truth: str, said: str) -> dict[str, bool]:
    """``section{k}_exact``: whether the k-th section (split at ``STANDING_SEPARATOR``) of ``said`` is
    exactly the k-th of ``truth``."""
    said_sections = said.split(STANDING_SEPARATOR)
    return {
        f"section{k}_exact": k < len(said_sections) and said_sections[k] == section
        for k, section in enumerate(truth.split(STANDING_SEPARATOR))
    }


def score_states(planner: Planner, queries, batch: int) -> dict[str, float]:
    """Free generation on held-out states: for the plan formats the move's quality and each section's
    exactness (``plan_marks``), for the step formats whether each section of the reply is exactly right."""
    marks = []
    for start in tqdm(range(0, len(queries), batch), desc="held-out states"):
        chunk = queries[start : start + batch]
        replies = planner.replies([(state, goal) for state, goal, _ in chunk])
        for (state, goal, move), reply in zip(chunk, replies):
            if planner.reply_format in STEP_FORMATS:
                truth = answer(state, goal, move, planner.reply_format)
                marks.append(_sections_exact(truth, reply.strip()))
            else:
                marks.append(plan_marks(state, goal, reply, planner.reply_format))
    return rates(marks)


RETRY_RULES = {
    "failure": lambda episode: episode.last_action_failed,
    "revisit": lambda episode: episode.state_seen_before,
}


MOVE_KINDS = ("closer", "level", "away", "failed")
MOVE_ACTION, SHORT_ACTION = re.compile(r"moveblock\((\w+), (\w+)\)"), r"\1>\2"  # moveblock(y, c3) -> y>c3


def move_kind(distance_before: int, distance_after: int, success: bool) -> str:
    """What one reply did to an episode, by the optimal plan length from its state before and after:
    ``closer`` (shorter), ``level`` (as long: a legal move that leaves the goal as far), ``away`` (longer) or
    ``failed`` (no action executed: illegal, no such action, or an unusable reply)."""
    if not success:
        return "failed"
    if distance_after < distance_before:
        return "closer"
    return "level" if distance_after == distance_before else "away"


def trace_summary(traces: list[dict]) -> dict[str, float | int]:
    """One split's episode traces (``play_benchmark``) summed up: the share of replies of each ``MOVE_KINDS``
    kind, the shares of replies asked as retries and redrawn at least once, and over the unsolved episodes
    how many there are and their mean optimal distance to the goal at the start and at the end."""
    steps = [step for trace in traces for step in trace["steps"]]
    unsolved = [trace for trace in traces if not trace["solved"]]

    def share(count: int) -> float:
        return round(count / max(len(steps), 1), 3)

    summary: dict[str, float | int] = {
        f"replies_{kind}": share(sum(step["kind"] == kind for step in steps)) for kind in MOVE_KINDS
    }
    summary["replies_retried"] = share(sum(step["retry"] for step in steps))
    summary["replies_redrawn"] = share(sum(step["redrawn"] > 0 for step in steps))
    summary["unsolved"] = len(unsolved)
    for end in ("start", "end"):
        mean = sum(trace[f"distance_{end}"] for trace in unsolved) / max(len(unsolved), 1)
        summary[f"unsolved_distance_{end}"] = round(mean, 2)
    return summary


def trace_line(trace: dict) -> dict:
    """An episode trace as written in a report: its replies as one line, each ``ACTION KIND DISTANCE``
    (``y>c3`` for ``moveblock(y, c3)``; the distance after the reply; `` retry`` when asked as one,
    `` redrawn N`` when asked again N times), joined by `` | ``."""
    moves = " | ".join(
        f"{MOVE_ACTION.sub(SHORT_ACTION, step['action'])} {step['kind']} {step['distance']}"
        + (" retry" if step["retry"] else "")
        + (f" redrawn {step['redrawn']}" if step["redrawn"] else "")
        for step in trace["steps"]
    )
    return {**{key: value for key, value in trace.items() if key != "steps"}, "moves": moves}


def redraw_futile(
    planner: TextScenePlanner,
    queries: list[tuple[BlocksWorldState, tuple[Fact, ...]]],
    replies: list[str],
    futile: list[frozenset[MoveBlock]],
    redraws: int,
) -> list[int]:
    """Ask each query whose reply names a move of its ``futile`` set again, as a retry, up to ``redraws``
    times, replacing its reply in ``replies``; returns how often each query was asked again."""
    redrawn = [0] * len(queries)
    for _ in range(redraws):
        again = [k for k, reply in enumerate(replies) if parse_plan_reply(reply).named_move in futile[k]]
        if not again:
            break
        for k, reply in zip(again, planner.replies([queries[k] for k in again], [True] * len(again))):
            replies[k], redrawn[k] = reply, redrawn[k] + 1
    return redrawn


def trace_step(trace: dict, episode: PlanningEpisode, retry: bool, redrawn: int) -> None:
    """Append the reply ``episode`` has just taken to its ``trace`` (``play_benchmark``)."""
    step = episode.steps[-1]
    distance = len(find_plan(episode.env.state, episode.problem.goal))
    trace["steps"].append(
        {
            "action": step.get("action") or step.get("info") or step["status"],
            "kind": move_kind(trace["distance_end"], distance, step["success"]),
            "distance": distance,
            "retry": retry,
            "redrawn": redrawn,
        }
    )
    trace.update(distance_end=distance, solved=episode.env.goal_reached)


def play_benchmark(planner: TextScenePlanner, retry_on: str = "failure", redraws: int = 0) -> dict[str, dict]:
    """ViPlan planning mode on the 75 problems, the true scene given as text: each split's episodes
    (``PlanningEpisode``, ViPlan's step budgets) played in lockstep, the live ones' queries asked as one
    batch per step, each marked as a retry by ``RETRY_RULES[retry_on]``: ``failure`` when its episode's
    last action failed, ``revisit`` when its state occurred earlier in the episode (a failure, or a cycle
    of legal moves). A reply that names one of its episode's ``futile_actions`` (a move that failed in this
    state, or a second move in a row of one block) is asked again as a retry, up to ``redraws`` times;
    the last one asked is taken.

    Per split: the success rates, ``trace_summary`` of the episodes, and each episode's trace (``episodes``,
    ``trace_line``: the problem, whether it was solved, the optimal distance to the goal at its start and
    end, and per reply its action, ``move_kind``, the distance after it, whether it was a retry and how
    often it was redrawn)."""
    if retry_on not in RETRY_RULES:
        raise ValueError(f"unknown retry rule {retry_on!r}; choose from {sorted(RETRY_RULES)}")
    if redraws < 0:
        raise ValueError(f"redraws must be 0 or more, got {redraws}")
    is_retry = RETRY_RULES[retry_on]
    results = {}
    for split in SPLITS:
        config = PlanningConfig(MAX_STEPS[split], cot=True, prompt_style="slots")
        episodes = [PlanningEpisode(problem, config) for problem in load_split(split)]
        distances = [len(find_plan(e.env.state, e.problem.goal)) for e in episodes]
        traces = [
            {"problem": e.problem.name, "solved": False, "distance_start": d, "distance_end": d, "steps": []}
            for e, d in zip(episodes, distances)
        ]
        with tqdm(total=len(episodes), desc=f"benchmark {split}") as ended:
            while live := [index for index, episode in enumerate(episodes) if not episode.done]:
                queries = [(episodes[i].env.state, tuple(episodes[i].problem.goal)) for i in live]
                retries = [is_retry(episodes[i]) for i in live]
                replies = planner.replies(queries, retries)
                futile = [episodes[i].futile_actions for i in live]
                redrawn = redraw_futile(planner, queries, replies, futile, redraws)
                for index, reply, retry, times in zip(live, replies, retries, redrawn):
                    episodes[index].take(episodes[index].messages(), reply)
                    trace_step(traces[index], episodes[index], retry, times)
                ended.update(sum(episodes[i].done for i in live))
        metrics = planning_metrics([episode.record() for episode in episodes])
        results[split] = {
            "success": metrics["task_completion_rate"],
            "action_success": metrics["action_success_rate"],
            "unparsable_replies": metrics["unparsable_replies"],
            **trace_summary(traces),
            "episodes": [trace_line(trace) for trace in traces],
        }
    return results


def add_retry_arguments(parser: argparse.ArgumentParser, temperature_flag: str) -> None:
    """The benchmark's retry options: ``--retry-temperature`` (a retry's temperature; default: that of
    ``temperature_flag``), ``--retry-on`` (the ``RETRY_RULES`` rule that makes a query a retry),
    ``--redraws`` (``play_benchmark``) and ``--sampling-seed``; ``check_retry_arguments`` checks them once
    parsed."""
    parser.add_argument(
        "--retry-temperature",
        type=float,
        help=f"benchmark: the temperature of a query retried (--retry-on) (default: {temperature_flag})",
    )
    parser.add_argument(
        "--retry-on",
        choices=sorted(RETRY_RULES),
        default="failure",
        help="benchmark: what makes a retry: a failed action, or a state seen before in the episode",
    )
    parser.add_argument(
        "--redraws",
        type=int,
        default=0,
        help="benchmark: ask a reply again as a retry, up to this many times, while it names a futile move "
        "(PlanningEpisode.futile_actions: failed here before, or the block just moved); needs a retry "
        "temperature > 0",
    )
    parser.add_argument(
        "--sampling-seed",
        type=int,
        default=0,
        help="seed of the random stream sampled replies draw from (another seed: another run of the same planner)",
    )


def check_retry_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, temperature: float
) -> None:
    """Refuse ``--redraws`` when a retry would be decoded greedily (it would give the same reply again)."""
    retry_temperature = temperature if args.retry_temperature is None else args.retry_temperature
    if args.redraws < 0:
        parser.error(f"--redraws must be 0 or more, got {args.redraws}")
    if args.redraws and retry_temperature <= 0:
        parser.error("--redraws needs a retry temperature > 0: a greedy retry gives the same reply again")


CALL_EVALS = {
    "read-eval": ("read", score_reading, 200, "score the read call on held-out rendered states"),
    "move-eval": ("move", score_moving, 400, "score the move call on held-out states, given true inputs"),
    "places-eval": (
        "places",
        score_placing,
        200,
        "score the places call per split on held-out states and the benchmark's shortest plans, given true inputs",
    ),
}
"""Subcommands scoring one call of the chained planner: the report's key, the scorer, default states, help."""


def write_report(report: dict, out: Path | None) -> None:
    """Print ``report`` as JSON and write it to ``out`` when given."""
    print(json.dumps(report, indent=1))
    if out:
        out.write_text(json.dumps(report, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make_parser = sub.add_parser("make")
    make_parser.add_argument("out", type=Path)
    make_parser.add_argument("--format", choices=FORMATS, required=True)
    make_parser.add_argument("--samples", type=int, default=40000)
    make_parser.add_argument("--seed", type=int, default=1)
    make_parser.add_argument("--tagged", action="store_true", help="name the task in every prompt (for mix)")
    read_parser = sub.add_parser("read", help="the read call's samples from a dreamvlx data viplan dataset")
    read_parser.add_argument("data_dir", type=Path)
    read_parser.add_argument("out", type=Path)
    for command, (_call, _score, states, help_text) in CALL_EVALS.items():
        call_eval_parser = sub.add_parser(command, help=help_text)
        call_eval_parser.add_argument("model")
        call_eval_parser.add_argument("--states", type=int, default=states)
        call_eval_parser.add_argument("--seed", type=int, default=99)
        call_eval_parser.add_argument("--steps", type=int, default=8)
        call_eval_parser.add_argument("--batch", type=int, default=25)
        call_eval_parser.add_argument("--out", type=Path)
    mix_parser = sub.add_parser("mix", help="shuffle samples of several probe data files into one")
    mix_parser.add_argument("out", type=Path)
    mix_parser.add_argument(
        "--part",
        type=parse_part,
        action="append",
        required=True,
        help="PATH or PATH:COUNT (its first COUNT samples)",
    )
    mix_parser.add_argument("--seed", type=int, default=0)
    eval_parser = sub.add_parser("eval")
    eval_parser.add_argument("model")
    eval_parser.add_argument("--format", choices=FORMATS, required=True)
    eval_parser.add_argument("--states", type=int, default=200)
    eval_parser.add_argument("--seed", type=int, default=99)
    eval_parser.add_argument("--canvas", type=int, default=64)
    eval_parser.add_argument("--steps", type=int, default=8)
    eval_parser.add_argument("--batch", type=int, default=25)
    eval_parser.add_argument("--forced", type=int, default=100, help="held-out states scored teacher-forced")
    eval_parser.add_argument(
        "--staged",
        action="store_true",
        help="decode the reply one section at a time (generate_in_sections at ' ;'), as given-prefix runs train it",
    )
    eval_parser.add_argument(
        "--tagged", action="store_true", help="ask with the task named, as make --tagged"
    )
    eval_parser.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="0 (default): greedy, as the demo; > 0 samples (every reply before 2026-12-07 was sampled at 1.0)",
    )
    add_retry_arguments(eval_parser, "--temperature")
    eval_parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "eval":
        check_retry_arguments(eval_parser, args, args.temperature)
    if args.command == "make":
        make(args.out, args.format, args.samples, args.seed, args.tagged)
        return
    if args.command == "read":
        make_read(args.data_dir, args.out)
        return
    if args.command in CALL_EVALS:
        call, score, _states, _help = CALL_EVALS[args.command]
        scores = score(args.model, args.states, args.seed, args.steps, args.batch)
        report = {
            "model": args.model,
            "states": args.states,
            "seed": args.seed,
            "steps": args.steps,
            call: scores,
        }
        write_report(report, args.out)
        return
    if args.command == "mix":
        mix_data(args.out, args.part, args.seed)
        return
    torch.manual_seed(args.sampling_seed)
    planner = Planner(
        args.model,
        args.format,
        args.canvas,
        args.steps,
        args.staged,
        args.tagged,
        args.temperature,
        args.retry_temperature,
    )
    queries = held_out(args.states, args.seed)
    report: dict = {
        "model": args.model,
        "format": args.format,
        "canvas": args.canvas,
        "steps": args.steps,
        "staged": args.staged,
        "tagged": args.tagged,
        "temperature": args.temperature,
        "retry_temperature": args.retry_temperature,
        "retry_on": args.retry_on,
        "redraws": args.redraws,
        "sampling_seed": args.sampling_seed,
        "held_out_states": args.states,
        "states": score_states(planner, queries, args.batch),
        "teacher_forced": teacher_forced(planner, queries[: args.forced]),
    }
    if args.format in PLAN_FORMATS:
        report["benchmark_text_scene"] = play_benchmark(planner, args.retry_on, args.redraws)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
