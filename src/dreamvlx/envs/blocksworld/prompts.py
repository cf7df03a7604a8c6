"""ViPlan's BlocksWorld prompts as pure functions (shared by the evaluator and the training-data generator).

Messages are chat messages in the usual VLM layout::

    [{"role": "system", "content": "<text>"},
     {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "<text>"}]}]

with one ``{"type": "image"}`` part where the prompt file has its ``{image}`` placeholder; the caller
supplies the image (the rendered current state) separately.

Grounding (VLM-as-grounder; ViPlan ``prompt.md`` / ``prompt_cot.md``):

- ``grounding_questions(state)`` -> ``[(predicate, args, question), ...]``: every grounded predicate of
  the problem, degenerate pairs included (``on(r, r)``, ``rightof(c1, c1)``): predicates in domain order
  (on, incolumn, clear, rightof, leftof), arguments in object order (blocks in PDDL order, columns left
  to right); 56 / 105 / 98 questions for simple / medium / hard. ViPlan lists, within each predicate,
  the facts true in the PDDL ``:init`` first; the order changes nothing for a model that answers each
  question on its own.
- ``question_text(predicate, args)``, e.g. ``Is the red block on top of the green block?``.
- ``grounding_prompt(question, cot=False, exact_viplan=True)`` -> messages. No-CoT:
  ``[system, user: [image, question]]``; CoT: ``[system, user: [scene text, image, question]]``.
  ``exact_viplan=True`` reproduces ViPlan's parser quirk: the prompt files lack ``</user>``, so the
  user text ends one character early and **the question loses its final "?"**; no "Question:" prefix is
  added. ``exact_viplan=False`` keeps the "?".

Planning (VLM-as-planner; ViPlan ``vila_blocksworld_json.md`` / ``..._cot.md``):

- ``goal_string(blocks, goal)``: one line per block in object order, e.g. ``The red block needs to be on
  top of the green block, needs to be the topmost block in its column and needs to be in the column with
  label 'c1'. `` (clauses in goal order, each line ends with ``". \\n"``); ``goal_text(blocks, columns, goal,
  style)`` picks it or the compact style's layout.
- ``planning_prompt(problem_or_goal_string, history, cot=False)`` -> ``[system, user: [text, image]]``;
  ``history`` is the list of previous-action records (``dreamvlx.envs.blocksworld.replies``), dumped
  with ``json.dumps`` into the "Previously taken actions" section (``[]`` at the first step).

Prompt styles (``style=``): ``"viplan"`` (default) renders ViPlan's prompt files as above, for models that
read instructions (the 7B checkpoints). ``"compact"`` keeps only what changes between queries, for small
models trained from scratch, which never learned to read instructions and gain nothing from ~800 tokens of
fixed text but pay for them in every forward (training and evaluation are ~3x cheaper): planning is
``[system: "Goal: <layout>\nPrevious actions: <compact_history>", user: [image]]`` and grounding is
``[system: question, user: [image]]``. The compact goal is the configuration the goal facts fix, written in the
notation of the CoT scene explanation (``Goal: c1: g b | c2: - | c3: o | c4: y p``; ``goal_layout``): every
ViPlan goal puts each block in a column and orders each column, so this is the same goal, and a small
model compares two lines in one notation instead of parsing ~150 tokens of English (measured in
``experiments/demo_model/README.md``). The text of both modes goes to the system turn so that the image is the last
thing before the answer: the answer then sits at the same distance from every image token in every
sample (a variable-length goal between them would shift it), which is what lets a model trained from
scratch learn, through the rotary positions, which image tokens show which column; with the image at the
front of the user turn (where LLaVA rendering puts it) a 2.4 M-parameter model had not started to read
the image after 2,000 steps (``experiments/demo_model/README.md``).

``"slots"`` is the compact style with every column written as exactly as many places as the problem has
blocks (``Goal: c1: g b - | c2: - - - | c3: o - -``; the CoT scene alike) and the goal line after the
history line. In masked-diffusion training most of a reply is masked, and with free-length columns the
column and level a masked letter stands for depend on other masked tokens; with fixed places every
(column, level) sits at the same position in every reply of a split, at a fixed distance from the image
and from the same place of the goal. Models trained on ``"compact"`` read stack heights but not colours;
on ``"slots"`` they learned colours too (measured in ``experiments/demo_model/README.md``).

The environment, problems, step limits, reply format, parser and success criterion are ViPlan's in every
style; only the prompt text differs, so numbers from different styles are labelled with their style in
every summary.

Replies the evaluator parses, and the oracle/training format: see ``dreamvlx.envs.blocksworld.replies``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from itertools import product
from typing import Any, Protocol

from dreamvlx.envs.blocksworld.problems import Problem, asset_dir
from dreamvlx.envs.blocksworld.state import PREDICATE_SIGNATURES, Fact, block_color

Messages = list[dict[str, Any]]
Question = tuple[str, tuple[str, ...], str]
"""``(predicate, args, question text)``, e.g. ``("on", ("r", "g"), "Is the red block on top of the green block?")``."""

IMAGE_PLACEHOLDER = "{image}"

QUESTION_TEMPLATES: dict[str, str] = {
    "on": "Is the {0} on top of the {1}?",
    "clear": "Is the {0} the topmost of its column?",
    "incolumn": "Is the {0} in the {1}?",
    "rightof": "Is the {0} to the right of the {1}?",
    "leftof": "Is the {0} to the left of the {1}?",
}
"""ViPlan's grounding question per predicate (lowercase names)."""

