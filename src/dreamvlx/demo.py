"""``dreamvlx demo``: a diffusion VLM planning ViPlan BlocksWorld, end to end on a CPU.

1. Generates BlocksWorld data with our renderer (benchmark problems excluded), in the LLaVA format the
   trainer reads: the chained planner's calls (``--planner chained``, the default: ``chain_data``) or
   ViPlan-style planning samples with a grounding question each (``--planner single``, ``dreamvlx data viplan``).
2. Obtains a small diffusion Dream-VL: the checkpoint shipped in ``dreamvlx/assets/demo_model`` (made by
   ``dreamvlx train --preset blocksworld-tiny`` stages; commands and logs in ``experiments/demo_model/``), or,
   with ``--train``, trains a new one: the chained model's curriculum (``dreamvlx.train.chain_recipe``, hours
   on a CPU; ``--train-scale N`` divides it), or one single-call stage on the data of step 1.
3. Runs ViPlan's planning mode on all 75 problems with that model: the chained planner
   (``dreamvlx.evals.viplan.chained``: per step the model reads the scene off the rendered image, compares it
   with the goal place by place, finds each column's standing and top, and names the move, five short calls,
   each reply written into the next prompt; what differs from ViPlan's one query per step is recorded in the
   summary), or one ViPlan query per step (``dreamvlx eval viplan``).
4. Prints the success table and writes ``report.html``: for a few episodes, the rendered state, the
   goal, the replies and actions, and the denoising history of the first step's replies (which tokens the
   diffusion sampler committed at which step).

Why the chained planner: a 2.4 M-parameter model trained on a CPU does not learn to go from image and goal
to the move in one reply, and learns each step of that reasoning when its evidence stands in its prompt
(``experiments/demo_model/README.md``, findings 1-33).

The single-call data format (:func:`demo_episode_config`; the demo model until 2026-12-07), chosen for a small
model trained from scratch on a CPU:

- every rendered state gives a planning sample and a grounding question (``questions_per_image=1``): the
  grounding answers spell the scene out too, so half the samples train reading the image on short sequences,
  and the model also answers ViPlan's grounding mode;
- planning answers hold only the next optimal action (``plan_horizon=1``): ViPlan executes ``plan[0]`` of
  every reply and asks again, so one-action JSON plans are complete, valid replies with a short canvas;
- a short prompt style (``dreamvlx.envs.blocksworld.prompts``): previous actions, goal and image without
  ViPlan's ~800 tokens of fixed instructions, which a model that never learned language cannot use; the goal
  is the configuration it fixes, in the notation of the scene (``Goal: c1: g b | c2: - | ...``), so
  sequences are ~5x shorter and the model compares two lines written alike. ``compact`` writes each column
  as long as its stack (the v2 model's format, ``DEMO_PROMPT_STYLE``); ``slots`` gives every column one
  place per block of the problem (``c1: g b - | c2: - - - | ...``), so every (column, level) has the same
  position in every reply of a split;
- CoT answers: ``{"explanation": "c1: r g | c2: - | ...", "plan": [...]}``. The scene comes first, as in
  ViPlan's CoT protocol, so every sample supervises reading the image, and the diffusion sampler can
  commit the scene tokens before the move that depends on them. ``--explanation`` (``DEMO_EXPLANATION``)
  says how far the explanation goes: ``scene`` stops there; ``standing`` goes on with each column's
  standing against the goal (``... ; c1 - | c2 y | c3 no``: final, ``y`` goes next, its top has to go;
  ``replies.goal_standing``); ``places`` (slots style) puts the place-by-place comparison of scene and
  goal before the standing (``... ; c1: - y - | c2: no - - | ... ; c1 y | ...``; ``replies.goal_places``),
  the steps from scene and goal to the move written out;
- moves from optimal plans that put a block in its final place whenever that is optimal
  (``datagen.constructive_first_plan``), so that a label is a rule the image and goal show, not a search's
  tie-break.

Why fixed places (measured in ``experiments/demo_model/README.md``): in masked-diffusion training most of
the reply is masked, so with free-length columns a masked letter's column and level depend on other masked
tokens, and the compact-style models read stack heights but not colours (teacher-forced colour accuracy at
chance while a linear probe reads the colour off their image features 98% of the time); with fixed places
the same position always means the same spot of the image.

Environment, problems, step limits, parser and success criterion are ViPlan's; the summary records the
prompt style. ``--model`` checkpoints must have been trained on the same format
(``--prompt-style``, ``--explanation``).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dreamvlx.envs.blocksworld.datagen import EpisodeConfig

DEMO_MODEL = "demo_model"
DEMO_PROMPT_STYLE = "compact"
DEMO_EXPLANATION = "scene"
EXPLANATIONS = {"scene": (False, False), "standing": (True, False), "places": (True, True)}
"""How far a CoT planning explanation goes -> ``EpisodeConfig`` ``(standing, places)`` (module docstring)."""
# diffusion canvas per (prompt style, explanation): one-action CoT replies are 48-57 tokens (compact), 56-73
# (slots), 65-78 (compact, standing), 73-95 (slots, standing), 102-141 (slots, places)
DEMO_CANVAS = {
    ("compact", "scene"): 64,
    ("slots", "scene"): 80,
    ("compact", "standing"): 88,
    ("slots", "standing"): 104,
    ("slots", "places"): 144,
}
DEMO_COT = True
DEMO_MODES = ("grounding", "planning")
PLANNERS = ("chained", "single")
DEMO_PLANNER = "chained"
"""The shipped model answers the chained planner's five calls (module docstring)."""


