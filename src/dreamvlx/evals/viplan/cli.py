"""``dreamvlx eval viplan``: ViPlan BlocksWorld evaluation of a model, the oracle or a random baseline.

Examples::

    dreamvlx eval viplan --model oracle --mode grounding --split all --out runs/viplan_oracle
    dreamvlx eval viplan --model ckpt/dream-vl --mode planning --split simple --workers 1
    dreamvlx eval viplan --model random --mode planning --problems my_problems/ --split medium

Prints ViPlan's metrics as a table and, with ``--out``, writes per-episode JSON, ``summary.json`` and
``summary.png``. Numbers from a stand-in renderer are not the official ViPlan numbers (which use Blender).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dreamvlx.envs.blocksworld.problems import SPLITS, load_problem_dir, load_split
from dreamvlx.envs.blocksworld.prompts import PROMPT_STYLES
from dreamvlx.evals.viplan.backends import BackendSpec, GenerationConfig
from dreamvlx.evals.viplan.report import format_table
from dreamvlx.evals.viplan.runner import RunConfig, evaluate, summarize, write_outputs

# Default decoding canvas per mode for checkpoints (Dream-VL's ViPlan settings are unpublished).
_DEFAULT_MAX_NEW_TOKENS = {"grounding": 16, "planning": 512}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamvlx eval viplan", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="checkpoint folder, 'oracle' or 'random'")
    parser.add_argument("--mode", required=True, choices=["grounding", "planning"])
    parser.add_argument(
        "--split", default="all", choices=[*SPLITS, "all"], help="split(s) to run (default all)"
    )
    parser.add_argument(
        "--problems", type=Path, help="a folder of ViPlan-style *.pddl problems instead of the shipped split"
    )
    parser.add_argument(
        "--max-steps",
        type=_positive_int,
        help="budget: grounding attempted actions (20), planning steps (10/20/30)",
    )
    parser.add_argument("--workers", type=_positive_int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--out", type=Path, help="output folder for episode JSON, summary.json and summary.png"
    )
    parser.add_argument("--seed", type=int, default=1, help="run seed (ViPlan uses 1)")
    parser.add_argument("--cot", action="store_true", help="ViPlan's chain-of-thought prompt files")
    parser.add_argument(
        "--prompt-style",
        choices=PROMPT_STYLES,
        default="viplan",
        help="'viplan': the prompt files; 'compact': only goal, history and image (small from-scratch models); "
        "'slots': compact with a fixed number of places per column",
    )
    parser.add_argument(
        "--keep-question-mark",
        action="store_true",
        help="fix ViPlan's grounding-prompt quirk (by default the question loses its final '?', as in ViPlan)",
    )
    parser.add_argument("--enum-batch-size", type=_positive_int, default=4, help="questions per model call")
    parser.add_argument("--render", action="store_true", help="render state images even for oracle/random")
    parser.add_argument("--max-new-tokens", type=_positive_int, help="checkpoint decoding length")
    parser.add_argument(
        "--diffusion-steps", type=_positive_int, help="diffusion steps (default: max-new-tokens)"
    )
    parser.add_argument("--device", help="checkpoint device (default cuda when available)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="checkpoint dtype")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model not in ("oracle", "random") and not Path(args.model).is_dir():
        parser.error(f"--model {args.model!r} is neither 'oracle', 'random' nor a checkpoint folder")
    if args.problems is not None:
        if args.split == "all":
            parser.error("--problems needs --split simple|medium|hard to name its difficulty (step limits)")
        problems = {args.split: load_problem_dir(args.problems)}
    else:
        problems = {s: load_split(s) for s in (SPLITS if args.split == "all" else (args.split,))}
    generation = GenerationConfig(
        max_new_tokens=args.max_new_tokens or _DEFAULT_MAX_NEW_TOKENS[args.mode],
        steps=args.diffusion_steps,
        device=args.device,
        dtype=args.dtype,
    )
    config = RunConfig(
        mode=args.mode,
        backend=BackendSpec(args.model, args.seed, generation),
        max_steps=args.max_steps,
        render=args.render,
        cot=args.cot,
        exact_viplan=not args.keep_question_mark,
        enum_batch_size=args.enum_batch_size,
        seed=args.seed,
        prompt_style=args.prompt_style,
    )
    records = evaluate(problems, config, workers=args.workers)
    summary = summarize(records, config)
    print(format_table(summary))
    if args.out is not None:
        write_outputs(args.out, records, summary)
        print(
            f"\nwrote {sum(len(r) for r in records.values())} episode records, summary.json and summary.png to {args.out}"
        )
    return 0
