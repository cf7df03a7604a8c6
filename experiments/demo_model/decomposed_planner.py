"""Does the move come out right when each step of the reasoning is its own call?

The reasoning probe (``reasoning_probe.py``, ``README.md`` findings 1-19) found every step of the move's
reasoning learnable alone when its evidence stands in the prompt (the column tops 0.93 exactly right, the
standing from the places 0.81, the move from standing and tops 0.74 teacher-forced, 52 / 32 / 24% of the
benchmark's problems solved with the truth given; free replies sampled, finding 20), and the same steps
chained in one diffusion reply not learned: a step whose evidence is the model's own earlier reply sits at
chance (findings 6, 14-16). This
planner keeps every step's evidence in a prompt: per query it asks

1. ``places``: the place-by-place comparison, from scene and goal column by column (``places-paired``;
   the reply also ends with a standing, which is scored but not passed on);
2. ``standing``: each column's standing, from step 1's places (``standing-from-places``);
3. ``tops``: each column's top block, from the scene (``tops-only``);
4. ``move``: the move, from step 2's standing and step 3's tops (``move-from-tops``),

each reply written into the next prompt as it came out (no repair). Each step has its own model (one
checkpoint per step, the same directory may serve several), trained by ``train_decomposed.sh``. ``given``
replaces a step's reply with the truth, so that each link's share of the failures is measured.

Usage::

    python experiments/demo_model/decomposed_planner.py --places runs/dec-places/final \\
        --standing runs/dec-standing/final --tops runs/dec-tops/final --move runs/dec-move/final \\
        [--given places,standing] --out decomposed.json

It scores held-out states (each step's reply exactly right; the move legal, optimal, constructive) and
plays the 75 ViPlan problems in planning mode with the true scene given as text at every step, as
``reasoning_probe.py eval`` does for one-call formats.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from reasoning_probe import (
    add_retry_arguments,
    ask,
    check_retry_arguments,
    held_out,
    plan_marks,
    play_benchmark,
    prompt,
    query_temperatures,
    rates,
    write_report,
)
from tqdm import tqdm

from dreamvlx.envs.blocksworld.chain import move_prompt, places_of, standing_prompt, tops_reply
from dreamvlx.envs.blocksworld.replies import STANDING_SEPARATOR, goal_places, goal_standing
from dreamvlx.envs.blocksworld.state import BlocksWorldState, Fact
from dreamvlx.inference import load_dream_vl

STEPS = ("places", "standing", "tops", "move")
STEP_FORMATS = {
    "places": "places-paired",
    "standing": "standing-from-places",
    "tops": "tops-only",
    "move": "move-from-tops",
}
CANVASES = {"places": 72, "standing": 32, "tops": 32, "move": 48}  # tokens; each fits its longest reply


def true_sections(state: BlocksWorldState, goal: tuple[Fact, ...]) -> dict[str, str]:
    """What each of ``places``, ``standing`` and ``tops`` should reply for (state, goal)."""
    return {
        "places": goal_places(state, goal),
        "standing": goal_standing(state, goal),
        "tops": tops_reply(state),
    }


class DecomposedPlanner:
    """Four calls per query, each step's reply written into the next step's prompt (module docstring).

    ``models`` maps each step of ``STEPS`` that is not ``given`` to a checkpoint directory (each directory
    is loaded once); ``given`` steps (not ``move``) take the true section instead of a model's reply;
    ``steps`` diffusion steps per call, ``entropy`` order, as the demo decodes. Every call is greedy except
    the move's at ``move_temperature`` > 0, or at ``retry_temperature`` for a query the benchmark marks as a
    retry (``query_temperatures``, ``play_benchmark``): the text prompt holds no history, so a greedy move that fails is
    asked again from the same prompt and repeated until the step budget ends; sampling the move lets an
    episode leave such a loop (``README.md``, finding 21)."""

    def __init__(
        self,
        models: dict[str, str],
        given: frozenset[str] = frozenset(),
        steps: int = 8,
        move_temperature: float = 0.0,
        retry_temperature: float | None = None,
    ) -> None:
        unknown = set(given) - set(STEPS[:-1])
        if unknown:
            raise ValueError(
                f"given: unknown or not givable steps {sorted(unknown)}; choose from {STEPS[:-1]}"
            )
        missing = [step for step in STEPS if step not in given and step not in models]
        if missing:
            raise ValueError(f"no model for the steps {missing}: give a checkpoint for each step not given")
        loaded: dict[str, tuple] = {}
        self.models = {}
        for step in STEPS:
            if step in given:
                continue
            directory = models[step]
            if directory not in loaded:
                loaded[directory] = load_dream_vl(directory)
            self.models[step] = loaded[directory]
        self.given, self.steps = frozenset(given), steps
        self.move_temperature, self.retry_temperature = move_temperature, retry_temperature

    def _ask(
        self, step: str, prompts: list[tuple[str | None, str]], temperature: float | list[float] = 0.0
    ) -> list[str]:
        model, processor = self.models[step]
        replies = ask(model, processor, prompts, CANVASES[step], self.steps, temperature=temperature)
        return [reply.strip() for reply in replies]

    def chains(
        self,
        queries: list[tuple[BlocksWorldState, tuple[Fact, ...]]],
        retries: Sequence[bool] | None = None,
    ) -> list[dict[str, str]]:
        """Every step's reply for each query: ``places`` (the comparison section of its reply), ``places_reply``
        (the whole reply, or the truth when given), ``standing``, ``tops`` and ``move`` (a JSON plan);
        ``retries`` as ``TextScenePlanner.replies``."""
        truths = [true_sections(state, goal) for state, goal in queries]
        chains: list[dict[str, str]] = [{} for _ in queries]

        def run(step: str, prompts: list[tuple[str | None, str]]) -> list[str]:
            if step in self.given:
                return [truth[step] for truth in truths]
            return self._ask(step, prompts)

        places_replies = run("places", [prompt(s, g, STEP_FORMATS["places"]) for s, g in queries])
        for chain, reply in zip(chains, places_replies):
            chain["places_reply"] = reply
            chain["places"] = places_of(reply)
        standings = run("standing", [(None, standing_prompt(chain["places"])) for chain in chains])
        tops = run("tops", [prompt(s, g, STEP_FORMATS["tops"]) for s, g in queries])
        for chain, standing, top in zip(chains, standings, tops):
            chain["standing"], chain["tops"] = standing, top
        temperatures = query_temperatures(
            len(queries), self.move_temperature, self.retry_temperature, retries
        )
        move_prompts = [(None, move_prompt(c["standing"], c["tops"])) for c in chains]
        moves = self._ask("move", move_prompts, temperatures)
        for chain, move in zip(chains, moves):
            chain["move"] = move
        return chains

    def replies(
        self,
        queries: list[tuple[BlocksWorldState, tuple[Fact, ...]]],
        retries: Sequence[bool] | None = None,
    ) -> list[str]:
        return [chain["move"] for chain in self.chains(queries, retries)]


def score_chains(planner: DecomposedPlanner, queries, batch: int) -> dict[str, float]:
    """Free generation on held-out (state, goal, labelled move) queries: each asked step's reply exactly
    right (``places_exact``, ``places_standing_exact``: the standing that ends step 1's reply,
    ``standing_exact``, ``tops_exact``; given steps are not scored) and the move's quality (``legal``,
    ``optimal``, ``constructive``), as rates."""
    marks = []
    for start in tqdm(range(0, len(queries), batch), desc="held-out states"):
        chunk = queries[start : start + batch]
        chains = planner.chains([(state, goal) for state, goal, _ in chunk])
        for (state, goal, _), chain in zip(chunk, chains):
            truth = true_sections(state, goal)
            query_marks = {
                f"{step}_exact": chain[step] == truth[step] for step in truth if step not in planner.given
            }
            if "places" not in planner.given:
                standing = chain["places_reply"].split(STANDING_SEPARATOR)[1:]
                query_marks["places_standing_exact"] = [s.strip() for s in standing] == [truth["standing"]]
            query_marks.update(plan_marks(state, goal, chain["move"], STEP_FORMATS["move"]))
            marks.append(query_marks)
    return dict(sorted(rates(marks).items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for step in STEPS:
        parser.add_argument(f"--{step}", help=f"checkpoint of the {step} step ({STEP_FORMATS[step]})")
    parser.add_argument(
        "--given",
        default="",
        help="comma-separated steps answered with the truth instead of a model: places, standing, tops",
    )
    parser.add_argument("--states", type=int, default=200)
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--steps", type=int, default=8, help="diffusion steps per call")
    parser.add_argument(
        "--move-temperature",
        type=float,
        default=0.0,
        help="the move call's temperature (0: greedy, as every other)",
    )
    add_retry_arguments(parser, "--move-temperature")
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--no-benchmark", action="store_true", help="score held-out states only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    check_retry_arguments(parser, args, args.move_temperature)
    given = frozenset(filter(None, args.given.split(",")))
    models = {step: getattr(args, step) for step in STEPS if getattr(args, step)}
    torch.manual_seed(args.sampling_seed)
    planner = DecomposedPlanner(models, given, args.steps, args.move_temperature, args.retry_temperature)
    report: dict = {
        "models": models,
        "given": sorted(given),
        "steps": args.steps,
        "move_temperature": args.move_temperature,
        "retry_temperature": args.retry_temperature,
        "retry_on": args.retry_on,
        "redraws": args.redraws,
        "sampling_seed": args.sampling_seed,
        "canvases": CANVASES,
        "held_out_states": args.states,
        "states": score_chains(planner, held_out(args.states, args.seed), args.batch),
    }
    if not args.no_benchmark:
        report["benchmark_text_scene"] = play_benchmark(planner, args.retry_on, args.redraws)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