def shipped_model_dir() -> Path:
    return Path(str(resources.files("dreamvlx") / "assets" / DEMO_MODEL))


def demo_episode_config(
    prompt_style: str = DEMO_PROMPT_STYLE, explanation: str = DEMO_EXPLANATION
) -> EpisodeConfig:
    """The training-data format of the demo model (module docstring)."""
    from dreamvlx.envs.blocksworld.datagen import EpisodeConfig

    if explanation not in EXPLANATIONS:
        raise ValueError(f"unknown explanation {explanation!r}; choose from {', '.join(EXPLANATIONS)}")
    standing, places = EXPLANATIONS[explanation]
    return EpisodeConfig(
        plan_horizon=1,
        prompt_style=prompt_style,
        cot=DEMO_COT,
        questions_per_image=1,
        standing=standing,
        places=places,
    )


def generate_data(
    out_dir: Path,
    samples: int,
    seed: int,
    workers: int,
    prompt_style: str = DEMO_PROMPT_STYLE,
    explanation: str = DEMO_EXPLANATION,
) -> Path:
    from dreamvlx.envs.blocksworld.datagen import write_dataset

    return write_dataset(
        out_dir,
        samples,
        seed,
        modes=DEMO_MODES,
        config=demo_episode_config(prompt_style, explanation),
        workers=workers,
        progress=True,
    )


def train_model(data_index: Path, out_dir: Path, overrides: list[str]) -> Path:
    from dreamvlx.settings import apply_overrides, parse_override_args
    from dreamvlx.train.cli import run
    from dreamvlx.train.presets import get_preset

    base = [
        "--data.train_json", str(data_index), "--data.image_folder", str(data_index.parent),
        "--run.out_dir", str(out_dir),
    ]  # fmt: skip
    cfg = apply_overrides(get_preset("blocksworld-tiny"), parse_override_args(base + overrides))
    cfg.validate()
    result = run(cfg)
    assert result.final_dir is not None
    return result.final_dir


def train_chain_model(out_dir: Path, overrides: list[str], scale: int = 1) -> Path:
    """The chained model's curriculum (``dreamvlx.train.chain_recipe``) from fresh weights with the shipped
    model's architecture and tokenizer; ``scale`` divides every stage's steps and samples."""
    from dreamvlx.train.chain_recipe import fresh_init, run_curriculum

    init = fresh_init(shipped_model_dir(), out_dir / "init")
    return run_curriculum(out_dir, init, scale, overrides)


