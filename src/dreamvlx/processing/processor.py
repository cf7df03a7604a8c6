"""``DreamVLProcessor``: image processor + tokenizer + chat template, as the official processor (spec §2.4).

``processor(text=[...], images=[...])`` expands every ``<|image_pad|>`` placeholder of the texts (walked in batch
order) into ``t*h*w/4`` copies for the next image, tokenises without adding BOS/EOS and pads. Output (``"pt"``):

- ``input_ids`` int64 ``[B, L]`` and ``attention_mask`` int64 ``[B, L]`` (1 = token, 0 = padding);
- ``pixel_values`` float32 ``[sum of patches, 1176]`` and ``image_grid_thw`` int64 ``[N_images, 3]``
  (only when images are given; all images of all samples concatenated in order);
- ``pixel_values_videos`` / ``video_grid_thw`` alike for ``videos=`` (each ``<|video_pad|>`` expanded into
  ``t*h*w/4`` copies for the next video).

Padding side: the tokenizer's ``padding_side`` (the official default is ``"right"``, as used in training);
pass ``padding_side="left"`` for batched generation (the official processor silently ignores that argument,
here it is honoured).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamvlx.processing.chat import DREAM_VL_CHAT_TEMPLATE, IMAGE_PAD, VIDEO_PAD, Message, render_chat
from dreamvlx.processing.image import DreamVLImageProcessor, ImageInput, ImageProcessorConfig
from dreamvlx.processing.tokenizer import DreamTokenizer

PREPROCESSOR_CONFIG = "preprocessor_config.json"
CHAT_TEMPLATE_FILE = "chat_template.json"


def _group_images(images: Any, num_texts: int) -> tuple[list[ImageInput], list[int] | None]:
    """Flatten ``images`` (one image, a flat list, or one list per text) and, if nested, give per-text counts."""
    if images is None:
        return [], None
    if not isinstance(images, (list, tuple)):
        return [images], None
    nested = [isinstance(item, (list, tuple)) for item in images]
    if not any(nested):
        return list(images), None
    if not all(nested):
        raise ValueError(
            "images must be a flat list of images or one list of images per text, not a mix of both"
        )
    if len(images) != num_texts:
        raise ValueError(
            f"got {len(images)} image lists for {num_texts} texts; give one list (possibly empty) per text"
        )
    return [image for group in images for image in group], [len(group) for group in images]


class DreamVLProcessor:
    """Image processor + tokenizer of Dream-VL (see the module docstring for the call contract)."""

    image_token = IMAGE_PAD

    def __init__(self, image_processor: DreamVLImageProcessor, tokenizer: DreamTokenizer) -> None:
        self.image_processor = image_processor
        self.tokenizer = tokenizer

    # ------------------------------------------------------------------------------------------- load/save
    @classmethod
    def from_pretrained(
        cls, directory: str | Path, min_pixels: int | None = None, max_pixels: int | None = None
    ) -> DreamVLProcessor:
        """Load ``preprocessor_config.json`` and the tokenizer files of a checkpoint directory.

        ``min_pixels`` / ``max_pixels`` override the file's values (as lmms-eval does: 200704 / 12845056).
        Raises FileNotFoundError naming the missing file.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"processor directory {directory} does not exist")
        config_path = directory / PREPROCESSOR_CONFIG
        if not config_path.is_file():
            raise FileNotFoundError(f"{PREPROCESSOR_CONFIG} not found in {directory}")
        data = json.loads(config_path.read_text(encoding="utf-8"))
        if min_pixels is not None:
            data["min_pixels"] = min_pixels
        if max_pixels is not None:
            data["max_pixels"] = max_pixels
        image_processor = DreamVLImageProcessor(ImageProcessorConfig.from_dict(data))
        return cls(image_processor, DreamTokenizer.from_pretrained(directory))

    def save_pretrained(self, directory: str | Path) -> None:
        """Write preprocessor_config.json, chat_template.json and the tokenizer files (Hugging Face layout)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.image_processor.config.to_dict()
        (directory / PREPROCESSOR_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        chat = {"chat_template": DREAM_VL_CHAT_TEMPLATE}
        (directory / CHAT_TEMPLATE_FILE).write_text(json.dumps(chat, indent=2) + "\n", encoding="utf-8")
        self.tokenizer.save_pretrained(directory)

    # --------------------------------------------------------------------------------------------- prompts
    def apply_chat_template(
        self, messages: Sequence[Message], add_generation_prompt: bool = False, add_vision_id: bool = False
    ) -> str:
        """The Dream-VL chat text of HF-format ``messages`` (``dreamvlx.processing.chat.render_chat``)."""
        return render_chat(messages, add_generation_prompt=add_generation_prompt, add_vision_id=add_vision_id)

    @staticmethod
    def expand_placeholders(
        texts: Sequence[str], placeholder: str, token_counts: Sequence[int], what: str = "images"
    ) -> list[str]:
        """Replace the k-th ``placeholder`` (``<|image_pad|>`` or ``<|video_pad|>``) of ``texts`` (batch order) by
        ``token_counts[k]`` copies; ``what`` names the inputs in the error when the counts disagree."""
        total = sum(text.count(placeholder) for text in texts)
        if total != len(token_counts):
            raise ValueError(
                f"the texts contain {total} {placeholder} placeholders but {len(token_counts)} {what} were given"
            )
        counts = iter(token_counts)
        expanded = []
        for text in texts:
            pieces = text.split(placeholder)
            out = [pieces[0]]
            for piece in pieces[1:]:
                out.append(placeholder * next(counts))
                out.append(piece)
            expanded.append("".join(out))
        return expanded

    # ------------------------------------------------------------------------------------------------ call
    def __call__(
        self,
        text: str | Sequence[str],
        images: Any = None,
        videos: Any = None,
        padding: bool | str = False,
        max_length: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = "pt",
    ) -> dict[str, Any]:
        """Tokenise chat texts and process their images.

        Args:
            text: one string or a list of B strings, each with one ``<|image_pad|>`` per image.
            images: None, one image, a flat list consumed in order across the batch, or one list per text
                (then each text's placeholder count must match its list). Images: PIL or uint8 ``[H, W, 3]``.
            videos: None, one video, or a flat list of videos consumed in order across the batch by the
                ``<|video_pad|>`` placeholders; a video is a :class:`~dreamvlx.processing.image.Video`, a list of
                frames or a uint8 array ``[F, H, W, 3]``.
            padding: False (all texts must then have the same length for tensors), True / ``"longest"``,
                or ``"max_length"`` (pad to ``max_length``; longer sequences raise, nothing is truncated).
            padding_side: ``"left"`` or ``"right"``; default: the tokenizer's ``padding_side``.
            return_tensors: ``"pt"`` (torch), ``"np"`` or None (lists of ids; images stay NumPy arrays).

        Returns:
            dict with ``input_ids``, ``attention_mask`` ``[B, L]`` and, with images, ``pixel_values``
            ``[sum of patches, 1176]`` float32 and ``image_grid_thw`` ``[N, 3]`` int64; with videos,
            ``pixel_values_videos`` and ``video_grid_thw`` alike (images and videos together give all four keys;
            the official processor returns only the video keys then, spec §7 bug 13).
        """
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("text must be a string or a non-empty list of strings")
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        flat_images, per_text = _group_images(images, len(texts))
        if per_text is not None:
            for index, (t, n) in enumerate(zip(texts, per_text)):
                if t.count(IMAGE_PAD) != n:
                    raise ValueError(
                        f"text {index} has {t.count(IMAGE_PAD)} {IMAGE_PAD} placeholders but {n} images"
                    )
        result: dict[str, Any] = {}
        image_counts: list[int] = []
        video_counts: list[int] = []
        if flat_images:
            batch = self.image_processor(flat_images)
            image_counts = [self.image_processor.num_image_tokens(grid) for grid in batch.image_grid_thw]
            result["pixel_values"], result["image_grid_thw"] = batch.pixel_values, batch.image_grid_thw
        if videos is not None:
            batch = self.image_processor.process_videos(videos)
            video_counts = [self.image_processor.num_image_tokens(grid) for grid in batch.image_grid_thw]
            result["pixel_values_videos"], result["video_grid_thw"] = batch.pixel_values, batch.image_grid_thw
        texts = self.expand_placeholders(texts, IMAGE_PAD, image_counts, "images")
        texts = self.expand_placeholders(texts, VIDEO_PAD, video_counts, "videos")
        ids = self.tokenizer.encode_batch(texts)
        input_ids, attention_mask = self._pad(
            ids, padding, max_length, padding_side or self.tokenizer.padding_side
        )
        if return_tensors is not None and len({len(seq) for seq in input_ids}) > 1:
            lengths = [len(seq) for seq in input_ids]
            raise ValueError(
                f"sequences have different lengths {lengths}; pass padding=True to return tensors"
            )
        result = {"input_ids": input_ids, "attention_mask": attention_mask, **result}
        if return_tensors == "pt":
            result = {key: torch.from_numpy(np.asarray(value)) for key, value in result.items()}
        elif return_tensors == "np":
            result = {key: np.asarray(value) for key, value in result.items()}
        return result

    def _pad(
        self, ids: list[list[int]], padding: bool | str, max_length: int | None, side: str
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Pad id lists with the pad id (``<|endoftext|>``) to a common length; mask 1 on tokens, 0 on pads."""
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
        longest = max(len(seq) for seq in ids)
        if padding is False or padding == "do_not_pad":
            return ids, [[1] * len(seq) for seq in ids]
        if padding is True or padding == "longest":
            target = longest
        elif padding == "max_length":
            if max_length is None:
                raise ValueError("padding='max_length' needs max_length")
            if longest > max_length:
                raise ValueError(
                    f"a sequence has {longest} tokens, more than max_length={max_length} (no truncation)"
                )
            target = max_length
        else:
            raise ValueError(f"padding must be False, True, 'longest' or 'max_length', got {padding!r}")
        pad_id = self.tokenizer.pad_token_id
        padded, masks = [], []
        for seq in ids:
            n = target - len(seq)
            if side == "right":
                padded.append(seq + [pad_id] * n)
                masks.append([1] * len(seq) + [0] * n)
            else:
                padded.append([pad_id] * n + seq)
                masks.append([0] * n + [1] * len(seq))
        return padded, masks

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False) -> list[str]:
        """Decode each row of ``sequences`` ([B, L] tensor/array or lists of ids)."""
        return self.tokenizer.batch_decode(sequences, skip_special_tokens=skip_special_tokens)

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        """Decode one sequence of ids."""
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
