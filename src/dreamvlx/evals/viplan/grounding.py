"""Grounding mode (VLM-as-grounder), as ViPlan's ``benchmark_blocksworld_plan.py`` runs it.

1. Enumerate every grounded predicate on the initial image; the yes answers form the believed state.
   Any answer that is neither yes nor no ends the episode (ViPlan's assertion); no plan from the belief
   ends it too. Both count as "failed" (``fail_ratio``).
2. Plan from the belief (optimal BFS here; ViPlan uses Fast Downward ``lama-first``).
3. For each planned action: ask its preconditions (clear(b) yes, inColumn(b, c) no); on a mismatch the
   action is not executed. Otherwise execute it in the true state (an illegal action is rejected), then
   ask its effects (the facts it changed, expected values from the true state before the action).
4. After any mismatch or illegal action: re-enumerate on the current image and re-plan; stop when the same
   illegal action comes twice in a row, when no plan is found, when the queue is empty, or after
   ``max_actions`` (20) attempted actions.
5. Success = the goal holds in the TRUE state.

Each step is "correct" for the action-accuracy metric when all its precondition and effect answers match
the true state (ViPlan's ``action_state_correct``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from dreamvlx.envs.blocksworld.env import BlocksWorldEnv
from dreamvlx.envs.blocksworld.facts import FactState
from dreamvlx.envs.blocksworld.planner import PlanningLimitError, find_plan
from dreamvlx.envs.blocksworld.problems import Problem
from dreamvlx.envs.blocksworld.prompts import grounding_prompt, grounding_questions, is_compact, question_text
from dreamvlx.envs.blocksworld.replies import parse_yes_no
from dreamvlx.envs.blocksworld.state import Fact, MoveBlock, effect_checks, precondition_checks
from dreamvlx.evals.viplan.backends import EpisodeInfo, VLMBackend, episode_seed
from dreamvlx.evals.viplan.querying import ImageSource, generate, prompt_record, system_prompt


@dataclass(frozen=True)
class GroundingConfig:
    """ViPlan's grounding settings: 20 attempted actions, enumeration batches of 4 (its launch scripts)."""

    max_actions: int = 20
    enum_batch_size: int = 4
    cot: bool = False
    exact_viplan: bool = True
    seed: int = 1
    prompt_style: str = "viplan"


class _Grounder:
    """Asks fact questions about the current true state and records every answer."""

    def __init__(
        self, env: BlocksWorldEnv, backend: VLMBackend, images: ImageSource, config: GroundingConfig
    ):
        self.env, self.backend, self.images, self.config = env, backend, images, config

    def ask(self, checks: list[tuple[Fact, bool]], batch_size: int) -> list[dict[str, Any]]:
        state, cfg = self.env.state, self.config
        prompts = [
            grounding_prompt(question_text(fact[0], fact[1:]), cfg.cot, cfg.exact_viplan, cfg.prompt_style)
            for fact, _ in checks
        ]
        replies = generate(self.backend, self.images(state), prompts, batch_size)
        return [
            {
                "predicate": fact[0],
                "args": list(fact[1:]),
                "prompt": prompt_record(messages, with_system=is_compact(cfg.prompt_style)),
                "reply": reply,
                "answer": parse_yes_no(reply),
                "expected": expected,
                "true": state.holds(fact[0], *fact[1:]),
            }
            for (fact, expected), messages, reply in zip(checks, prompts, replies)
        ]

    def enumerate(self) -> list[dict[str, Any]]:
        state = self.env.state
        checks = [((name, *args), state.holds(name, *args)) for name, args, _ in grounding_questions(state)]
        return self.ask(checks, self.config.enum_batch_size)

    def belief(self, answers: list[dict[str, Any]]) -> FactState:
        state = self.env.state
        facts = frozenset((a["predicate"], *a["args"]) for a in answers if a["answer"] == "yes")
        return FactState(state.blocks, state.column_names, facts)


def _plan(belief: FactState, problem: Problem) -> tuple[list[MoveBlock] | None, str]:
    """Plan from a belief; (None, why) when there is no plan or the planner gives up (ViPlan's crash path)."""
    try:
        plan = find_plan(belief, problem.goal)
    except PlanningLimitError as exc:
        return None, f"planner gave up: {exc}"
    return plan, "no plan"


def _valid(answers: list[dict[str, Any]]) -> bool:
    return all(a["answer"] is not None for a in answers)


