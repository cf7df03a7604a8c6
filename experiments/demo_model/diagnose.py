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

from dreamvlx.envs.blocksworld.datagen import read_dataset
from dreamvlx.envs.blocksworld.planner import find_plan
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
    parsed = parse_plan_reply(reply)
    if parsed.status != "ok" or parsed.block is None or parsed.column is None:
        return {"legal": False, "optimal": False}
    action = MoveBlock(parsed.block, parsed.column)
    if parsed.block not in state.blocks or parsed.column not in state.column_names:
        return {"legal": False, "optimal": False}
    after, result = state.step(action)
    if not result.success:
        return {"legal": False, "optimal": False}
    remaining = find_plan(after, goal)
    return {"legal": True, "optimal": remaining is not None and len(remaining) == optimal_length - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("data")
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
    tally: dict[str, float] = {}

    def count(key: str, value: bool) -> None:
        tally[key] = tally.get(key, 0) + float(value)

    for sample in samples:
        meta = sample["meta"]
        state = BlocksWorldState.from_columns(meta["state"], blocks=meta["blocks"])
        goal = [tuple(fact) for fact in meta["goal"]]
        optimal_length = len(find_plan(state, goal))
        truth = json.loads(sample["conversations"][1]["value"])
        image = Image.open(Path(args.data) / sample["image"]).convert("RGB")
        messages = [{"role": "system", "content": sample["system"]}, {"role": "user", "content": "<image>"}]
        inputs = build_prompt_batch(processor, [[image]], [messages])
        free = reply_text(
            processor.tokenizer,
            generate_tokens(
                model,
                inputs,
                max_new_tokens=args.max_new_tokens,
                steps=args.steps,
                alg="entropy",
                temperature=0.0,
            )
            .tokens[0]
            .tolist(),
        )
        said, said_places, said_standing = _sections(_explanation(free) or "")
        scene, places, standing = _sections(truth["explanation"])
        count("scene_exact", said == scene)
        count("heights_exact", said != "" and _heights(said) == _heights(scene))
        columns = list(zip(_columns(said), _columns(scene)))
        count("columns_right", sum(a == b for a, b in columns) / len(_columns(scene)))
        if places:
            count("places_exact", said_places == places)
        if standing:
            count("standing_exact", said_standing == standing)
        for key, value in move_quality(state, goal, free, optimal_length).items():
            count(f"free_{key}", value)
        answer = sample["conversations"][1]["value"]
        # forced: the true scene given; forced_places (place-by-place data): the true scene and places given
        for name, sections in (("forced", 1), ("forced_places", 2))[: 2 if places else 1]:
            prefix_ids = torch.tensor([_reply_prefix(processor.tokenizer, answer, sections)])
            forced_inputs = dict(inputs)
            forced_inputs["input_ids"] = torch.cat([inputs["input_ids"], prefix_ids], dim=1)
            forced_inputs["attention_mask"] = torch.ones_like(forced_inputs["input_ids"])
            rest_canvas = (104 if sections == 1 else 64) if places else 64 if standing else 40
            rest = generate_tokens(
                model,
                forced_inputs,
                max_new_tokens=rest_canvas,
                steps=args.steps,
                alg="entropy",
                temperature=0.0,
            )
            # decoded as one reply (the rest decoded alone would lose the space it starts with)
            forced = reply_text(processor.tokenizer, prefix_ids[0].tolist() + rest.tokens[0].tolist())
            _, forced_places, forced_standing = _sections(_explanation(forced) or "")
            if places and sections == 1:
                count(f"{name}_places_exact", forced_places == places)
            if standing:
                count(f"{name}_standing_exact", forced_standing == standing)
            for key, value in move_quality(state, goal, forced, optimal_length).items():
                count(f"{name}_{key}", value)
    rates = {key: round(value / len(samples), 3) for key, value in tally.items()}
    rates["samples"] = len(samples)
    print(json.dumps(rates, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "data": args.data, **rates}, indent=1) + "\n")


if __name__ == "__main__":
    main()
