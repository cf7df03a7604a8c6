"""LLaVA-format conversation datasets and their collator (spec dream-vl.md sections 5.1-5.3).

A dataset file is a JSON list (or JSON-lines file) of samples
``{"id": ..., "image": "rel/path.png" | [paths] | absent, "conversations": [{"from": "human", ...}, ...]}``
(an optional ``"system"`` field replaces the default system message; a ``"video": "rel/clip.mp4"`` field
instead of ``"image"`` gives a video sample, read from ``video_folder``: LLaVA-OneVision's frames, one per second
or ``frames_upbound`` uniformly spaced ones (:func:`dreamvlx.data.video_clips.training_frame_indices`),
processed as one video of grid ``t = frames / 2`` and inserted at the ``<image>`` placeholder, spec §5.1),
or an index ``{"shards": ["shard-00000.json" | {"file": "shard-00000.json"}, ...]}`` whose shards are such
lists (paths relative to the index; images relative to ``image_folder``). Images are read from ``image_folder``. Each sample becomes ``input_ids``/``labels`` [L] through
:func:`dreamvlx.processing.conversation.build_training_sequence`, with every ``<image>`` expanded to its
``t*h*w/4`` image-pad tokens, plus ``pixel_values`` [patches, 1176] and ``image_grid_thw`` [n_images, 3].

Padding (``padding`` argument; one stage, since image tokens are already in the ids):
- ``"official"``: right-pad ``input_ids`` and ``labels`` with the pad id and attend to everything
  (``attention_mask`` all ones): trailing pads are supervised, maskable targets, which is how Dream-VL
  learns to fill unused canvas slots with ``<|endoftext|>`` at generation time.
- ``"ignore"``: right-pad ``input_ids`` with the pad id, ``labels`` with -100, ``attention_mask`` 0 there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image

from dreamvlx.data.video_clips import choose_frames, probe_video, read_frames
from dreamvlx.processing.conversation import IGNORE_INDEX, IMAGE_PLACEHOLDER, build_training_sequence
from dreamvlx.processing.image import Video, VisualInput
from dreamvlx.processing.processor import DreamVLProcessor


def load_samples(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON list, a JSON-lines file, or a shard index; errors name the file and the sample."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training data {path} does not exist")
    try:
        if path.suffix == ".jsonl":
            data: Any = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        else:
            data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "shards" in data:
        samples: list[dict[str, Any]] = []
        for shard in data["shards"]:  # a file name, or {"file": name, ...} as dreamvlx data viplan writes
            samples.extend(load_samples(path.parent / (shard["file"] if isinstance(shard, dict) else shard)))
        return samples
    if not isinstance(data, list):
        raise ValueError(
            f"{path}: expected a list of samples or {{'shards': [...]}}, got {type(data).__name__}"
        )
    for k, sample in enumerate(data):
        if not isinstance(sample, dict) or "conversations" not in sample:
            raise ValueError(f"{path}: sample #{k} has no 'conversations' field")
    return data


def _image_paths(sample: dict[str, Any]) -> list[str]:
    image = sample.get("image")
    if image is None:
        return []
    return [image] if isinstance(image, str) else list(image)


def _video_path(sample: dict[str, Any]) -> str | None:
    video = sample.get("video")
    if video is not None and not isinstance(video, str):
        raise ValueError(f"'video' must be one file path, got {video!r}")
    return video


class ConversationDataset:
    """Map-style dataset of tokenised LLaVA conversations with their images or video."""

    def __init__(
        self,
        samples: Sequence[dict[str, Any]],
        processor: DreamVLProcessor,
        image_folder: str | Path = "",
        prompt_version: Literal["qwen_2_5", "plain"] = "qwen_2_5",
        max_length: int = 8192,
        *,
        video_folder: str | Path | None = None,
        video_fps: float = 1.0,
        frames_upbound: int = 10,
    ) -> None:
        self.samples = list(samples)
        self.processor = processor
        self.image_folder = Path(image_folder)
        self.video_folder = self.image_folder if video_folder is None else Path(video_folder)
        self.video_fps = video_fps
        self.frames_upbound = frames_upbound
        self.prompt_version = prompt_version
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.samples)

    def _sample_id(self, index: int) -> str:
        return str(self.samples[index].get("id", f"#{index}"))

    def _open_image(self, rel: str, index: int) -> Image.Image:
        path = self.image_folder / rel
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except FileNotFoundError:
            raise FileNotFoundError(f"sample {self._sample_id(index)}: image {path} does not exist") from None
        except OSError as exc:
            raise ValueError(f"sample {self._sample_id(index)}: cannot read image {path}: {exc}") from None

    def _video_frames(self, index: int) -> tuple[Path, list[int], tuple[int, int]] | None:
        """The sample's video file, the frames taken from it and their ``(height, width)``; None without video."""
        sample_id = self._sample_id(index)
        try:
            rel = _video_path(self.samples[index])
            if rel is None:
                return None
            if "image" in self.samples[index]:
                raise ValueError("has both 'image' and 'video'; give one of them")
            path = self.video_folder / rel
            info = probe_video(path)
            frames = choose_frames(info, "train", self.frames_upbound, self.video_fps)
        except (FileNotFoundError, ValueError) as exc:
            raise type(exc)(f"sample {sample_id}: {exc}") from None
        return path, frames, (info.height, info.width)

    def image_token_counts(self, index: int) -> list[int]:
        """LLM tokens of each image (or of the video) of sample ``index``, from the file headers only (no decoding)."""
        image_processor = self.processor.image_processor
        video = self._video_frames(index)
        if video is not None:
            _, frames, (height, width) = video
            return [image_processor.num_tokens(height, width, len(frames))]
        counts = []
        for rel in _image_paths(self.samples[index]):
            path = self.image_folder / rel
            try:
                with Image.open(path) as img:
                    width, height = img.size
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"sample {self._sample_id(index)}: image {path} does not exist"
                ) from None
            counts.append(image_processor.num_tokens(height, width))
        return counts

    def _visual_inputs(self, index: int) -> list[VisualInput]:
        """The sample's images, or its video as one :class:`Video`, in placeholder order."""
        video = self._video_frames(index)
        if video is None:
            return [self._open_image(rel, index) for rel in _image_paths(self.samples[index])]
        path, frames, _ = video
        try:
            return [Video(read_frames(path, frames))]
        except (FileNotFoundError, ValueError) as exc:
            raise type(exc)(f"sample {self._sample_id(index)}: {exc}") from None

    def lengths(self) -> list[int]:
        """Sequence length of every sample (tokenises the text; reads only image headers)."""
        return [len(self._tokenise(i, self.image_token_counts(i)).input_ids) for i in range(len(self))]

    def _tokenise(self, index: int, counts: Sequence[int]) -> Any:
        sample = self.samples[index]
        conversation = sample["conversations"]
        n_placeholders = sum(turn["value"].count(IMAGE_PLACEHOLDER) for turn in conversation)
        if n_placeholders != len(counts):
            raise ValueError(
                f"sample {self._sample_id(index)}: {n_placeholders} {IMAGE_PLACEHOLDER} placeholders "
                f"but {len(counts)} images (a video counts as one)"
            )
        try:
            return build_training_sequence(
                conversation, self.processor.tokenizer, counts, self.prompt_version, sample.get("system")
            )
        except ValueError as exc:
            raise ValueError(f"sample {self._sample_id(index)}: {exc}") from None

    def __getitem__(self, index: int) -> dict[str, Any]:
        images = self._visual_inputs(index)
        item: dict[str, Any] = {}
        counts: list[int] = []
        if images:
            batch = self.processor.image_processor(images)
            item["pixel_values"] = torch.as_tensor(batch.pixel_values)
            item["image_grid_thw"] = torch.as_tensor(batch.image_grid_thw)
            counts = [
                self.processor.image_processor.num_image_tokens(g) for g in batch.image_grid_thw.tolist()
            ]
        seq = self._tokenise(index, counts)
        if len(seq.input_ids) > self.max_length:
            raise ValueError(
                f"sample {self._sample_id(index)} has {len(seq.input_ids)} tokens, more than "
                f"data.max_length={self.max_length}"
            )
        item["input_ids"] = seq.input_ids
        item["labels"] = seq.labels
        return item


