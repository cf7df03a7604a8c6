"""Video clips for Dream-VL: the official frame-sampling rules, frame reading from MP4 files, and video samples of
the LLaVA conversation dataset (one video at the ``<image>`` placeholder, LLaVA-OneVision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dreamvlx.data.conversations import ConversationDataset
from dreamvlx.data.video import VideoEncoder, pick_video_codec
from dreamvlx.data.video_clips import (
    choose_frames,
    eval_frame_indices,
    load_video,
    probe_video,
    read_frames,
    training_frame_indices,
)
from dreamvlx.processing import (
    DreamVLImageProcessor,
    DreamVLProcessor,
    ImageProcessorConfig,
    build_small_tokenizer,
    build_training_sequence,
)
from dreamvlx.processing.image import Video


def frame_value(index: int) -> int:
    """The grey level of frame ``index`` of the test clips: far enough apart to survive lossy coding."""
    return 10 + 20 * index


def write_clip(path: Path, num_frames: int, fps: int = 4, height: int = 56, width: int = 84) -> Path:
    encoder = VideoEncoder(path, fps, width, height, pick_video_codec())
    encoder.append(
        np.stack([np.full((height, width, 3), frame_value(k), np.uint8) for k in range(num_frames)])
    )
    encoder.close()
    return path


def test_training_rule_is_one_frame_per_second_or_a_uniform_upbound() -> None:
    assert training_frame_indices(95, fps=30.0) == [0, 30, 60, 90]
    assert training_frame_indices(900, fps=30.0) == np.linspace(0, 899, 10, dtype=int).tolist()
    assert training_frame_indices(7, fps=4.0, video_fps=2.0) == [0, 2, 4, 6]
    assert training_frame_indices(3, fps=0.2) == [0, 1, 2]  # slower than video_fps: every frame
    with pytest.raises(ValueError, match="video_fps must be positive"):
        training_frame_indices(10, fps=30.0, video_fps=0.0)


def test_eval_rule_is_uniform_with_the_last_frame() -> None:
    assert eval_frame_indices(5) == [0, 1, 2, 3, 4]
    indices = eval_frame_indices(100)
    assert len(indices) == 32 and indices[0] == 0 and indices[-1] == 99 and indices == sorted(set(indices))
    assert eval_frame_indices(10, max_frames=3) == [0, 4, 9]
    for bad in ((0, 32), (10, 0)):
        with pytest.raises(ValueError, match="at least"):
            eval_frame_indices(*bad)


def test_probe_and_read_frames_of_an_mp4(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", num_frames=11)
    info = probe_video(path)
    assert (info.num_frames, info.height, info.width) == (11, 56, 84) and info.fps == pytest.approx(4.0)
    picked = read_frames(path, [7, 0, 10])
    assert picked.shape == (3, 56, 84, 3) and picked.dtype == np.uint8
    np.testing.assert_allclose(picked.mean(axis=(1, 2, 3)), [frame_value(k) for k in (7, 0, 10)], atol=4)
    assert choose_frames(info, "train") == [0, 4, 8]
    assert choose_frames(info, "eval", max_frames=4) == [0, 3, 6, 10]
    clip = load_video(path, "train")
    assert isinstance(clip, Video) and len(clip.frames) == 3
    with pytest.raises(ValueError, match=r"no frame \[11\]"):
        read_frames(path, [3, 11])
    with pytest.raises(FileNotFoundError, match=r"missing\.mp4"):
        probe_video(tmp_path / "missing.mp4")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match=r"broken\.mp4"):
        probe_video(tmp_path / "broken.mp4")
    with pytest.raises(ValueError, match="frame sampling must be one of"):
        load_video(path, "uniform")


def video_dataset(tmp_path: Path, samples: list[dict]) -> ConversationDataset:
    tokenizer = build_small_tokenizer(["What happens? It gets brighter.", "red"], 300)
    images = DreamVLImageProcessor(ImageProcessorConfig(min_pixels=56 * 56, max_pixels=56 * 84))
    return ConversationDataset(
        samples, DreamVLProcessor(images, tokenizer), tmp_path / "images", video_folder=tmp_path / "videos"
    )


def test_a_video_sample_is_one_clip_at_the_image_placeholder(tmp_path: Path) -> None:
    """LLaVA-OneVision: frames at one per second (11 frames at 4 fps -> frames 0, 4, 8), padded to an even count,
    processed as one video of grid t = 2, its 2 * (4 * 6) / 4 = 12 tokens at ``<image>``."""
    write_clip(tmp_path / "videos" / "clip.mp4", num_frames=11)
    turns = [
        {"from": "human", "value": "What happens?\n<image>"},
        {"from": "gpt", "value": "It gets brighter."},
    ]
    dataset = video_dataset(tmp_path, [{"id": "v0", "video": "clip.mp4", "conversations": turns}])
    item = dataset[0]
    assert item["image_grid_thw"].tolist() == [[2, 4, 6]]
    expected = build_training_sequence(turns, dataset.processor.tokenizer, [12], "qwen_2_5")
    assert item["input_ids"].tolist() == list(expected.input_ids)
    assert item["labels"].tolist() == list(expected.labels)
    assert dataset.lengths() == [len(expected.input_ids)]  # from the file header, equal to the decoded count
    frames = read_frames(tmp_path / "videos" / "clip.mp4", [0, 4, 8, 8])
    rows, _ = dataset.processor.image_processor.preprocess_video(Video(frames))
    np.testing.assert_array_equal(item["pixel_values"].numpy(), rows)


@pytest.mark.parametrize(
    ("sample", "error", "message"),
    [
        ({"video": "missing.mp4"}, FileNotFoundError, "sample bad: video file not found: .*missing.mp4"),
        ({"video": "clip.mp4", "image": "a.png"}, ValueError, "sample bad: has both 'image' and 'video'"),
        ({"video": ["clip.mp4"]}, ValueError, "sample bad: 'video' must be one file path"),
    ],
)
def test_bad_video_samples_name_the_sample(
    tmp_path: Path, sample: dict, error: type[Exception], message: str
) -> None:
    write_clip(tmp_path / "videos" / "clip.mp4", num_frames=3)
    turns = [{"from": "human", "value": "<image>\nWhat happens?"}, {"from": "gpt", "value": "red"}]
    dataset = video_dataset(tmp_path, [{"id": "bad", **sample, "conversations": turns}])
    with pytest.raises(error, match=message):
        dataset[0]
    with pytest.raises(error, match=message):
        dataset.lengths()


def frame_code(frame: np.ndarray) -> int:
    """The index a :func:`coded_frames` frame carries in its three channel levels (base 12)."""
    r, g, b = (round((float(frame[..., c].mean()) - 10) / 20) for c in range(3))
    return r + 12 * g + 144 * b


def coded_frames(count: int) -> np.ndarray:
    """Flat frames whose channel levels spell their own index (up to 12**3 frames, 20 grey levels apart)."""
    frames = np.zeros((count, 56, 84, 3), np.uint8)
    for k in range(count):
        for channel, digit in enumerate((k % 12, k // 12 % 12, k // 144)):
            frames[k, ..., channel] = 10 + 20 * digit
    return frames


def test_far_frames_are_reached_by_seeking_through_b_frames(tmp_path: Path) -> None:
    """300 frames in GOPs of 60 with B-frames (decode order differs from presentation order): any frames, in any
    order, far apart or adjacent, are the frames of those indices."""
    import av

    path = tmp_path / "long.mp4"
    encoder = VideoEncoder(path, 30, 84, 56, pick_video_codec(), gop_size=60)
    encoder.append(coded_frames(300))
    encoder.close()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [packet.pts for packet in container.demux(stream) if packet.size > 0]
    assert times != sorted(times) or pick_video_codec() != "libx264"  # B-frames reorder the packets
    wanted = [299, 0, 5, 6, 150, 151, 100, 37, 298, 12, 0]
    assert [frame_code(f) for f in read_frames(path, wanted)] == wanted
    assert [frame_code(f) for f in read_frames(path, list(range(300)))] == list(range(300))
    assert [frame_code(f) for f in load_video(path, "eval").frames] == eval_frame_indices(300)


def test_a_raw_stream_without_timestamps_is_decoded_in_order(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.h264"
    container = av.open(str(path), mode="w", format="h264")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 84, 56, "yuv420p"
    for k, frame in enumerate(coded_frames(12)):
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = k
        container.mux(stream.encode(video_frame))
    container.mux(stream.encode())
    container.close()
    assert probe_video(path).num_frames == 12
    assert [frame_code(f) for f in read_frames(path, [11, 0, 7])] == [11, 0, 7]
    with pytest.raises(ValueError, match=r"no frame \[12\]"):
        read_frames(path, [3, 12])
