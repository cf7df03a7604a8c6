"""Dream-VL inference shared by the ViPlan model backend and ``dreamvlx generate``.

- :func:`load_dream_vl`: a checkpoint folder or Hub id -> ``(DreamVL, DreamVLProcessor)`` on a device;
- :func:`build_prompt_batch`: chat messages and their images -> a left-padded prompt batch, rendered the way
  dreamvlx renders its training data (``chat_to_llava`` + ``build_generation_prompt``), not with the Hub chat
  template: an official checkpoint was trained on LLaVA-rendered data too. Each ``<image>`` placeholder (an
  ``{"type": "image"}`` or ``{"type": "video"}`` part, or the literal ``<image>`` in string content) becomes the
  pad tokens of the next image or video (:class:`~dreamvlx.processing.image.Video`) of its query, as
  LLaVA-OneVision trains on videos; a turn with exactly one image has it moved to its front, followed by ``"\\n"`` (LLaVA);
- :func:`generate_tokens`: masked-diffusion decoding (``DreamVL.diffusion_generate``) for bidirectional
  checkpoints, autoregressive decoding (``DreamVL.ar_generate``) for causal ones (the AR control), optionally with
  the step that produced each token;
- :func:`generate_in_sections`: diffusion decoding one reply section at a time, each after the sections
  before it (the inference side of the trainer's given-prefix samples);
- :func:`reply_text` / :func:`token_texts`: decoded replies (cut at the first stop string, the official
  post-processing) and per-token strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dreamvlx.diffusion.config import DEFAULT_NEW_TOKENS
from dreamvlx.diffusion.history import commit_steps
from dreamvlx.modeling.checkpoint import resolve_checkpoint_dir
from dreamvlx.modeling.dream_vl import DreamVL
from dreamvlx.processing.conversation import build_generation_prompt, chat_to_llava, ends_of
from dreamvlx.processing.image import VisualInput
from dreamvlx.processing.processor import DreamVLProcessor
from dreamvlx.processing.tokenizer import DreamTokenizer

# the official post-processing cuts a generation at the first of these (lmms-eval: `until` plus <|im_end|>)
STOP_STRINGS = ("<|im_end|>", "<|endoftext|>")


def resolve_device(device: str | None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when available, else CPU; anything else as ``torch.device`` reads it."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_dream_vl(
    path_or_hub_id: str | Path, dtype: str | torch.dtype | None = None, device: str | None = None
) -> tuple[DreamVL, DreamVLProcessor]:
    """The model (eval mode, on ``resolve_device(device)``, in ``dtype`` or the stored dtype) and its processor.

    Raises ``FileNotFoundError`` / ``OSError`` naming the folder or Hub id that could not be found.
    """
    directory = resolve_checkpoint_dir(path_or_hub_id)
    model = DreamVL.from_pretrained(directory, dtype=dtype, device=resolve_device(device))
    return model.eval(), DreamVLProcessor.from_pretrained(directory)


def build_prompt_batch(
    processor: DreamVLProcessor,
    images: Sequence[Sequence[VisualInput]],
    messages_list: Sequence[Sequence[Mapping[str, Any]]],
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Left-padded prompts of B queries, each ending with ``<|im_start|>assistant\\n``.

    Args:
        processor: the checkpoint's processor (image pipeline and tokenizer).
        images: one sequence of images and videos (``Video``) per query (possibly empty), in the order of its
            placeholders.
        messages_list: B chat conversations (``role`` / ``content``, see :func:`chat_to_llava`), each ending
            with a user message.
        device: where the tensors go (default CPU).

    Returns:
        ``input_ids`` and ``attention_mask`` int64 ``[B, L]`` (left padding with ``<|endoftext|>``, mask 0), and,
        when any query has images, ``pixel_values`` ``[sum of patches, 1176]`` and ``image_grid_thw`` ``[N, 3]``
        (all images of all queries in order).
    """
    if len(images) != len(messages_list):
        raise ValueError(f"got {len(images)} image lists for {len(messages_list)} conversations")
    result: dict[str, torch.Tensor] = {}
    counts: list[int] = []
    flat = [image for query_images in images for image in query_images]
    if flat:
        batch = processor.image_processor(flat)
        counts = [processor.image_processor.num_image_tokens(grid) for grid in batch.image_grid_thw.tolist()]
        result["pixel_values"] = torch.as_tensor(batch.pixel_values)
        result["image_grid_thw"] = torch.as_tensor(batch.image_grid_thw)
    prompts, offset = [], 0
    for query_images, messages in zip(images, messages_list):
        system, turns = chat_to_llava(messages)
        query_counts = counts[offset : offset + len(query_images)]
        prompts.append(build_generation_prompt(turns, processor.tokenizer, query_counts, system))
        offset += len(query_images)
    rows = [torch.as_tensor(prompt, dtype=torch.long) for prompt in prompts]
    result = {**left_padded(rows, processor.tokenizer.special_ids.endoftext), **result}
    return {key: value.to(device) for key, value in result.items()}


