"""The text-only reasoning probe (``experiments/demo_model/reasoning_probe.py``): its data and its scores.

The probe's records in ``experiments/demo_model/reasoning_probe/`` come from this script, so its sample
construction and its scoring are checked here on the shipped demo model (seconds, no training)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dreamvlx.demo import shipped_model_dir
from dreamvlx.envs.blocksworld.chain import text_rows, tops_reply
from dreamvlx.envs.blocksworld.replies import STANDING_SEPARATOR, goal_places, goal_standing, parse_plan_reply
from dreamvlx.envs.blocksworld.state import BlocksWorldState

PLACE_GROUPS = {"places_equal", "places_no", "places_letter"}


def test_make_writes_each_format(probe, tmp_path: Path) -> None:
    for reply_format in probe.FORMATS:
        out = tmp_path / f"{reply_format}.json"
        probe.make(out, reply_format, samples=6, seed=3)
        rows = json.loads(out.read_text())
        assert len(rows) == 6
        points = list(probe.query_points(6, seed=3))
        for row, (problem, step) in zip(rows, points):
            user, reply = (turn["value"] for turn in row["conversations"])
            state, goal = step.state, problem.goal
            if reply_format in probe.PAIRED_FORMATS:  # each scene column, then the same goal column
                assert "system" not in row
                slots = probe.format_slots(reply_format)
                assert user == f"Scene = goal: {probe.paired_layout(state, goal, slots)}"
            elif reply_format in probe.INTERLEAVED_FORMATS:  # each scene place beside its goal place
                assert "system" not in row
                assert user == f"Scene=goal: {probe.pairs_layout(state, goal)}"
            elif reply_format in ("places-interleaved", *probe.KEYED_FORMATS):  # the same, separate tokens
                assert "system" not in row
                keyed = reply_format in probe.KEYED_FORMATS
                assert user == f"Scene = goal: {probe.pairs_layout(state, goal, ' = ', keyed)}"
            elif reply_format == "goal-only":  # the goal alone, copied
                assert "system" not in row
                assert user == f"Goal: {probe.goal_copy(state, goal)}" and reply == probe.goal_copy(
                    state, goal
                )
            elif reply_format == "standing-from-places":  # the comparison given, the standing asked
                assert "system" not in row
                assert user == f"Places: {goal_places(state, goal)}"
            elif reply_format == "move-from-tops":  # the chain's last step: standing and tops given
                assert "system" not in row
                standing, tops = goal_standing(state, goal), tops_reply(state)
                assert user == f"Standing: {standing}{STANDING_SEPARATOR}tops: {tops}"
            else:
                assert user.startswith("Scene: c1: ")
            if reply_format == "tops-only":
                assert "system" not in row  # the scene alone: no goal anywhere
                assert reply == tops_reply(state)
            elif reply_format == "tops-paired":
                assert reply == tops_reply(state)
            elif reply_format in (
                "standing-only",
                "standing-paired",
                "standing-from-places",
                "standing-interleaved",
            ):
                assert reply == goal_standing(state, goal)
            elif reply_format in ("places-paired", "places-interleaved"):
                assert reply == STANDING_SEPARATOR.join(
                    [goal_places(state, goal), goal_standing(state, goal)]
                )
            elif reply_format == "places-keyed":
                assert reply == STANDING_SEPARATOR.join(
                    [probe.keyed_places(state, goal), goal_standing(state, goal)]
                )
            elif reply_format == "goal-keyed":
                assert reply == probe.keyed_goal(state, goal)
            elif reply_format in ("goal-paired", "goal-only"):
                assert reply == probe.goal_copy(state, goal)
            elif reply_format == "places-fixed":
                places = goal_places(state, goal, probe.FIXED_SLOTS)
                assert all(len(column.split()) == 1 + probe.FIXED_SLOTS for column in places.split(" | "))
                assert reply == STANDING_SEPARATOR.join([places, goal_standing(state, goal)])
            else:
                parsed = parse_plan_reply(reply)
                assert parsed.status == "ok" and (parsed.block, parsed.column) == (
                    step.plan[0].block,
                    step.plan[0].column,
                )
                if probe.explanation(state, goal, reply_format) is None:  # the move alone
                    assert "explanation" not in parsed.plan
                else:
                    assert parsed.plan["explanation"] == probe.explanation(state, goal, reply_format)
            if reply_format == "standing-only":
                assert row["system"].startswith("Goal: c1: ")


def test_mix_takes_each_parts_first_samples_shuffled_with_unique_ids(probe, tmp_path: Path) -> None:
    probe.make(tmp_path / "copy.json", "goal-only", samples=5, seed=3)
    probe.make(tmp_path / "move.json", "move-from-tops", samples=4, seed=4)
    parts = [probe.parse_part(f"{tmp_path / 'copy.json'}:3"), probe.parse_part(str(tmp_path / "move.json"))]
    assert parts == [(tmp_path / "copy.json", 3), (tmp_path / "move.json", None)]
    probe.mix_data(tmp_path / "mix.json", parts, seed=0)
    rows = json.loads((tmp_path / "mix.json").read_text())
    copies, moves = (
        json.loads((tmp_path / "copy.json").read_text()),
        json.loads((tmp_path / "move.json").read_text()),
    )
    expected = {f"copy-{i:06d}": row["conversations"] for i, row in enumerate(copies[:3])}
    expected |= {f"move-{i:06d}": row["conversations"] for i, row in enumerate(moves)}
    assert {row["id"]: row["conversations"] for row in rows} == expected and len(rows) == 7
    assert [row["id"] for row in rows] != sorted(expected)  # shuffled, not concatenated
    with pytest.raises(ValueError, match="holds 5 samples, 6 were asked"):
        probe.mix_data(tmp_path / "bad.json", [(tmp_path / "copy.json", 6)], seed=0)
    with pytest.raises(ValueError, match="given twice"):
        probe.mix_data(
            tmp_path / "bad.json", [(tmp_path / "copy.json", 1), (tmp_path / "copy.json", 2)], seed=0
        )


def test_mix_refuses_formats_that_share_a_prompt_unless_tagged(probe, tmp_path: Path) -> None:
    for tagged in (False, True):
        for reply_format in ("places-paired", "tops-paired"):
            probe.make(
                tmp_path / f"{reply_format}-{tagged}.json", reply_format, samples=3, seed=3, tagged=tagged
            )
    untagged = [(tmp_path / "places-paired-False.json", None), (tmp_path / "tops-paired-False.json", None)]
    with pytest.raises(ValueError, match=r"answer the same prompt .* differently"):
        probe.mix_data(tmp_path / "bad.json", untagged, seed=0)
    tagged = [(tmp_path / "places-paired-True.json", None), (tmp_path / "tops-paired-True.json", None)]
    probe.mix_data(tmp_path / "mix.json", tagged, seed=0)
    prompts = [row["conversations"][0]["value"] for row in json.loads((tmp_path / "mix.json").read_text())]
    assert (
        sorted(p.split(". ", 1)[0] for p in prompts) == ["Task places-paired"] * 3 + ["Task tops-paired"] * 3
    )
    problem, step = next(iter(probe.query_points(1, seed=3)))
    state, goal = step.state, problem.goal
    assert probe.prompt(state, goal, "tops-paired", tagged=True) == (
        None,
        "Task tops-paired. " + probe.prompt(state, goal, "tops-paired")[1],
    )


@pytest.mark.parametrize(
    ("reply_format", "staged"),
    [("tops-only", False), ("places-paired", False), ("places-paired", True), ("tops", True)],
)
def test_scores_are_rates_of_the_right_sections(probe, reply_format: str, staged: bool) -> None:
    torch.manual_seed(0)
    planner = probe.Planner(str(shipped_model_dir()), reply_format, canvas=72, steps=4, staged=staged)
    queries = probe.held_out(3, seed=5)
    states = probe.score_states(planner, queries, batch=3)
    forced = probe.teacher_forced(planner, queries)
    if reply_format == "tops-only":
        assert set(states) == {"section0_exact"} and set(forced) == {"section0"}
    elif reply_format == "places-paired":  # a plain reply of two sections: each scored on its own
        assert set(states) == {"section0_exact", "section1_exact"}
        assert {"section0", "section1"} <= set(forced) <= {"section0", "section1", *PLACE_GROUPS}
        assert set(forced) & PLACE_GROUPS  # the place words also scored by kind
    else:
        assert {"legal", "optimal", "constructive", "section0_exact", "section1_exact"} <= set(states)
        assert set(forced) == {"plan", "section0", "section1"}
    assert all(0.0 <= value <= 1.0 for value in [*states.values(), *forced.values()])


class _Answering:
    """A chained planner whose places call answers ``answer(true comparison)``, to check the scoring."""

    def __init__(self, planner, truths: dict[str, str], answer) -> None:
        self.canvas, self.truths, self.answer = planner.canvas, truths, answer

    def ask(self, call: str, messages, canvas: int) -> list[str]:
        assert call == "places" and canvas > 0
        return [self.answer(self.truths[turns[-1]["content"]]) for turns in messages]


def test_places_scores_count_each_kind_of_word(probe) -> None:
    planner = probe.ChainedPlanner(str(shipped_model_dir()), probe.ChainConfig(steps=2))
    queries = [(step.state, problem.goal, problem) for problem, step in probe.query_points(8, seed=5)]
    truths = {}
    for state, goal, _ in queries:
        prompt = probe.places_prompt(probe.scene_rows(state), probe.goal_rows(state, goal))
        truths[prompt] = goal_places(state, goal) + STANDING_SEPARATOR + goal_standing(state, goal)
        words = [word for _, places in text_rows(goal_places(state, goal)) for word in places]
        for kind, word in zip(probe.place_word_kinds(state, goal), words, strict=True):
            assert (kind == "agree") == (word == "-") and (kind == "copy") == (word not in ("-", "no"))
    kinds = {kind for state, goal, _ in queries for kind in probe.place_word_kinds(state, goal)}
    assert kinds == {"agree", "copy", "no, goal empty", "no, goal another block"}

    def marks(answer) -> dict:
        return probe.places_marks(_Answering(planner, truths, answer), queries, batch=3)

    assert marks(lambda truth: truth) == {"states": 8, "exact": 1.0, **dict.fromkeys(kinds, 1.0)}
    assert marks(lambda truth: "no layout") == {"states": 8, "exact": 0.0, **dict.fromkeys(kinds, 0.0)}
    every_no = marks(lambda truth: " ".join("no" if word == "-" else word for word in truth.split(" ")))
    assert every_no["exact"] == 0.0 and every_no["agree"] == 0.0 and every_no["copy"] == 1.0
    assert every_no["no, goal empty"] == every_no["no, goal another block"] == 1.0
    real = probe.places_marks(planner, queries[:3], batch=3)  # the model's own replies: rates
    assert real["states"] == 3 and all(0.0 <= value <= 1.0 for key, value in real.items() if key != "states")


def test_paired_layouts_put_the_goal_beside_the_scene(probe) -> None:
    state = BlocksWorldState.from_columns({"c1": ["r", "g"], "c2": ["b"], "c3": []})
    goal = (("incolumn", "r", "c1"), ("incolumn", "b", "c3"), ("incolumn", "g", "c3"), ("on", "g", "b"))
    expected = "c1: r g - = r - - | c2: b - - = - - - | c3: - - - = b g -"
    assert probe.paired_layout(state, goal) == expected
    assert probe.paired_layout(state, goal, 4).startswith("c1: r g - - = r - - - | c2: b - - - = ")
    assert (
        goal_places(state, goal, probe.FIXED_SLOTS) == "c1: - no - - - - | c2: no - - - - - | c3: b g - - - -"
    )
    with pytest.raises(ValueError, match="cannot hold the problem's 3 blocks"):
        goal_places(state, goal, 2)
    assert probe.pairs_layout(state, goal) == "c1: r=r g=- -=- | c2: b=- -=- -=- | c3: -=b -=g -=-"
    assert probe.explanation(state, goal, "interleaved") == "c1 no | c2 no | c3 b ; c1 g | c2 b | c3 -"
    assert probe.pairs_layout(state, goal, " = ", keyed=False) == (
        "c1: r = r g = - - = - | c2: b = - - = - - = - | c3: - = b - = g - = -"
    )
    assert probe.pairs_layout(state, goal, " = ", keyed=True) == (
        "c1: A r = r B g = - C - = - | c2: D b = - E - = - F - = - | c3: G - = b H - = g I - = -"
    )
    assert probe.keyed_places(state, goal) == "c1: A - B no C - | c2: D no E - F - | c3: G b H g I -"
    assert probe.keyed_goal(state, goal) == "c1: A r B - C - | c2: D - E - F - | c3: G b H g I -"
    assert probe.goal_copy(state, goal) == "c1: r - - | c2: - - - | c3: b g -"
    assert probe.explanation(state, goal, "keyed") == (
        "c1: A - B no C - | c2: D no E - F - | c3: G b H g I - ; c1 no | c2 no | c3 b ; c1 g | c2 b | c3 -"
    )


def test_word_kind_follows_the_true_words(probe) -> None:
    state = BlocksWorldState.from_columns({"c1": ["r", "g"], "c2": ["b"], "c3": []})
    goal = (("incolumn", "r", "c1"), ("incolumn", "b", "c3"), ("incolumn", "g", "c3"), ("on", "g", "b"))
    assert goal_places(state, goal) == "c1: - no - | c2: no - - | c3: b g -"

    def kinds_of(layout: str, reply_format: str) -> list[str | None]:
        return [probe.word_kind(f" {word}", reply_format) for _, words in text_rows(layout) for word in words]

    kinds = ["equal", "no", "equal", "no", "equal", "equal", "letter", "letter", "equal"]
    assert kinds_of(goal_places(state, goal), "places-paired") == [f"places_{kind}" for kind in kinds]
    fixed = kinds_of(goal_places(state, goal, probe.FIXED_SLOTS), "places-fixed")
    assert fixed[:4] == ["places_equal", "places_no", "places_equal", "places_equal"]
    assert len(fixed) == 3 * probe.FIXED_SLOTS
    copies = ["letter", "empty", "empty", "empty", "empty", "empty", "letter", "letter", "empty"]
    assert kinds_of(probe.goal_copy(state, goal), "goal-keyed") == [f"copy_{kind}" for kind in copies]
    assert probe.word_kind(' "no', "keyed") == "places_no"  # a plan's first word follows its opening quote
    assert probe.word_kind(" r", "tops-only") is None


def test_decision_tokens_are_the_letters_dashes_and_digits_of_each_section(probe) -> None:
    plain = ["c", "1", " -", " |", " c", "2", " o", " |", " c", "3", " no"]
    assert probe._decision_tokens(plain, plain=True) == {"section0": [2, 6, 10]}
    plan = [
        '{"',
        "explanation",
        '":',
        ' "',
        "c",
        "1",
        " no",
        " ;",
        " c",
        "1",
        " y",
        '",',
        ' "',
        "plan",
        '":',
        ' [{"',
        "block",
        '":',
        ' "',
        "y",
        '",',
        ' "',
        "column",
        '":',
        ' "',
        "c",
        "2",
        '"}]}',
    ]
    assert probe._decision_tokens(plan, plain=False) == {"section0": [6], "section1": [10], "plan": [19, 26]}


@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
def test_teacher_forcing_masks_only_for_the_diffusion_model(probe, tmp_path: Path, attention: str) -> None:
    """The diffusion model gets the scored tokens masked; the AR control the true reply (its causal mask
    already hides each token's future, and mask tokens in its past were never seen in training)."""
    model_dir = tmp_path / "model"
    shutil.copytree(shipped_model_dir(), model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "attention": attention}))
    planner = probe.Planner(str(model_dir), "places-paired", canvas=72, steps=4)
    assert planner.model.config.is_causal == (attention == "causal")
    seen: list[torch.Tensor] = []
    forward = planner.model.forward
    planner.model.forward = lambda *args, **kwargs: (
        seen.append(kwargs["input_ids"]),
        forward(*args, **kwargs),
    )[1]
    probe.teacher_forced(planner, probe.held_out(2, seed=5))
    masked = [bool((ids == planner.model.config.mask_token_id).any()) for ids in seen]
    assert len(seen) == 4  # two states, two sections each
    assert all(masked) if attention == "bidirectional" else not any(masked)


