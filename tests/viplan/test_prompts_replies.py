"""ViPlan prompt builders and reply parsers (grounding yes/no, JSON plans, feedback records)."""

from __future__ import annotations

import json

import pytest

from dreamvlx.envs.blocksworld import (
    BlocksWorldState,
    MoveBlock,
    goal_layout,
    goal_string,
    goal_text,
    grounding_prompt,
    grounding_questions,
    history_record,
    layout_text,
    load_split,
    parse_plan_reply,
    parse_yes_no,
    plan_reply,
    planning_prompt,
    question_text,
    yes_no_reply,
)
from dreamvlx.envs.blocksworld.datagen import goal_facts
from dreamvlx.envs.blocksworld.prompts import prompt_messages
from dreamvlx.envs.blocksworld.replies import (
    goal_places,
    goal_standing,
    planning_explanation,
    state_explanation,
)


def test_question_texts() -> None:
    assert question_text("on", ("r", "g")) == "Is the red block on top of the green block?"
    assert question_text("clear", ("p",)) == "Is the purple block the topmost of its column?"
    assert question_text("inColumn", ("o", "c2")) == 'Is the orange block in the column labeled "c2"?'
    assert (
        question_text("rightof", ("c3", "c1"))
        == 'Is the column labeled "c3" to the right of the column labeled "c1"?'
    )
    assert (
        question_text("leftof", ("c1", "c1"))
        == 'Is the column labeled "c1" to the left of the column labeled "c1"?'
    )
    with pytest.raises(KeyError):
        question_text("holding", ("r",))
    state = BlocksWorldState.from_columns({"c1": ["y"], "c2": ["b"]})
    questions = grounding_questions(state)
    assert len(questions) == 4 + 4 + 2 + 4 + 4
    assert questions[0] == ("on", ("y", "y"), "Is the yellow block on top of the yellow block?")
    assert [q[0] for q in questions[8:10]] == ["clear", "clear"]


def test_grounding_prompt_reproduces_the_missing_close_tag_quirk() -> None:
    question = "Is the red block on top of the green block?"
    messages = grounding_prompt(question)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"].startswith(
        "You are tasked with replying to a question about the given image."
    )
    assert messages[0]["content"].endswith("based on the image provided.")
    assert messages[1]["content"] == [{"type": "image"}, {"type": "text", "text": question[:-1]}]
    fixed = grounding_prompt(question, exact_viplan=False)
    assert fixed[1]["content"][-1]["text"] == question
    cot = grounding_prompt(question, cot=True)
    assert "<explanation></explanation>" in cot[0]["content"]
    kinds = [part["type"] for part in cot[1]["content"]]
    assert kinds == ["text", "image", "text"] and cot[1]["content"][2]["text"] == question[:-1]


def test_prompt_messages_parser() -> None:
    assert prompt_messages("<system> s </system>\n<user>\nA\n{image}\nB\n</user>") == [
        {"role": "system", "content": "s"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "A"}, {"type": "image"}, {"type": "text", "text": "B"}],
        },
    ]
    assert prompt_messages("plain {image}") == [
        {"role": "user", "content": [{"type": "text", "text": "plain"}, {"type": "image"}]}
    ]


