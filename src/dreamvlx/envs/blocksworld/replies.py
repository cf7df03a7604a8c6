"""Model replies: ViPlan's parsers, the formats the oracle writes, and the planning feedback records.

Grounding replies (``parse_yes_no``, ViPlan's ``parse_output`` + ``cast_to_yes_no``):

1. if both ``<answer>``/``</answer>`` (or ``<explanation>``) tags are present, the content of
   ``<answer>`` is used (None -> invalid when only ``<explanation>`` is tagged); otherwise the whole reply;
2. strip, lowercase, drop trailing ``.,!?``;
3. ``yes``/``no`` when it starts with one, else the first space-separated word starting with ``yes``/``no``
   (so ``"not"`` reads as no), else invalid (None).

The oracle answers ``Yes`` / ``No`` (no-CoT) or ``<explanation>...</explanation>\\n<answer>Yes</answer>``
(CoT): ``yes_no_reply``.

Planning replies (``parse_plan_reply``, ViPlan's ``parse_json_output`` + ``get_plan_action``): the text
from the first ``{`` to the last ``}`` goes to ``json.loads``, so code fences and text around one JSON
object are tolerated, but two objects, single quotes or trailing commas are not. Outcomes:

- ``"invalid_json"``: not decodable -> ViPlan ends the episode;
- ``"invalid_plan"``: not ``{"plan": [ {"action": ...}, ... ]}`` with a non-empty list whose first item
  is an object with an ``"action"`` key -> ViPlan ends the episode (its failsafe ``break``);
- ``"ok"``: ``plan[0]`` is read as ``action`` plus ``parameters.block`` / ``parameters.column``; those may be
  missing or wrong, which the planning loop turns into an ``"action does not exist"`` step.

The oracle writes ``{"plan": [{"action": "moveblock", "parameters": {"block": "r", "column": "c1"}}, ...]}``
(``plan_reply``; with ``"explanation"`` first in CoT mode).

Feedback records (``history_record``), appended after every step and shown to the model as JSON:
``{"action": "moveblock", "parameters": {"block": "y", "column": "c2"}, "outcome": "success"|"failure",
"info": "success"|"not legal"}`` for an existing action, and ``{"action": <name as written>, "outcome":
"action does not exist"}`` when the action name is not ``moveblock`` *or* its block/column is missing or not
an object of the problem (in ViPlan's code the ``"parameters incorrectly specified"`` branch is unreachable:
a bad name makes the action None, which takes the "does not exist" branch first).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dreamvlx.envs.blocksworld.prompts import goal_layout, is_compact, layout_text, style_layout_text
from dreamvlx.envs.blocksworld.state import ACTION_NAME, BLOCK_COLORS, BlocksWorldState, Fact, MoveBlock


def _tag_content(text: str, tag: str) -> str | None:
    start = text.find(f"<{tag}>")
    end = text.find(f"</{tag}>")
    if end == -1:
        end = text.find(f"<\\{tag}>")
    if start == -1 or end == -1:
        return None
    return text[start + len(tag) + 2 : end].strip()


def parse_yes_no(reply: str) -> Literal["yes", "no"] | None:
    """ViPlan's yes/no reading of a grounding reply (module docstring); None when invalid."""
    tagged = {tag: _tag_content(reply, tag) for tag in ("answer", "explanation")}
    if any(value is not None for value in tagged.values()):
        answer = tagged["answer"]
    else:
        answer = reply.strip()
    if answer is None:
        return None
    answer = answer.strip().lower().rstrip(".,!?")
    for candidate in (answer, *answer.split(" ")):
        if candidate.startswith("yes"):
            return "yes"
        if candidate.startswith("no"):
            return "no"
    return None


def yes_no_reply(value: bool, explanation: str | None = None) -> str:
    """The reply format the oracle (and training data) uses for a grounding question."""
    answer = "Yes" if value else "No"
    if explanation is None:
        return answer
    return f"<explanation>\n{explanation}\n</explanation>\n<answer>\n{answer}\n</answer>"