@dataclass
class GeneratedTokens:
    """``tokens`` ``[B, N]`` int64: the generated part only (prompt removed). ``steps`` ``[B, N]`` int64 when a
    history was asked for: the denoising step that committed each token (diffusion), or the token's index
    (AR: token k comes from forward k); else None."""

    tokens: torch.Tensor
    steps: torch.Tensor | None = None


def generate_tokens(
    model: DreamVL,
    inputs: Mapping[str, torch.Tensor],
    *,
    history: bool = False,
    generator: torch.Generator | None = None,
    **generation_kwargs: Any,
) -> GeneratedTokens:
    """Decode after the prompts of ``inputs`` (a :func:`build_prompt_batch` result on the model's device).

    Bidirectional checkpoints: ``model.diffusion_generate`` with ``generation_kwargs`` (official names:
    ``max_new_tokens``, ``steps``, ``alg``, ``temperature``, ``top_p``, ``top_k``, ``alg_temp``, ...; omitted ones
    take the official effective defaults). Causal checkpoints: ``model.ar_generate`` with ``max_new_tokens``
    (None or omitted: the official default of 20 new tokens) and ``temperature`` (omitted: greedy); it stops at
    ``<|endoftext|>``; the diffusion-only settings do not apply and are ignored. ``generator`` drives every
    random draw.
    """
    prompt = inputs["input_ids"]
    images = {key: value for key, value in inputs.items() if key != "input_ids"}
    with torch.inference_mode():
        if model.config.is_causal:
            sequences = model.ar_generate(
                prompt,
                **images,
                max_new_tokens=generation_kwargs.get("max_new_tokens") or DEFAULT_NEW_TOKENS,
                temperature=generation_kwargs.get("temperature", 0.0),
                generator=generator,
            )
            tokens = sequences[:, prompt.shape[1] :]
            steps = (
                torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens).clone()
                if history
                else None
            )
            return GeneratedTokens(tokens, steps)
        output = model.diffusion_generate(
            prompt,
            **images,
            generator=generator,
            output_history=history,
            return_dict_in_generate=True,
            **generation_kwargs,
        )
    tokens = output.sequences[:, prompt.shape[1] :]
    steps = None
    if history:
        steps = commit_steps(output.history, prompt, model.config.mask_token_id)[:, prompt.shape[1] :]
    return GeneratedTokens(tokens, steps)