def test_goal_string_and_planning_prompt() -> None:
    problem = load_split("simple")[2]  # goal: on(P, G), clear R, clear P, G in C1, R in C3, P in C1
    assert goal_string(problem.blocks, problem.goal) == (
        "The green block needs to be in the column with label 'c1'. \n"
        "The red block needs to be the topmost block in its column and needs to be in the column with label 'c3'. \n"
        "The purple block needs to be on top of the green block, needs to be the topmost block in its column "
        "and needs to be in the column with label 'c1'. \n"
    )
    history = [history_record(MoveBlock("p", "c2"), "moveblock", True, "success")]
    messages = planning_prompt(problem, history)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"].startswith("You are an expert planning assistant.")
    text, image = messages[1]["content"]
    assert image == {"type": "image"}
    assert text["text"].startswith("## Description of the environment")
    assert text["text"].endswith("## Current environment state")
    assert "## Goal\n" + goal_string(problem.blocks, problem.goal) in text["text"]
    assert (
        '## Previously taken actions\n[{"action": "moveblock", "parameters": {"block": "p", "column": "c2"}, '
        '"outcome": "success", "info": "success"}]' in text["text"]
    )
    assert "[]" in planning_prompt("goal text", [])[1]["content"][0]["text"]
    assert '"explanation"' in planning_prompt("goal", [], cot=True)[0]["content"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Yes", "yes"),
        ("No.", "no"),
        (" yes! ", "yes"),
        ("The answer is no", "no"),
        ("It is not on top", "no"),  # ViPlan: the first word starting with yes/no decides
        ("<explanation>looks fine</explanation><answer>Yes</answer>", "yes"),
        ("<answer>\nNo\n</answer>", "no"),
        ("<explanation>only this</explanation>", None),
        ("Maybe", None),
        ("", None),
    ],
)
def test_parse_yes_no(reply: str, expected) -> None:
    assert parse_yes_no(reply) == expected


def test_oracle_reply_formats_round_trip() -> None:
    assert yes_no_reply(True) == "Yes" and parse_yes_no(yes_no_reply(False)) == "no"
    assert parse_yes_no(yes_no_reply(True, "c1 holds the red block")) == "yes"
    plan = [MoveBlock("r", "c1"), MoveBlock("g", "c2")]
    reply = plan_reply(plan)
    assert json.loads(reply) == {
        "plan": [
            {"action": "moveblock", "parameters": {"block": "r", "column": "c1"}},
            {"action": "moveblock", "parameters": {"block": "g", "column": "c2"}},
        ]
    }
    parsed = parse_plan_reply(reply)
    assert (parsed.status, parsed.action, parsed.block, parsed.column) == ("ok", "moveblock", "r", "c1")
    assert list(json.loads(plan_reply(plan, "because"))) == ["explanation", "plan"]


_GOOD = '{"plan": [{"action": "moveblock", "parameters": {"block": "y", "column": "c2"}}]}'


@pytest.mark.parametrize(
    ("reply", "status", "block"),
    [
        (_GOOD, "ok", "y"),
        ("```json\n" + _GOOD + "\n```", "ok", "y"),  # code fences
        ("Here is my plan:\n" + _GOOD + "\nGood luck!", "ok", "y"),  # surrounding text
        (
            '{"explanation": "x", "plan": [{"action": "moveblock", "parameters": {"block": "y", "column": "c2"}}, {}]}',
            "ok",
            "y",
        ),
        ('{"plan": [{"action": "moveblock"}]}', "ok", None),  # usable step, parameters missing
        ('{"plan": [{"action": "moveblock", "parameters": {"block": 3, "column": "c2"}}]}', "ok", None),
        ("no json at all", "invalid_json", None),
        ("{'plan': []}", "invalid_json", None),  # single quotes
        ('{"plan": [{"action": "moveblock",}]}', "invalid_json", None),  # trailing comma
        (_GOOD + "\n" + _GOOD, "invalid_json", None),  # two objects
        ('{"plan": [{"action": "moveblock"', "invalid_json", None),  # truncated
        ('{"plan": []}', "invalid_plan", None),  # empty plan
        ('{"steps": []}', "invalid_plan", None),
        ('{"plan": "moveblock(y, c2)"}', "invalid_plan", None),
        ('{"plan": ["moveblock(y, c2)"]}', "invalid_plan", None),
        ('{"plan": [{"parameters": {"block": "y", "column": "c2"}}]}', "invalid_plan", None),
        ('[{"plan": 1}]', "invalid_plan", None),
    ],
)
def test_parse_plan_reply(reply: str, status: str, block) -> None:
    parsed = parse_plan_reply(reply)
    assert parsed.status == status
    assert parsed.block == block
    assert (parsed.error == "") == (status == "ok")


