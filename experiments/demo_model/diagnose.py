"""Where a BlocksWorld planning model fails: reading the scene, or choosing the move.

On held-out compact CoT planning samples (``dreamvlx data viplan ... --prompt-style compact --cot`` with a seed
not used for training), for each sample:

1. free generation (the demo's decoding settings): is the scene explanation exactly right, per column, in its
   stack heights alone (colours ignored); is the move legal, optimal (one step closer to the goal by the optimal
   planner), the sample's own move;
2. the same with the true scene given as the start of the reply (teacher-forced scene): is the move legal
   and optimal when the scene is read right.

For data with goal standings (``--standing``: ``"c1: r - - | ... ; c1 g | c2 no"``) the scene is the part
before ``STANDING_SEPARATOR``, and the standing is scored too (free, and after the forced scene); with
``--places`` (``"c1: r - - | ... ; c1: - g - | c2: no - - ; c1 g | c2 no"``) the place-by-place comparison
between them is scored on its own as well, and a third pass gives scene and places (``forced_places_*``:
is the standing, and the move, right when the comparison is). The forced rest of the reply gets a canvas of
40 tokens (plan only), 64 (standing and plan) or 104 (places, standing and plan).

Usage: ``python experiments/demo_model/diagnose.py MODEL DATA_DIR [--samples N] [--max-new-tokens N] [--out FILE.json]``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from dreamvlx.envs.blocksworld.datagen import read_dataset
from dreamvlx.envs.blocksworld.planner import find_plan, starts_shortest_plan
from dreamvlx.envs.blocksworld.replies import STANDING_SEPARATOR, parse_plan_reply
from dreamvlx.envs.blocksworld.state import BlocksWorldState, MoveBlock
from dreamvlx.inference import build_prompt_batch, generate_tokens, load_dream_vl, reply_text


def _explanation(reply: str) -> str | None:
    """The reply's ``"explanation"`` string, read on its own so that a garbled plan after it (parallel
    decoding of a long canvas in few steps) does not hide a right scene; None when there is none."""
    decoded = parse_plan_reply(reply).plan  # the decoded JSON (None when it does not decode)
    explanation = decoded.get("explanation") if isinstance(decoded, dict) else None
    if isinstance(explanation, str):
        return explanation
    found = re.search(r'"explanation": "([^"]*)"', reply)
    return found.group(1) if found else None


def _columns(explanation: str) -> list[str]:
    return [part.strip() for part in explanation.split("|")]


def _heights(explanation: str) -> list[int]:
    return [len(part.split(":", 1)[-1].replace("-", "").split()) for part in _columns(explanation)]


def _sections(explanation: str) -> tuple[str, str, str]:
    """``(scene, places, standing)``; a part the format does not have (or the reply misses) is ``""``."""
    parts = explanation.split(STANDING_SEPARATOR)
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return parts[0], "", STANDING_SEPARATOR.join(parts[1:])


def _reply_prefix(tokenizer, answer: str, sections: int = 1) -> list[int]:
    """The answer's own tokens up to the end of its first ``sections`` explanation sections (the scene, then
    the places; ``..., "plan": `` for an explanation of one section): tokenising that text on its own would
    merge differently at the cut (`` [`` against `` [{"``) and show the model a sequence it never saw."""
    ids = tokenizer.encode(answer)
    if STANDING_SEPARATOR in answer:
        cut = -len(STANDING_SEPARATOR)
        for _ in range(sections):
            cut = answer.index(STANDING_SEPARATOR, cut + len(STANDING_SEPARATOR))
    else:
        cut = answer.index('"plan":') + len('"plan":')
    keep = max(k for k in range(len(ids) + 1) if len(tokenizer.decode(ids[:k])) <= cut)
    return ids[:keep]


def move_quality(state: BlocksWorldState, goal: list, reply: str, optimal_length: int) -> dict[str, bool]:
    """Whether the reply's move is legal in ``state`` and starts a shortest plan to ``goal``
    (``optimal_length``: the length of ``find_plan(state, goal)``)."""
    parsed = parse_plan_reply(reply)
    if parsed.status != "ok" or parsed.block is None or parsed.column is None:
        return {"legal": False, "optimal": False}
    action = MoveBlock(parsed.block, parsed.column)
    if parsed.block not in state.blocks or parsed.column not in state.column_names:
        return {"legal": False, "optimal": False}
    if not state.step(action)[1].success:
        return {"legal": False, "optimal": False}
    return {"legal": True, "optimal": starts_shortest_plan(state, goal, action, optimal_length)}


def rates(marks: list[dict[str, bool | float]]) -> dict[str, float]:
    """Each mark's rate over the queries (one dict of marks each; a query without a mark counts as 0), to 3
    decimals, in the order the marks first appear."""
    tally: dict[str, float] = {}
    for query_marks in marks:
        for key, value in query_marks.items():
            tally[key] = tally.get(key, 0.0) + float(value)
    return {key: round(value / len(marks), 3) for key, value in tally.items()}


def sample_marks(
    model, processor, sample: dict, data: Path, steps: int, canvas: int
) -> dict[str, bool | float]:
    """One held-out sample's marks: the free reply's scene (exact, heights, share of columns right), places
    and standing (when the data has them) and move (``move_quality``, ``free_``); then the same replies decoded
    after the true scene (``forced_``) and, with place-by-place data, the true scene and places
    (``forced_places_``) given as the reply's start."""
    meta = sample["meta"]
    state = BlocksWorldState.from_columns(meta["state"], blocks=meta["blocks"])
    goal = [tuple(fact) for fact in meta["goal"]]
    optimal_length = len(find_plan(state, goal))
    answer = sample["conversations"][1]["value"]
    image = Image.open(data / sample["image"]).convert("RGB")
    messages = [{"role": "system", "content": sample["system"]}, {"role": "user", "content": "<image>"}]
    inputs = build_prompt_batch(processor, [[image]], [messages])

    def decode(batch: dict, prefix: list[int], new_tokens: int) -> str:
        # decoded as one reply (the rest decoded alone would lose the space it starts with)
        out = generate_tokens(
            model, batch, max_new_tokens=new_tokens, steps=steps, alg="entropy", temperature=0.0
        )
        return reply_text(processor.tokenizer, prefix + out.tokens[0].tolist())

    free = decode(inputs, [], canvas)
    said, said_places, said_standing = _sections(_explanation(free) or "")
    scene, places, standing = _sections(json.loads(answer)["explanation"])
    marks: dict[str, bool | float] = {
        "scene_exact": said == scene,
        "heights_exact": said != "" and _heights(said) == _heights(scene),
        "columns_right": sum(a == b for a, b in zip(_columns(said), _columns(scene))) / len(_columns(scene)),
    }
    if places:
        marks["places_exact"] = said_places == places
    if standing:
        marks["standing_exact"] = said_standing == standing
    marks.update(
        {f"free_{key}": value for key, value in move_quality(state, goal, free, optimal_length).items()}
    )
    for name, sections in (("forced", 1), ("forced_places", 2))[: 2 if places else 1]:
        prefix = _reply_prefix(processor.tokenizer, answer, sections)
        forced_inputs = dict(inputs)
        forced_inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([prefix])], dim=1)
        forced_inputs["attention_mask"] = torch.ones_like(forced_inputs["input_ids"])
        rest_canvas = (104 if sections == 1 else 64) if places else 64 if standing else 40
        forced = decode(forced_inputs, prefix, rest_canvas)
        _, forced_places, forced_standing = _sections(_explanation(forced) or "")
        if places and sections == 1:
            marks[f"{name}_places_exact"] = forced_places == places
        if standing:
            marks[f"{name}_standing_exact"] = forced_standing == standing
        quality = move_quality(state, goal, forced, optimal_length)
        marks.update({f"{name}_{key}": value for key, value in quality.items()})
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("data", type=Path)
    parser.add_argument("--samples", type=int, default=120)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, help="canvas (80 for the slots style, 104 with standings)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, processor = load_dream_vl(args.model)
    samples = read_dataset(args.data)[: args.samples]
    marks = [
        sample_marks(model, processor, sample, args.data, args.steps, args.max_new_tokens)
        for sample in tqdm(samples, desc="held-out samples")
    ]
    report = {**rates(marks), "samples": len(samples)}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(
            json.dumps({"model": args.model, "data": str(args.data), **report}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