def test_free_replies_are_greedy_whatever_the_random_state(probe) -> None:
    """``ask`` decodes as the demo does, at temperature 0: the official effective default (1.0) samples, and
    the probe did so by mistake before 2026-12-07. A model with random weights spreads its probability, so a
    sampled reply would change with the seed."""
    torch.manual_seed(0)
    planner = probe.Planner(str(shipped_model_dir()), "tops-only", canvas=16, steps=4)
    with torch.no_grad():
        for parameter in planner.model.parameters():
            parameter.normal_(0.0, 0.5)
    queries = [(state, goal) for state, goal, _ in probe.held_out(4, seed=5)]
    torch.manual_seed(1)
    first = planner.replies(queries)
    torch.manual_seed(2)
    assert planner.replies(queries) == first
    assert any(reply.strip() for reply in first)  # random weights write something: the check can fail


def test_each_prompt_is_decoded_at_its_own_temperature(probe) -> None:
    """Per-query temperatures (a retried query sampled, the others greedy): each temperature's prompts are
    one batch, so the greedy rows are the greedy replies of those prompts whatever the random state, and
    the sampled row changes with it (random weights spread their probability)."""
    torch.manual_seed(0)
    planner = probe.Planner(str(shipped_model_dir()), "tops-only", canvas=16, steps=4, retry_temperature=1.0)
    with torch.no_grad():
        for parameter in planner.model.parameters():
            parameter.normal_(0.0, 0.5)
    queries = [(state, goal) for state, goal, _ in probe.held_out(3, seed=5)]
    greedy = planner.replies([queries[0], queries[2]])
    sampled = set()
    for seed in range(4):
        torch.manual_seed(seed)
        first, retried, last = planner.replies(queries, [False, True, False])
        assert [first, last] == greedy
        sampled.add(retried)
    assert len(sampled) > 1
    assert probe.query_temperatures(2, 0.0, None, [True, True]) == [
        0.0,
        0.0,
    ]  # no retry temperature: as asked
    with pytest.raises(ValueError, match="1 temperatures for 2 prompts"):
        probe.ask(planner.model, planner.processor, [(None, "a"), (None, "b")], 8, 2, temperature=[0.0])
