"""The text formats of the chained planner: one small model asked five short questions per planning step.

A 2.4 M-parameter diffusion LM trained from scratch on a CPU does not learn to go from an image and a goal
to the next move in one reply: each step of that reasoning is learnable alone when its evidence stands in
the prompt, and a chain of them in one diffusion reply is not (``experiments/demo_model/README.md``,
findings 1-29). The chained planner (``dreamvlx.evals.viplan.chained``) therefore asks one model, per
planning step, five calls, each reply written into the next call's prompt as it came out:

1. ``read``: the rendered scene (the image), system ``Blocks: r g b`` (the problem's blocks, which the goal
   names) -> the scene in the slots notation, ``c1: r g - | c2: b - - | c3: - - -`` (``read_reply``);
2. ``places``: scene and goal column by column, ``Scene = goal: c1: r g - = g - - | ...``
   (``places_prompt``) -> each place compared with the goal's (``replies.goal_places``), then the standing;
3. ``standing``: ``Places: <2's comparison>`` -> each column's standing (``replies.goal_standing``);
4. ``tops``: ``Scene: <1's scene>`` -> each column's top block (``column_tops``);
5. ``move``: ``Standing: <3> ; tops: <4>`` -> the move as ViPlan's JSON plan of one action (the first of
   ``ranked_moves`` that starts a shortest plan).

Calls 2-5 are text only (system None: the chat template's default system message). The image goes alone
in the read call's user turn with the block list in the system turn, so the reply sits at the same
distance from every image token in every sample (``prompts`` module docstring, ``slots`` style).

Why the block list: a goal names every block of the problem, so the planner knows them; given, they fix
the reply's length (one place per block in every column) and leave the colour at each place as the only
thing to read.
"""

from __future__ import annotations

from collections.abc import Sequence

from dreamvlx.envs.blocksworld.prompts import goal_layout, layout_text
from dreamvlx.envs.blocksworld.replies import STANDING_SEPARATOR
from dreamvlx.envs.blocksworld.state import BlocksWorldState, Fact, MoveBlock

Rows = list[tuple[str, list[str]]]
"""A slots-notation layout as ``(column, places)`` per column, each place a block letter or ``-``."""

CALLS = ("read", "places", "standing", "tops", "move")
EMPTY_PLACE = "-"


def read_system(blocks: Sequence[str]) -> str:
    """The read call's system turn: ``Blocks: r g b`` (the problem's blocks in its order)."""
    return f"Blocks: {' '.join(blocks)}"


def scene_rows(state: BlocksWorldState, slots: int | None = None) -> Rows:
    """``state`` in the slots notation, as rows: ``slots`` places per column (default one per block of the
    problem)."""
    return text_rows(layout_text(state.columns(), slots or len(state.blocks)))


def goal_rows(state: BlocksWorldState, goal: Sequence[Fact], slots: int | None = None) -> Rows:
    """The configuration ``goal`` fixes, in the slots notation of ``state``'s problem, as rows (``slots`` as
    ``scene_rows``)."""
    return text_rows(layout_text(goal_layout(state.column_names, goal), slots or len(state.blocks)))


def rows_text(rows: Rows) -> str:
    """Rows written in the slots notation: ``c1: r g - | c2: - - -``."""
    return " | ".join(f"{column}: {' '.join(places)}" for column, places in rows)


def text_rows(text: str) -> Rows:
    """A slots-notation layout, ``c1: r - | c2: - -``, as rows; ValueError when a column has no ``: ``."""
    rows = []
    for part in text.split(" | "):
        column, separator, places = part.partition(": ")
        if not separator:
            raise ValueError(f"column {part!r} of {text!r} has no ': '")
        rows.append((column.strip(), places.split()))
    return rows


def read_reply(state: BlocksWorldState) -> str:
    """What the read call should answer for ``state``: its scene in the slots notation."""
    return rows_text(scene_rows(state))


def parse_layout(text: str, columns: Sequence[str], slots: int) -> Rows | None:
    """A reply as rows when it has the layout of a scene of this problem (every column of ``columns`` in
    order, each with ``slots`` places), whatever its places hold; else None."""
    try:
        rows = text_rows(text.strip())
    except ValueError:
        return None
    if [column for column, _ in rows] != list(columns) or any(len(places) != slots for _, places in rows):
        return None
    return rows


def parse_scene(text: str, columns: Sequence[str], blocks: Sequence[str]) -> Rows | None:
    """The read call's reply as rows when it is a scene of this problem, else None: the layout of one
    (``parse_layout``, one place per block), each block of ``blocks`` exactly once, and no empty place below
    a block."""
    rows = parse_layout(text, columns, len(blocks))
    if rows is None:
        return None
    letters = [place for _, places in rows for place in places if place != EMPTY_PLACE]
    if sorted(letters) != sorted(blocks):
        return None
    for _, places in rows:
        height = len(places) - places.count(EMPTY_PLACE)
        if any(place == EMPTY_PLACE for place in places[:height]):
            return None
    return rows