_PROMPT_FILES = {
    ("grounding", False): "grounding.md",
    ("grounding", True): "grounding_cot.md",
    ("planning", False): "planning.md",
    ("planning", True): "planning_cot.md",
}


class _HasObjects(Protocol):
    blocks: tuple[str, ...]
    column_names: tuple[str, ...]


@cache
def prompt_template(kind: str, cot: bool = False) -> str:
    """Raw text of a shipped ViPlan prompt file (``kind``: ``"grounding"`` or ``"planning"``)."""
    if (kind, cot) not in _PROMPT_FILES:
        raise ValueError(f"unknown prompt kind {kind!r}; use 'grounding' or 'planning'")
    path = asset_dir() / "prompts" / _PROMPT_FILES[kind, cot]
    if not path.is_file():
        raise FileNotFoundError(f"ViPlan prompt file missing from the package: {path}")
    return path.read_text()


def _content(text: str) -> str | list[dict[str, str]]:
    if IMAGE_PLACEHOLDER not in text:
        return text.strip()
    parts: list[dict[str, str]] = []
    for piece in text.split(IMAGE_PLACEHOLDER):
        if piece.strip():
            parts.append({"type": "text", "text": piece.strip()})
        parts.append({"type": "image"})
    return parts[:-1]


def prompt_messages(text: str, exact_viplan: bool = True) -> Messages:
    """Split a ViPlan pseudo-XML prompt (``<system>...</system><user>...``) into chat messages.

    Each section's text is stripped and split at ``{image}`` into text and image parts. A section
    without its closing tag runs to the end of the text; with ``exact_viplan`` its last character is
    dropped, as ViPlan's ``get_messages`` does (it slices up to ``find()`` = -1).
    """
    messages: Messages = []
    for role in ("system", "user", "assistant"):
        open_tag, close_tag = f"<{role}>", f"</{role}>"
        start = text.find(open_tag)
        if start == -1:
            continue
        body_start = start + len(open_tag)
        end = text.find(close_tag, body_start)
        if end == -1:
            end = len(text) - 1 if exact_viplan else len(text)
        messages.append({"role": role, "content": _content(text[body_start:end].strip())})
    if not messages:
        messages.append({"role": "user", "content": _content(text.strip())})
    return messages


def _block_phrase(block: str) -> str:
    return f"{block_color(block)} block"


def _column_phrase(column: str) -> str:
    return f'column labeled "{column}"'


def question_text(predicate: str, args: Sequence[str]) -> str:
    """ViPlan's question for one ground predicate, e.g. ``Is the red block in the column labeled "c2"?``."""
    name = predicate.lower()
    if name not in QUESTION_TEMPLATES:
        raise KeyError(f"no grounding question for predicate {predicate!r}")
    kinds = PREDICATE_SIGNATURES[name]
    if len(args) != len(kinds):
        raise ValueError(f"{name} takes {len(kinds)} arguments, got {tuple(args)}")
    phrases = [_block_phrase(a) if k == "block" else _column_phrase(a) for a, k in zip(args, kinds)]
    return QUESTION_TEMPLATES[name].format(*phrases)


