"""Video clips for Dream-VL inputs: probe a file, choose frames the official way, decode them into a ``Video``.

Two frame-sampling rules exist in the official code (spec dream-vl.md §5.1 and §6):

- ``"train"`` (LLaVA-OneVision training, ``video_fps = 1``, ``frames_upbound = 10``): every
  ``round(fps / video_fps)``-th frame from frame 0; when that gives more than ``max_frames`` frames,
  ``linspace(0, n - 1, max_frames)`` (integer) instead;
- ``"eval"`` (lmms-eval ``dream_vl``, ``max_num_frames = 32``): ``linspace(0, n - 1, min(max_frames, n))``
  (integer), plus the last frame if it is missing.

Either can give an odd frame count; the image processor completes it with the last frame (see
:mod:`dreamvlx.processing.image`). Files are read with PyAV: a first pass counts the frames from the container's
packets (nothing is decoded), a second decodes the chosen frames, seeking to the key frame before each one
that lies far ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np

from dreamvlx.processing.image import Video

FrameSampling = Literal["train", "eval"]
DEFAULT_MAX_FRAMES: dict[str, int] = {"train": 10, "eval": 32}


@dataclass(frozen=True)
class VideoInfo:
    """What a file holds: frame count, average frame rate (frames per second), frame height and width."""

    num_frames: int
    fps: float
    height: int
    width: int


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count (from the first video stream's packets, no decoding), rate and size of a video file.

    Raises FileNotFoundError for a missing file, ValueError for a file without a readable video stream.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            count = sum(1 for packet in container.demux(stream) if packet.size > 0)
            rate = stream.average_rate or stream.guessed_rate
            info = VideoInfo(count, float(rate) if rate else 0.0, stream.height, stream.width)
    except av.error.FFmpegError as exc:
        raise ValueError(f"{path}: cannot read video ({exc})") from None
    if info.num_frames == 0:
        raise ValueError(f"{path}: the video stream has no frames")
    return info


def training_frame_indices(
    num_frames: int, fps: float, video_fps: float = 1.0, max_frames: int = DEFAULT_MAX_FRAMES["train"]
) -> list[int]:
    """LLaVA-OneVision's rule: one frame every ``round(fps / video_fps)`` (at least 1) from frame 0, or
    ``max_frames`` uniformly spaced frames (``linspace``, integer) when the first rule gives more."""
    _check_counts(num_frames, max_frames)
    if video_fps <= 0:
        raise ValueError(f"video_fps must be positive, got {video_fps}")
    step = max(1, round(fps / video_fps))
    indices = list(range(0, num_frames, step))
    if len(indices) > max_frames:
        indices = np.linspace(0, num_frames - 1, max_frames, dtype=int).tolist()
    return indices


def eval_frame_indices(num_frames: int, max_frames: int = DEFAULT_MAX_FRAMES["eval"]) -> list[int]:
    """lmms-eval's rule: ``linspace(0, n - 1, min(max_frames, n))`` (integer), the last frame appended if absent."""
    _check_counts(num_frames, max_frames)
    indices = np.linspace(0, num_frames - 1, min(max_frames, num_frames), dtype=int).tolist()
    if num_frames - 1 not in indices:
        indices.append(num_frames - 1)
    return indices


def _check_counts(num_frames: int, max_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")


SEEK_GAP = 32  # frames: a wanted frame further ahead than this is reached by seeking, nearer by decoding on


def read_frames(path: str | Path, indices: Sequence[int]) -> np.ndarray:
    """Frames ``[len(indices), H, W, 3]`` uint8 RGB at the given frame indices (presentation order), in the order
    given.

    Frame ``k`` is the one with the k-th smallest presentation time among the stream's packets (read without
    decoding, so variable frame rates and B-frames are handled). A wanted frame more than ``SEEK_GAP`` frames
    ahead of the last decoded one is reached by seeking to the key frame before it, so a few frames of a long
    video cost a few GOPs of decoding, not the whole file. Raises FileNotFoundError for a missing file and
    ValueError for an undecodable file or an index past its end.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    if len(indices) == 0:
        raise ValueError(f"{path}: no frame indices requested")
    if min(indices) < 0:
        raise ValueError(f"{path}: frame indices must be >= 0, got {min(indices)}")
    found: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            packet_times = [p.pts for p in container.demux(stream) if p.size > 0]
            if None in packet_times:  # no presentation times to seek by (a raw stream): decode in order
                return _decode_in_order(path, indices)
            times = sorted(packet_times)
            past_end = sorted({i for i in indices if i >= len(times)})
            if past_end:
                raise ValueError(f"{path}: has {len(times)} frames; no frame {past_end[:5]}")
            index_of = {pts: k for k, pts in enumerate(times)}
            decoded, last = None, None
            for wanted in sorted(set(indices)):
                if decoded is None or last is None or wanted - last > SEEK_GAP:
                    container.seek(times[wanted], stream=stream, backward=True, any_frame=False)
                    decoded = container.decode(stream)
                for frame in decoded:
                    last = index_of.get(frame.pts, last)
                    if last == wanted and frame.pts == times[wanted]:
                        found[wanted] = frame.to_ndarray(format="rgb24")
                        break
                    if last is not None and last > wanted:
                        break
    except av.error.FFmpegError as exc:
        raise ValueError(f"{path}: cannot decode video ({exc})") from None
    missing = sorted(set(indices) - found.keys())
    if missing:
        raise ValueError(f"{path}: could not decode frame(s) {missing[:5]}")
    return np.stack([found[i] for i in indices])


def _decode_in_order(path: Path, indices: Sequence[int]) -> np.ndarray:
    """Frames at ``indices`` counting decoded frames from the start (streams without presentation times)."""
    wanted: set[int] = set(indices)
    found: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                found[index] = frame.to_ndarray(format="rgb24")
            if index >= max(wanted):
                break
    missing = sorted(wanted - found.keys())
    if missing:
        raise ValueError(f"{path}: has {len(found)} of the requested frames; no frame {missing[:5]}")
    return np.stack([found[i] for i in indices])


def choose_frames(
    info: VideoInfo, sampling: FrameSampling = "eval", max_frames: int | None = None, video_fps: float = 1.0
) -> list[int]:
    """The frame indices ``sampling`` (``"train"`` or ``"eval"``, module docstring) takes from a file described
    by ``info``; ``max_frames`` defaults to the official 10 (train) or 32 (eval); ``video_fps`` is read by the
    training rule only."""
    if sampling not in DEFAULT_MAX_FRAMES:
        raise ValueError(f"frame sampling must be one of {sorted(DEFAULT_MAX_FRAMES)}, got {sampling!r}")
    limit = DEFAULT_MAX_FRAMES[sampling] if max_frames is None else max_frames
    if sampling == "train":
        return training_frame_indices(info.num_frames, info.fps, video_fps, limit)
    return eval_frame_indices(info.num_frames, limit)


def load_video(
    path: str | Path,
    sampling: FrameSampling = "eval",
    max_frames: int | None = None,
    video_fps: float = 1.0,
) -> Video:
    """A :class:`Video` of the frames :func:`choose_frames` takes from the file."""
    return Video(read_frames(path, choose_frames(probe_video(path), sampling, max_frames, video_fps)))
