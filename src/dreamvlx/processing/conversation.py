"""Training sequences (input ids + labels) from LLaVA-format conversations, spec dream-vl.md §5.1.

A conversation is ``[{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": "..."}, ...]``;
each ``<image>`` is replaced by ``image_token_counts[k]`` ``<|image_pad|>`` ids (the k-th image's
``t*h*w/4`` LLM tokens, in order of appearance), where the model scatters the image features. This equals the
official LLaVA path (one −200 placeholder replaced by all image features, labels −100) with the ids the HF-format
model consumes. Labels use ``IGNORE_INDEX`` (−100) for unsupervised positions.

``qwen_2_5`` (SFT, ``preprocess_qwen``)::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n
    <|im_start|>user\\n<image>\\n{question}<|im_end|>\\n
    <|im_start|>assistant\\n{answer}<|im_end|>\\n          (turns alternate; no <|endoftext|> appended)

- a turn holding exactly one ``<image>`` not at its start gets it moved to the front followed by ``"\\n"``
  (LLaVA ``preprocess_multimodal``: remove, strip, prepend ``"<image>\\n"``, strip);
- a leading turn that is not from ``human`` is dropped; roles map human -> user, gpt -> assistant;
- the system chunk and each turn are tokenised **separately** (no BPE merge across turn boundaries);
- supervised (label = id): every token of an assistant turn, ``<|im_start|>assistant\\n`` and the trailing
  ``<|im_end|>\\n`` included; **plus, anywhere in the sequence** (system and user turns too), every token whose
  id is ``<|im_start|>``, ``<|im_end|>`` or the single-token ``"\\n"`` (198 officially; a ``"\\n"`` merged into
  another token, e.g. ``".\\n"`` or ``"\\n\\n"``, is not that id);
- never supervised: image pads and every other system/user token.

``plain`` (pretraining, ``preprocess_plain``): exactly two turns, the first must contain ``<image>`` and is
replaced by that single image (its text is discarded); sequence = image pads + tokens of ``caption + "\\n"``
(tokenised together); labels −100 on the image pads, the caption and final ``"\\n"`` supervised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from dreamvlx.processing.chat import DEFAULT_SYSTEM_MESSAGE
from dreamvlx.processing.tokenizer import DreamTokenizer

IGNORE_INDEX = -100
IMAGE_PLACEHOLDER = "<image>"
ROLE_NAMES = {"human": "user", "gpt": "assistant"}


@dataclass
class TrainingSequence:
    """One training sample: ``input_ids`` and ``labels``, both int64 ``[L]`` (labels −100 where unsupervised)."""

    input_ids: torch.Tensor
    labels: torch.Tensor


def move_single_image_to_front(value: str) -> str:
    """LLaVA's rule: one ``<image>`` not at the start is moved to the front, followed by ``"\\n"``."""
    if value.count(IMAGE_PLACEHOLDER) == 1 and not value.startswith(IMAGE_PLACEHOLDER):
        value = value.replace(IMAGE_PLACEHOLDER, "").strip()
        value = (IMAGE_PLACEHOLDER + "\n" + value).strip()
    return value