@pytest.mark.parametrize(
    ("reply", "move"),
    [
        (_GOOD, MoveBlock("y", "c2")),
        (
            '{"plan": [{"action": "moveblock", "parameters": {"block": "q", "column": "c9"}}]}',
            MoveBlock("q", "c9"),
        ),
        (
            '{"plan": [{"action": "pickup", "parameters": {"block": "y", "column": "c2"}}]}',
            None,
        ),  # another action
        ('{"plan": [{"action": "moveblock", "parameters": {"block": "y"}}]}', None),  # no column
        ('{"plan": []}', None),
        ("no json at all", None),
    ],
)
def test_named_move_is_the_first_step_when_it_is_a_move(reply: str, move) -> None:
    assert parse_plan_reply(reply).named_move == move


def test_history_records() -> None:
    assert history_record(MoveBlock("y", "c2"), "moveblock", False, "not legal") == {
        "action": "moveblock",
        "parameters": {"block": "y", "column": "c2"},
        "outcome": "failure",
        "info": "not legal",
    }
    assert history_record(None, "pickup", False, "") == {
        "action": "pickup",
        "outcome": "action does not exist",
    }


def test_compact_prompts_keep_only_the_per_query_content() -> None:
    problem = load_split("simple")[0]
    history = [
        history_record(MoveBlock("y", "c2"), "moveblock", True, "success"),
        history_record(MoveBlock("r", "c1"), "moveblock", False, "not legal"),
        history_record(None, "pickup", False, ""),
    ]
    system, user = planning_prompt(problem, history, style="compact")
    assert user == {"role": "user", "content": [{"type": "image"}]}  # the image right before the answer
    assert system == {  # simple_problem_0: y, p and r each alone and on top, in c3, c4 and c1
        "role": "system",
        "content": "Goal: c1: r | c2: - | c3: y | c4: p\nPrevious actions: moveblock(y, c2): success; "
        "moveblock(r, c1): not legal; pickup: action does not exist",
    }
    assert planning_prompt(problem, [], cot=True, style="compact")[0]["content"].endswith(
        "Previous actions: none"
    )
    question = question_text("on", ("r", "g"))
    assert grounding_prompt(question, style="compact") == [  # the image right before the answer here too
        {"role": "system", "content": question},
        {"role": "user", "content": [{"type": "image"}]},
    ]
    with pytest.raises(ValueError, match="unknown prompt style 'short'"):
        planning_prompt(problem, [], style="short")


def test_state_explanations_in_both_styles() -> None:
    state = BlocksWorldState.from_columns([("c1", ["r", "g"]), ("c2", []), ("c3", ["b"])])
    assert state_explanation(state, "compact") == "c1: r g | c2: - | c3: b"
    assert state_explanation(state) == (
        'From left to right, bottom to top: column "c1": red block, green block; column "c2": empty; '
        'column "c3": blue block.'
    )
    reply = plan_reply([MoveBlock("g", "c2")], state_explanation(state, "compact"))
    assert parse_plan_reply(reply).block == "g"
    with pytest.raises(ValueError, match="prompt style"):
        state_explanation(state, "verbose")


def test_slots_style_gives_every_column_place_a_fixed_position() -> None:
    problem = load_split("simple")[0]  # 3 blocks: 3 places per column
    history = [history_record(MoveBlock("y", "c2"), "moveblock", True, "success")]
    system, user = planning_prompt(problem, history, style="slots")
    assert user == {"role": "user", "content": [{"type": "image"}]}
    assert system["content"] == (  # the goal last, at a fixed distance from the answer
        "Previous actions: moveblock(y, c2): success\nGoal: c1: r - - | c2: - - - | c3: y - - | c4: p - -"
    )
    state = BlocksWorldState.from_columns([("c1", ["r", "g"]), ("c2", []), ("c3", ["b"])])
    assert state_explanation(state, "slots") == "c1: r g - | c2: - - - | c3: b - -"
    assert layout_text([("c1", ["r", "g", "b"])], slots=3) == "c1: r g b"
    with pytest.raises(ValueError, match="taller than 2 slots"):
        layout_text([("c1", ["r", "g", "b"])], slots=2)
    question = question_text("on", ("r", "g"))
    assert grounding_prompt(question, style="slots") == grounding_prompt(question, style="compact")
    for split in ("simple", "medium", "hard"):  # one length per split, whatever the stacks
        problems = load_split(split)
        lengths = {len(goal_text(p.blocks, p.columns, p.goal, "slots").split()) for p in problems} | {
            len(state_explanation(p.initial_state, "slots").split()) for p in problems
        }
        assert len(lengths) == 1


