"""``dreamvlx generate``: one reply of a DreamVL checkpoint to a text prompt and zero or more images or videos.

Prompt convention: the prompt becomes one user turn, rendered as dreamvlx renders its training data
(``dreamvlx.inference.build_prompt_batch``; ``--system`` replaces the default system message). ``--image`` and
``--video`` files are taken in the order given. Without ``<image>`` in the prompt, they go before the text, each
followed by a newline. With ``<image>`` placeholders in the prompt, there must be exactly one per file, filled in
order; as in LLaVA training, a prompt with a single ``<image>`` has it moved to the front, followed by a newline.
A video is read as lmms-eval reads one for Dream-VL: ``--max-frames`` (32) uniformly spaced frames, the last
frame included (``dreamvlx.data.video_clips``), its features placed like an image's (LLaVA-OneVision).

Decoding: masked diffusion (``diffusion_generate``) with its official argument names and effective defaults
(``--max-new-tokens`` unset = 20 new tokens, 512 steps, ``origin``, temperature 1, top-p 1, top-k 50); causal
checkpoints (the AR control) decode autoregressively with ``--max-new-tokens``, ``--temperature`` and ``--seed``
only, stopping at ``<|endoftext|>``. The reply is cut at the first ``<|im_end|>`` / ``<|endoftext|>``.

Output: the reply; with ``--history`` also the step at which each generated token was committed (one line per
step that committed any, ``position=token``; AR: token k at step k); with ``--json`` one JSON object
``{"text", "tokens", "token_ids", "steps"}`` (``tokens``: each generated token decoded on its own, the whole
canvas, stop tokens included; ``steps`` only with ``--history``).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from dreamvlx.diffusion.config import ALGORITHMS, DEFAULT_NEW_TOKENS, DiffusionGenerationConfig
from dreamvlx.processing.conversation import IMAGE_PLACEHOLDER

DTYPES = ("float32", "bfloat16", "float16")


def _optional(kind: type) -> Any:
    """argparse type: ``kind(text)``, or None for ``none``."""

    def parse(text: str) -> Any:
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def _visual_file(kind: str) -> Any:
    """argparse type: a path tagged with its kind, so ``--image`` and ``--video`` share one ordered list."""

    def parse(text: str) -> tuple[str, str]:
        return kind, text

    parse.__name__ = kind
    return parse


def build_parser() -> argparse.ArgumentParser:
    defaults = DiffusionGenerationConfig()
    parser = argparse.ArgumentParser(
        prog="dreamvlx generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="DreamVL checkpoint folder or Hub id owner/name")
    parser.add_argument(
        "--prompt", required=True, help=f"user text; may hold {IMAGE_PLACEHOLDER} placeholders"
    )
    parser.add_argument(
        "--image",
        action="append",
        dest="visuals",
        default=[],
        type=_visual_file("image"),
        metavar="PATH",
        help="an image file (repeatable, in order with --video)",
    )
    parser.add_argument(
        "--video",
        action="append",
        dest="visuals",
        type=_visual_file("video"),
        metavar="PATH",
        help="a video file (repeatable, in order with --image)",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=32,
        help="frames taken from each video (default: lmms-eval's %(default)s)",
    )
    parser.add_argument("--system", default=None, help="system message (default: the official one)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=DTYPES, default=None, help="model dtype (default: as stored)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=defaults.max_new_tokens,
        help=f"generated tokens (default: the official {DEFAULT_NEW_TOKENS})",
    )
    parser.add_argument(
        "--steps", type=int, default=defaults.steps, help="diffusion steps (default %(default)s)"
    )
    parser.add_argument(
        "--alg", choices=ALGORITHMS, default=defaults.alg, help="unmasking order (default %(default)s)"
    )
    parser.add_argument(
        "--temperature", type=float, default=defaults.temperature, help="0 = greedy (default %(default)s)"
    )
    parser.add_argument(
        "--top-p",
        type=_optional(float),
        default=defaults.top_p,
        help="nucleus filter; none = off (default %(default)s)",
    )
    parser.add_argument(
        "--top-k",
        type=_optional(int),
        default=defaults.top_k,
        help="top-k filter; none = off (default %(default)s)",
    )
    parser.add_argument(
        "--alg-temp",
        type=_optional(float),
        default=defaults.alg_temp,
        help="> 0 draws the committed positions from softmax(confidence / alg_temp) (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of every random draw (default: unseeded)"
    )
    parser.add_argument("--history", action="store_true", help="print the step that committed each token")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser


def user_messages(prompt: str, kinds: list[str], system: str | None) -> list[dict[str, Any]]:
    """The chat messages of one query with visual inputs of ``kinds`` (``"image"`` / ``"video"``, in order; see the
    module docstring for where they go).

    Raises ValueError when the prompt's ``<image>`` placeholders do not match the number of inputs.
    """
    placeholders = prompt.count(IMAGE_PLACEHOLDER)
    if placeholders and placeholders != len(kinds):
        raise ValueError(
            f"the prompt has {placeholders} {IMAGE_PLACEHOLDER} placeholder(s) but {len(kinds)} --image/--video "
            f"file(s) were given; give one file per placeholder, or no placeholder to put them first"
        )
    content: str | list[dict[str, str]] = prompt
    if not placeholders:
        content = [{"type": kind} for kind in kinds] + [{"type": "text", "text": prompt}]
    system_messages = [] if system is None else [{"role": "system", "content": system}]
    return [*system_messages, {"role": "user", "content": content}]


def format_history(tokens: list[str], steps: list[int]) -> str:
    """One line per step that committed tokens: ``step S: position=token ...`` (tokens ``repr``-quoted)."""
    by_step: dict[int, list[str]] = defaultdict(list)
    for position, (token, step) in enumerate(zip(tokens, steps)):
        by_step[step].append(f"{position}={token!r}")
    return "\n".join(f"step {step}: {' '.join(by_step[step])}" for step in sorted(by_step))


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    generation = {
        "max_new_tokens": args.max_new_tokens,
        "steps": args.steps,
        "alg": args.alg,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "alg_temp": args.alg_temp,
    }
    try:
        DiffusionGenerationConfig(**generation)  # the official checks, before any loading
        messages = user_messages(args.prompt, [kind for kind, _ in args.visuals], args.system)
        if args.max_frames < 1:
            raise ValueError(f"--max-frames must be at least 1, got {args.max_frames}")
    except ValueError as err:
        parser.error(str(err))
    for kind in ("image", "video"):
        missing = [path for k, path in args.visuals if k == kind and not Path(path).is_file()]
        if missing:
            parser.error(f"{kind} file(s) not found: {', '.join(missing)}")

    import torch
    from PIL import Image

    from dreamvlx.data.video_clips import load_video
    from dreamvlx.inference import build_prompt_batch, generate_tokens, load_dream_vl, reply_text, token_texts

    try:
        images = [
            Image.open(path).convert("RGB") if kind == "image" else load_video(path, "eval", args.max_frames)
            for kind, path in args.visuals
        ]
        model, processor = load_dream_vl(args.model, args.dtype, args.device)
    except (OSError, ValueError) as err:  # unreadable image or video; missing checkpoint, Hub failure
        parser.error(str(err))
    inputs = build_prompt_batch(processor, [images], [messages], model.device)
    generator = None if args.seed is None else torch.Generator(device=model.device).manual_seed(args.seed)
    output = generate_tokens(model, inputs, history=args.history, generator=generator, **generation)
    token_ids = output.tokens[0].tolist()
    tokenizer = processor.tokenizer
    text, tokens = reply_text(tokenizer, token_ids), token_texts(tokenizer, token_ids)
    steps = None if output.steps is None else output.steps[0].tolist()
    if args.json:
        result: dict[str, Any] = {"text": text, "tokens": tokens, "token_ids": token_ids}
        if steps is not None:
            result["steps"] = steps
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(text)
        if steps is not None:
            print("--- denoising history (step: position=token) ---")
            print(format_history(tokens, steps))
    return 0