class _SequenceBuilder:
    """Accumulates ids and labels; ``<image>`` placeholders become runs of image-pad ids labelled −100."""

    def __init__(self, tokenizer: DreamTokenizer, image_token_counts: Sequence[int]) -> None:
        self.tokenizer = tokenizer
        self.image_token_counts = list(image_token_counts)
        self.images_used = 0
        self.ids: list[int] = []
        self.labels: list[int] = []

    def add(self, text: str, supervised: bool) -> None:
        """Tokenise ``text`` as one chunk (split at ``<image>``) and append it, labelled by ``supervised``."""
        pieces = text.split(IMAGE_PLACEHOLDER)
        for index, piece in enumerate(pieces):
            if index > 0:
                self._add_image()
            ids = self.tokenizer.encode(piece)
            self.ids += ids
            self.labels += ids if supervised else [IGNORE_INDEX] * len(ids)

    def _add_image(self) -> None:
        if self.images_used >= len(self.image_token_counts):
            raise ValueError(
                f"the conversation has more {IMAGE_PLACEHOLDER} placeholders than image_token_counts ({len(self.image_token_counts)})"
            )
        count = self.image_token_counts[self.images_used]
        if count <= 0:
            raise ValueError(f"image_token_counts must be positive, got {count} for image {self.images_used}")
        self.ids += [self.tokenizer.special_ids.image_pad] * count
        self.labels += [IGNORE_INDEX] * count
        self.images_used += 1

    def finish(self) -> TrainingSequence:
        if self.images_used != len(self.image_token_counts):
            raise ValueError(
                f"the conversation has {self.images_used} {IMAGE_PLACEHOLDER} placeholders but "
                f"{len(self.image_token_counts)} image_token_counts were given"
            )
        return TrainingSequence(
            torch.tensor(self.ids, dtype=torch.long), torch.tensor(self.labels, dtype=torch.long)
        )


def _validate(conversation: Sequence[Mapping[str, str]]) -> None:
    if not conversation:
        raise ValueError("the conversation is empty")
    for index, turn in enumerate(conversation):
        if not isinstance(turn, Mapping) or "from" not in turn or "value" not in turn:
            raise ValueError(
                f"turn {index} must be a mapping with 'from' and 'value' (LLaVA format), got {turn!r}"
            )
        if turn["from"] not in ROLE_NAMES:
            raise ValueError(
                f"turn {index}: 'from' must be one of {sorted(ROLE_NAMES)}, got {turn['from']!r}"
            )
        if not isinstance(turn["value"], str):
            raise ValueError(f"turn {index}: 'value' must be a string, got {type(turn['value']).__name__}")


def _build_qwen(
    conversation: Sequence[Mapping[str, str]], builder: _SequenceBuilder, system: str | None = None
) -> None:
    turns = list(conversation)
    if turns[0]["from"] != "human":
        turns = turns[1:]
    system_text = DEFAULT_SYSTEM_MESSAGE if system is None else system
    builder.add(f"<|im_start|>system\n{system_text}<|im_end|>\n", supervised=False)
    for turn in turns:
        role = ROLE_NAMES[turn["from"]]
        chunk = f"<|im_start|>{role}\n{move_single_image_to_front(turn['value'])}<|im_end|>\n"
        builder.add(chunk, supervised=role == "assistant")
    special = builder.tokenizer.special_ids
    always_supervised = {special.newline, special.im_start, special.im_end}
    builder.labels = [i if i in always_supervised else label for i, label in zip(builder.ids, builder.labels)]


def _build_plain(conversation: Sequence[Mapping[str, str]], builder: _SequenceBuilder) -> None:
    if len(conversation) != 2:
        raise ValueError(f"the 'plain' (pretraining) form needs exactly 2 turns, got {len(conversation)}")
    if IMAGE_PLACEHOLDER not in conversation[0]["value"]:
        raise ValueError(f"the 'plain' form needs {IMAGE_PLACEHOLDER} in the first turn")
    builder.add(IMAGE_PLACEHOLDER, supervised=False)
    builder.add(conversation[1]["value"] + "\n", supervised=True)


