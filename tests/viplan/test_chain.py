"""The chained planner's text formats (``chain``), their training data (``chain_data``) and the planner's loop
(``evals.viplan.chained``), checked with replies that follow the training data exactly."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image

from dreamvlx.demo import shipped_model_dir
from dreamvlx.envs.blocksworld import chain
from dreamvlx.envs.blocksworld.chain_data import (
    conversation,
    mix_data,
    move_label,
    query_points,
    write_call_data,
    write_rows,
)
from dreamvlx.envs.blocksworld.datagen import constructive_first_plan, constructive_moves
from dreamvlx.envs.blocksworld.planner import find_plan
from dreamvlx.envs.blocksworld.problems import load_split
from dreamvlx.envs.blocksworld.replies import goal_standing, plan_reply
from dreamvlx.envs.blocksworld.state import BlocksWorldState, MoveBlock
from dreamvlx.evals.viplan.chained import (
    CANVASES,
    ChainConfig,
    ChainedPlanner,
    problem_canvases,
    run_chained,
    summarize_chained,
    usable_move,
)
from dreamvlx.evals.viplan.planning import PlanningConfig, PlanningEpisode
from dreamvlx.processing import DreamVLProcessor
from dreamvlx.processing.conversation import IMAGE_PLACEHOLDER


def test_a_true_reading_parses_back_to_its_scene_and_broken_ones_do_not() -> None:
    for _problem, step in query_points(30, seed=5):
        state = step.state
        assert chain.parse_scene(
            chain.read_reply(state), state.column_names, state.blocks
        ) == chain.scene_rows(state)
    state = BlocksWorldState.from_columns({"c1": ["r", "g"], "c2": [], "c3": ["b"]}, ["r", "g", "b"])
    assert chain.read_reply(state) == "c1: r g - | c2: - - - | c3: b - -"
    columns, blocks = state.column_names, state.blocks
    for broken in (
        "c1: r g - | c2: - - - | c3: r - -",  # r twice, b missing
        "c1: r g - | c2: - - - | c4: b - -",  # a column of another problem
        "c1: r g - | c2: - - -",  # a column missing
        "c1: r - g | c2: - - - | c3: b - -",  # g floats above an empty place
        "c1: r g | c2: - - - | c3: b - -",  # a column one place short
        '{"plan": []}',
        "",
    ):
        assert chain.parse_scene(broken, columns, blocks) is None, broken
    assert chain.column_tops(chain.scene_rows(state)) == "c1 g | c2 - | c3 b"
    with pytest.raises(ValueError, match="columns"):
        chain.paired_layout(chain.scene_rows(state), chain.scene_rows(state)[:2])


def test_each_calls_data_prompt_is_built_from_the_previous_calls_true_reply() -> None:
    for problem, step in query_points(40, seed=6):
        state, goal, move = step.state, problem.goal, step.plan[0]
        replies = {fmt: conversation(state, goal, move, fmt) for fmt in chain.CALLS}
        scene = chain.parse_scene(replies["read"][2], state.column_names, state.blocks)
        goal_rows = chain.goal_rows(state, goal)
        assert replies["read"][:2] == (chain.read_system(state.blocks), IMAGE_PLACEHOLDER)
        assert replies["places"][1] == chain.places_prompt(scene, goal_rows)
        assert replies["standing"][1] == chain.standing_prompt(chain.places_of(replies["places"][2]))
        assert replies["tops"][1] == chain.tops_prompt(chain.rows_text(scene))
        assert replies["move"][1] == chain.move_prompt(replies["standing"][2], replies["tops"][2])
        assert replies["move"][2] == plan_reply([move_label(state, goal)])
        assert conversation(state, goal, move, "move-search") == (
            None,
            replies["move"][1],
            plan_reply([move]),
        )
        assert conversation(state, goal, move, "goal-paired")[1] == replies["places"][1]
    with pytest.raises(ValueError, match="unknown chain data format 'plan'"):
        conversation(state, goal, move, "plan")


def test_ranked_moves_put_constructive_moves_first_then_the_last_out_of_place_columns_top() -> None:
    standing, tops = "c1 no | c2 p | c3 no | c4 -", "c1 b | c2 - | c3 p | c4 -"
    ranked = chain.ranked_moves(standing, tops)
    assert ranked[0] == MoveBlock("p", "c2")  # constructive: p onto c2, whose stack waits for it
    # then c3's top (the rightmost column out of place): to the empty final c4, then c1 (no), then c2 (waits)
    assert ranked[1:4] == [MoveBlock("p", "c4"), MoveBlock("p", "c1"), MoveBlock("p", "c2")]
    assert ranked[4:] == [MoveBlock("b", "c4"), MoveBlock("b", "c3"), MoveBlock("b", "c2")]
    # final before out of place before waiting, and the empty one first among each
    ranked = chain.ranked_moves("c1 - | c2 no | c3 r | c4 - | c5 no", "c1 y | c2 b | c3 g | c4 - | c5 o")
    assert [move.column for move in ranked if move.block == "o"] == ["c4", "c1", "c2", "c3"]
    for bad in (("c1 no | c2", "c1 b | c2 -"), ("c1 no | c2 -", "c1 b | c3 -")):
        with pytest.raises(ValueError):
            chain.ranked_moves(*bad)


def test_the_move_label_is_the_first_ranked_shortest_move() -> None:
    for problem, step in query_points(60, seed=8):
        state, goal = step.state, problem.goal
        label = move_label(state, goal)
        standing, tops = goal_standing(state, goal), chain.tops_reply(state)
        shortest = len(find_plan(state, goal))
        assert state.check(label).success and len(find_plan(state.step(label)[0], goal)) == shortest - 1
        ranked = chain.ranked_moves(standing, tops)
        assert all(
            len(find_plan(state.step(m)[0], goal) or ()) != shortest - 1
            for m in ranked[: ranked.index(label)]
        )
        if label in constructive_moves(
            state, goal
        ):  # a constructive move is shortest: the search data's label
            assert label == step.plan[0]
    with pytest.raises(ValueError, match="the goal holds"):
        move_label(problem.initial_state, problem.initial_state.facts())


def test_query_points_of_chosen_splits() -> None:
    simple = list(query_points(40, seed=4, splits=["simple"]))
    assert {problem.split for problem, _ in simple} == {"simple"}
    assert {len(step.state.blocks) for _, step in simple} == {3}
    mixed = list(query_points(60, seed=4))
    assert {problem.split for problem, _ in mixed} == {"simple", "medium", "hard"}
    # every split named, in order, is the default: the same points for the same seed
    again = list(query_points(60, seed=4, splits=("simple", "medium", "hard")))
    assert [(step.state, step.plan) for _, step in again] == [(step.state, step.plan) for _, step in mixed]
    for bad in (["tiny"], []):
        with pytest.raises(ValueError, match="choose one or more of simple, medium, hard"):
            next(query_points(1, seed=4, splits=bad))


def test_call_data_files_and_their_mix(tmp_path: Path) -> None:
    read = write_call_data(tmp_path / "read.json", "read", 5, seed=2, progress=False)
    rows = json.loads(read.read_text())
    assert len(rows) == 5 and len({row["image"] for row in rows}) == 5
    with Image.open(tmp_path / rows[0]["image"]) as image:
        assert image.size == (300, 200)
    assert rows[0]["conversations"][0]["value"] == IMAGE_PLACEHOLDER and rows[0]["system"].startswith(
        "Blocks: "
    )
    places = write_call_data(tmp_path / "places.json", "places", 6, seed=2, progress=False)
    assert "system" not in json.loads(places.read_text())[0]
    simple = write_call_data(tmp_path / "places-simple.json", "places-simple", 6, seed=2, progress=False)
    for row in json.loads(simple.read_text()):  # four columns of three places, in scene and goal
        layout = row["conversations"][0]["value"].removeprefix("Scene = goal: ")
        assert [len(column.split()) for column in layout.split(" | ")] == [8] * 4, layout
    assert (
        len(
            json.loads(
                mix_data(tmp_path / "places-mix.json", [(places, None), (simple, None)], 0).read_text()
            )
        )
        == 12
    )
    mixed = json.loads(mix_data(tmp_path / "mix.json", [(read, 3), (places, None)], seed=0).read_text())
    assert len(mixed) == 9 and len({row["id"] for row in mixed}) == 9
    copies = write_call_data(tmp_path / "goal-paired.json", "goal-paired", 6, seed=2, progress=False)
    with pytest.raises(ValueError, match="answer the same prompt"):  # the places prompt, two replies
        mix_data(tmp_path / "bad.json", [(places, None), (copies, None)], seed=0)
    with pytest.raises(ValueError, match="holds 6 samples, 7 were asked"):
        mix_data(tmp_path / "bad.json", [(places, 7)], seed=0)


def test_a_data_file_is_written_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    out = write_rows(tmp_path / "rows.json", [{"id": "a"}])
    assert json.loads(out.read_text()) == [{"id": "a"}]

    def killed(*args: object) -> None:  # the process dies after writing, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr("dreamvlx.envs.blocksworld.chain_data.os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_rows(tmp_path / "new.json", [{"id": "b"}])
    with pytest.raises(KeyboardInterrupt):
        write_rows(out, [{"id": "c"}])
    assert not (tmp_path / "new.json").exists()  # nothing a resumed curriculum would take for done
    assert json.loads(out.read_text()) == [{"id": "a"}]  # the earlier file stands whole


def bad_reading(state: BlocksWorldState, kind: str) -> str:
    """A reading of ``state`` that is no scene: ``form`` has another layout; ``twice`` writes the bottom block
    of the first stack again on top of it (over its top block when the stack is full: a scene's layout, one
    block twice)."""
    if kind == "form":
        return "c1: oops"
    rows = chain.scene_rows(state)
    column, places = next((column, places) for column, places in rows if places[0] != chain.EMPTY_PLACE)
    doubled = list(places)
    height = len(places) - places.count(chain.EMPTY_PLACE)
    doubled[min(height, len(places) - 1)] = places[0]
    return chain.rows_text([(name, doubled if name == column else held) for name, held in rows])


class TrueReplies(ChainedPlanner):
    """A chained planner whose calls answer as the training data does (``chain_data.conversation``), greedy or
    not, except where a test spoils the greedy reply: ``bad_greedy_read`` answers the read call with a
    ``bad_reading`` of that kind, ``futile_greedy_move`` the move call with a move of the block moved last. It
    plans one episode at a time, so that each call's true reply is that of its episode's state; a prompt the
    data never asks gets an empty reply."""

    def __init__(
        self, config: ChainConfig, bad_greedy_read: str | None = None, futile_greedy_move: bool = False
    ):
        self.config, self.processor = config, DreamVLProcessor.from_pretrained(shipped_model_dir())
        self.images = lambda state: state  # the "image" is the state itself
        self.generator, self._canvases = torch.Generator(), {}
        self.bad_greedy_read, self.futile_greedy_move = bad_greedy_read, futile_greedy_move

    def plan(self, episodes: Sequence[PlanningEpisode], history: bool = False):
        chains = []
        for episode in episodes:
            state, goal = episode.env.state, episode.problem.goal
            move = constructive_first_plan(state, goal)[0]
            self.truths = dict(conversation(state, goal, move, fmt)[1:] for fmt in chain.CALLS[1:])
            self.last_moved = episode.last_moved
            self.problems = [episode.problem]
            chains += super().plan([episode], history)
        return chains

    def ask(self, call, messages, images=None, temperatures=None, history=False, canvas=None):
        assert canvas == max(self.canvases(problem)[call] for problem in self.problems)
        temperatures = list(temperatures or [0.0] * len(messages))
        replies = []
        for row, (turns, temperature) in enumerate(zip(messages, temperatures)):
            if call == "read":
                spoil = self.bad_greedy_read and not temperature
                reply = (
                    bad_reading(images[row], self.bad_greedy_read) if spoil else chain.read_reply(images[row])
                )
            elif call == "move" and self.futile_greedy_move and not temperature and self.last_moved:
                reply = plan_reply([MoveBlock(self.last_moved, "c1")])
            else:
                reply = self.truths.get(turns[-1]["content"], "")
            replies.append(reply)
        return (replies, [[]] * len(replies), [[]] * len(replies)) if history else replies


@pytest.mark.parametrize("spoiled", ["none", "form", "twice", "move"])
def test_the_chain_of_true_replies_solves_every_problem(spoiled: str) -> None:
    bad_read = spoiled if spoiled in ("form", "twice") else None
    planner = TrueReplies(ChainConfig(), bad_greedy_read=bad_read, futile_greedy_move=spoiled == "move")
    problems = {"simple": load_split("simple")[:6], "hard": load_split("hard")[:3]}
    records = run_chained(problems, planner, progress=False)
    summary = summarize_chained(records, planner.config, "true replies")
    assert summary["all"]["task_completion_rate"] == 1.0 and summary["planner"] == "chained"
    steps = [step for rs in records.values() for record in rs for step in record["steps"]]
    assert all(set(step["calls"]) == set(chain.CALLS) for step in steps)
    assert summary["rereads"] == (len(steps) if bad_read else 0)
    later = sum(len(record["steps"]) - 1 for rs in records.values() for record in rs)
    assert summary["redraws"] == (later if spoiled == "move" else 0)


def test_without_rereads_a_reading_goes_on_as_it_came_out_when_it_has_a_scenes_layout() -> None:
    problems = {"simple": load_split("simple")[:2]}
    records = run_chained(
        problems, TrueReplies(ChainConfig(rereads=0), bad_greedy_read="form"), progress=False
    )
    for record in records["simple"]:  # no layout: the reading is the step's reply, which ends the episode
        assert record["end_reason"] == "unusable reply (invalid_json)" and len(record["steps"]) == 1
        assert set(record["steps"][0]["calls"]) == {"read"}
    records = run_chained(
        problems, TrueReplies(ChainConfig(rereads=0), bad_greedy_read="twice"), progress=False
    )
    for record, problem in zip(records["simple"], problems["simple"]):  # one block twice: passed on as it is
        first = record["steps"][0]["calls"]
        reading = bad_reading(problem.initial_state, "twice")
        assert first["read"]["reply"] == reading and set(first) == set(chain.CALLS)
        goal = chain.goal_rows(problem.initial_state, problem.goal)
        assert first["places"]["prompt"] == chain.places_prompt(chain.text_rows(reading), goal)
    with pytest.raises(ValueError, match="retry temperature > 0"):
        ChainConfig(retry_temperature=0.0)
    assert ChainConfig(retry_temperature=0.0, rereads=0, redraws=0).steps == 8


def test_a_move_of_no_block_or_column_of_the_problem_is_not_usable() -> None:
    problem = load_split("simple")[0]
    episode = PlanningEpisode(problem, PlanningConfig(10, cot=True, prompt_style="slots"))
    block, column = problem.blocks[0], problem.columns[-1]
    assert usable_move(episode, plan_reply([MoveBlock(block, column)]))
    absent = next(letter for letter in "rgbyop" if letter not in problem.blocks)
    for reply in (
        plan_reply([MoveBlock(absent, column)]),
        plan_reply([MoveBlock(block, "c9")]),
        "{}",
        "move",
    ):
        assert not usable_move(episode, reply), reply


def test_fitted_canvases_hold_every_reply_of_a_problem_of_that_size() -> None:
    tokenizer = DreamVLProcessor.from_pretrained(shipped_model_dir()).tokenizer
    fitted = {}
    for split in ("simple", "medium", "hard"):
        problem = load_split(split)[0]
        canvases = problem_canvases(problem, tokenizer, margin=1)  # room for the end of turn only
        fitted[len(problem.blocks), len(problem.columns)] = canvases
        assert all(canvases[call] <= CANVASES[call] for call in chain.CALLS), (split, canvases)
    checked = 0
    for generated, step in query_points(150, seed=7):
        canvases = fitted.get((len(step.state.blocks), len(step.state.column_names)))
        if canvases is None:
            continue
        for call in chain.CALLS:
            reply = conversation(step.state, generated.goal, step.plan[0], call)[2]
            assert len(tokenizer.encode(reply)) + 1 <= canvases[call], (call, reply)
            checked += 1
    assert checked > 300
