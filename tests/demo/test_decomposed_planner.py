"""The decomposed planner (``experiments/demo_model/decomposed_planner.py``): one call per step of the move's
reasoning, each reply written into the next prompt, and the probe's lockstep benchmark that scores it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dreamvlx.demo import shipped_model_dir
from dreamvlx.envs.blocksworld.chain import tops_reply
from dreamvlx.envs.blocksworld.planner import find_plan
from dreamvlx.envs.blocksworld.problems import load_split
from dreamvlx.envs.blocksworld.replies import goal_places, goal_standing, plan_reply
from dreamvlx.envs.blocksworld.state import MoveBlock


def test_each_reply_is_written_into_the_next_prompt(decomposed, probe, monkeypatch) -> None:
    """The standing is asked from the places model's comparison (its standing dropped), the move from the
    standing and tops models' replies, exactly as they came out."""
    asked: list[tuple[str | None, str]] = []
    temperatures: list[float] = []

    def scripted(model, processor, prompts, canvas, steps, temperature):
        asked.extend(prompts)
        temperatures.append(temperature)
        user = prompts[0][1]
        if user.startswith("Scene = goal:"):
            return [" c1: - no | c2: r - ; c1 no | c2 r"] * len(prompts)
        if user.startswith("Places:"):
            return ["c1 zz | c2 r"] * len(prompts)
        if user.startswith("Scene:"):
            return ["c1 q | c2 -"] * len(prompts)
        return [plan_reply([])] * len(prompts)

    monkeypatch.setattr(decomposed, "ask", scripted)
    model = str(shipped_model_dir())
    planner = decomposed.DecomposedPlanner(dict.fromkeys(decomposed.STEPS, model), move_temperature=0.7)
    assert len({id(loaded[0]) for loaded in planner.models.values()}) == 1  # one directory, loaded once
    state, goal, _ = probe.held_out(1, seed=5)[0]
    chain = planner.chains([(state, goal)])[0]
    assert chain["places"] == "c1: - no | c2: r -" and chain["standing"] == "c1 zz | c2 r"
    assert asked == [
        probe.prompt(state, goal, "places-paired"),
        (None, "Places: c1: - no | c2: r -"),
        probe.prompt(state, goal, "tops-only"),
        (None, "Standing: c1 zz | c2 r ; tops: c1 q | c2 -"),
    ]
    assert temperatures == [0.0, 0.0, 0.0, [0.7]]  # only the move is sampled


