"""The ViPlan training-data generator: benchmark exclusion, well-formed samples, reproducibility, speed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreamvlx.envs.blocksworld.datagen import (
    SPLIT_SPECS,
    EpisodeConfig,
    benchmark_keys,
    canonical_key,
    constructive_first_plan,
    constructive_moves,
    generate_samples,
    goal_facts,
    main,
    read_dataset,
    sample_problem,
    write_dataset,
)
from dreamvlx.envs.blocksworld.planner import find_plan, validate_plan
from dreamvlx.envs.blocksworld.problems import SPLITS, load_split
from dreamvlx.envs.blocksworld.prompts import (
    goal_layout,
    goal_string,
    grounding_prompt,
    layout_text,
    question_text,
    user_text,
)
from dreamvlx.envs.blocksworld.replies import (
    STANDING_SEPARATOR,
    goal_places,
    goal_standing,
    parse_plan_reply,
    parse_yes_no,
    state_explanation,
)
from dreamvlx.envs.blocksworld.state import BlocksWorldState, MoveBlock


def _state(meta: dict) -> BlocksWorldState:
    return BlocksWorldState.from_columns([(c, s) for c, s in meta["state"]], blocks=meta["blocks"])


@pytest.fixture(scope="module")
def samples() -> list[tuple[dict, Image.Image]]:
    return list(generate_samples(400, seed=11))


def test_split_specs_match_the_benchmark_problems():
    for split in SPLITS:
        problems = load_split(split)
        lengths = [len(find_plan(p.initial_state, p.goal)) for p in problems]
        goal_heights = [
            max(sum(1 for f in p.goal if f[0] == "incolumn" and f[2] == c) for c in p.columns)
            for p in problems
        ]
        spec = SPLIT_SPECS[split]
        assert {len(p.blocks) for p in problems} == {spec.n_blocks}
        assert {p.columns for p in problems} == {spec.columns}
        assert max(max(map(len, p.initial_state.stacks)) for p in problems) == spec.max_init_height
        assert max(goal_heights) == spec.max_goal_height
        assert (min(lengths), max(lengths)) == (spec.min_plan_length, spec.max_plan_length)


def test_benchmark_problems_are_excluded():
    keys = benchmark_keys()
    assert len(keys) == 75
    for split in SPLITS:  # the exclusion key is order-free: reordering a goal keeps the key
        for problem in load_split(split):
            assert canonical_key(problem.initial_state, tuple(reversed(problem.goal))) in keys
    rng = np.random.default_rng(0)
    for split, spec in SPLIT_SPECS.items():
        for _ in range({"simple": 60, "medium": 20, "hard": 4}[split]):
            problem = sample_problem(rng, spec)
            assert canonical_key(problem.initial_state, problem.goal) not in keys
            assert spec.min_plan_length <= len(problem.plan) <= spec.max_plan_length


def test_no_sample_shows_a_benchmark_problem(samples):
    keys = benchmark_keys()
    for sample, _ in samples:
        meta = sample["meta"]
        if meta["mode"] == "planning":
            goal = tuple(tuple(f) for f in meta["goal"])
            assert canonical_key(_state(meta), goal) not in keys


def test_samples_are_well_formed(samples):
    assert {s["meta"]["split"] for s, _ in samples} == set(SPLITS)
    ids = [s["id"] for s, _ in samples]
    assert len(set(ids)) == len(ids) == 400
    for sample, image in samples:
        assert set(sample) == {"id", "image", "system", "conversations", "meta"}
        assert sample["system"].startswith("You are")  # ViPlan's system text, as the evaluator sends it
        human, gpt = sample["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        assert human["value"].count("<image>") == 1 and sample["system"] not in human["value"]
        assert image.size == (300, 200) and image.mode == "RGB"
        assert sample["image"].startswith("images/00000/") and sample["image"].endswith(".png")


def test_grounding_answers_match_the_true_state(samples):
    grounding = [(s, i) for s, i in samples if s["meta"]["mode"] == "grounding"]
    answers = []
    for sample, _ in grounding:
        meta = sample["meta"]
        fact = tuple(meta["fact"])
        human, gpt = (turn["value"] for turn in sample["conversations"])
        expected = "yes" if _state(meta).holds(fact[0], *fact[1:]) else "no"
        assert parse_yes_no(gpt) == expected and gpt in ("Yes", "No")
        question = user_text(grounding_prompt(question_text(fact[0], fact[1:])))
        assert human.endswith(question) and not question.endswith("?")  # ViPlan's dropped "?"
        answers.append(expected)
    assert 0.3 < answers.count("yes") / len(answers) < 0.7  # balanced yes/no


def test_planning_answers_are_optimal_valid_plans(samples):
    planning = [s for s, _ in samples if s["meta"]["mode"] == "planning"]
    assert len(planning) > 40
    saw_failure = False
    for sample in planning:
        meta = sample["meta"]
        state, goal = _state(meta), tuple(tuple(f) for f in meta["goal"])
        human, gpt = (turn["value"] for turn in sample["conversations"])
        parsed = parse_plan_reply(gpt)
        assert parsed.status == "ok", parsed.error
        plan = [
            MoveBlock(step["parameters"]["block"], step["parameters"]["column"])
            for step in parsed.plan["plan"]
        ]
        assert all(step["action"] == "moveblock" for step in parsed.plan["plan"])
        assert validate_plan(state, goal, plan).valid
        assert len(plan) == len(find_plan(state, goal))  # optimal from the shown state
        assert goal_string(state.blocks, goal) in human
        history = json.loads(human.split("## Previously taken actions\n", 1)[1].split("\n\n## Current", 1)[0])
        assert len(history) == meta["history_length"]
        saw_failure |= any(entry["outcome"] != "success" for entry in history)
    assert saw_failure  # mid-episode samples include failed actions


def test_plan_horizon_keeps_the_first_optimal_actions():
    config = EpisodeConfig(plan_horizon=1)
    for sample, _ in generate_samples(40, seed=3, modes=["planning"], config=config):
        meta = sample["meta"]
        state, goal = _state(meta), tuple(tuple(f) for f in meta["goal"])
        parsed = parse_plan_reply(sample["conversations"][-1]["value"])
        assert parsed.status == "ok" and len(parsed.plan["plan"]) == 1
        step = parsed.plan["plan"][0]["parameters"]
        after, result = state.step(MoveBlock(step["block"], step["column"]))
        assert result.success
        assert len(find_plan(after, goal)) == len(find_plan(state, goal)) - 1  # an optimal first move


def test_compact_cot_samples_explain_the_shown_state():
    config = EpisodeConfig(plan_horizon=1, prompt_style="compact", cot=True, questions_per_image=1)
    modes = set()
    for sample, _ in generate_samples(30, seed=5, config=config):
        meta = sample["meta"]
        modes.add(meta["mode"])
        human, gpt = (turn["value"] for turn in sample["conversations"])
        notation = state_explanation(_state(meta), "compact")
        if meta["mode"] == "planning":
            assert human == "<image>"
            goal = layout_text(goal_layout(_state(meta).column_names, [tuple(f) for f in meta["goal"]]))
            assert sample["system"].startswith(f"Goal: {goal}\nPrevious actions: ")
            reply = json.loads(gpt)
            assert reply["explanation"] == notation and len(reply["plan"]) == 1
        else:
            assert sample["system"] == question_text(meta["fact"][0], meta["fact"][1:]) and human == "<image>"
            assert f"<explanation>\n{notation}\n</explanation>" in gpt
    assert modes == {"grounding", "planning"}
    with pytest.raises(ValueError, match="unknown prompt style"):
        next(generate_samples(1, seed=0, config=EpisodeConfig(prompt_style="terse")))


def test_slots_cot_samples_write_goal_and_scene_in_fixed_places():
    config = EpisodeConfig(plan_horizon=1, prompt_style="slots", cot=True, questions_per_image=1)
    for sample, _ in generate_samples(30, seed=5, modes=["planning"], config=config):
        meta = sample["meta"]
        state = _state(meta)
        slots = len(meta["blocks"])
        goal = layout_text(goal_layout(state.column_names, [tuple(f) for f in meta["goal"]]), slots)
        assert sample["system"].startswith("Previous actions: ")
        assert sample["system"].endswith(f"\nGoal: {goal}")
        reply = json.loads(sample["conversations"][1]["value"])
        assert reply["explanation"] == layout_text(state.columns(), slots)
        assert all(len(column.split(":")[1].split()) == slots for column in reply["explanation"].split("|"))


def test_standing_explanations_lead_to_the_constructive_move():
    config = EpisodeConfig(
        plan_horizon=1, prompt_style="slots", cot=True, questions_per_image=1, standing=True
    )
    constructive_seen = 0
    for sample, _ in generate_samples(60, seed=3, config=config):
        meta = sample["meta"]
        state, goal = _state(meta), [tuple(f) for f in meta["goal"]]
        gpt = sample["conversations"][1]["value"]
        scene = layout_text(state.columns(), len(meta["blocks"]))
        if meta["mode"] == "grounding":  # grounding answers spell out the scene only
            assert f"<explanation>\n{scene}\n</explanation>" in gpt
            continue
        reply = json.loads(gpt)
        shown, standing = reply["explanation"].split(STANDING_SEPARATOR)
        assert shown == scene and standing == goal_standing(state, goal)
        layout, stacks = dict(goal_layout(state.column_names, goal)), dict(state.columns())
        for word, column in zip(standing.split(" | "), state.column_names):
            name, verdict = word.split(" ", 1)
            assert name == column
            if verdict == "-":
                assert stacks[column] == layout[column]
            elif verdict == "no":
                assert layout[column][: len(stacks[column])] != stacks[column]
            else:  # the stack is the goal's bottom part and the named block comes next
                assert verdict == layout[column][len(stacks[column])]
        move = MoveBlock(**reply["plan"][0]["parameters"])
        if move in constructive_moves(state, goal):
            constructive_seen += 1
            assert f"{move.column} {move.block}" in standing.split(" | ")
    assert constructive_seen > 0
    with pytest.raises(ValueError, match="standing explanations need cot=True"):
        EpisodeConfig(prompt_style="slots", standing=True)
    with pytest.raises(ValueError, match="compact prompt style"):
        EpisodeConfig(prompt_style="viplan", cot=True, standing=True)


def test_place_explanations_sit_between_scene_and_standing():
    config = EpisodeConfig(
        plan_horizon=1, prompt_style="slots", cot=True, questions_per_image=1, standing=True, places=True
    )
    planning = 0
    for sample, _ in generate_samples(30, seed=4, config=config, modes=("planning",)):
        state, goal = _state(sample["meta"]), [tuple(f) for f in sample["meta"]["goal"]]
        explanation = json.loads(sample["conversations"][1]["value"])["explanation"]
        scene, places, standing = explanation.split(STANDING_SEPARATOR)
        assert scene == layout_text(state.columns(), len(state.blocks))
        assert places == goal_places(state, goal) and standing == goal_standing(state, goal)
        planning += 1
    assert planning == 30
    with pytest.raises(ValueError, match="place-by-place explanations need standing=True"):
        EpisodeConfig(prompt_style="slots", cot=True, places=True)
    with pytest.raises(ValueError, match="the 'slots' prompt style"):
        EpisodeConfig(prompt_style="compact", cot=True, standing=True, places=True)


def test_same_seed_same_files_for_any_worker_count(tmp_path: Path):
    def files(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    config = EpisodeConfig(randomize_rendering=True)
    kwargs = dict(samples=30, seed=5, splits=["simple"], config=config, shard_size=15, progress=False)
    write_dataset(tmp_path / "a", workers=1, **kwargs)
    write_dataset(tmp_path / "b", workers=2, **kwargs)
    write_dataset(tmp_path / "c", workers=1, **{**kwargs, "seed": 6})
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b
    assert a.keys() >= {"index.json", "shard_00000.json", "shard_00001.json"}
    assert a["shard_00000.json"] != c["shard_00000.json"]
    dataset = read_dataset(tmp_path / "a")
    assert len(dataset) == 30
    assert all((tmp_path / "a" / s["image"]).is_file() for s in dataset)


def test_cli_writes_requested_modes(tmp_path: Path):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "--out",
                str(out),
                "--samples",
                "12",
                "--seed",
                "1",
                "--splits",
                "simple",
                "--modes",
                "planning",
                "--no-progress",
            ]
        )
        == 0
    )
    dataset = read_dataset(out)
    assert len(dataset) == 12 and {s["meta"]["mode"] for s in dataset} == {"planning"}
    index = json.loads((out / "index.json").read_text())
    assert index["samples"] == 12 and index["modes"] == ["planning"]


def test_bad_arguments_raise_clear_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown split"):
        next(generate_samples(1, 0, splits=["easy"]))
    with pytest.raises(ValueError, match="unknown mode"):
        next(generate_samples(1, 0, modes=["captioning"]))
    with pytest.raises(FileNotFoundError, match=r"index\.json"):
        read_dataset(tmp_path)


def test_generation_throughput():
    benchmark_keys()
    start = time.perf_counter()
    count = sum(1 for _ in generate_samples(300, seed=2, splits=["simple", "medium"]))
    rate = count / (time.perf_counter() - start)
    assert count == 300 and rate > 40, f"{rate:.0f} samples/s"  # loose bound; ~250/s on one idle core


def test_constructive_first_plans_are_optimal_and_build_when_they_can():
    state = BlocksWorldState.from_columns([("c1", ["r", "g"]), ("c2", ["b"]), ("c3", [])])
    goal = goal_facts(BlocksWorldState.from_columns([("c1", ["r"]), ("c2", ["b", "g"]), ("c3", [])]))
    assert constructive_moves(state, goal) == [MoveBlock("g", "c2")]
    assert constructive_first_plan(state, goal) == [MoveBlock("g", "c2")]
    blocked = BlocksWorldState.from_columns([("c1", ["g", "r"]), ("c2", ["b"]), ("c3", [])])
    assert constructive_moves(blocked, goal) == []  # r is on g, not yet anywhere final
    rng = np.random.default_rng(0)
    for split in SPLITS:
        for _ in range(15):
            problem = sample_problem(rng, SPLIT_SPECS[split])
            state, plan = problem.initial_state, list(problem.plan)
            assert validate_plan(state, problem.goal, plan).valid
            assert len(plan) == len(find_plan(state, problem.goal))
            for move in plan:
                options = constructive_moves(state, problem.goal)
                if options and move not in options:  # a constructive move was skipped: none was optimal
                    for option in options:
                        after, _ = state.step(option)
                        assert len(find_plan(after, problem.goal)) >= len(find_plan(state, problem.goal))
                state, _ = state.step(move)