@dataclass(frozen=True)
class PlanReply:
    """A parsed planning reply.

    Attributes:
        status: ``"ok"``, ``"invalid_json"`` or ``"invalid_plan"`` (module docstring).
        plan: the decoded JSON (None when ``invalid_json``).
        action: ``plan[0]["action"]`` as written (``"ok"`` only).
        block, column: ``plan[0]["parameters"]["block"/"column"]`` when present and strings, else None.
        error: why the reply was rejected (empty when ``ok``).
    """

    status: Literal["ok", "invalid_json", "invalid_plan"]
    plan: Any = None
    action: Any = None
    block: str | None = None
    column: str | None = None
    error: str = ""

    @property
    def named_move(self) -> MoveBlock | None:
        """The move the plan's first step names (``moveblock`` with a block and a column, whether or not the
        problem has them), or None: an unusable reply, another action, or a parameter missing."""
        if self.status != "ok" or self.action != ACTION_NAME or self.block is None or self.column is None:
            return None
        return MoveBlock(self.block, self.column)


def parse_plan_reply(reply: str) -> PlanReply:
    """Read the first action of a JSON plan reply, exactly as far as ViPlan does (module docstring)."""
    start, end = reply.find("{"), reply.rfind("}")
    try:
        decoded = json.loads(reply[start : end + 1] if start != -1 and end > start else "")
    except json.JSONDecodeError as exc:
        return PlanReply("invalid_json", error=f"not valid JSON between the first '{{' and last '}}': {exc}")
    plan = decoded.get("plan") if isinstance(decoded, dict) else None
    if not isinstance(plan, list) or not plan:
        return PlanReply("invalid_plan", decoded, error="no non-empty list under the key 'plan'")
    first = plan[0]
    if not isinstance(first, dict) or "action" not in first:
        return PlanReply("invalid_plan", decoded, error="the first plan step is not an object with 'action'")
    parameters = first.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    block, column = parameters.get("block"), parameters.get("column")
    return PlanReply(
        "ok",
        decoded,
        first["action"],
        block if isinstance(block, str) else None,
        column if isinstance(column, str) else None,
    )


def plan_reply(plan: Sequence[MoveBlock], explanation: str | None = None) -> str:
    """The JSON plan reply the oracle (and training data) writes; ``explanation`` first for CoT."""
    body: dict[str, Any] = {} if explanation is None else {"explanation": explanation}
    body["plan"] = [
        {"action": ACTION_NAME, "parameters": {"block": a.block, "column": a.column}} for a in plan
    ]
    return json.dumps(body)


def history_record(action: MoveBlock | None, written_name: Any, success: bool, info: str) -> dict[str, Any]:
    """One "Previously taken actions" entry; ``action`` None means ViPlan's "action does not exist"."""
    if action is None:
        return {"action": written_name, "outcome": "action does not exist"}
    return {
        "action": ACTION_NAME,
        "parameters": {"block": action.block, "column": action.column},
        "outcome": "success" if success else "failure",
        "info": info,
    }


def state_explanation(state: BlocksWorldState, style: str = "viplan") -> str:
    """The CoT explanation the oracle (and CoT training data) writes: the columns left to right, each
    bottom to top. ``"viplan"``: ``From left to right, bottom to top: column "c1": red block, green block;
    column "c2": empty; ...``; ``"compact"``: ``c1: r g | c2: - | ...`` (a few tokens per column);
    ``"slots"``: ``c1: r g - | c2: - - - | ...`` (one place per block of the problem in every column)."""
    if is_compact(style):
        return style_layout_text(state.columns(), len(state.blocks), style)
    parts = []
    for column, stack in state.columns():
        blocks = ", ".join(f"{BLOCK_COLORS[b]} block" for b in stack) if stack else "empty"
        parts.append(f'column "{column}": {blocks}')
    return "From left to right, bottom to top: " + "; ".join(parts) + "."


STANDING_SEPARATOR = " ; "
"""Between the scene and the columns' standing in a ``standing`` CoT explanation (``planning_explanation``)."""


