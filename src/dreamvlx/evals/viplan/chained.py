"""The chained planner: ViPlan's planning mode with one small model asked five calls per step.

ViPlan asks a VLM one question per step (the goal, the history and the image) and executes the first action
of the JSON plan it returns. A 2.4 M-parameter model trained from scratch on a CPU does not learn that
question in one reply; it learns each step of the reasoning as its own short question
(``experiments/demo_model/README.md``, findings 1-29). The chained planner asks those questions in turn,
with one checkpoint, each reply written into the next prompt as it came out
(``dreamvlx.envs.blocksworld.chain``): read the scene off the rendered image, compare it with the goal place
by place, each column's standing, each column's top, the move. The move reply is what the episode executes.

What differs from ViPlan's protocol, and is recorded in every summary (``ChainConfig``):

- five calls per step instead of one, each from a short prompt; the environment, the problems, the step
  budgets, the reply parser and the success criterion are ViPlan's (``PlanningEpisode``), and the image is
  the only view of the state the model gets;
- a reading that is not a scene of the problem (``chain.parse_scene``: a column missing, a block twice) is
  read again, sampled at ``retry_temperature``, up to ``rereads`` times; then the last reading goes on as it
  came out when it has the layout of a scene (``chain.parse_layout``), and otherwise becomes the step's
  reply, which is not a plan, so the episode ends as ViPlan ends it;
- the move is greedy, and sampled at ``retry_temperature`` after a failed action (the prompts hold no
  history, so a greedy reply would repeat the failure until the budget ends: finding 21);
- a move reply that is no move of the problem (not a JSON plan, or a block or column the goal does not
  name) or that the history rules out (``PlanningEpisode.futile_actions``: one that failed in this state, or
  a second move in a row of one block; ViPlan's history shows a large model both) is asked again, sampled,
  up to ``redraws`` times (``usable_move``; finding 28); the last one asked is taken.

``redraws=0, rereads=0, retry_temperature=0`` asks every call once, greedily.

Episodes of a split run in lockstep, each call batched over the live episodes (``run_chained``).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from dreamvlx.envs.blocksworld import chain
from dreamvlx.envs.blocksworld.chain_data import conversation
from dreamvlx.envs.blocksworld.datagen import GeneratedProblem
from dreamvlx.envs.blocksworld.problems import Problem
from dreamvlx.envs.blocksworld.prompts import Messages
from dreamvlx.envs.blocksworld.render import render_state
from dreamvlx.envs.blocksworld.replies import parse_plan_reply
from dreamvlx.envs.blocksworld.state import MoveBlock
from dreamvlx.evals.viplan.backends import episode_seed
from dreamvlx.evals.viplan.planning import MAX_STEPS, PlanningConfig, PlanningEpisode
from dreamvlx.evals.viplan.runner import score_records

CANVASES = {"read": 64, "places": 72, "standing": 32, "tops": 32, "move": 48}
"""Diffusion canvas (reply tokens) of each call; each holds its longest reply on the hardest split."""


@dataclass(frozen=True)
class ChainConfig:
    """Decoding of the chained planner (module docstring): ``steps`` diffusion steps per call (``entropy``
    order), the canvases, and the re-asking rules; ``seed`` seeds the sampled replies (each split's stream
    from it and the split's name, so a split's episodes do not depend on which others run).

    ``canvases`` are each call's largest canvas; with ``fit_canvas`` a call's canvas is its reply's length
    for the problem plus ``canvas_margin`` tokens (``problem_canvases``): every word of the calls' replies is
    one token, so that length depends only on the problem's numbers of blocks and columns, which the prompts
    show; a canvas no longer than the reply needs makes each diffusion step cheaper and leaves fewer
    padding places to fill."""

    steps: int = 8
    retry_temperature: float = 1.0
    rereads: int = 5  # 5 and 6 against 3 and 3, mean of three seeds: medium 51 against 39%, hard 48 against
    redraws: int = 6  # 53%, simple 75% both; 280 against 250 s (experiments/demo_model/README.md, finding 30)
    seed: int = 0
    canvases: Mapping[str, int] = field(default_factory=lambda: dict(CANVASES))
    fit_canvas: bool = True
    canvas_margin: int = 4

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.rereads < 0 or self.redraws < 0:
            raise ValueError(f"rereads and redraws must be 0 or more, got {self.rereads}, {self.redraws}")
        if (self.rereads or self.redraws) and self.retry_temperature <= 0:
            raise ValueError(
                "asking again needs a retry temperature > 0 (a greedy reply repeats itself); "
                f"got {self.retry_temperature} with rereads={self.rereads}, redraws={self.redraws}"
            )
        missing = set(chain.CALLS) - set(self.canvases)
        if missing:
            raise ValueError(f"no canvas for the calls {sorted(missing)}")
        if self.canvas_margin < 1:
            raise ValueError(f"canvas_margin must leave room for the end of turn, got {self.canvas_margin}")


def text_messages(user: str) -> Messages:
    """A text-only call: the user turn alone (the chat template's default system message)."""
    return [{"role": "user", "content": user}]


def read_messages(blocks: Sequence[str]) -> Messages:
    """The read call: ``Blocks: ...`` in the system turn, the image alone in the user turn."""
    return [
        {"role": "system", "content": chain.read_system(blocks)},
        {"role": "user", "content": [{"type": "image"}]},
    ]


@dataclass
class ChainStep:
    """One planning step's calls: each call's prompt (the user text; the read call's system text) and reply,
    how often the scene was read again and the move drawn again, and the reply the episode takes."""

    calls: dict[str, dict[str, str]] = field(default_factory=dict)
    rereads: int = 0
    redraws: int = 0

    @property
    def reply(self) -> str:
        """The move call's reply, or the last reading when no reading was a scene (not a plan: the episode
        ends)."""
        return self.calls["move"]["reply"] if "move" in self.calls else self.calls["read"]["reply"]

    def details(self) -> dict[str, Any]:
        return {"calls": self.calls, "rereads": self.rereads, "redraws": self.redraws}


class ChainedPlanner:
    """One ``DreamVL`` checkpoint asked the five calls of ``dreamvlx.envs.blocksworld.chain`` per step."""

    def __init__(self, model_dir: str, config: ChainConfig | None = None, device: str | None = None) -> None:
        from dreamvlx.inference import load_dream_vl

        self.config = config or ChainConfig()
        self.model, self.processor = load_dream_vl(model_dir, device=device)
        if self.model.config.is_causal:
            raise ValueError(
                f"{model_dir} is a causal (AR) checkpoint; the chained planner decodes by diffusion"
            )
        self.images = render_state  # state -> what the read call sees (RGB, ViPlan's frame in our renderer)
        self._canvases: dict[tuple, dict[str, int]] = {}  # (initial state, goal) -> canvases
        self.generator = torch.Generator(device=self.model.device).manual_seed(self.config.seed)

    def ask(
        self,
        call: str,
        messages: Sequence[Messages],
        images: Sequence[Any] | None = None,
        temperatures: Sequence[float] | None = None,
        history: bool = False,
        canvas: int | None = None,
    ) -> list[str] | tuple[list[str], list[list[str]], list[list[int]]]:
        """Replies to ``call`` for a batch of prompts (``images``: one per prompt, for the read call), each
        at its temperature (default greedy) over ``canvas`` tokens (default the call's largest); prompts of
        one temperature are decoded as one batch. With ``history`` also each reply's tokens and the denoising
        step that committed each."""
        from dreamvlx.inference import build_prompt_batch, generate_tokens, reply_text, token_texts

        temperatures = list(temperatures or [0.0] * len(messages))
        replies, tokens, steps = [""] * len(messages), [[]] * len(messages), [[]] * len(messages)
        tokenizer = self.processor.tokenizer
        for temperature in sorted(set(temperatures)):
            rows = [k for k, value in enumerate(temperatures) if value == temperature]
            batch_images = [[images[k]] if images is not None else [] for k in rows]
            inputs = build_prompt_batch(
                self.processor, batch_images, [messages[k] for k in rows], self.model.device
            )
            output = generate_tokens(
                self.model,
                inputs,
                history=history,
                generator=self.generator,
                max_new_tokens=canvas or self.config.canvases[call],
                steps=self.config.steps,
                alg="entropy",
                temperature=temperature,
            )
            for position, k in enumerate(rows):
                row = output.tokens[position].tolist()
                replies[k] = reply_text(tokenizer, row)
                if history:
                    tokens[k] = token_texts(tokenizer, row)
                    steps[k] = output.steps[position].tolist()
        return (replies, tokens, steps) if history else replies

    def canvases(self, problem: Problem | GeneratedProblem) -> dict[str, int]:
        """Each call's canvas for ``problem`` (``ChainConfig``), a benchmark problem or a generated one."""
        if not self.config.fit_canvas:
            return dict(self.config.canvases)
        key = (problem.initial_state, problem.goal)
        if key not in self._canvases:
            fitted = problem_canvases(problem, self.processor.tokenizer, self.config.canvas_margin)
            self._canvases[key] = {
                call: min(fitted[call], self.config.canvases[call]) for call in chain.CALLS
            }
        return self._canvases[key]

    def canvas(self, call: str, problems: Iterable[Problem | GeneratedProblem]) -> int:
        """The canvas of ``call`` for one batch of prompts of ``problems``: the largest of theirs."""
        return max(self.canvases(problem)[call] for problem in problems)

    def start_split(self, split: str) -> None:
        """Seed the sampled replies' stream for ``split`` from the config's seed and the split's name."""
        self.generator.manual_seed(episode_seed(self.config.seed, split))

    def plan(self, episodes: Sequence[PlanningEpisode], history: bool = False) -> list[ChainStep]:
        """The chain of calls for the current state of each episode (module docstring); with ``history`` each
        call also keeps its reply's ``tokens`` and the denoising ``steps`` that committed them."""
        config, hot = self.config, self.config.retry_temperature
        states = [episode.env.state for episode in episodes]
        images = [self.images(state) for state in states]
        chains = [ChainStep() for _ in episodes]

        def call(
            name: str, members: list[int], users: list[str], temperatures: list[float] | None = None
        ) -> list[str]:
            """Ask ``name`` for the chains ``members`` (the read call: ``users`` are its system texts), keep
            each prompt and reply in its chain, return the replies."""
            canvas = self.canvas(name, [episodes[k].problem for k in members])
            if name == "read":
                messages = [read_messages(states[k].blocks) for k in members]
                asked = self.ask(name, messages, [images[k] for k in members], temperatures, history, canvas)
            else:
                users_asked = [text_messages(user) for user in users]
                asked = self.ask(name, users_asked, None, temperatures, history, canvas)
            replies, tokens, steps = asked if history else (asked, None, None)
            for row, k in enumerate(members):
                entry: dict[str, Any] = {"prompt": users[row], "reply": replies[row]}
                if history:
                    entry.update(tokens=tokens[row], steps=steps[row])
                chains[k].calls[name] = entry
            return replies

        def scene(k: int) -> chain.Rows | None:
            return chain.parse_scene(
                chains[k].calls["read"]["reply"], states[k].column_names, states[k].blocks
            )

        everyone = list(range(len(episodes)))
        call("read", everyone, [chain.read_system(state.blocks) for state in states])
        scenes = [scene(k) for k in everyone]
        for _ in range(config.rereads):
            again = [k for k in everyone if scenes[k] is None]
            if not again:
                break
            call("read", again, [chain.read_system(states[k].blocks) for k in again], [hot] * len(again))
            for k in again:
                chains[k].rereads, scenes[k] = chains[k].rereads + 1, scene(k)
        # no scene after every re-read: the last reading goes on as it came out, if it has a scene's layout
        for k in everyone:
            if scenes[k] is None:
                reading = chains[k].calls["read"]["reply"]
                scenes[k] = chain.parse_layout(reading, states[k].column_names, len(states[k].blocks))
        live = [k for k in everyone if scenes[k] is not None]
        if not live:
            return chains
        goals = [chain.goal_rows(states[k], episodes[k].problem.goal) for k in live]
        places = call("places", live, [chain.places_prompt(scenes[k], goal) for k, goal in zip(live, goals)])
        standings = call(
            "standing", live, [chain.standing_prompt(chain.places_of(reply)) for reply in places]
        )
        tops = call("tops", live, [chain.tops_prompt(chain.rows_text(scenes[k])) for k in live])
        moves = {k: chain.move_prompt(standing, top) for k, standing, top in zip(live, standings, tops)}
        call(
            "move", live, list(moves.values()), [hot if episodes[k].last_action_failed else 0.0 for k in live]
        )
        for _ in range(config.redraws):
            again = [k for k in live if not usable_move(episodes[k], chains[k].reply)]
            if not again:
                break
            call("move", again, [moves[k] for k in again], [hot] * len(again))
            for k in again:
                chains[k].redraws += 1
        return chains


def problem_canvases(problem: Problem | GeneratedProblem, tokenizer: Any, margin: int) -> dict[str, int]:
    """Each call's reply length in tokens for ``problem`` plus ``margin``: the replies of the training data
    (``chain_data.conversation``) at its initial state, whose lengths depend only on its numbers of blocks
    and columns."""
    state = problem.initial_state
    move = MoveBlock(state.blocks[0], state.column_names[-1])
    replies = {call: conversation(state, problem.goal, move, call)[2] for call in chain.CALLS}
    return {call: len(tokenizer.encode(reply)) + margin for call, reply in replies.items()}


def usable_move(episode: PlanningEpisode, reply: str) -> bool:
    """Whether a move reply may be taken without asking again: a move (``PlanReply.named_move``) of a block
    and to a column of the problem, which the goal names, and not one of the episode's ``futile_actions``."""
    move = parse_plan_reply(reply).named_move
    if move is None or move.block not in episode.problem.blocks or move.column not in episode.problem.columns:
        return False
    return move not in episode.futile_actions


def run_chained(
    problems: Mapping[str, Sequence[Problem]],
    planner: ChainedPlanner,
    progress: bool = True,
    before_step: Callable[[], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """ViPlan planning mode on every problem of every split (ViPlan's step budgets), each step's reply from
    ``planner.plan`` (``before_step`` called before each); each split's episodes in lockstep. Returns the
    episode records per split, in problem order; each step of a record also holds its calls
    (``ChainStep.details``)."""
    records: dict[str, list[dict[str, Any]]] = {}
    for split, split_problems in problems.items():
        if split not in MAX_STEPS:
            raise ValueError(f"no planning step budget for split {split!r}; choose from {sorted(MAX_STEPS)}")
        config = PlanningConfig(MAX_STEPS[split], cot=True, prompt_style="slots")
        episodes = [PlanningEpisode(problem, config) for problem in split_problems]
        planner.start_split(split)
        with tqdm(total=len(episodes), desc=f"chained {split}", disable=not progress) as ended:
            while live := [episode for episode in episodes if not episode.done]:
                if before_step is not None:
                    before_step()
                for episode, step in zip(live, planner.plan(live)):
                    read = read_messages(episode.env.state.blocks)
                    episode.take(read, step.reply, details=step.details())
                ended.update(sum(episode.done for episode in live))
        records[split] = [{"split": split, **episode.record()} for episode in episodes]
    return records


_worker_planner: ChainedPlanner | None = None
_busy_workers: Any = None  # a shared multiprocessing.Value: how many workers are running a split


def _init_worker(model_dir: str, config: ChainConfig, threads: int, busy: Any) -> None:
    global _worker_planner, _busy_workers
    _busy_workers = busy
    torch.set_num_threads(threads)
    _worker_planner = ChainedPlanner(model_dir, config)


def _share_cores() -> None:
    """Use the cores divided by the workers running a split (processes x threads = cores: oversubscribed
    BLAS threads thrash; a worker left alone, the longest split's, takes the cores the others freed)."""
    threads = max(1, (os.cpu_count() or 1) // max(1, _busy_workers.value))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _run_split(job: tuple[str, Sequence[Problem], bool]) -> tuple[str, list[dict[str, Any]]]:
    split, problems, progress = job
    with _busy_workers.get_lock():
        _busy_workers.value += 1
    try:
        return split, run_chained({split: problems}, _worker_planner, progress, _share_cores)[split]
    finally:
        with _busy_workers.get_lock():
            _busy_workers.value -= 1


def evaluate_chained(
    problems: Mapping[str, Sequence[Problem]],
    model_dir: str,
    config: ChainConfig,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """``run_chained`` with a planner loaded from ``model_dir``; ``workers`` > 1 runs the splits in that many
    spawned processes (longest budget first), each with its own planner and an equal share of the CPU
    threads among the workers still running a split. Every split's sampled replies come from its own seeded stream (``ChainedPlanner.start_split``),
    so the records do not depend on ``workers``."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1 or len(problems) == 1:
        return run_chained(problems, ChainedPlanner(model_dir, config), progress)
    order = sorted(problems, key=lambda split: -MAX_STEPS.get(split, 0) * len(problems[split]))
    processes = min(workers, len(order))
    threads = max(1, (os.cpu_count() or 1) // processes)
    context = multiprocessing.get_context("spawn")
    busy = context.Value("i", 0)
    with context.Pool(
        processes, initializer=_init_worker, initargs=(model_dir, config, threads, busy)
    ) as pool:
        done = dict(pool.imap_unordered(_run_split, [(split, problems[split], progress) for split in order]))
        pool.close()  # workers end on their own (a terminated one leaks its progress bars' semaphores)
        pool.join()
    return {split: done[split] for split in problems}


PROTOCOL_NOTE = (
    "chained planner: five calls per step (read the scene off the image, places, standing, tops, move), "
    "each from a short prompt, instead of ViPlan's one query; readings that are not a scene re-read and "
    "moves that are no move of the problem or that the history rules out redrawn, sampled (rereads, "
    "redraws); ViPlan's environment, problems, step budgets, reply parser and success criterion"
)


def summarize_chained(
    records: Mapping[str, Sequence[dict[str, Any]]], config: ChainConfig, model: str
) -> dict[str, Any]:
    """ViPlan's planning metrics per split and over all episodes, with the planner's settings and what
    differs from ViPlan's protocol (``PROTOCOL_NOTE``)."""
    steps = [step for rs in records.values() for record in rs for step in record["steps"]]
    return {
        "mode": "planning",
        "planner": "chained",
        "protocol": PROTOCOL_NOTE,
        "model": model,
        "chain": {**asdict(config), "canvases": dict(config.canvases)},
        "max_steps": {split: MAX_STEPS[split] for split in records},
        "rereads": sum(step.get("rereads", 0) for step in steps),
        "redraws": sum(step.get("redraws", 0) for step in steps),
        **score_records(records, "planning"),
    }
