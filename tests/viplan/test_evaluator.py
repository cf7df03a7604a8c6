"""The ViPlan evaluator: oracle and random backends, loop logic with scripted replies, metrics, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dreamvlx.envs.blocksworld import (
    SPLITS,
    MoveBlock,
    grounding_questions,
    load_split,
    parse_yes_no,
    plan_reply,
    yes_no_reply,
)
from dreamvlx.envs.blocksworld.planner import find_plan
from dreamvlx.envs.blocksworld.prompts import user_text
from dreamvlx.evals.viplan.backends import BackendSpec, EpisodeInfo, VLMBackend
from dreamvlx.evals.viplan.cli import main
from dreamvlx.evals.viplan.grounding import GroundingConfig, run_grounding_episode
from dreamvlx.evals.viplan.metrics import grounding_metrics, planning_metrics
from dreamvlx.evals.viplan.planning import PlanningConfig, PlanningEpisode, run_planning_episode
from dreamvlx.evals.viplan.querying import ImageSource
from dreamvlx.evals.viplan.runner import RunConfig, evaluate, summarize

NO_IMAGES = ImageSource(enabled=False)


@pytest.mark.parametrize("mode", ["grounding", "planning"])
def test_oracle_scores_100_percent_on_every_split(mode: str) -> None:
    config = RunConfig(mode=mode, backend=BackendSpec("oracle"))
    records = evaluate({s: load_split(s) for s in SPLITS}, config, workers=1, progress=False)
    summary = summarize(records, config)
    for split in SPLITS:
        metrics = summary["splits"][split]
        assert metrics["episodes"] == 25
        if mode == "grounding":
            assert metrics["task_accuracy"] == 1.0 and metrics["action_accuracy"] == 1.0
            assert metrics["predicate_accuracy"] == 1.0 and metrics["fail_ratio"] == 0.0
            assert set(metrics["per_predicate"]) == {"on", "incolumn", "clear", "rightof", "leftof"}
        else:
            assert metrics["task_completion_rate"] == 1.0 and metrics["action_success_rate"] == 1.0
    # the oracle follows optimal plans: 3.64 / 5.64 / 7.32 actions per problem on average
    assert [
        summary["splits"][s]["actions_attempted" if mode == "grounding" else "total_actions"] for s in SPLITS
    ] == [
        91,
        141,
        183,
    ]


def test_random_backend_runs_and_scores_low() -> None:
    problems = {"simple": load_split("simple")}
    grounding = summarize(
        evaluate(problems, RunConfig("grounding", BackendSpec("random", 3)), progress=False),
        RunConfig("grounding", BackendSpec("random", 3)),
    )["all"]
    assert grounding["task_accuracy"] <= 0.2
    assert 0.35 < grounding["predicate_accuracy"] < 0.65  # coin flips
    config = RunConfig("planning", BackendSpec("random", 3))
    first = evaluate(problems, config, progress=False)
    planning = summarize(first, config)["all"]
    assert planning["task_completion_rate"] <= 0.2 and planning["action_success_rate"] < 0.6
    assert planning["total_actions"] == 25 * 10  # random replies always parse: every step is used
    again = evaluate(problems, config, progress=False)  # seeded: identical replies
    assert [s["reply"] for s in first["simple"][0]["steps"]] == [
        s["reply"] for s in again["simple"][0]["steps"]
    ]


class Scripted:
    """Replies from a list (planning) or a function of the question (grounding)."""

    needs_image = False

    def __init__(self, replies=None, answer=None) -> None:
        self.replies = list(replies or [])
        self.answer = answer
        self.prompts: list[str] = []

    def begin_episode(self, episode: EpisodeInfo) -> None:
        self.env = episode.env

    def generate(self, image, messages) -> str:
        self.prompts.append(user_text(messages))
        if self.answer is not None:
            return self.answer(self.env.state, user_text(messages))
        return self.replies.pop(0)


def test_planning_loop_feedback_and_ending() -> None:
    problem = load_split("simple")[0]  # p in c1, y in c2, r in c4
    backend = Scripted(
        [
            '{"plan": [{"action": "pickup", "parameters": {"block": "y", "column": "c3"}}]}',
            '{"plan": [{"action": "moveblock", "parameters": {"block": "Y", "column": "c3"}}]}',
            "```json\n" + plan_reply([MoveBlock("y", "c2")]) + "\n```",  # illegal: already there
            "Sure! " + plan_reply([MoveBlock("y", "c3")]),
            "I give up",
        ]
    )
    assert isinstance(backend, VLMBackend)
    record = run_planning_episode(problem, backend, NO_IMAGES, PlanningConfig(max_steps=10))
    assert record["history"] == [
        {"action": "pickup", "outcome": "action does not exist"},
        {"action": "moveblock", "outcome": "action does not exist"},
        {
            "action": "moveblock",
            "parameters": {"block": "y", "column": "c2"},
            "outcome": "failure",
            "info": "not legal",
        },
        {
            "action": "moveblock",
            "parameters": {"block": "y", "column": "c3"},
            "outcome": "success",
            "info": "success",
        },
    ]
    assert record["end_reason"] == "unusable reply (invalid_json)" and not record["goal_reached"]
    assert record["executed_actions"] == ["moveblock(y, c3)"]
    assert "## Previously taken actions\n[]" in backend.prompts[0]
    assert json.dumps(record["history"][:3]) in backend.prompts[3]
    metrics = planning_metrics([record])
    assert (metrics["total_actions"], metrics["total_success"]) == (
        4,
        1,
    )  # the invalid JSON step is not an action
    budget = run_planning_episode(
        problem, Scripted([plan_reply([MoveBlock("y", "c2")])] * 3), NO_IMAGES, PlanningConfig(3)
    )
    assert budget["end_reason"] == "step limit reached" and len(budget["steps"]) == 3
    empty = run_planning_episode(problem, Scripted(['{"plan": []}']), NO_IMAGES, PlanningConfig(10))
    assert (
        empty["end_reason"] == "unusable reply (invalid_plan)"
        and planning_metrics([empty])["total_actions"] == 1
    )


def test_episodes_stepped_in_lockstep_match_one_at_a_time() -> None:
    """``PlanningEpisode`` driven from outside, several episodes at once as a batching caller drives them,
    records exactly what ``run_planning_episode`` records, and refuses a reply after its end."""
    problems = load_split("simple")[:3]
    scripts = [
        [plan_reply([MoveBlock("y", "c3")])] * 4,
        ["I give up"],
        [plan_reply([MoveBlock("p", "c3")])] * 4,
    ]
    config = PlanningConfig(max_steps=4, cot=True, prompt_style="slots")
    alone = [run_planning_episode(p, Scripted(r), NO_IMAGES, config) for p, r in zip(problems, scripts)]
    episodes = [PlanningEpisode(problem, config) for problem in problems]
    queues = [list(replies) for replies in scripts]
    while live := [i for i, episode in enumerate(episodes) if not episode.done]:
        for i in live:
            episodes[i].take(episodes[i].messages(), queues[i].pop(0))
    assert [episode.record() for episode in episodes] == alone
    assert [record["end_reason"] for record in alone] == [
        "step limit reached",
        "unusable reply (invalid_json)",
        "step limit reached",
    ]
    with pytest.raises(RuntimeError, match="has ended"):
        episodes[1].take(episodes[1].messages(), plan_reply([MoveBlock("y", "c3")]))


def test_last_action_failed_marks_the_question_asked_again() -> None:
    problem = load_split("simple")[0]
    episode = PlanningEpisode(problem, PlanningConfig(max_steps=5, cot=True, prompt_style="slots"))
    assert not episode.last_action_failed
    episode.take(episode.messages(), plan_reply([MoveBlock("nosuchblock", "c1")]))
    assert episode.last_action_failed and episode.env.executed == []
    move = find_plan(episode.env.state, problem.goal)[0]
    episode.take(episode.messages(), plan_reply([move]))
    assert not episode.last_action_failed and len(episode.env.executed) == 1


def test_state_seen_before_marks_failures_and_cycles_of_legal_moves() -> None:
    problem = load_split("simple")[0]
    episode = PlanningEpisode(problem, PlanningConfig(max_steps=6, cot=True, prompt_style="slots"))
    assert not episode.state_seen_before
    episode.take(episode.messages(), plan_reply([MoveBlock("nosuchblock", "c1")]))
    assert episode.state_seen_before  # a failed action leaves the state as it was
    start = episode.env.state
    move = find_plan(start, problem.goal)[0]
    home = next(
        name for name, stack in zip(start.column_names, start.stacks) if stack and stack[-1] == move.block
    )
    episode.take(episode.messages(), plan_reply([move]))
    assert not episode.state_seen_before
    episode.take(episode.messages(), plan_reply([MoveBlock(move.block, home)]))  # and back: legal, a cycle
    assert episode.env.state == start and not episode.last_action_failed and episode.state_seen_before


def test_futile_actions_are_failed_moves_here_and_moves_of_the_block_just_moved() -> None:
    problem = next(p for p in load_split("simple") if any(len(stack) > 1 for stack in p.initial_state.stacks))
    episode = PlanningEpisode(problem, PlanningConfig(max_steps=8, cot=True, prompt_style="slots"))
    assert episode.futile_actions == frozenset()
    start = episode.env.state
    buried = next(stack[0] for stack in start.stacks if len(stack) > 1)  # a block under another: not clear
    episode.take(episode.messages(), plan_reply([MoveBlock("nosuchblock", "c1")]))
    episode.take(episode.messages(), plan_reply([MoveBlock(buried, "c1")]))
    assert not episode.steps[-1]["success"]
    assert episode.futile_actions == {MoveBlock("nosuchblock", "c1"), MoveBlock(buried, "c1")}
    move = find_plan(start, problem.goal)[0]
    episode.take(episode.messages(), plan_reply([move]))
    assert episode.futile_actions == {MoveBlock(move.block, column) for column in problem.columns}
    episode.take(
        episode.messages(), plan_reply([MoveBlock(move.block, "nowhere")])
    )  # fails: still the last moved
    moved_again = {MoveBlock(move.block, column) for column in problem.columns}
    assert episode.futile_actions == moved_again | {MoveBlock(move.block, "nowhere")}
    state = episode.env.state
    other, own = next(
        (stack[-1], name)
        for name, stack in zip(state.column_names, state.stacks)
        if stack and stack[-1] != move.block
    )
    episode.take(
        episode.messages(), plan_reply([MoveBlock(other, next(c for c in problem.columns if c != own))])
    )
    assert episode.steps[-1]["success"]  # a failure of another block's move here is forgotten once it moves
    assert episode.futile_actions == {MoveBlock(other, column) for column in problem.columns}


def _truthful(state, question: str) -> str:
    """The true answer to a grounding question about ``state`` (independent of the oracle backend)."""
    lookup = {q.rstrip("?"): (name, args) for name, args, q in grounding_questions(state)}
    name, args = lookup[question.splitlines()[-1].rstrip("?")]
    return yes_no_reply(state.holds(name, *args))


def test_grounding_replans_after_a_wrong_precondition_answer() -> None:
    problem = load_split("simple")[0]
    calls = {"n": 0}

    def answer(state, question):  # lies once: the first time it is asked whether the yellow block is on top
        lie = (
            question.startswith("Is the yellow block the topmost")
            and calls["n"] == 0
            and len(backend.prompts) > 56
        )
        calls["n"] += lie
        truth = _truthful(state, question)
        return yes_no_reply(parse_yes_no(truth) == "no") if lie else truth

    backend = Scripted(answer=answer)
    record = run_grounding_episode(problem, backend, NO_IMAGES, GroundingConfig())
    assert record["goal_reached"] and not record["failed"]
    first = record["steps"][0]
    assert (
        first["outcome"] == "preconditions not satisfied"
        and not first["executed"]
        and not first["state_correct"]
    )
    assert len(record["replans"]) == 1 and record["replans"][0]["step"] == 1
    assert len(record["replans"][0]["enumeration"]) == 56
    metrics = grounding_metrics([record])
    assert (
        metrics["actions_attempted"] == len(record["steps"])
        and metrics["actions_correct"] == len(record["steps"]) - 1
    )
    assert metrics["predicate_accuracy"] == 1.0 and metrics["replans"] == 1


def test_grounding_failure_paths() -> None:
    problem = load_split("simple")[0]
    invalid = run_grounding_episode(
        problem, Scripted(answer=lambda s, q: "maybe"), NO_IMAGES, GroundingConfig()
    )
    assert invalid["failed"] and "invalid answer" in invalid["end_reason"] and invalid["steps"] == []
    metrics = grounding_metrics([invalid])
    assert (
        metrics["action_accuracy"] == 0.0 and metrics["actions_total"] == 1 and metrics["fail_ratio"] == 1.0
    )
    assert metrics["predicate_accuracy"] == 0.0  # invalid answers count as wrong
    all_no = run_grounding_episode(problem, Scripted(answer=lambda s, q: "No"), NO_IMAGES, GroundingConfig())
    assert all_no["failed"] and all_no["end_reason"] == "no plan from the believed initial state"
    assert 0.0 < grounding_metrics([all_no])["predicate_accuracy"] < 1.0
    # after the initial enumeration, denies that any block is on top: the re-enumeration has no plan
    deny = Scripted(
        answer=lambda s, q: "No" if "topmost" in q and len(deny.prompts) > 56 else _truthful(s, q)
    )
    denied = run_grounding_episode(problem, deny, NO_IMAGES, GroundingConfig())
    assert len(denied["steps"]) == 1 and denied["end_reason"] == "no plan after re-planning"
    assert len(denied["replans"]) == 1 and not denied["failed"] and not denied["goal_reached"]
    # budget: two attempted actions, the rest of the plan stays in the queue (and in the denominator)
    budget = run_grounding_episode(
        problem, Scripted(answer=_truthful), NO_IMAGES, GroundingConfig(max_actions=2)
    )
    assert len(budget["steps"]) == 2 and budget["end_reason"] == "action budget used up"
    planned = len(budget["initial_plan"])
    assert planned > 2 and len(budget["remaining_actions"]) == planned - 2 and not budget["goal_reached"]
    assert grounding_metrics([budget])["action_accuracy"] == 2 / planned


def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert (
        main(
            [
                "--model",
                "oracle",
                "--mode",
                "grounding",
                "--split",
                "simple",
                "--workers",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "simple" in printed and "1.000" in printed and "Predicate accuracy" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["splits"]["simple"]["task_accuracy"] == 1.0 and summary["max_steps"] == {"simple": 20}
    episodes = sorted((out / "episodes" / "simple").glob("*.json"))
    assert len(episodes) == 25
    record = json.loads(episodes[0].read_text())
    assert record["initial_enumeration"][0]["prompt"].startswith("<image>\nIs the")
    assert record["steps"][0]["preconditions"][0]["reply"] in ("Yes", "No")
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--model", "oracle", "--mode", "planning", "--split", "easy"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "nope"), "--mode", "planning", "--split", "simple"])
    with pytest.raises(ValueError, match="holds no"):
        main(["--model", "oracle", "--mode", "planning", "--split", "simple", "--problems", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--model", "oracle", "--mode", "planning", "--problems", str(tmp_path)])  # split 'all'


@pytest.mark.parametrize("mode", ["grounding", "planning"])
def test_oracle_with_cot_prompts_and_rendered_images(mode: str) -> None:
    config = RunConfig(mode=mode, backend=BackendSpec("oracle"), cot=True, render=True)
    records = evaluate({"simple": load_split("simple")[:5]}, config, progress=False)
    summary = summarize(records, config)["all"]
    assert summary["task_accuracy" if mode == "grounding" else "task_completion_rate"] == 1.0
    step = records["simple"][0]["steps"][0]
    reply = step["preconditions"][0]["reply"] if mode == "grounding" else step["reply"]
    assert ("<explanation>" in reply) if mode == "grounding" else ('"explanation"' in reply)


def test_oracle_in_the_compact_prompt_style_with_cot() -> None:
    config = RunConfig(mode="planning", backend=BackendSpec("oracle"), cot=True, prompt_style="compact")
    records = evaluate({"medium": load_split("medium")[:5]}, config, progress=False)
    summary = summarize(records, config)
    assert summary["all"]["task_completion_rate"] == 1.0 and summary["config"]["prompt_style"] == "compact"
    step = records["medium"][0]["steps"][1]
    assert step["prompt"].startswith("Goal: c1: ") and step["prompt"].endswith("\n\n<image>")
    assert "Previous actions: moveblock(" in step["prompt"]
    explanation = json.loads(step["reply"])["explanation"]
    assert explanation.startswith("c1: ") and " | c5: " in explanation
    config = RunConfig(mode="grounding", backend=BackendSpec("oracle"), cot=True, prompt_style="compact")
    records = evaluate({"medium": load_split("medium")[:2]}, config, progress=False)
    assert summarize(records, config)["all"]["task_accuracy"] == 1.0
    query = records["medium"][0]["steps"][0]["preconditions"][0]
    assert query["prompt"].startswith("Is the ") and query["prompt"].endswith("?\n\n<image>")
    assert query["reply"].startswith("<explanation>\nc1: ")


def test_oracle_in_the_slots_prompt_style_with_cot() -> None:
    config = RunConfig(mode="planning", backend=BackendSpec("oracle"), cot=True, prompt_style="slots")
    records = evaluate({"hard": load_split("hard")[:3]}, config, progress=False)
    assert summarize(records, config)["all"]["task_completion_rate"] == 1.0
    step = records["hard"][0]["steps"][1]
    assert step["prompt"].startswith("Previous actions: moveblock(") and "\nGoal: c1: " in step["prompt"]
    explanation = json.loads(step["reply"])["explanation"]
    assert all(len(column.split(":")[1].split()) == 6 for column in explanation.split("|"))  # 6 blocks


def test_comparison_plot_of_runs_in_both_modes(tmp_path: Path) -> None:
    from dreamvlx.evals.viplan.report import plot_comparison

    summaries = {}
    for mode, backend in (("planning", "oracle"), ("planning", "random"), ("grounding", "oracle")):
        config = RunConfig(mode=mode, backend=BackendSpec(backend))
        problems = {"simple": load_split("simple")[:2]}
        if backend == "random":  # a run evaluated on more splits than the others: their bars stay blank
            problems["medium"] = load_split("medium")[:1]
        records = evaluate(problems, config, progress=False)
        summaries[f"{backend} {mode}"] = summarize(records, config)
    plot_comparison(summaries, tmp_path / "compare.png")
    assert (tmp_path / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one summary"):
        plot_comparison({}, tmp_path / "empty.png")