def build_training_sequence(
    conversation: Sequence[Mapping[str, str]],
    tokenizer: DreamTokenizer,
    image_token_counts: Sequence[int] = (),
    version: Literal["qwen_2_5", "plain"] = "qwen_2_5",
    system: str | None = None,
) -> TrainingSequence:
    """Input ids and labels ``[L]`` of one LLaVA-format conversation (see the module docstring for the rules).

    Args:
        conversation: list of ``{"from": "human" | "gpt", "value": str}`` turns.
        tokenizer: the Dream tokenizer (roles resolved from it).
        image_token_counts: LLM tokens of each image in order of its ``<image>`` (``t*h*w/4``; 0 images: empty).
        version: ``"qwen_2_5"`` (SFT) or ``"plain"`` (projector pretraining).
        system: the system message of ``qwen_2_5`` (our extension: a sample's optional ``"system"`` field);
            None gives the official "You are a helpful assistant.".
    """
    _validate(conversation)
    builder = _SequenceBuilder(tokenizer, image_token_counts)
    if version == "qwen_2_5":
        _build_qwen(conversation, builder, system)
    elif version == "plain":
        _build_plain(conversation, builder)
    else:
        raise ValueError(f"version must be 'qwen_2_5' or 'plain', got {version!r}")
    return builder.finish()


def build_generation_prompt(
    conversation: Sequence[Mapping[str, str]],
    tokenizer: DreamTokenizer,
    image_token_counts: Sequence[int] = (),
    system: str | None = None,
) -> torch.Tensor:
    """Prompt ids ``[L]`` for generating the next assistant turn, rendered exactly as training renders it.

    ``conversation`` ends with a ``human`` turn; the result is that conversation's ``qwen_2_5`` training
    sequence followed by ``<|im_start|>assistant\n``. Models trained by dreamvlx on LLaVA data are prompted
    through this function, so the image position (LLaVA moves a single ``<image>`` to the front of its turn,
    followed by ``"\n"``) and the system message are the same at training and at inference.
    """
    if not conversation or conversation[-1].get("from") != "human":
        raise ValueError("a generation prompt needs a conversation that ends with a 'human' turn")
    sequence = build_training_sequence(conversation, tokenizer, image_token_counts, "qwen_2_5", system)
    suffix = tokenizer.encode("<|im_start|>assistant\n")
    return torch.cat([sequence.input_ids, torch.tensor(suffix, dtype=torch.long)])


def chat_to_llava(messages: Sequence[Mapping]) -> tuple[str | None, list[dict[str, str]]]:
    """Hugging Face chat messages -> (system text or None, LLaVA turns).

    User and assistant messages become ``human`` / ``gpt`` turns; text parts of a message are joined with
    ``"\n"`` and each ``{"type": "image"}`` or ``{"type": "video"}`` part becomes an ``<image>`` placeholder at
    its place (LLaVA-OneVision inserts a video's features at ``<image>``, spec §5.1). Training
    data made from chat prompts (the ViPlan generator) and prompting at evaluation both go through this
    function and :func:`build_generation_prompt`, so a model sees the same tokens in both.
    """
    system: str | None = None
    turns: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, Sequence):
            pieces = []
            for part in content:
                if part.get("type") in ("image", "video"):
                    pieces.append(IMAGE_PLACEHOLDER)
                elif part.get("type") == "text":
                    pieces.append(part["text"])
                else:
                    raise ValueError(f"message {index}: unsupported content part {part!r}")
            text = "\n".join(pieces)
        else:
            raise ValueError(f"message {index}: content must be a string or a list of parts")
        if role == "system":
            if turns or system is not None:
                raise ValueError("a system message must come first, and only once")
            system = text
        elif role in ("user", "assistant"):
            turns.append({"from": "human" if role == "user" else "gpt", "value": text})
        else:
            raise ValueError(f"message {index}: unknown role {role!r}")
    return system, turns


def ends_of(token_ids: Sequence[int], pattern: Sequence[int]) -> list[int]:
    """The index right after each occurrence of the non-empty token sequence ``pattern`` in ``token_ids``, in
    order (overlapping occurrences included): where a reply's sections end when ``pattern`` is their
    separator (given-prefix cuts in training, section-by-section decoding)."""
    ids, pattern, width = list(token_ids), list(pattern), len(pattern)
    return [start + width for start in range(len(ids) - width + 1) if ids[start : start + width] == pattern]
