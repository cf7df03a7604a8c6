"""Sending queries to a backend: rendering on demand, batching, and the query records kept in the logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from dreamvlx.envs.blocksworld.prompts import Messages
from dreamvlx.envs.blocksworld.state import BlocksWorldState
from dreamvlx.evals.viplan.backends import VLMBackend


class ImageSource:
    """The image of a state for the backend: rendered (and cached per state) only when ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._cache: dict[Any, Image.Image] = {}

    def __call__(self, state: BlocksWorldState) -> Image.Image | None:
        if not self.enabled:
            return None
        if state.key not in self._cache:
            from dreamvlx.envs.blocksworld.render import render_state

            self._cache[state.key] = render_state(state).convert("RGB")
        return self._cache[state.key]


def generate(
    backend: VLMBackend, image: Image.Image | None, messages_list: Sequence[Messages], batch_size: int
) -> list[str]:
    """Replies to queries about one image, ``batch_size`` at a time (``generate_batch`` when available)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    batched = getattr(backend, "generate_batch", None)
    replies: list[str] = []
    for start in range(0, len(messages_list), batch_size):
        chunk = list(messages_list[start : start + batch_size])
        if batched is not None:
            out = list(batched([image] * len(chunk), chunk))
            if len(out) != len(chunk):
                raise RuntimeError(f"backend returned {len(out)} replies for {len(chunk)} queries")
            replies += out
        else:
            replies += [backend.generate(image, messages) for messages in chunk]
    return replies


def prompt_record(messages: Messages, with_system: bool = False) -> str:
    """The user turn as logged: its text parts, with ``<image>`` where the image goes; preceded by the
    system turn and a blank line when ``with_system`` (the compact prompts, whose system turn holds the
    goal and history, or the question)."""
    content = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    if not isinstance(content, str):
        content = "\n".join(part["text"] if part["type"] == "text" else "<image>" for part in content)
    return f"{system_prompt(messages)}\n\n{content}" if with_system else content


def system_prompt(messages: Messages) -> str:
    """The system turn (logged once per episode; identical for every query of a mode in the viplan
    prompt style)."""
    return next((m["content"] for m in messages if m["role"] == "system"), "")