def test_a_retried_move_is_asked_at_the_retry_temperature(decomposed, probe, monkeypatch) -> None:
    """Greedy first; a query asked again after its episode's failed action samples its move."""
    temperatures: list = []

    def scripted(model, processor, prompts, canvas, steps, temperature):
        temperatures.append(temperature)
        return [plan_reply([])] * len(prompts)

    monkeypatch.setattr(decomposed, "ask", scripted)
    given = frozenset({"places", "standing", "tops"})
    planner = decomposed.DecomposedPlanner({"move": str(shipped_model_dir())}, given, retry_temperature=0.9)
    queries = [(state, goal) for state, goal, _ in probe.held_out(3, seed=5)]
    planner.replies(queries, [False, True, False])
    planner.replies(queries)
    assert temperatures == [[0.0, 0.9, 0.0], [0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="2 retry flags for 3 queries"):
        planner.replies(queries, [True, False])


def test_given_steps_take_the_truth(decomposed, probe, monkeypatch) -> None:
    asked: list[tuple[str | None, str]] = []
    monkeypatch.setattr(
        decomposed,
        "ask",
        lambda model, processor, prompts, *_, **__: asked.extend(prompts) or [""] * len(prompts),
    )
    given = frozenset({"places", "standing", "tops"})
    planner = decomposed.DecomposedPlanner({"move": str(shipped_model_dir())}, given)
    queries = probe.held_out(3, seed=5)
    planner.replies([(state, goal) for state, goal, _ in queries])
    assert asked == [probe.prompt(state, goal, "move-from-tops") for state, goal, _ in queries]
    state, goal, _ = queries[0]
    assert decomposed.true_sections(state, goal) == {
        "places": goal_places(state, goal),
        "standing": goal_standing(state, goal),
        "tops": tops_reply(state),
    }


def test_bad_step_choices_are_refused(decomposed) -> None:
    model = str(shipped_model_dir())
    with pytest.raises(ValueError, match="not givable steps \\['move'\\]"):
        decomposed.DecomposedPlanner({"move": model}, frozenset({"move"}))
    with pytest.raises(ValueError, match="no model for the steps \\['standing', 'move'\\]"):
        decomposed.DecomposedPlanner({"places": model, "tops": model})


def test_scores_name_the_asked_steps_only(decomposed, probe) -> None:
    model = str(shipped_model_dir())
    queries = probe.held_out(3, seed=5)
    every = decomposed.score_chains(
        decomposed.DecomposedPlanner(dict.fromkeys(decomposed.STEPS, model), steps=4), queries, 3
    )
    assert set(every) == {
        "places_exact",
        "places_standing_exact",
        "standing_exact",
        "tops_exact",
        "legal",
        "optimal",
        "constructive",
    }
    planner = decomposed.DecomposedPlanner(
        {"move": model, "standing": model}, frozenset({"places", "tops"}), 4
    )
    some = decomposed.score_chains(planner, queries, 2)
    assert set(some) == {"standing_exact", "legal", "optimal", "constructive"}
    assert all(0.0 <= value <= 1.0 for value in [*every.values(), *some.values()])


class OptimalMoves:
    """A text-scene planner that replies with the first move of an optimal plan."""

    def replies(self, queries, retries=None):
        return [plan_reply(find_plan(state, goal)[:1]) for state, goal in queries]


class NoMoves:
    def replies(self, queries, retries=None):
        return [plan_reply([])] * len(queries)


class UnknownBlock:
    """Replies a move of a block no problem has (ViPlan: "action does not exist"), recording the retries."""

    def __init__(self) -> None:
        self.retries: list[list[bool]] = []

    def replies(self, queries, retries=None):
        self.retries.append(list(retries))
        return [plan_reply([MoveBlock("nosuchblock", "c1")])] * len(queries)


def test_lockstep_benchmark_scores_the_replies(probe) -> None:
    """Every problem solved by optimal moves; none by empty plans, each episode ending on its first reply."""
    solved = probe.play_benchmark(OptimalMoves())
    assert {split: scores["success"] for split, scores in solved.items()} == dict.fromkeys(probe.SPLITS, 1.0)
    assert all(scores["action_success"] == 1.0 for scores in solved.values())
    empty = probe.play_benchmark(NoMoves())
    assert all(scores["success"] == 0.0 for scores in empty.values())
    assert all(scores["unparsable_replies"] == 25 for scores in empty.values())


def test_benchmark_traces_follow_the_distance_to_the_goal(probe) -> None:
    """Optimal moves bring every episode one step closer per reply, from its optimal plan length to 0; a
    move of no such block fails every time and leaves every episode where it started."""
    solved = probe.play_benchmark(OptimalMoves())
    for split, scores in solved.items():
        assert scores["replies_closer"] == 1.0 and scores["unsolved"] == 0, split
        for trace in scores["episodes"]:
            assert trace["solved"] and trace["distance_end"] == 0
            moves = [move.split(" ") for move in trace["moves"].split(" | ")]
            assert [int(distance) for _, _, distance in moves] == list(range(trace["distance_start"]))[::-1]
            assert all(re.fullmatch(r"[a-z]>c\d", action) and kind == "closer" for action, kind, _ in moves)
    stuck = probe.play_benchmark(UnknownBlock())
    for split, scores in stuck.items():
        assert scores["replies_failed"] == 1.0 and scores["unsolved"] == 25
        assert scores["unsolved_distance_start"] == scores["unsolved_distance_end"] > 0
        budget = probe.MAX_STEPS[split]  # every episode uses it all; every reply but its first is a retry
        assert scores["replies_retried"] == round((budget - 1) / budget, 3)
        for trace in scores["episodes"]:
            start = trace["distance_start"]
            first = f"action does not exist failed {start}"
            assert trace["moves"] == " | ".join([first] + [f"{first} retry"] * (budget - 1))


class Stubborn:
    """Asked first about a problem (told apart by its goal), or asked as a retry, replies an optimal move;
    otherwise it repeats its last reply to that problem: a second move in a row of the block just moved."""

    def __init__(self) -> None:
        self.last: dict[tuple, str] = {}

    def replies(self, queries, retries=None):
        replies = []
        for (state, goal), retry in zip(queries, retries):
            if retry or goal not in self.last:
                self.last[goal] = plan_reply(find_plan(state, goal)[:1])
            replies.append(self.last[goal])
        return replies


def test_futile_replies_are_redrawn_as_retries(probe) -> None:
    assert all(len({p.goal for p in load_split(split)}) == 25 for split in probe.SPLITS)
    stubborn = probe.play_benchmark(Stubborn())  # every second reply moves the block just moved: fails
    assert all(0.3 < scores["replies_failed"] < 0.7 for scores in stubborn.values())
    redrawn = probe.play_benchmark(Stubborn(), redraws=1)
    for split, scores in redrawn.items():
        assert scores["success"] == 1.0 and scores["replies_closer"] == 1.0, split
        for trace in scores["episodes"]:  # each reply after the first was redrawn once
            moves = trace["moves"].split(" | ")
            assert not moves[0].endswith("redrawn 1") and all(m.endswith("redrawn 1") for m in moves[1:])
    with pytest.raises(ValueError, match="redraws must be 0 or more"):
        probe.play_benchmark(Stubborn(), redraws=-1)


@pytest.mark.parametrize(
    ("before", "after", "success", "kind"),
    [(3, 2, True, "closer"), (3, 3, True, "level"), (3, 4, True, "away"), (3, 3, False, "failed")],
)
def test_move_kind_compares_the_distances_before_and_after(probe, before, after, success, kind) -> None:
    assert probe.move_kind(before, after, success) == kind


def test_lockstep_benchmark_marks_queries_after_a_failed_action_as_retries(probe) -> None:
    failing = UnknownBlock()
    scores = probe.play_benchmark(failing)
    assert all(split["success"] == 0.0 and split["action_success"] == 0.0 for split in scores.values())
    firsts = [i for i, flags in enumerate(failing.retries) if flags == [False] * 25]
    assert firsts[0] == 0 and len(firsts) == 3  # each split's first queries are no retries
    later = [flags for i, flags in enumerate(failing.retries) if i not in firsts]
    assert later and all(flags == [True] * 25 for flags in later)  # every later one follows a failure
    revisits = UnknownBlock()
    probe.play_benchmark(revisits, retry_on="revisit")  # a failure leaves the state: seen before
    assert revisits.retries == failing.retries
    with pytest.raises(ValueError, match="unknown retry rule 'never'"):
        probe.play_benchmark(failing, retry_on="never")


def test_benchmark_reports_are_plotted_side_by_side(tmp_path: Path) -> None:
    scores = {"success": 0.5, "action_success": 0.6, "unparsable_replies": 0}
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps({"benchmark_text_scene": dict.fromkeys(("simple", "medium", "hard"), scores)})
    )
    states_only = tmp_path / "states.json"
    states_only.write_text(json.dumps({"states": {}}))
    script = Path(__file__).resolve().parents[2] / "experiments" / "demo_model" / "plot_benchmark.py"
    summary = tmp_path / "summary.json"  # an evaluator's summary, as dreamvlx demo writes it
    scores = {"task_completion_rate": 0.4, "action_success_rate": 0.5}
    summary.write_text(json.dumps({"mode": "planning", "splits": {s: scores for s in ("simple", "hard")}}))
    out = tmp_path / "plot.png"
    runs = ["--run", f"a={report}", "--run", f"b, T=1={report}", "--run", f"demo={summary}"]
    done = subprocess.run(
        [sys.executable, str(script), str(out), *runs],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"\x89PNG")
    failed = subprocess.run(
        [sys.executable, str(script), str(out), "--run", f"a={states_only}"], capture_output=True, text=True
    )
    assert failed.returncode != 0 and "has no benchmark_text_scene" in failed.stderr


@pytest.mark.parametrize("script", ["decomposed_planner.py", "reasoning_probe.py"])
def test_redraws_need_a_sampled_retry(script: str) -> None:
    """A greedy retry would give the same futile reply again: both CLIs refuse ``--redraws`` without a
    retry temperature > 0, before loading any model."""
    path = Path(__file__).resolve().parents[2] / "experiments" / "demo_model" / script
    command = [sys.executable, str(path)]
    if script == "reasoning_probe.py":
        command += ["eval", "no-such-model", "--format", "move-from-tops"]
    else:
        command += ["--move", "no-such-model", "--given", "places,standing,tops"]
    greedy = subprocess.run([*command, "--redraws", "2"], capture_output=True, text=True)
    assert greedy.returncode == 2 and "--redraws needs a retry temperature > 0" in greedy.stderr
    negative = subprocess.run(
        [*command, "--redraws", "-1", "--retry-temperature", "1"], capture_output=True, text=True
    )
    assert negative.returncode == 2 and "--redraws must be 0 or more" in negative.stderr