def grounding_questions(state: _HasObjects) -> list[Question]:
    """Every grounded predicate of the state's objects with its question (see the module docstring)."""
    objects = {"block": state.blocks, "column": state.column_names}
    return [
        (name, args, question_text(name, args))
        for name, kinds in PREDICATE_SIGNATURES.items()
        for args in product(*(objects[k] for k in kinds))
    ]


PROMPT_STYLES: tuple[str, ...] = ("viplan", "compact", "slots")
"""``"viplan"``: ViPlan's prompt files; ``"compact"``: only the per-query content; ``"slots"``: the compact
style with a fixed number of places per column (module docstring)."""


def check_prompt_style(style: str) -> str:
    """``style`` when it is one of :data:`PROMPT_STYLES`, else a ValueError naming the choices."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose from {list(PROMPT_STYLES)}")
    return style


def is_compact(style: str) -> bool:
    """Whether ``style`` is one of the per-query-content styles (``"compact"``, ``"slots"``)."""
    return check_prompt_style(style) != "viplan"


def grounding_prompt(
    question: str, cot: bool = False, exact_viplan: bool = True, style: str = "viplan"
) -> Messages:
    """Messages asking one yes/no question about the image (ViPlan's prompt, question appended; the
    compact style sends only the question, in the system turn, and the image, ``cot`` and ``exact_viplan``
    do not apply)."""
    if is_compact(style):
        return [{"role": "system", "content": question}, {"role": "user", "content": [{"type": "image"}]}]
    return prompt_messages(prompt_template("grounding", cot) + "\n" + question, exact_viplan)


def goal_string(blocks: Sequence[str], goal: Sequence[Fact]) -> str:
    """ViPlan's natural-language goal: one line per block (object order), clauses in goal order."""
    lines = []
    for block in blocks:
        clauses = []
        for fact in (f for f in goal if f[1] == block):
            if fact[0] == "on":
                clauses.append(f" needs to be on top of the {_block_phrase(fact[2])}")
            elif fact[0] == "clear":
                clauses.append(" needs to be the topmost block in its column")
            elif fact[0] == "incolumn":
                clauses.append(f" needs to be in the column with label '{fact[2]}'")
            else:
                raise ValueError(f"goal fact {fact} cannot be phrased (ViPlan goals use on/clear/incolumn)")
        line = f"The {_block_phrase(block)}"
        for i, clause in enumerate(clauses):
            line += clause + ("," if i < len(clauses) - 2 else " and" if i == len(clauses) - 2 else ". ")
        lines.append(line + "\n")
    return "".join(lines)


def layout_text(columns: Sequence[tuple[str, Sequence[str]]], slots: int | None = None) -> str:
    """Stacks in the compact notation, ``c1: r g | c2: - | c3: b`` (columns left to right, each bottom to
    top, ``-`` for an empty one): the compact style's goal and CoT scene explanation.

    ``slots``: write every column as exactly ``slots`` places, ``-`` for each empty one (``slots=3``:
    ``c1: r g - | c2: - - - | c3: b - -``), the ``"slots"`` style; a stack taller than ``slots`` is a
    ValueError."""
    if slots is None:
        return " | ".join(f"{column}: {' '.join(stack) or '-'}" for column, stack in columns)
    if any(len(stack) > slots for _, stack in columns):
        raise ValueError(f"a stack of {list(columns)} is taller than {slots} slots")
    return " | ".join(
        f"{column}: {' '.join([*stack, *['-'] * (slots - len(stack))])}" for column, stack in columns
    )


def style_layout_text(columns: Sequence[tuple[str, Sequence[str]]], n_blocks: int, style: str) -> str:
    """``layout_text`` as a compact style writes it: free-length (``"compact"``) or with ``n_blocks`` slots
    per column (``"slots"``, room for every block of the problem in one column)."""
    if not is_compact(style):
        raise ValueError(f"prompt style {style!r} has no layout notation (use 'compact' or 'slots')")
    return layout_text(columns, n_blocks if style == "slots" else None)


