"""``experiments/demo_model/chain_errors.py``: a bad move is charged to the first call of the chain that was
wrong, replayed against the true state of a hand-made episode record."""

from __future__ import annotations

import json
from pathlib import Path

from dreamvlx.envs.blocksworld import chain
from dreamvlx.envs.blocksworld.chain_data import conversation, move_label
from dreamvlx.envs.blocksworld.datagen import constructive_moves
from dreamvlx.envs.blocksworld.problems import load_split
from dreamvlx.envs.blocksworld.replies import plan_reply
from dreamvlx.envs.blocksworld.state import MoveBlock


def test_bad_moves_are_charged_to_the_first_wrong_call(chain_errors, tmp_path: Path) -> None:
    problem = load_split("simple")[0]
    state, goal = problem.initial_state, problem.goal
    label = move_label(state, goal)

    def step(reply: str, read: str | None = None) -> dict:
        calls = {}
        for call in chain.CALLS:
            _system, user, truth = conversation(state, goal, label, call)
            calls[call] = {"prompt": user, "reply": truth}
        if read is not None:
            calls["read"]["reply"] = read
        return {"reply": reply, "calls": calls}

    column, stack = next((column, stack) for column, stack in state.columns() if stack)
    illegal = plan_reply([MoveBlock(stack[-1], column)])  # onto the column it is on
    steps = [
        step(illegal),  # all calls true: the move's fault
        step(illegal, read="c1: - - -"),  # the read's
        step(plan_reply([label])),  # legal and shortest: charged to nobody
    ]
    folder = tmp_path / "episodes" / "simple"
    folder.mkdir(parents=True)
    record = {"split": "simple", "problem": problem.name, "steps": steps}
    (folder / f"{problem.name}.json").write_text(json.dumps(record))
    counts = chain_errors.attribute(tmp_path)["simple"]
    assert counts["steps"] == 3 and counts["legal"] == 1 and counts["shortest"] == 1
    assert counts["illegal, charged to move"] == 1 and counts["illegal, charged to read"] == 1
    kind = "constructive state" if constructive_moves(state, goal) else "no constructive move"
    assert counts[f"true inputs, {kind}, fresh, first draw: illegal"] == 1
    assert counts[f"true inputs, {kind}, after a failed action, first draw: legal"] == 1
