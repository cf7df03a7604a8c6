"""Model backends for the ViPlan evaluator: the ``VLMBackend`` protocol and three implementations.

A backend turns ``(image, messages)`` into a reply string. ``messages`` are chat messages whose user
content holds ``{"type": "image"}`` parts (``dreamvlx.envs.blocksworld.prompts``); ``image`` is the
rendered current state (``PIL.Image`` RGB), or None for backends with ``needs_image = False`` (the
evaluator then skips rendering unless asked).

Optional hooks the evaluator calls when present:

- ``generate_batch(images, messages_list) -> list[str]``: several queries at once;
- ``begin_episode(episode: EpisodeInfo)``: called before each episode (oracle and random use it).

Backends: ``OracleBackend`` (reads the true state; scores 100%), ``RandomBackend`` (seeded coin flips and
random moves), ``DreamVLBackend`` (any ``DreamVL`` checkpoint; greedy diffusion or AR decoding).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from dreamvlx.envs.blocksworld.env import BlocksWorldEnv
from dreamvlx.envs.blocksworld.planner import find_plan
from dreamvlx.envs.blocksworld.prompts import Messages, asked_question, grounding_questions
from dreamvlx.envs.blocksworld.replies import plan_reply, state_explanation, yes_no_reply
from dreamvlx.envs.blocksworld.state import BLOCK_COLORS, BlocksWorldState, MoveBlock

Mode = Literal["grounding", "planning"]


@runtime_checkable
class VLMBackend(Protocol):
    """What the evaluator needs from a model."""

    needs_image: bool

    def generate(self, image: Image.Image | None, messages: Messages) -> str:
        """One reply (greedy decoding) for one query about ``image``."""
        ...


@dataclass
class EpisodeInfo:
    """Context handed to ``begin_episode``: the live simulator, the episode's seed and the protocol."""

    env: BlocksWorldEnv
    seed: int
    mode: Mode
    cot: bool = False
    prompt_style: str = "viplan"


def episode_seed(seed: int, problem_name: str) -> int:
    """Seed of one episode: a stable function of the run seed and the problem (independent of workers)."""
    return zlib.crc32(f"{seed}:{problem_name}".encode())


class OracleBackend:
    """Answers from the true state: correct yes/no answers and optimal JSON plans (scores 100%).

    Grounding questions are recognised by their text (with or without ViPlan's dropped "?"); planning
    replies follow an optimal plan computed once per episode and recomputed only if the state leaves it.
    """

    needs_image = False

    def __init__(self) -> None:
        self._episode: EpisodeInfo | None = None
        self._questions: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._plan: list[MoveBlock] = []
        self._plan_states: list[BlocksWorldState] = []

    def begin_episode(self, episode: EpisodeInfo) -> None:
        self._episode = episode
        state = episode.env.state
        self._questions = {q.rstrip("?"): (name, args) for name, args, q in grounding_questions(state)}
        self._plan, self._plan_states = [], []

    def generate(self, image: Image.Image | None, messages: Messages) -> str:
        if self._episode is None:
            raise RuntimeError("OracleBackend needs begin_episode() before generate()")
        state = self._episode.env.state
        explain = state_explanation(state, self._episode.prompt_style) if self._episode.cot else None
        if self._episode.mode == "grounding":
            question = asked_question(messages)
            if question not in self._questions:
                raise ValueError(f"OracleBackend: not a grounding question of this problem: {question!r}")
            name, args = self._questions[question]
            return yes_no_reply(state.holds(name, *args), explain)
        return plan_reply(self._remaining_plan(state), explain)

    def _remaining_plan(self, state: BlocksWorldState) -> list[MoveBlock]:
        if state in self._plan_states:
            index = self._plan_states.index(state)
            return self._plan[index:]
        plan = find_plan(state, self._episode.env.problem.goal) or []
        self._plan, self._plan_states = plan, [state]
        for action in plan:
            self._plan_states.append(self._plan_states[-1].step(action)[0])
        return plan


