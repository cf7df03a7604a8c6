"""ViPlan BlocksWorld: symbolic state, PDDL problems, optimal planner, prompts and reply formats.

- ``state``: ``BlocksWorldState`` (immutable; ``columns()``, ``colors``, ``key``, ``holds``, ``facts``,
  ``step``), ``MoveBlock`` / ``parse_action`` (ViPlan syntax ``moveblock(r, c1)``), ``ActionResult``.
- ``facts``: ``FactState``, a possibly inconsistent belief with the domain's PDDL semantics.
- ``problems``: ``load_split``, ``load_problem_dir``, ``parse_problem_file`` -> ``Problem``.
- ``planner``: ``find_plan`` (optimal breadth-first search), ``validate_plan``.
- ``env``: ``BlocksWorldEnv``, the mutable simulator of one episode.
- ``prompts``: ``grounding_questions``, ``grounding_prompt``, ``planning_prompt``, ``goal_string``,
  ``goal_text`` / ``goal_layout`` / ``layout_text`` (the compact style's goal and scene notation).
- ``replies``: ``parse_yes_no``, ``parse_plan_reply``, the oracle formats ``yes_no_reply`` /
  ``plan_reply``, and ``history_record`` (planning feedback).
- ``render`` (separate module, imported on demand): ``render_state(state) -> PIL.Image``.

See the docstrings of ``prompts`` and ``replies`` for the exact message and reply formats.
"""

from __future__ import annotations

from dreamvlx.envs.blocksworld.env import BlocksWorldEnv
from dreamvlx.envs.blocksworld.facts import FactState
from dreamvlx.envs.blocksworld.planner import PlanCheck, find_plan, validate_plan
from dreamvlx.envs.blocksworld.problems import (
    SPLITS,
    Problem,
    asset_dir,
    load_problem_dir,
    load_split,
    parse_problem_file,
)
from dreamvlx.envs.blocksworld.prompts import (
    QUESTION_TEMPLATES,
    goal_layout,
    goal_string,
    goal_text,
    grounding_prompt,
    grounding_questions,
    layout_text,
    planning_prompt,
    question_text,
)
from dreamvlx.envs.blocksworld.replies import (
    PlanReply,
    history_record,
    parse_plan_reply,
    parse_yes_no,
    plan_reply,
    yes_no_reply,
)
from dreamvlx.envs.blocksworld.state import (
    BLOCK_COLORS,
    ActionResult,
    BlocksWorldState,
    Fact,
    MoveBlock,
    effect_checks,
    parse_action,
    precondition_checks,
)

__all__ = [
    "BLOCK_COLORS",
    "QUESTION_TEMPLATES",
    "SPLITS",
    "ActionResult",
    "BlocksWorldEnv",
    "BlocksWorldState",
    "Fact",
    "FactState",
    "MoveBlock",
    "PlanCheck",
    "PlanReply",
    "Problem",
    "asset_dir",
    "effect_checks",
    "find_plan",
    "goal_layout",
    "goal_string",
    "goal_text",
    "grounding_prompt",
    "grounding_questions",
    "history_record",
    "layout_text",
    "load_problem_dir",
    "load_split",
    "parse_action",
    "parse_plan_reply",
    "parse_problem_file",
    "parse_yes_no",
    "plan_reply",
    "planning_prompt",
    "precondition_checks",
    "question_text",
    "validate_plan",
    "yes_no_reply",
]
