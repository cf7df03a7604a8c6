"""Does a BlocksWorld model fail to read colours in its image features or in its language model?

Three measurements on one checkpoint:

1. **Teacher-forced scene reading** (the language model's use of the image): on held-out CoT samples of either
   mode, every place of the scene explanation (a block letter or ``-``) is masked and everything else of the
   reply is given; one forward pass; the argmax at each masked place is compared with the truth, separately
   for places that hold a block (its colour) and empty places (stack heights).
2. **Linear probe of the image features** (what reaches the language model): 900 renders of 3 random blocks in
   4 columns with a block at the bottom of column ``c2``; the features ``get_image_features`` gives (each
   token scaled to unit length, as the language model's RMSNorm sees it) are standardised and a logistic
   regression on 700 of them predicts that block's colour; accuracy on the other 200. ``--random-init`` runs
   the probe on a freshly initialised model of the same configuration instead.
3. **Feature spread**: the image tokens of one render against the same layout with the colours permuted and
   against another layout: the lowest cosine similarity over the 24 tokens (1.0: the language model gets the
   same directions whatever the image shows) and the mean token norm.

Usage: ``python experiments/demo_model/probe_colours.py MODEL DATA_DIR [--samples N] [--random-init]
[--features-only] [--out FILE.json]`` (``DATA_DIR``: a ``dreamvlx data viplan --cot`` folder in the model's
prompt style; ``--features-only`` skips measurement 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dreamvlx.diffusion.generation import dream_shift
from dreamvlx.envs.blocksworld.datagen import read_dataset
from dreamvlx.envs.blocksworld.render import render_state
from dreamvlx.envs.blocksworld.state import BLOCK_COLORS, BlocksWorldState
from dreamvlx.inference import build_prompt_batch, load_dream_vl
from dreamvlx.modeling.dream_vl import DreamVL

_LETTERS = tuple(sorted(BLOCK_COLORS))
_COLUMNS = ("c1", "c2", "c3", "c4")


def _scene_end(answer: str) -> int:
    """Character offset where the scene explanation ends (planning JSON or grounding tags)."""
    return answer.index('"plan"') if '"plan"' in answer else answer.index("</explanation>")


def teacher_forced_reading(model: DreamVL, processor, data: Path, samples: int) -> dict[str, float]:
    tokenizer = processor.tokenizer
    place_ids = {tokenizer.encode(" " + letter)[0]: letter for letter in (*_LETTERS, "-")}
    right = {"colour": 0, "empty": 0}
    seen = {"colour": 0, "empty": 0}
    for sample in read_dataset(data)[:samples]:
        image = Image.open(data / sample["image"]).convert("RGB")
        messages = [{"role": "system", "content": sample["system"]}, {"role": "user", "content": "<image>"}]
        inputs = build_prompt_batch(processor, [[image]], [messages])
        answer = sample["conversations"][1]["value"]
        ids = tokenizer.encode(answer)
        end = _scene_end(answer)
        scene_tokens = max(k for k in range(len(ids) + 1) if len(tokenizer.decode(ids[:k])) <= end)
        prompt_length = inputs["input_ids"].shape[1]
        sequence = torch.cat([inputs["input_ids"], torch.tensor([ids])], dim=1)
        places = [prompt_length + i for i in range(scene_tokens) if ids[i] in place_ids]
        noised = sequence.clone()
        noised[0, places] = model.config.mask_token_id
        mask = torch.ones_like(noised)
        positions, _ = model.get_rope_index(noised, inputs["image_grid_thw"], mask)
        with torch.inference_mode():
            logits = model(
                noised,
                attention_mask=mask,
                position_ids=positions,
                pixel_values=inputs["pixel_values"],
                image_grid_thw=inputs["image_grid_thw"],
            ).logits
        predicted = dream_shift(logits)[0, places].argmax(-1).tolist()
        for place, guess in zip(places, predicted):
            truth = int(sequence[0, place])
            kind = "empty" if place_ids[truth] == "-" else "colour"
            seen[kind] += 1
            right[kind] += int(guess == truth)
    return {f"{kind}_accuracy": round(right[kind] / max(seen[kind], 1), 3) for kind in right}


def _image_tokens(model: DreamVL, processor, stacks: list[list[str]]) -> torch.Tensor:
    """``get_image_features`` of the render of ``stacks`` (columns c1..c4): ``[24, hidden]`` float32."""
    batch = processor.image_processor(
        [render_state(BlocksWorldState.from_columns(list(zip(_COLUMNS, stacks))))]
    )
    with torch.inference_mode():
        tokens = model.get_image_features(
            torch.as_tensor(batch.pixel_values), torch.as_tensor(batch.image_grid_thw)
        )
    return tokens.float()


def feature_spread(model: DreamVL, processor) -> dict[str, float]:
    base = _image_tokens(model, processor, [["r", "g"], ["b"], [], ["y"]])
    recoloured = _image_tokens(model, processor, [["g", "r"], ["y"], [], ["b"]])
    moved = _image_tokens(model, processor, [["r"], ["b", "g"], ["y"], []])
    cosine = torch.nn.functional.cosine_similarity
    return {
        "min_cosine_colours_permuted": round(float(cosine(base, recoloured, dim=-1).min()), 4),
        "min_cosine_other_layout": round(float(cosine(base, moved, dim=-1).min()), 4),
        "image_token_norm": round(float(base.norm(dim=-1).mean()), 2),
    }


def colour_probe(model: DreamVL, processor, renders: int = 900, train: int = 700) -> float:
    rng = np.random.default_rng(0)
    features, labels = [], []
    while len(features) < renders:
        stacks: list[list[str]] = [[] for _ in _COLUMNS]
        for block in rng.permutation(_LETTERS)[:3]:
            stacks[int(rng.integers(len(_COLUMNS)))].append(str(block))
        if not stacks[1]:
            continue
        tokens = _image_tokens(model, processor, stacks)
        features.append(torch.nn.functional.normalize(tokens, dim=-1).flatten())
        labels.append(_LETTERS.index(stacks[1][0]))
    x, y = torch.stack(features), torch.tensor(labels)
    x = (x - x[:train].mean(0)) / (x[:train].std(0) + 1e-6)
    weights = torch.zeros(x.shape[1], len(_LETTERS), requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=1e-2)
    for _ in range(300):
        loss = (
            torch.nn.functional.cross_entropy(x[:train] @ weights, y[:train]) + 1e-3 * weights.square().sum()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return round(float(((x[train:] @ weights).argmax(1) == y[train:]).float().mean()), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("data", type=Path)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--random-init", action="store_true", help="probe a fresh model of the same config")
    parser.add_argument("--features-only", action="store_true", help="skip the teacher-forced reading")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, processor = load_dream_vl(args.model)
    result: dict[str, object] = {"model": args.model, "data": str(args.data), "samples": args.samples}
    if args.random_init:
        model = DreamVL(model.config).eval()
        result["model"] = f"random init ({args.model} config)"
    elif not args.features_only:
        result.update(teacher_forced_reading(model, processor, args.data, args.samples))
    result.update(feature_spread(model, processor))
    result["probe_colour_accuracy"] = colour_probe(model, processor)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