def generate_in_sections(
    model: DreamVL,
    inputs: Mapping[str, torch.Tensor],
    separator_ids: Sequence[int],
    *,
    max_new_tokens: int,
    pad_id: int,
    generator: torch.Generator | None = None,
    **generation_kwargs: Any,
) -> torch.Tensor:
    """Section-by-section decoding: the inference side of the trainer's given-prefix samples
    (``objective.prefix_prob``, ``docs/design.md``), which train a reply's later sections with the earlier ones
    given clean.

    Each round decodes the whole remaining reply after every row's prompt and what it has committed
    (:func:`generate_tokens` with ``generation_kwargs``), commits the new tokens up to and including the first
    occurrence of ``separator_ids``, and starts the next round; a row whose new tokens hold no separator
    commits them all and is done. So every section is decoded with the sections before it given, as they are
    in training, instead of all sections being unmasked together. Open rows with as many committed tokens
    (the same remaining canvas) are decoded together, left-padded with ``pad_id``, so each row gets what it
    would get alone; a reply takes as many rounds as it has sections.

    Args:
        inputs: a :func:`build_prompt_batch` result (``input_ids``, ``attention_mask``, optional images).
        separator_ids: the token ids that end a section (``tokenizer.encode(" ;")`` for the ``" ;"`` the trainer
            cuts at); must be non-empty.
        max_new_tokens: every row's reply length (canvas), as for :func:`generate_tokens`.

    Returns:
        ``[B, max_new_tokens]`` int64: each row's reply (the prompt removed). A causal checkpoint (the AR
        control) already decodes every section after the ones before it: its :func:`generate_tokens` reply
        (shorter when every row ends before ``max_new_tokens``).
    """
    if model.config.is_causal:
        kwargs = {**generation_kwargs, "max_new_tokens": max_new_tokens}
        return generate_tokens(model, inputs, generator=generator, **kwargs).tokens
    separator = list(separator_ids)
    if not separator:
        raise ValueError("generate_in_sections needs a non-empty separator")
    if "pixel_values" in inputs and inputs["input_ids"].shape[0] > 1:
        raise ValueError("generate_in_sections decodes image prompts one query at a time (batch of 1)")
    prompts = [row[mask.bool()] for row, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
    images = {key: value for key, value in inputs.items() if key not in ("input_ids", "attention_mask")}
    committed: list[list[int]] = [[] for _ in prompts]
    open_rows = list(range(len(prompts)))
    while open_rows:
        still_open, groups = [], {}
        for r in open_rows:
            groups.setdefault(len(committed[r]), []).append(r)
        for done, group in groups.items():
            rows = [torch.cat([prompts[r], prompts[r].new_tensor(committed[r])]) for r in group]
            new = generate_tokens(
                model,
                {**left_padded(rows, pad_id), **images},
                generator=generator,
                max_new_tokens=max_new_tokens - done,
                **generation_kwargs,
            ).tokens
            for r, tokens in zip(group, new.tolist()):
                ends = ends_of(tokens, separator)
                committed[r].extend(tokens[: ends[0]] if ends else tokens)
                if ends and len(committed[r]) < max_new_tokens:
                    still_open.append(r)
        open_rows = still_open
    return torch.tensor(committed, dtype=torch.long)


def left_padded(rows: Sequence[torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` ``[B, L]`` int64 of 1-D token rows, left-padded with ``pad_id``
    (mask 0), on the rows' device."""
    length = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long, device=rows[0].device)
    attention_mask = torch.zeros_like(input_ids)
    for index, row in enumerate(rows):
        input_ids[index, length - len(row) :] = row
        attention_mask[index, length - len(row) :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def reply_text(tokenizer: DreamTokenizer, token_ids: Sequence[int]) -> str:
    """Decoded reply: special tokens kept, cut at the first stop string (``STOP_STRINGS``), stripped. Ids the
    tokenizer has no token for (the model's vocabulary is padded beyond it; a model not fully trained may
    emit them) are skipped, as the Hub tokenizer's ``decode`` skips them."""
    known = [token for token in token_ids if 0 <= token < tokenizer.vocab_size]
    text = tokenizer.decode(known, skip_special_tokens=False)
    for stop in STOP_STRINGS:
        text = text.split(stop)[0]
    return text.strip()


def token_texts(tokenizer: DreamTokenizer, token_ids: Sequence[int]) -> list[str]:
    """Each token decoded on its own (special tokens kept), for showing a denoising history; an id the
    tokenizer has no token for shows as ``<id N>``."""
    return [
        tokenizer.decode([token]) if 0 <= token < tokenizer.vocab_size else f"<id {token}>"
        for token in token_ids
    ]