def test_goal_standing_compares_each_column_with_the_goal() -> None:
    state = BlocksWorldState.from_columns([("c1", ["r"]), ("c2", ["b", "g"]), ("c3", []), ("c4", ["y", "p"])])
    goal = goal_facts(
        BlocksWorldState.from_columns([("c1", ["r", "g"]), ("c2", ["b"]), ("c3", []), ("c4", ["p", "y"])])
    )
    assert goal_standing(state, goal) == "c1 g | c2 no | c3 - | c4 no"
    explanation = planning_explanation(state, goal, "compact", standing=True)
    assert explanation == "c1: r | c2: b g | c3: - | c4: y p ; c1 g | c2 no | c3 - | c4 no"
    assert planning_explanation(state, goal, "slots") == state_explanation(state, "slots")
    with pytest.raises(ValueError, match="only in the compact prompt styles"):
        planning_explanation(state, goal, "viplan", standing=True)


def test_goal_places_compare_scene_and_goal_place_by_place() -> None:
    state = BlocksWorldState.from_columns([("c1", ["r"]), ("c2", ["b", "g"]), ("c3", []), ("c4", ["y", "p"])])
    goal = goal_facts(
        BlocksWorldState.from_columns([("c1", ["r", "g"]), ("c2", ["b"]), ("c3", []), ("c4", ["p", "y"])])
    )
    places = goal_places(state, goal)
    assert places == "c1: - g - - - | c2: - no - - - | c3: - - - - - | c4: no no - - -"
    # a column's standing is its first place word that is not "-" (or "-" when there is none)
    for column_places, word in zip(places.split(" | "), goal_standing(state, goal).split(" | ")):
        column, _, words = column_places.partition(": ")
        assert word == f"{column} {next((w for w in words.split() if w != '-'), '-')}"
    explanation = planning_explanation(state, goal, "slots", standing=True, places=True)
    assert explanation.split(" ; ") == [state_explanation(state, "slots"), places, goal_standing(state, goal)]
    for style, standing in (("compact", True), ("slots", False)):
        with pytest.raises(ValueError, match="place-by-place comparison needs standing=True and the 'slots'"):
            planning_explanation(state, goal, style, standing=standing, places=True)


def test_the_compact_goal_is_the_configuration_the_goal_fixes() -> None:
    for split in ("simple", "medium", "hard"):
        for problem in load_split(split):
            layout = goal_layout(problem.columns, problem.goal)
            assert BlocksWorldState.from_columns(layout, blocks=problem.blocks).satisfies(problem.goal)
    goal = [
        ("on", "g", "r"),
        ("clear", "g"),
        ("incolumn", "r", "c2"),
        ("incolumn", "g", "c2"),
        ("incolumn", "b", "c1"),
    ]
    assert goal_text(("r", "g", "b"), ("c1", "c2", "c3"), goal, "compact") == "c1: b | c2: r g | c3: -"
    assert goal_text(("r", "g", "b"), ("c1", "c2", "c3"), goal) == goal_string(("r", "g", "b"), goal)
    with pytest.raises(ValueError, match="does not put every block in exactly one column"):
        goal_layout(("c1", "c2"), [("on", "g", "r"), ("incolumn", "r", "c1")])
    with pytest.raises(ValueError, match="does not order the blocks of column 'c1'"):
        goal_layout(("c1", "c2"), [("incolumn", "r", "c1"), ("incolumn", "g", "c1")])
    with pytest.raises(ValueError, match="does not order the blocks of column 'c1'"):
        goal_layout(("c1", "c2"), [("on", "g", "r"), ("incolumn", "r", "c2"), ("incolumn", "g", "c1")])
    with pytest.raises(ValueError, match="asks a block to be clear"):
        goal_layout(
            ("c1",), [("on", "g", "r"), ("clear", "r"), ("incolumn", "r", "c1"), ("incolumn", "g", "c1")]
        )
