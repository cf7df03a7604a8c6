"""Planning mode (VLM-as-planner), as ViPlan's ``benchmark_blocksworld_vila.py`` runs it.

Each step: render the true state, send the JSON-plan prompt (goal plus the JSON history of previous
actions and outcomes), execute only the first action of the returned plan, append its feedback record.
The episode ends when the goal holds, after ``max_steps`` steps (10 / 20 / 30 for simple / medium / hard;
every step counts, legal or not), or on a reply that is not valid JSON or has no usable first step
(``dreamvlx.envs.blocksworld.replies``). An illegal move does not end the episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dreamvlx.envs.blocksworld.env import BlocksWorldEnv
from dreamvlx.envs.blocksworld.problems import Problem
from dreamvlx.envs.blocksworld.prompts import is_compact, planning_prompt
from dreamvlx.envs.blocksworld.replies import history_record, parse_plan_reply
from dreamvlx.envs.blocksworld.state import ACTION_NAME, MoveBlock
from dreamvlx.evals.viplan.backends import EpisodeInfo, VLMBackend, episode_seed
from dreamvlx.evals.viplan.querying import ImageSource, generate, prompt_record, system_prompt

MAX_STEPS: dict[str, int] = {"simple": 10, "medium": 20, "hard": 30}
"""Step limits of ViPlan's launch scripts per split."""


@dataclass(frozen=True)
class PlanningConfig:
    max_steps: int
    cot: bool = False
    seed: int = 1
    prompt_style: str = "viplan"


def _resolve(problem: Problem, name: Any, block: str | None, column: str | None) -> MoveBlock | None:
    """The action a plan step names, or None when ViPlan would report "action does not exist"."""
    if name != ACTION_NAME or block not in problem.blocks or column not in problem.columns:
        return None
    return MoveBlock(block, column)


def run_planning_episode(
    problem: Problem, backend: VLMBackend, images: ImageSource, config: PlanningConfig
) -> dict[str, Any]:
    """Run one planning episode; returns its JSON-serialisable record (every prompt, reply and outcome)."""
    if config.max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {config.max_steps}")
    env = BlocksWorldEnv(problem)
    if hasattr(backend, "begin_episode"):
        backend.begin_episode(
            EpisodeInfo(
                env, episode_seed(config.seed, problem.name), "planning", config.cot, config.prompt_style
            )
        )
    history: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    end_reason = "step limit reached"
    first_prompt = planning_prompt(problem, history, config.cot, config.prompt_style)
    for _ in range(config.max_steps):
        if env.goal_reached:
            break
        messages = planning_prompt(problem, history, config.cot, config.prompt_style)
        reply = generate(backend, images(env.state), [messages], batch_size=1)[0]
        parsed = parse_plan_reply(reply)
        step: dict[str, Any] = {
            "prompt": prompt_record(messages, with_system=is_compact(config.prompt_style)),
            "reply": reply,
            "status": parsed.status,
        }
        steps.append(step)
        if parsed.status != "ok":
            step.update(success=False, error=parsed.error)
            end_reason = f"unusable reply ({parsed.status})"
            break
        action = _resolve(problem, parsed.action, parsed.block, parsed.column)
        if action is None:
            history.append(history_record(None, parsed.action, False, ""))
            step.update(action=None, success=False, info="action does not exist")
            continue
        result = env.step(action)
        info = "success" if result.success else "not legal"
        history.append(history_record(action, parsed.action, result.success, info))
        step.update(action=str(action), success=result.success, info=info, reason=result.reason)
    if env.goal_reached:
        end_reason = "goal reached"
    return {
        "problem": problem.name,
        "mode": "planning",
        "system_prompt": system_prompt(first_prompt),
        "initial_state": str(problem.initial_state),
        "goal": [list(f) for f in problem.goal],
        "max_steps": config.max_steps,
        "steps": steps,
        "history": history,
        "end_reason": end_reason,
        "goal_reached": env.goal_reached,
        "final_state": str(env.state),
        "executed_actions": [str(a) for a in env.executed],
    }
