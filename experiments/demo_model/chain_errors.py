"""Which call of the chained planner loses an episode's steps: each step of `dreamvlx demo`'s episode records
replayed against the true state.

For every step: was each call's reply the true one for the true state (read: the scene; places: the
comparison; standing; tops), was the executed move legal, and was it a move of a shortest plan. A step whose
move was illegal or not shortest is charged to the first call in chain order whose reply was wrong (``move``
when every call before it was right). Moves given true inputs are split further by whether the true state
had a constructive move, whether the previous action failed (the move is then sampled) and whether the
move was redrawn.

    python experiments/demo_model/chain_errors.py outputs/demo/eval --out chain_errors.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from dreamvlx.envs.blocksworld import chain
from dreamvlx.envs.blocksworld.datagen import constructive_moves
from dreamvlx.envs.blocksworld.planner import find_plan, starts_shortest_plan
from dreamvlx.envs.blocksworld.problems import SPLITS, load_split
from dreamvlx.envs.blocksworld.replies import goal_places, goal_standing, parse_plan_reply
from dreamvlx.envs.blocksworld.state import BlocksWorldState, Fact, MoveBlock


def shortest(state: BlocksWorldState, goal: tuple[Fact, ...], move: MoveBlock) -> bool:
    """Whether the legal ``move`` starts a shortest plan from ``state``."""
    plan = find_plan(state, goal)
    return plan is not None and starts_shortest_plan(state, goal, move, len(plan))


def first_wrong(calls: dict, state: BlocksWorldState, goal: tuple[Fact, ...]) -> str:
    """The first call of the chain whose reply is not the true one for ``state`` (``move`` when none)."""
    if "move" not in calls or calls["read"]["reply"].strip() != chain.read_reply(state):
        return "read"
    if chain.places_of(calls["places"]["reply"]) != goal_places(state, goal):
        return "places"
    if calls["standing"]["reply"].strip() != goal_standing(state, goal):
        return "standing"
    if calls["tops"]["reply"].strip() != chain.tops_reply(state):
        return "tops"
    return "move"


def attribute(eval_dir: Path) -> dict[str, dict[str, int]]:
    """Per split, counts of steps by outcome and by the call charged (module docstring)."""
    problems = {problem.name: problem for split in SPLITS for problem in load_split(split)}
    tally: dict[str, Counter] = defaultdict(Counter)
    for path in sorted(eval_dir.glob("episodes/*/*.json")):
        record = json.loads(path.read_text())
        problem, counts = problems[record["problem"]], tally[record["split"]]
        state, failed_before = problem.initial_state, False
        for step in record["steps"]:
            move = parse_plan_reply(step["reply"]).named_move
            legal = move is not None and state.check(move).success
            good = legal and shortest(state, problem.goal, move)
            charged = first_wrong(step.get("calls", {}), state, problem.goal)
            counts["steps"] += 1
            counts["legal"] += legal
            counts["shortest"] += good
            if not good:
                counts[f"{'illegal' if not legal else 'not shortest'}, charged to {charged}"] += 1
            if charged == "move":
                kind = (
                    "constructive state"
                    if constructive_moves(state, problem.goal)
                    else "no constructive move"
                )
                when = "after a failed action" if failed_before else "fresh"
                how = "redrawn" if step.get("redraws") else "first draw"
                counts[f"true inputs, {kind}, {when}, {how}: {'legal' if legal else 'illegal'}"] += 1
            failed_before = not legal
            if legal:
                state, _ = state.step(move)
    return {split: dict(sorted(counts.items())) for split, counts in tally.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir", type=Path, help="a demo's eval folder (episodes/<split>/<problem>.json)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {"eval_dir": str(args.eval_dir), "splits": attribute(args.eval_dir)}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