def _matches(answers: list[dict[str, Any]], key: str) -> bool:
    return all(a["answer"] == ("yes" if a[key] else "no") for a in answers)


def run_grounding_episode(
    problem: Problem, backend: VLMBackend, images: ImageSource, config: GroundingConfig
) -> dict[str, Any]:
    """Run one grounding episode; returns its JSON-serialisable record (every prompt, answer and action)."""
    env = BlocksWorldEnv(problem)
    if hasattr(backend, "begin_episode"):
        backend.begin_episode(
            EpisodeInfo(
                env, episode_seed(config.seed, problem.name), "grounding", config.cot, config.prompt_style
            )
        )
    grounder = _Grounder(env, backend, images, config)
    record: dict[str, Any] = {
        "problem": problem.name,
        "mode": "grounding",
        "system_prompt": system_prompt(
            grounding_prompt("", config.cot, config.exact_viplan, config.prompt_style)
        ),
        "initial_state": str(problem.initial_state),
        "goal": [list(f) for f in problem.goal],
        "steps": [],
        "replans": [],
        "remaining_actions": [],
        "failed": False,
    }
    record["initial_enumeration"] = grounder.enumerate()
    if not _valid(record["initial_enumeration"]):
        return _finish(record, env, "invalid answer in the initial enumeration", failed=True)
    plan, why = _plan(grounder.belief(record["initial_enumeration"]), problem)
    if plan is None:
        return _finish(record, env, f"{why} from the believed initial state", failed=True)
    record["initial_plan"] = [str(a) for a in plan]
    queue: deque[MoveBlock] = deque(plan)
    most_recent: MoveBlock | None = None
    end_reason = "plan completed"
    while queue and len(record["steps"]) < config.max_actions:
        action = queue.popleft()
        step, aborted = _attempt(action, env, grounder)
        if aborted:
            record["aborted_step"] = step
            end_reason = "invalid answer while checking an action"
            break
        record["steps"].append(step)
        if not step["correct"]:
            if step["outcome"] == "not legal" and action == most_recent:
                end_reason = "the same illegal action twice in a row"
                break
            enumeration = grounder.enumerate()
            record["replans"].append({"step": len(record["steps"]), "enumeration": enumeration})
            if not _valid(enumeration):
                end_reason = "invalid answer in a re-enumeration"
                break
            plan, why = _plan(grounder.belief(enumeration), problem)
            if plan is None:
                end_reason = f"{why} after re-planning"
                break
            record["replans"][-1]["plan"] = [str(a) for a in plan]
            queue = deque(plan)
        if not queue:
            break
        if len(record["steps"]) >= config.max_actions:
            end_reason = "action budget used up"
            break
        most_recent = action
    record["remaining_actions"] = [str(a) for a in queue]
    return _finish(record, env, end_reason, failed=False)


def _attempt(action: MoveBlock, env: BlocksWorldEnv, grounder: _Grounder) -> tuple[dict[str, Any], bool]:
    """Check preconditions, execute, check effects. Returns (step record, aborted by an invalid answer)."""
    step: dict[str, Any] = {"action": str(action), "effects": None, "executed": False}
    step["preconditions"] = grounder.ask(precondition_checks(action), batch_size=2)
    if not _valid(step["preconditions"]):
        return step, True
    if not _matches(step["preconditions"], "expected"):
        step.update(correct=False, state_correct=False, outcome="preconditions not satisfied")
        return step, False
    before = env.state
    result = env.step(action)
    if not result.success:
        step.update(correct=False, state_correct=False, outcome="not legal", info=result.reason)
        return step, False
    step["executed"] = True
    checks = effect_checks(before, action)
    step["effects"] = grounder.ask(checks, batch_size=len(checks))
    if not _valid(step["effects"]):
        return step, True
    answers = step["preconditions"] + step["effects"]
    correct = _matches(step["effects"], "expected")
    step.update(
        correct=correct,
        state_correct=_matches(answers, "true"),
        outcome="success" if correct else "effects not observed as expected",
    )
    return step, False


def _finish(record: dict[str, Any], env: BlocksWorldEnv, end_reason: str, failed: bool) -> dict[str, Any]:
    record.update(
        failed=failed,
        end_reason=end_reason,
        goal_reached=env.goal_reached,
        final_state=str(env.state),
        executed_actions=[str(a) for a in env.executed],
    )
    return record
