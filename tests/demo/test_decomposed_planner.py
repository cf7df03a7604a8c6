"""The decomposed planner (``experiments/demo_model/decomposed_planner.py``): one call per step of the move's
reasoning, each reply written into the next prompt, and the probe's lockstep benchmark that scores it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dreamvlx.demo import shipped_model_dir
from dreamvlx.envs.blocksworld.planner import find_plan
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
        "tops": probe.column_tops(state),
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
    out = tmp_path / "plot.png"
    done = subprocess.run(
        [sys.executable, str(script), str(out), "--run", f"a={report}", "--run", f"b, T=1={report}"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"\x89PNG")
    failed = subprocess.run(
        [sys.executable, str(script), str(out), "--run", f"a={states_only}"], capture_output=True, text=True
    )
    assert failed.returncode != 0 and "has no benchmark_text_scene" in failed.stderr