class ConversationCollator:
    """Pads a list of samples into a batch (see the module docstring for the two padding policies)."""

    def __init__(self, pad_token_id: int, padding: Literal["official", "ignore"] = "official") -> None:
        if padding not in ("official", "ignore"):
            raise ValueError(f"padding must be 'official' or 'ignore', got {padding!r}")
        self.pad_token_id = pad_token_id
        self.padding = padding

    def __call__(self, samples: list[dict[str, Any]], indices: Sequence[int]) -> dict[str, Any]:
        length = max(len(s["input_ids"]) for s in samples)
        batch_size = len(samples)
        input_ids = torch.full((batch_size, length), self.pad_token_id, dtype=torch.long)
        label_pad = self.pad_token_id if self.padding == "official" else IGNORE_INDEX
        labels = torch.full((batch_size, length), label_pad, dtype=torch.long)
        attention_mask = torch.ones((batch_size, length), dtype=torch.long)
        for row, sample in enumerate(samples):
            n = len(sample["input_ids"])
            input_ids[row, :n] = sample["input_ids"]
            labels[row, :n] = sample["labels"]
            if self.padding == "ignore":
                attention_mask[row, n:] = 0
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention_mask,
            "indices": list(indices),
        }
        with_images = [s for s in samples if "pixel_values" in s]
        if with_images:
            batch["pixel_values"] = torch.cat([s["pixel_values"] for s in with_images])
            batch["image_grid_thw"] = torch.cat([s["image_grid_thw"] for s in with_images])
        return batch
