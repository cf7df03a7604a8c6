"""Planning mode (VLM-as-planner), as ViPlan's ``benchmark_blocksworld_vila.py`` runs it.

Each step: render the true state, send the JSON-plan prompt (goal plus the JSON history of previous
actions and outcomes), execute only the first action of the returned plan, append its feedback record.
The episode ends when the goal holds, after ``max_steps`` steps (10 / 20 / 30 for simple / medium / hard;
every step counts, legal or not), or on a reply that is not valid JSON or has no usable first step
(``dreamvlx.envs.blocksworld.replies``). An illegal move does not end the episode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dreamvlx.envs.blocksworld.env import BlocksWorldEnv
from dreamvlx.envs.blocksworld.problems import Problem
from dreamvlx.envs.blocksworld.prompts import Messages, is_compact, planning_prompt
from dreamvlx.envs.blocksworld.replies import history_record, parse_plan_reply
from dreamvlx.envs.blocksworld.state import ACTION_NAME, BlocksWorldState, MoveBlock
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


class PlanningEpisode:
    """One planning episode stepped from outside: ``messages()`` is the prompt of the next query, ``take``
    applies the reply to it, ``done`` says whether the episode has ended, ``record()`` is its JSON record.
    ``run_planning_episode`` drives one; a caller that holds several can batch their queries."""

    def __init__(self, problem: Problem, config: PlanningConfig) -> None:
        if config.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {config.max_steps}")
        self.problem, self.config = problem, config
        self.env = BlocksWorldEnv(problem)
        self.history: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self._unusable: str | None = None  # the status of a reply that ended the episode
        self._visited = [self.env.state]  # the state before each reply, and the current one
        # state -> the moves a reply named there that failed
        self._failed: dict[BlocksWorldState, set[MoveBlock]] = {}
        self._first_prompt = self.messages()

    @property
    def done(self) -> bool:
        return self.env.goal_reached or self._unusable is not None or len(self.steps) >= self.config.max_steps

    @property
    def last_action_failed(self) -> bool:
        """Whether the last reply's action was not executed (not legal, or no such action); False before the
        first reply. The state is then unchanged, so a prompt without history asks the same question again."""
        return bool(self.steps) and not self.steps[-1]["success"]

    @property
    def state_seen_before(self) -> bool:
        """Whether the current state occurred earlier in the episode: after a failed action, or a cycle of
        legal ones (a block moved away and back). A prompt without history then asks a question it has
        asked before."""
        return self.env.state in self._visited[:-1]

    @property
    def futile_actions(self) -> frozenset[MoveBlock]:
        """Moves that cannot belong to a shortest plan from here, by what the episode's history (ViPlan's
        feedback records, in every prompt) shows: each move a reply named in the current state that failed
        there (the environment is deterministic: it fails again; a move of no such block or to no such
        column included), and every move of the block the last executed action moved (moving one block twice
        in a row is never shortest: one move to the second column does as much, or none when it goes back).
        A caller may ask again when a reply names one of them."""
        failed = self._failed.get(self.env.state, set())
        if self.last_moved is None:
            return frozenset(failed)
        return frozenset(failed | {MoveBlock(self.last_moved, column) for column in self.problem.columns})

    @property
    def last_moved(self) -> str | None:
        """The block the last executed action moved; None before any was executed."""
        return self.env.executed[-1].block if self.env.executed else None

    def messages(self) -> Messages:
        """The planning prompt for the current state: the goal and the JSON history so far."""
        return planning_prompt(self.problem, self.history, self.config.cot, self.config.prompt_style)

    def take(self, messages: Messages, reply: str, details: Mapping[str, Any] | None = None) -> None:
        """Apply ``reply`` (the answer to ``messages``): execute its plan's first action and record it, with
        ``details`` (how the reply was obtained, e.g. a chained planner's calls) in the step's record."""
        if self.done:
            raise RuntimeError(f"episode {self.problem.name} has ended; it takes no more replies")
        self._apply(messages, reply)
        self.steps[-1].update(details or {})
        self._visited.append(self.env.state)

    def _apply(self, messages: Messages, reply: str) -> None:
        parsed = parse_plan_reply(reply)
        step: dict[str, Any] = {
            "prompt": prompt_record(messages, with_system=is_compact(self.config.prompt_style)),
            "reply": reply,
            "status": parsed.status,
        }
        self.steps.append(step)
        if parsed.status != "ok":
            step.update(success=False, error=parsed.error)
            self._unusable = parsed.status
            return
        state = self.env.state
        action = _resolve(self.problem, parsed.action, parsed.block, parsed.column)
        if action is None:
            if parsed.named_move is not None:
                self._failed.setdefault(state, set()).add(parsed.named_move)
            self.history.append(history_record(None, parsed.action, False, ""))
            step.update(action=None, success=False, info="action does not exist")
            return
        result = self.env.step(action)
        if not result.success:
            self._failed.setdefault(state, set()).add(action)
        info = "success" if result.success else "not legal"
        self.history.append(history_record(action, parsed.action, result.success, info))
        step.update(action=str(action), success=result.success, info=info, reason=result.reason)

    def record(self) -> dict[str, Any]:
        """The episode's JSON-serialisable record (every prompt, reply and outcome)."""
        if self.env.goal_reached:
            end_reason = "goal reached"
        elif self._unusable is not None:
            end_reason = f"unusable reply ({self._unusable})"
        else:
            end_reason = "step limit reached"
        return {
            "problem": self.problem.name,
            "mode": "planning",
            "system_prompt": system_prompt(self._first_prompt),
            "initial_state": str(self.problem.initial_state),
            "goal": [list(f) for f in self.problem.goal],
            "max_steps": self.config.max_steps,
            "steps": self.steps,
            "history": self.history,
            "end_reason": end_reason,
            "goal_reached": self.env.goal_reached,
            "final_state": str(self.env.state),
            "executed_actions": [str(a) for a in self.env.executed],
        }


def run_planning_episode(
    problem: Problem, backend: VLMBackend, images: ImageSource, config: PlanningConfig
) -> dict[str, Any]:
    """Run one planning episode; returns its JSON-serialisable record (every prompt, reply and outcome)."""
    episode = PlanningEpisode(problem, config)
    if hasattr(backend, "begin_episode"):
        backend.begin_episode(
            EpisodeInfo(
                episode.env,
                episode_seed(config.seed, problem.name),
                "planning",
                config.cot,
                config.prompt_style,
            )
        )
    while not episode.done:
        messages = episode.messages()
        episode.take(messages, generate(backend, images(episode.env.state), [messages], batch_size=1)[0])
    return episode.record()
