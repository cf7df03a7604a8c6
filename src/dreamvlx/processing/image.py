"""Dream-VL image processor: resize, rescale, normalise and cut images into merge-ordered ViT patches.

NumPy + Pillow only. The pipeline reproduces the official ``DreamVLImageProcessor`` (a Qwen2-VL image processor
with a modified ``smart_resize``), spec dream-vl.md §2.1–2.3:

1. convert to RGB (PIL ``.convert("RGB")``: alpha is dropped, not composited), uint8 ``[H, W, 3]``;
2. ``smart_resize`` to multiples of ``patch_size * merge_size`` (28) within ``[min_pixels, max_pixels]``;
3. resize with PIL bicubic **on the uint8 image** (as ``transformers`` does for uint8 input), back to uint8;
4. rescale: float64 ``x * rescale_factor`` cast to float32; normalise ``(x - mean) / std`` in float32 (CLIP stats);
5. the single frame is tiled to ``temporal_patch_size`` (2) frames;
6. patches of ``[C, temporal, patch, patch]`` (1176 values) in rows ordered t-major, then 2x2 merge blocks in
   raster order, the 4 patches of a block consecutive (``(mh, mw)`` raster) — the order the patch merger expects.

Output of one image: ``pixel_values`` float32 ``[t*h*w, C*temporal*patch*patch]`` and grid ``(t, h, w)`` in patches
(``t = 1`` for an image); it becomes ``t*h*w / merge_size**2`` LLM tokens.

Videos (:class:`Video`, F frames) take the same steps with every frame resized to the size ``smart_resize`` gives
the **first** frame (as the official processor), frames stacked in time and cut into ``t = ceil(F / 2)`` temporal
patches. An odd frame count is completed by repeating the last frame: the official processor crashes on odd
counts above one (spec §7 bug 13) while LLaVA-OneVision training repeats the last frame, and a single image is
exactly a one-frame video (its frame tiled). A video's grid is ``(t, h, w)`` with ``t >= 1``; the vision tower
attends within each temporal patch group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
MAX_ASPECT_RATIO = 200

# (min_pixels, max_pixels) used by the different official code paths (spec dream-vl.md §2.3, dream-vla.md §1.3).
PIXEL_BUDGETS: dict[str, tuple[int, int]] = {
    "class_default": (56 * 56, 28 * 28 * 1280),  # DreamVLImageProcessor() without a config file
    "hub": (56 * 56, 4096 * 28 * 28),  # preprocessor_config.json shipped with Dream-org/Dream-VL-7B
    "train": (512 * 28 * 28, 4096 * 28 * 28),  # LLaVA training tower: 512..4096 visual tokens per image
    "lmms_eval": (256 * 28 * 28, 16384 * 28 * 28),  # lmms-eval `dream_vl` overrides
    "vla": (64 * 28 * 28, 4096 * 28 * 28),  # Dream-VLA fine-tuning: min_pixels = 64 patches * 28 * 28
}

ImageInput = Image.Image | np.ndarray


@dataclass(frozen=True, eq=False)
class Video:
    """A clip: ``frames`` in time order, each a PIL image or uint8 ``[H, W, 3]`` (a uint8 array ``[F, H, W, 3]``
    is split into its frames). At least one frame."""

    frames: Sequence[ImageInput]

    def __post_init__(self) -> None:
        frames = self.frames
        if isinstance(frames, np.ndarray):
            if frames.ndim != 4:
                raise ValueError(
                    f"a video array must have shape [F, H, W, 3], got shape {tuple(frames.shape)}"
                )
            frames = list(frames)
        elif isinstance(frames, (Image.Image, str, bytes)) or not isinstance(frames, Sequence):
            raise TypeError(
                f"a video is a sequence of frames or a uint8 array [F, H, W, 3], got {type(frames).__name__}"
            )
        if len(frames) == 0:
            raise ValueError("a video needs at least one frame")
        object.__setattr__(self, "frames", tuple(frames))


VisualInput = ImageInput | Video


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """Target ``(height, width)``, both multiples of ``factor``, with ``min_pixels <= h*w <= max_pixels``.

    The Dream-VL variant (spec §2.1): a side shorter than ``factor`` is upscaled to ``factor`` (keeping the aspect
    ratio, Python banker's rounding) instead of raising, and the 200:1 aspect-ratio check is applied only to images
    that were not upscaled. Sides are rounded to the nearest multiple of ``factor``; if the area then exceeds
    ``max_pixels`` (or falls below ``min_pixels``) both sides are scaled by one factor and floored (ceiled).

    Raises ValueError for non-positive sizes, an aspect ratio above 200, or a budget that leaves a side at zero
    (an extremely elongated tiny image, where the official code would silently return a zero side).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
    if height < factor or width < factor:
        if height < width:
            height, width = factor, round(width / height * factor)
        else:
            height, width = round(height / width * factor), factor
    elif max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be at most {MAX_ASPECT_RATIO}, got {max(height, width) / min(height, width):.1f} "
            f"for an image of height {height} and width {width}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    if h_bar == 0 or w_bar == 0:
        raise ValueError(
            f"an image of height {height} and width {width} cannot fit max_pixels={max_pixels} with sides that are "
            f"multiples of {factor}; its aspect ratio is too extreme"
        )
    return h_bar, w_bar


@dataclass
class ImageProcessorConfig:
    """The fields of ``preprocessor_config.json`` that define the computation (names as in the official file)."""

    min_pixels: int = PIXEL_BUDGETS["class_default"][0]
    max_pixels: int = PIXEL_BUDGETS["class_default"][1]
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    rescale_factor: float = 1 / 255
    image_mean: list[float] = field(default_factory=lambda: list(OPENAI_CLIP_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(OPENAI_CLIP_STD))

    def __post_init__(self) -> None:
        for name in ("min_pixels", "max_pixels", "patch_size", "temporal_patch_size", "merge_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) must not exceed max_pixels ({self.max_pixels})")
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError(
                f"image_mean and image_std need 3 values, got {self.image_mean} and {self.image_std}"
            )
        if any(s <= 0 for s in self.image_std):
            raise ValueError(f"image_std must be positive, got {self.image_std}")

    @property
    def factor(self) -> int:
        """Side multiple of resized images: one merge block of patches, in pixels (28)."""
        return self.patch_size * self.merge_size

    @property
    def patch_dim(self) -> int:
        """Values per patch row of ``pixel_values``: ``3 * temporal * patch * patch`` (1176)."""
        return 3 * self.temporal_patch_size * self.patch_size**2

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageProcessorConfig:
        """Read an official ``preprocessor_config.json`` dict; keys that do not define the computation are ignored.

        min/max pixels fall back to the ``size`` dict (``shortest_edge`` / ``longest_edge``) when absent, as in
        transformers. Flags that would change the pipeline (``do_resize`` etc. false, a non-bicubic ``resample``)
        are rejected rather than silently ignored.
        """
        for flag in ("do_resize", "do_rescale", "do_normalize", "do_convert_rgb"):
            if data.get(flag, True) is not True:
                raise ValueError(
                    f"preprocessor config sets {flag}={data[flag]!r}; only the official pipeline (true) is supported"
                )
        if data.get("resample", 3) != 3:
            raise ValueError(
                f"preprocessor config sets resample={data['resample']!r}; only bicubic (3) is supported"
            )
        size = data.get("size") or {}
        kwargs: dict[str, Any] = {
            "min_pixels": data.get("min_pixels", size.get("shortest_edge")),
            "max_pixels": data.get("max_pixels", size.get("longest_edge")),
        }
        for name in (
            "patch_size",
            "temporal_patch_size",
            "merge_size",
            "rescale_factor",
            "image_mean",
            "image_std",
        ):
            kwargs[name] = data.get(name)
        return cls(**{k: v for k, v in kwargs.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """The ``preprocessor_config.json`` content, readable by transformers' Qwen2-VL image processor too."""
        return {
            **asdict(self),
            "do_resize": True,
            "do_rescale": True,
            "do_normalize": True,
            "do_convert_rgb": True,
            "resample": 3,
            "size": {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels},
            "image_processor_type": "Qwen2VLImageProcessor",
        }


@dataclass
class ImageBatch:
    """Processed images (or videos): ``pixel_values`` float32 ``[sum of patches, patch_dim]``, grids
    ``image_grid_thw`` int64 ``[N, 3]`` (the ``video_grid_thw`` of videos processed for ``<|video_pad|>``)."""

    pixel_values: np.ndarray
    image_grid_thw: np.ndarray


def to_rgb_array(image: ImageInput) -> np.ndarray:
    """Validate one input image and return it as uint8 ``[H, W, 3]``.

    Accepts a PIL image (any mode; converted with ``.convert("RGB")``) or a uint8 NumPy array ``[H, W, 3]``
    (channels last). Anything else raises ValueError/TypeError naming the problem.
    """
    if isinstance(image, Image.Image):
        array = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    elif isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            problem = (
                " and contains NaN or infinite values"
                if array.dtype.kind == "f" and not np.isfinite(array).all()
                else ""
            )
            raise ValueError(
                f"image arrays must be uint8 [H, W, 3] with values 0..255; got dtype {array.dtype}{problem}. "
                "Convert first, e.g. (x * 255).round().clip(0, 255).astype(np.uint8) for floats in [0, 1]."
            )
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(
                f"image arrays must have shape [H, W, 3] (RGB, channels last); got shape {tuple(array.shape)}"
            )
    else:
        raise TypeError(
            f"expected a PIL.Image.Image or a uint8 numpy array [H, W, 3], got {type(image).__name__}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image is empty: shape {tuple(array.shape)}")
    return array


def patchify(
    frames: np.ndarray, patch_size: int, temporal_patch_size: int, merge_size: int
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Cut normalised frames ``[F, 3, H, W]`` into patch rows ``[t*h*w, 3*temporal*patch*patch]`` and grid ``(t, h, w)``.

    ``F`` must be a multiple of ``temporal_patch_size`` and ``H``, ``W`` multiples of ``patch_size * merge_size``.
    Row order: t-major, then merge blocks in raster order, then the ``merge_size**2`` patches of a block in raster
    order. Column order: channel, temporal, py, px (the Conv3d weight layout of the patch embedding).
    """
    num_frames, channels, height, width = frames.shape
    grid_t = num_frames // temporal_patch_size
    grid_h, grid_w = height // patch_size, width // patch_size
    blocks = frames.reshape(
        grid_t, temporal_patch_size, channels,
        grid_h // merge_size, merge_size, patch_size,
        grid_w // merge_size, merge_size, patch_size,
    )  # fmt: skip
    # (t, tp, c, bh, mh, py, bw, mw, px) -> (t, bh, bw, mh, mw, c, tp, py, px)
    blocks = blocks.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    rows = blocks.reshape(grid_t * grid_h * grid_w, channels * temporal_patch_size * patch_size * patch_size)
    return rows, (grid_t, grid_h, grid_w)


class DreamVLImageProcessor:
    """Images -> ``pixel_values`` ``[sum of patches, 1176]`` float32 and ``image_grid_thw`` ``[N, 3]`` int64."""

    def __init__(self, config: ImageProcessorConfig | None = None) -> None:
        self.config = config or ImageProcessorConfig()

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """The resized ``(height, width)`` for an input of that size (``smart_resize`` with this config)."""
        cfg = self.config
        return smart_resize(
            height, width, factor=cfg.factor, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels
        )

    def num_tokens(self, height: int, width: int, num_frames: int = 1) -> int:
        """LLM tokens of an image (``num_frames = 1``) or a video of that size, without decoding any pixels."""
        new_h, new_w = self.target_size(height, width)
        grid_t = -(-num_frames // self.config.temporal_patch_size)
        patch = self.config.patch_size
        return self.num_image_tokens((grid_t, new_h // patch, new_w // patch))

    def resize_and_normalize(self, image: ImageInput, size: tuple[int, int] | None = None) -> np.ndarray:
        """One image -> resized, rescaled and normalised float32 ``[3, H', W']``; ``(H', W') = size``, by default
        ``target_size`` of the image."""
        cfg = self.config
        array = to_rgb_array(image)
        new_h, new_w = size or self.target_size(array.shape[0], array.shape[1])
        resized = np.asarray(Image.fromarray(array).resize((new_w, new_h), resample=Image.Resampling.BICUBIC))
        scaled = (resized.astype(np.float64) * cfg.rescale_factor).astype(np.float32)
        mean = np.asarray(cfg.image_mean, dtype=np.float32)
        std = np.asarray(cfg.image_std, dtype=np.float32)
        return ((scaled - mean) / std).transpose(2, 0, 1)

    def preprocess_video(self, video: Video) -> tuple[np.ndarray, tuple[int, int, int]]:
        """One video of F frames -> patch rows float32 ``[t*h*w, 1176]`` and grid ``(t, h, w)``, ``t = ceil(F / 2)``.

        Every frame is resized to the first frame's target size; an odd count is completed with the last frame.
        """
        cfg = self.config
        size: tuple[int, int] | None = None
        frames = []
        for index, frame in enumerate(video.frames):
            try:
                array = to_rgb_array(frame)
                size = size or self.target_size(array.shape[0], array.shape[1])
                frames.append(self.resize_and_normalize(array, size))
            except (TypeError, ValueError) as err:
                if len(video.frames) == 1:  # an image: no frame index to name
                    raise
                raise type(err)(f"frame {index}: {err}") from err
        frames += [frames[-1]] * (-len(frames) % cfg.temporal_patch_size)
        return patchify(np.stack(frames), cfg.patch_size, cfg.temporal_patch_size, cfg.merge_size)

    def preprocess_image(self, image: ImageInput) -> tuple[np.ndarray, tuple[int, int, int]]:
        """One image -> patch rows float32 ``[h*w, 1176]`` and grid ``(1, h, w)``: a one-frame video (the frame
        tiled in time)."""
        return self.preprocess_video(Video([image]))

    def num_image_tokens(self, grid_thw: Sequence[int]) -> int:
        """LLM tokens of one image or video with grid ``(t, h, w)``: ``t*h*w / merge_size**2``."""
        t, h, w = (int(x) for x in grid_thw)
        return t * h * w // self.config.merge_size**2

    def __call__(self, images: VisualInput | Sequence[VisualInput]) -> ImageBatch:
        """Process images and videos (:class:`Video` items) in order; their patch rows are concatenated
        (``pixel_values``) and grids stacked."""
        if isinstance(images, (Image.Image, np.ndarray, Video)):
            images = [images]
        if len(images) == 0:
            raise ValueError("no images given")
        rows, grids = [], []
        for index, item in enumerate(images):
            try:
                if isinstance(item, Video):
                    item_rows, grid = self.preprocess_video(item)
                else:
                    item_rows, grid = self.preprocess_image(item)
            except (TypeError, ValueError) as err:
                kind = "video" if isinstance(item, Video) else "image"
                raise type(err)(f"{kind} {index}: {err}") from err
            rows.append(item_rows)
            grids.append(grid)
        return ImageBatch(np.concatenate(rows, axis=0), np.asarray(grids, dtype=np.int64))

    def process_videos(self, videos: Video | Sequence[Any]) -> ImageBatch:
        """Videos for the ``<|video_pad|>`` stream: each a :class:`Video`, a sequence of frames or a uint8 array
        ``[F, H, W, 3]``; the grids are ``video_grid_thw``."""
        if isinstance(videos, (Video, np.ndarray)):
            videos = [videos]
        if len(videos) == 0:
            raise ValueError("no videos given")
        return self([item if isinstance(item, Video) else Video(item) for item in videos])