class RandomBackend:
    """Seeded random replies: fair yes/no coin flips, and one random ``moveblock`` over the letters and
    column labels the planning prompt lists (so some moves name absent blocks). Scores near chance."""

    needs_image = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._mode: Mode = "grounding"

    def begin_episode(self, episode: EpisodeInfo) -> None:
        self._rng = np.random.default_rng([self.seed, episode.seed])
        self._mode = episode.mode

    def generate(self, image: Image.Image | None, messages: Messages) -> str:
        if self._mode == "grounding":
            return yes_no_reply(bool(self._rng.integers(2)))
        block = str(self._rng.choice(list(BLOCK_COLORS)))
        column = f"c{int(self._rng.integers(1, 6))}"
        return plan_reply([MoveBlock(block, column)])


@dataclass
class GenerationConfig:
    """Decoding settings for ``DreamVLBackend``; greedy as ViPlan (temperature 0).

    ViPlan's own wrappers allow 1024 (grounding) / 3000 (planning) new tokens with early stopping; a
    diffusion model decodes a fixed canvas, so the default here is shorter. Dream-VL's settings for ViPlan
    are not published.
    """

    max_new_tokens: int = 64
    steps: int | None = None  # diffusion steps; None = one token per step
    alg: str = "entropy"
    device: str | None = None
    dtype: str | None = None


class DreamVLBackend:
    """Any ``DreamVL`` checkpoint with its ``DreamVLProcessor``; renders the state image.

    Diffusion decoding (``diffusion_generate``, temperature 0) for bidirectional checkpoints and
    ``ar_generate`` when ``model.config.attention == "causal"`` (the AR control), through
    :func:`dreamvlx.inference.generate_tokens`. Prompts are rendered the way dreamvlx renders its training data
    (:func:`dreamvlx.inference.build_prompt_batch`), not with the Hub chat template.
    """

    needs_image = True

    def __init__(self, path: str, generation: GenerationConfig | None = None) -> None:
        from dreamvlx.inference import load_dream_vl

        self.generation = generation or GenerationConfig()
        self.model, self.processor = load_dream_vl(path, self.generation.dtype, self.generation.device)
        self.device = self.model.device

    def generate(self, image: Image.Image | None, messages: Messages) -> str:
        return self.generate_batch([image], [messages])[0]

    def generate_batch(
        self, images: Sequence[Image.Image | None], messages_list: Sequence[Messages]
    ) -> list[str]:
        """Replies for several queries in one left-padded batch (generation appends after the prompt)."""
        replies, _, _ = self._decode(images, messages_list, history=False)
        return replies

    def generate_with_history(
        self, image: Image.Image, messages: Messages
    ) -> tuple[str, list[str], list[int]]:
        """One reply with its denoising history: (reply, generated token strings, step that committed each).

        For the AR control every token is its own step (``0, 1, 2, ...``).
        """
        replies, tokens, steps = self._decode([image], [messages], history=True)
        return replies[0], tokens, steps

    def _decode(
        self, images: Sequence[Image.Image | None], messages_list: Sequence[Messages], history: bool
    ) -> tuple[list[str], list[str], list[int]]:
        from dreamvlx.inference import build_prompt_batch, generate_tokens, reply_text, token_texts

        if any(image is None for image in images):
            raise ValueError("DreamVLBackend needs the rendered state image for every query")
        inputs = build_prompt_batch(self.processor, [[image] for image in images], messages_list, self.device)
        output = generate_tokens(
            self.model,
            inputs,
            history=history,
            max_new_tokens=self.generation.max_new_tokens,
            steps=self.generation.steps or self.generation.max_new_tokens,
            temperature=0.0,
            alg=self.generation.alg,
        )
        tokenizer = self.processor.tokenizer
        replies = [reply_text(tokenizer, row) for row in output.tokens.tolist()]
        if output.steps is None:
            return replies, [], []
        return replies, token_texts(tokenizer, output.tokens[0].tolist()), output.steps[0].tolist()


@dataclass(frozen=True)
class BackendSpec:
    """Picklable recipe for a backend (each worker process builds its own)."""

    model: str  # "oracle", "random" or a DreamVL checkpoint folder
    seed: int = 1
    generation: GenerationConfig | None = None


def make_backend(spec: BackendSpec) -> VLMBackend:
    """Build the backend a spec names."""
    if spec.model == "oracle":
        return OracleBackend()
    if spec.model == "random":
        return RandomBackend(spec.seed)
    return DreamVLBackend(spec.model, spec.generation)