def paired_layout(scene: Rows, goal: Rows) -> str:
    """Scene and goal column by column, ``c1: r o - = r g - | c2: - - - = - - -``: each scene column beside
    the goal's same column, so each comparison is of tokens a short, fixed distance apart."""
    if [column for column, _ in scene] != [column for column, _ in goal]:
        raise ValueError(f"scene columns {scene} and goal columns {goal} differ")
    pairs = (
        f"{column}: {' '.join(here)} = {' '.join(there)}" for (column, here), (_, there) in zip(scene, goal)
    )
    return " | ".join(pairs)


def places_prompt(scene: Rows, goal: Rows) -> str:
    """The places call's user turn: ``Scene = goal: <paired_layout>``."""
    return f"Scene = goal: {paired_layout(scene, goal)}"


def places_of(places_reply: str) -> str:
    """The comparison section of a places call's reply (its first section; the standing after it is not
    passed on)."""
    return places_reply.split(STANDING_SEPARATOR)[0].strip()


def standing_prompt(places: str) -> str:
    """The standing call's user turn: a place-by-place comparison (``c1: - no - | ...``), true or the
    model's own."""
    return f"Places: {places}"


def tops_prompt(scene: str) -> str:
    """The tops call's user turn: a scene in the slots notation, true or the model's own reading."""
    return f"Scene: {scene}"


def column_tops(rows: Rows) -> str:
    """What the tops call should answer: every column's top block, ``-`` for an empty column: ``c1 y | c2 -
    | c3 b``."""
    tops = []
    for column, places in rows:
        letters = [place for place in places if place != EMPTY_PLACE]
        tops.append(f"{column} {letters[-1] if letters else EMPTY_PLACE}")
    return " | ".join(tops)


def tops_reply(state: BlocksWorldState) -> str:
    """What the tops call should answer for ``state`` (``column_tops`` of its scene)."""
    return column_tops(scene_rows(state))


def move_prompt(standing: str, tops: str) -> str:
    """The move call's user turn: a standing (``c1 no | c2 y``) and the columns' tops (``c1 y | c2 -``), true
    or the model's own."""
    return f"Standing: {standing}{STANDING_SEPARATOR}tops: {tops}"


FINAL, DIRTY = "-", "no"
"""Standing words (``replies.goal_standing``): the column is final; a block on it is out of place."""


def column_words(text: str) -> list[tuple[str, str]]:
    """A one-word-per-column text, ``c1 no | c2 y``, as ``(column, word)`` pairs; ValueError otherwise."""
    pairs = []
    for part in text.split(" | "):
        words = part.split()
        if len(words) != 2:
            raise ValueError(f"column {part!r} of {text!r} is not 'column word'")
        pairs.append((words[0], words[1]))
    return pairs


def ranked_moves(standing: str, tops: str) -> list[MoveBlock]:
    """The moves the move call's prompt (``move_prompt``) shows, in the order its training labels prefer
    them (``chain_data.move_label``: the first that starts a shortest plan).

    First every constructive move (a column whose standing is a block that is the top of another column:
    that block onto it), sources then targets left to right (``legal_actions`` order); then, for each column
    whose standing is ``no``, right to left, its top onto another column: an empty final column first, then
    a final one, then one whose standing is ``no``, then an empty column waiting for a block, then the rest
    (each group left to right).

    Why an order the prompt shows: where no constructive move exists (a quarter of the states), which of
    the shortest moves the planner's search takes depends on blocks the prompt does not show, and a model
    trained on those labels did not learn them: its greedy move was legal in 46% of such states in the
    planner, against 95% where a constructive move existed (``experiments/demo_model/README.md``, finding
    31). Every shortest move of such a state is the top of a column whose standing is ``no`` (1,935 of
    1,935 measured), and this order's first move is a shortest one in 61% of them (the search's own choice
    agrees with no fixed order that often), so the labels follow one visible rule wherever it is right.
    ValueError when the texts are malformed."""
    words, top = dict(column_words(standing)), dict(column_words(tops))
    if list(words) != list(top):
        raise ValueError(f"standing {standing!r} and tops {tops!r} name different columns")
    columns = list(words)
    moves = [
        MoveBlock(top[source], target)
        for source in columns
        for target in columns
        if words[target] not in (FINAL, DIRTY) and top[source] == words[target] and source != target
    ]

    def preference(target: str) -> int:
        empty = top[target] == EMPTY_PLACE
        if words[target] == FINAL:
            return 0 if empty else 1
        return 2 if words[target] == DIRTY else 3 if empty else 4

    for source in reversed(columns):
        if words[source] == DIRTY and top[source] != EMPTY_PLACE:
            targets = sorted((column for column in columns if column != source), key=preference)
            moves += [MoveBlock(top[source], target) for target in targets]
    return moves