def goal_standing(state: BlocksWorldState, goal: Sequence[Fact]) -> str:
    """Every column's standing against a complete goal (``prompts.goal_layout``), left to right, one word per
    column: ``-`` (the column is final, nothing to do), ``no`` (a block on it is out of place, so its top
    has to go) or the letter of the block that goes next (its stack is the bottom of the goal's), e.g.
    ``c1 no | c2 - | c3 y``.

    Each word compares one column of the scene with the same column of the goal, place by place, so it is
    a local step; a constructive move (``datagen.constructive_moves``) is then a column whose word is a
    block on top of another column. One token per word (in the demo tokenizers) keeps every column's word
    at a fixed position, which parallel decoding needs: with words of varying length (``needs y``, ``dig``)
    an 8-step sampler wrote garbled standings (``experiments/demo_model/README.md``)."""
    layout = dict(goal_layout(state.column_names, goal))
    words = []
    for column, stack in state.columns():
        wanted = layout[column]
        if list(stack) == wanted:
            words.append(f"{column} -")
        elif wanted[: len(stack)] == list(stack):
            words.append(f"{column} {wanted[len(stack)]}")
        else:
            words.append(f"{column} no")
    return " | ".join(words)


def goal_places(state: BlocksWorldState, goal: Sequence[Fact], slots: int | None = None) -> str:
    """The scene compared with a complete goal place by place, in the ``"slots"`` notation (one place per
    block of the problem in every column): ``-`` where scene and goal agree (the same block, or both
    empty), ``no`` where the scene has a block the goal does not want there, the goal's block where the
    place is empty but the goal fills it. Scene ``c1: r g - | c2: - - -`` against goal ``c1: r - - | c2:
    g - -`` gives ``c1: - no - | c2: g - -``.

    Every word depends on one place of the scene and the same place of the goal, which sit at fixed
    distances from it in the sequence (the slots notation keeps every column's places at fixed positions),
    so each is a two-input lookup; a column's standing (``goal_standing``) is then its first word that is
    not ``-``. ``slots`` sets the places per column (default one per block); fewer than the problem's
    blocks is a ValueError."""
    layout = dict(goal_layout(state.column_names, goal))
    slots = len(state.blocks) if slots is None else slots
    if slots < len(state.blocks):
        raise ValueError(f"{slots} places per column cannot hold the problem's {len(state.blocks)} blocks")
    rows = []
    for column, stack in state.columns():
        scene_places = [*stack, *[None] * (slots - len(stack))]
        goal_places_ = [*layout[column], *[None] * (slots - len(layout[column]))]
        rows.append(
            (
                column,
                [
                    "-" if here == wanted else ("no" if here is not None else wanted)
                    for here, wanted in zip(scene_places, goal_places_)
                ],
            )
        )
    return layout_text(rows)


def planning_explanation(
    state: BlocksWorldState, goal: Sequence[Fact], style: str, standing: bool = False, places: bool = False
) -> str:
    """The ``"explanation"`` of a CoT planning answer: the scene (``state_explanation``), and with
    ``standing`` (compact styles only) the columns' standing after ``STANDING_SEPARATOR``
    (``c1: r - - | c2: y - - ; c1 g | c2 no``); ``places`` (with ``standing``, ``"slots"`` style only) puts
    the place-by-place comparison (``goal_places``) between them (``c1: r - - | c2: y - - ; c1: - g - |
    c2: no - - ; c1 g | c2 no``)."""
    scene = state_explanation(state, style)
    if places and not (standing and style == "slots"):
        raise ValueError(
            f"the place-by-place comparison needs standing=True and the 'slots' style, not {style!r}"
        )
    if not standing:
        return scene
    if not is_compact(style):
        raise ValueError(f"the goal standing is written only in the compact prompt styles, not {style!r}")
    middle = [goal_places(state, goal)] if places else []
    return STANDING_SEPARATOR.join([scene, *middle, goal_standing(state, goal)])