def _png_data_uri(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _history_table(tokens: list[str], steps: list[int]) -> str:
    """One cell per generated token, shaded by the denoising step that committed it."""
    last = max([s for s in steps if s >= 0], default=0) or 1
    cells = []
    for token, step in zip(tokens, steps):
        shade = int(235 - 150 * step / last)
        cells.append(
            f'<span class="tok" style="background: rgb({shade},{shade},255)" title="step {step}">'
            f"{html.escape(token)}<sub>{step}</sub></span>"
        )
    return "".join(cells)


_REPORT_HEAD = (
    "<html><head><meta charset='utf-8'><title>dreamvlx demo</title><style>"
    "body{font-family:sans-serif;max-width:1100px;margin:auto} .tok{font-family:monospace;"
    "padding:1px;margin:1px;display:inline-block;border-radius:3px} sub{font-size:60%;color:#555}"
    "table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:3px 8px}</style></head><body>"
)


def _success_table(summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{split}</td><td>{metrics['task_completion_rate']:.1%}</td><td>{metrics['episodes']}</td></tr>"
        for split, metrics in summary["splits"].items()
    )
    return f"<table><tr><th>split</th><th>success rate</th><th>episodes</th></tr>{rows}</table>"


def write_report(
    path: Path,
    records: dict[str, list[dict[str, Any]]],
    backend: Any,
    per_split: int,
    summary: dict[str, Any],
    prompt_style: str = DEMO_PROMPT_STYLE,
) -> None:
    """HTML report: success table, then episodes with image, goal, replies and denoising history."""
    from dreamvlx.envs.blocksworld.problems import load_split
    from dreamvlx.envs.blocksworld.prompts import goal_string, planning_prompt
    from dreamvlx.envs.blocksworld.render import render_state

    parts = [
        _REPORT_HEAD,
        "<h1>dreamvlx demo: a diffusion Dream-VL planning ViPlan BlocksWorld</h1>",
        _success_table(summary),
    ]
    for split, split_records in records.items():
        problems = {p.name: p for p in load_split(split)}
        for record in split_records[:per_split]:
            problem = problems[record["problem"]]
            image = render_state(problem.initial_state)
            first_prompt = planning_prompt(problem, [], DEMO_COT, prompt_style)
            _, tokens, steps = backend.generate_with_history(image, first_prompt)
            outcome = "solved" if record["goal_reached"] else "not solved"
            parts.append(f"<h2>{split} / {html.escape(problem.name)}: {outcome}</h2>")
            parts.append(f"<img src='{_png_data_uri(image)}' width='300'>")
            goal_text = goal_string(problem.blocks, problem.goal).strip()
            model_view = first_prompt[0]["content"]  # the system turn: history and goal layout
            parts.append(f"<p><b>Goal</b><br><pre>{html.escape(goal_text)}</pre></p>")
            parts.append(
                f"<p><b>What the model reads</b> (then the image)<br><pre>{html.escape(model_view)}</pre></p>"
            )
            parts.append(
                "<p><b>Denoising history of the first reply</b> (subscript: step that committed it)<br>"
            )
            parts.append(_history_table(tokens, steps) + "</p>")
            rows = "".join(
                f"<tr><td>{i + 1}</td><td><code>{html.escape(s.get('reply', ''))}</code></td>"
                f"<td>{html.escape(str(s.get('action')))}</td><td>{html.escape(str(s.get('info', s.get('error'))))}</td></tr>"
                for i, s in enumerate(record.get("steps", []))
            )
            parts.append(
                f"<table><tr><th>step</th><th>reply</th><th>action</th><th>outcome</th></tr>{rows}</table>"
            )
    parts.append("</body></html>")
    path.write_text("\n".join(parts))


def generate_chain_data(out_dir: Path, samples: int, seed: int) -> Path:
    """``samples`` samples of the chained planner's five calls (a fifth each; ``chain_data``), shuffled into
    ``out_dir/chain.json`` (images of the read call beside it). Returns that file."""
    from dreamvlx.envs.blocksworld.chain import CALLS
    from dreamvlx.envs.blocksworld.chain_data import mix_data, write_call_data

    per_call = max(1, samples // len(CALLS))
    parts = [(write_call_data(out_dir / f"{call}.json", call, per_call, seed), None) for call in CALLS]
    return mix_data(out_dir / "chain.json", parts, seed)


def write_chain_report(
    path: Path,
    records: dict[str, list[dict[str, Any]]],
    planner: Any,
    per_split: int,
    summary: dict[str, Any],
) -> None:
    """HTML report of a chained run: success table, then for a few episodes the image, the goal, the first
    step's five calls (prompt, reply, denoising history) and every step's reading, move and outcome."""
    from dreamvlx.envs.blocksworld.chain import goal_rows, rows_text
    from dreamvlx.envs.blocksworld.problems import load_split
    from dreamvlx.evals.viplan.planning import MAX_STEPS, PlanningConfig, PlanningEpisode

    parts = [
        _REPORT_HEAD,
        "<h1>dreamvlx demo: a diffusion Dream-VL planning ViPlan BlocksWorld (chained calls)</h1>",
    ]
    parts.append(_success_table(summary))
    parts.append(
        "<p>Each step the model answers five calls (read the scene off the image; compare it with the goal place "
        "by place; each column's standing; each column's top; the move), each reply written into the next "
        f"prompt. Settings: <code>{html.escape(str(summary['chain']))}</code></p>"
    )
    for split, split_records in records.items():
        problems = {p.name: p for p in load_split(split)}
        for record in split_records[:per_split]:
            problem = problems[record["problem"]]
            episode = PlanningEpisode(
                problem, PlanningConfig(MAX_STEPS[split], cot=True, prompt_style="slots")
            )
            first = planner.plan([episode], history=True)[0]
            outcome = "solved" if record["goal_reached"] else "not solved"
            parts.append(f"<h2>{split} / {html.escape(problem.name)}: {outcome}</h2>")
            parts.append(f"<img src='{_png_data_uri(planner.images(episode.env.state))}' width='300'>")
            goal = rows_text(goal_rows(episode.env.state, problem.goal))
            parts.append(f"<p><b>Goal</b> <code>{html.escape(goal)}</code></p>")
            parts.append(
                "<p><b>The first step's calls</b> (greedy; subscript: the denoising step that committed the token)</p>"
            )
            for call, entry in first.calls.items():
                parts.append(
                    f"<p><b>{call}</b>: <code>{html.escape(entry['prompt'])}</code>"
                    f"{' + image' if call == 'read' else ''}<br>{_history_table(entry['tokens'], entry['steps'])}</p>"
                )
            rows = "".join(
                f"<tr><td>{i + 1}</td><td><code>{html.escape(s['calls']['read']['reply'])}</code></td>"
                f"<td><code>{html.escape(s.get('reply', ''))}</code></td><td>{html.escape(str(s.get('action')))}</td>"
                f"<td>{html.escape(str(s.get('info', s.get('error'))))}</td><td>{s['rereads']} / {s['redraws']}</td></tr>"
                for i, s in enumerate(record.get("steps", []))
            )
            parts.append(
                "<table><tr><th>step</th><th>scene read</th><th>move reply</th><th>action</th><th>outcome</th>"
                f"<th>re-read / redrawn</th></tr>{rows}</table>"
            )
    parts.append("</body></html>")
    path.write_text("\n".join(parts))


def main(argv: list[str]) -> int:
    from dreamvlx.evals.viplan.chained import ChainConfig

    parser = argparse.ArgumentParser(prog="dreamvlx demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", default="outputs/demo", help="output folder (data, model, results, report)")
    parser.add_argument(
        "--planner",
        choices=PLANNERS,
        default=DEMO_PLANNER,
        help="chained: five calls per step (the shipped model); single: one ViPlan query per step",
    )
    parser.add_argument(
        "--train", action="store_true", help="train the model here instead of using the shipped one"
    )
    parser.add_argument(
        "--train-scale",
        type=int,
        default=1,
        help="chained --train: divide every curriculum stage's steps and samples by this (1: the full recipe, hours)",
    )
    parser.add_argument("--model", default=None, help="evaluate this DreamVL checkpoint instead")
    parser.add_argument(
        "--samples",
        type=int,
        default=2000,
        help="samples to generate (chained: a fifth per call; single: half planning, half grounding)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes: data and episodes (single planner), splits (chained)",
    )
    parser.add_argument("--report-episodes", type=int, default=2, help="episodes per split in the report")
    parser.add_argument("--split", default="all", help="simple, medium, hard or all")
    parser.add_argument("--steps", type=int, default=8, help="diffusion steps per reply")
    single = parser.add_argument_group("single planner")
    single.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help=f"diffusion canvas (default per prompt style and explanation: {DEMO_CANVAS})",
    )
    single.add_argument(
        "--prompt-style",
        choices=("compact", "slots"),
        default=DEMO_PROMPT_STYLE,
        help="the data format the model was trained on (module docstring)",
    )
    single.add_argument(
        "--explanation",
        choices=tuple(EXPLANATIONS),
        default=DEMO_EXPLANATION,
        help="how far CoT planning explanations go, as the model was trained (module docstring)",
    )
    chained = parser.add_argument_group("chained planner (dreamvlx.evals.viplan.chained)")
    defaults = ChainConfig()
    chained.add_argument(
        "--retry-temperature",
        type=float,
        default=defaults.retry_temperature,
        help="sampled re-asks' temperature",
    )
    chained.add_argument(
        "--rereads", type=int, default=defaults.rereads, help="readings that are not a scene, asked again"
    )
    chained.add_argument(
        "--redraws",
        type=int,
        default=defaults.redraws,
        help="unusable moves (chained.usable_move), asked again",
    )
    parser.add_argument(
        "train_overrides", nargs=argparse.REMAINDER, help="with --train: --section.key value ..."
    )
    args = parser.parse_args(argv)

    from dreamvlx.envs.blocksworld.problems import SPLITS, load_split

    if args.split not in (*SPLITS, "all"):
        raise ValueError(f"unknown split {args.split!r}; choose from {', '.join(SPLITS)} or all")
    chained_run = args.planner == "chained"
    if not chained_run:
        demo_episode_config(args.prompt_style, args.explanation)  # a format that does not exist fails here
        if not (args.model or args.train):
            raise ValueError(
                "the shipped model answers the chained planner's calls, not one ViPlan query per step: "
                "give --planner single a --model trained on that format, or --train"
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"[1/4] generating {args.samples} BlocksWorld samples -> {out / 'data'}", flush=True)
    if chained_run:
        index = generate_chain_data(out / "data", args.samples, args.seed)
    else:
        index = generate_data(
            out / "data", args.samples, args.seed, args.workers, args.prompt_style, args.explanation
        )

    if args.model:
        model_dir = Path(args.model)
    elif args.train:
        print(f"[2/4] training a diffusion Dream-VL for the {args.planner} planner", flush=True)
        if chained_run:
            model_dir = train_chain_model(out / "train", args.train_overrides, args.train_scale)
        else:
            model_dir = train_model(index, out / "train", args.train_overrides)
    else:
        model_dir = shipped_model_dir()
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no shipped demo model at {model_dir}; run `dreamvlx demo --train`")
    print(f"[2/4] model: {model_dir}", flush=True)

    print(f"[3/4] ViPlan planning mode on the benchmark problems ({args.planner} planner)", flush=True)
    problems = {s: load_split(s) for s in (SPLITS if args.split == "all" else (args.split,))}
    run = _run_chained if chained_run else _run_single
    run(args, model_dir, problems, out)
    print(
        f"done in {time.perf_counter() - started:.0f} s: {out / 'report.html'}, {out / 'eval' / 'summary.json'}"
    )
    return 0


def _run_single(args: argparse.Namespace, model_dir: Path, problems: dict, out: Path) -> None:
    """ViPlan's planning mode, one query per step (``dreamvlx eval viplan``), then the report."""
    from dreamvlx.evals.viplan.backends import BackendSpec, DreamVLBackend, GenerationConfig
    from dreamvlx.evals.viplan.report import format_table, plot_summary
    from dreamvlx.evals.viplan.runner import RunConfig, evaluate, summarize, write_outputs

    default_canvas = DEMO_CANVAS[args.prompt_style, args.explanation]
    canvas = args.max_new_tokens if args.max_new_tokens is not None else default_canvas
    generation = GenerationConfig(max_new_tokens=canvas, steps=args.steps)
    config = RunConfig(
        mode="planning",
        backend=BackendSpec(model=str(model_dir), generation=generation),
        seed=args.seed,
        cot=DEMO_COT,
        prompt_style=args.prompt_style,
    )
    records = evaluate(problems, config, workers=args.workers)
    summary = summarize(records, config)
    write_outputs(out / "eval", records, summary)
    print(format_table(summary))
    print(f"[4/4] report -> {out / 'report.html'}", flush=True)
    backend = DreamVLBackend(str(model_dir), generation)
    write_report(out / "report.html", records, backend, args.report_episodes, summary, args.prompt_style)
    plot_summary(summary, out / "summary.png")


def _run_chained(args: argparse.Namespace, model_dir: Path, problems: dict, out: Path) -> None:
    """The chained planner (``dreamvlx.evals.viplan.chained``) on the problems, then the report."""
    from dreamvlx.evals.viplan.chained import ChainConfig, ChainedPlanner, evaluate_chained, summarize_chained
    from dreamvlx.evals.viplan.report import format_table, plot_summary
    from dreamvlx.evals.viplan.runner import write_outputs

    config = ChainConfig(
        steps=args.steps,
        retry_temperature=args.retry_temperature,
        rereads=args.rereads,
        redraws=args.redraws,
        seed=args.seed,
    )
    records = evaluate_chained(problems, str(model_dir), config, args.workers)
    summary = summarize_chained(records, config, str(model_dir))
    write_outputs(out / "eval", records, summary)
    print(format_table(summary))
    print(f"[4/4] report -> {out / 'report.html'}", flush=True)
    planner = ChainedPlanner(str(model_dir), config)
    write_chain_report(out / "report.html", records, planner, args.report_episodes, summary)
    plot_summary(summary, out / "summary.png")