def goal_layout(columns: Sequence[str], goal: Sequence[Fact]) -> list[tuple[str, list[str]]]:
    """The one configuration a complete goal allows: ``[(column, [bottom, ..., top]), ...]``.

    A goal is complete when it puts every block it names in a column (``incolumn``) and orders each column
    by ``on`` facts into one stack; ViPlan's goals (all 75 problems) and generated goals are. Raises
    ``ValueError`` naming the problem for any other goal (missing column, unordered or contradictory
    stacks, a ``clear`` block that is not on top), because the compact style could not state it.
    """
    blocks_in = {column: [f[1] for f in goal if f[0] == "incolumn" and f[2] == column] for column in columns}
    placed = [block for stack in blocks_in.values() for block in stack]
    named = {arg for fact in goal for arg in fact[1:] if arg not in columns}
    if sorted(placed) != sorted(named) or len(set(placed)) != len(placed):
        raise ValueError(f"goal {list(goal)} does not put every block in exactly one column")
    below = {f[1]: f[2] for f in goal if f[0] == "on"}
    layout = []
    for column, members in blocks_in.items():
        bottoms = [block for block in members if block not in below]
        stack = bottoms[:1]
        while stack and len(stack) < len(members):
            above = [block for block in members if below.get(block) == stack[-1]]
            if len(above) != 1:
                break
            stack.append(above[0])
        if len(bottoms) > 1 or len(stack) != len(members):
            raise ValueError(
                f"goal {list(goal)} does not order the blocks of column {column!r} into one stack"
            )
        layout.append((column, stack))
    tops = {stack[-1] for _, stack in layout if stack}
    if any(f[0] == "clear" and f[1] not in tops for f in goal):
        raise ValueError(f"goal {list(goal)} asks a block to be clear that its stacks cover")
    return layout


def goal_text(
    blocks: Sequence[str], columns: Sequence[str], goal: Sequence[Fact], style: str = "viplan"
) -> str:
    """The goal as a prompt states it: ``goal_string`` (``"viplan"``) or the goal's configuration in the
    compact notation, ``c1: g b | c2: - | c3: o`` (``"compact"``/``"slots"``, :func:`goal_layout` /
    :func:`style_layout_text`)."""
    if is_compact(style):
        return style_layout_text(goal_layout(columns, goal), len(blocks), style)
    return goal_string(blocks, goal)


def compact_history(history: Sequence[dict]) -> str:
    """Previous actions in one short line for the compact style, e.g. ``moveblock(y, c2): success;
    moveblock(r, c1): not legal; pickup: action does not exist`` (``none`` at the first step)."""
    entries = []
    for record in history:
        parameters = record.get("parameters")
        call = (
            record["action"]
            if parameters is None
            else f"{record['action']}({parameters['block']}, {parameters['column']})"
        )
        entries.append(f"{call}: {record.get('info', record['outcome'])}")
    return "; ".join(entries) if entries else "none"


def planning_prompt(
    goal: Problem | str, history: Sequence[dict], cot: bool = False, style: str = "viplan"
) -> Messages:
    """Messages asking for a JSON plan: goal (a ``Problem`` or a ready goal string) and action history.

    ``style="compact"``: a system turn ``Goal: <goal_text>\nPrevious actions: <compact_history>`` (the goal's
    configuration in the compact notation), then a user turn
    holding only the image; ``cot`` then changes only the expected reply (an ``"explanation"`` field
    first), not the prompt. ``style="slots"``: the same turns with the two lines swapped
    (``Previous actions: ...\nGoal: ...``), so that the goal, like the image, sits at a fixed distance from
    the answer whatever the history's length.
    """
    text_of_goal = (
        goal_text(goal.blocks, goal.columns, goal.goal, style) if isinstance(goal, Problem) else goal
    )
    if is_compact(style):
        lines = [f"Goal: {text_of_goal}", f"Previous actions: {compact_history(history)}"]
        text = "\n".join(reversed(lines) if style == "slots" else lines)
        return [{"role": "system", "content": text}, {"role": "user", "content": [{"type": "image"}]}]
    text = prompt_template("planning", cot).replace("{goal_string}", text_of_goal)
    return prompt_messages(text.replace("{previous_actions}", json.dumps(list(history))))


def user_text(messages: Messages) -> str:
    """The text parts of the last user message, joined by newlines (for logs and the oracle)."""
    content = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["type"] == "text")


def asked_question(messages: Messages) -> str:
    """The question of a grounding prompt of either style, without its "?": the last line of the user text
    (``"viplan"``), or the system turn when the user turn holds only the image (``"compact"``)."""
    text = user_text(messages) or next((m["content"] for m in messages if m["role"] == "system"), "")
    lines = text.splitlines()
    if not lines:
        raise ValueError("a grounding prompt without a question")
    return lines[-1].rstrip("?")
