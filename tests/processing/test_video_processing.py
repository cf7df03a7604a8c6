"""Videos in the image processor and the processor: the spec's shape vector, frame layout in the patch rows,
odd frame counts, one shared resize, ``<|video_pad|>`` expansion and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamvlx.processing import PIXEL_BUDGETS, DreamVLImageProcessor, DreamVLProcessor, ImageProcessorConfig
from dreamvlx.processing.image import Video


def make_processor() -> DreamVLImageProcessor:
    min_pixels, max_pixels = PIXEL_BUDGETS["hub"]
    return DreamVLImageProcessor(ImageProcessorConfig(min_pixels=min_pixels, max_pixels=max_pixels))


def frames(count: int, height: int = 56, width: int = 56, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)


def unpatchify(
    rows: np.ndarray, grid: tuple[int, int, int], temporal: int = 2, patch: int = 14
) -> np.ndarray:
    """Invert the documented row / column layout: rows [t*h*w, 3*temporal*patch*patch] -> frames [t*temporal,
    3, h*patch, w*patch] (rows t-major, 2x2 merge blocks in raster order; columns channel, temporal, py, px)."""
    t, h, w = grid
    blocks = rows.reshape(t, h // 2, w // 2, 2, 2, 3, temporal, patch, patch)
    # (t, bh, bw, mh, mw, c, tp, py, px) -> (t, tp, c, bh, mh, py, bw, mw, px)
    return blocks.transpose(0, 6, 5, 1, 3, 7, 2, 4, 8).reshape(t * temporal, 3, h * patch, w * patch)


def test_four_frame_video_gives_the_spec_shapes_and_frames_in_time_order() -> None:
    """Spec §2.2 [verified]: a 4-frame 56x56 video -> grid [2, 4, 4], pixel_values [32, 1176] (8 LLM tokens)."""
    processor = make_processor()
    clip = frames(4)
    rows, grid = processor.preprocess_video(Video(clip))
    assert grid == (2, 4, 4) and rows.shape == (32, 1176) and rows.dtype == np.float32
    assert processor.num_image_tokens(grid) == 8 == processor.num_tokens(56, 56, num_frames=4)
    expected = np.stack([processor.resize_and_normalize(frame) for frame in clip])
    np.testing.assert_array_equal(unpatchify(rows, grid), expected)


def test_an_image_is_a_one_frame_video_and_odd_counts_repeat_the_last_frame() -> None:
    processor = make_processor()
    clip = frames(3, seed=1)
    image_rows, image_grid = processor.preprocess_image(clip[0])
    for one_frame in (Video([clip[0]]), Video(clip[:1]), Video([clip[0], clip[0]])):
        rows, grid = processor.preprocess_video(one_frame)
        assert grid == image_grid == (1, 4, 4)
        np.testing.assert_array_equal(rows, image_rows)
    odd_rows, odd_grid = processor.preprocess_video(Video(clip))
    even_rows, even_grid = processor.preprocess_video(Video([*clip, clip[2]]))
    assert odd_grid == even_grid == (2, 4, 4)
    np.testing.assert_array_equal(odd_rows, even_rows)
    assert processor.num_tokens(56, 56, num_frames=3) == 8


def test_every_frame_takes_the_first_frames_size() -> None:
    processor = make_processor()
    first, second = frames(1, 56, 84, seed=2)[0], frames(1, 112, 112, seed=3)[0]
    rows, grid = processor.preprocess_video(Video([first, second]))
    assert grid == (1, 4, 6)
    restored = unpatchify(rows, grid)
    np.testing.assert_array_equal(restored[1], processor.resize_and_normalize(second, (56, 84)))


def test_images_and_videos_mix_in_one_call_in_order() -> None:
    processor = make_processor()
    image, clip = frames(1, 56, 84, seed=4)[0], frames(4, seed=5)
    batch = processor([image, Video(clip), image])
    assert batch.image_grid_thw.tolist() == [[1, 4, 6], [2, 4, 4], [1, 4, 6]]
    np.testing.assert_array_equal(batch.pixel_values[24:56], processor.preprocess_video(Video(clip))[0])


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Video([]), ValueError, "at least one frame"),
        (lambda: Video(np.zeros((8, 8, 3), np.uint8)), ValueError, r"\[F, H, W, 3\]"),
        (lambda: Video("clip.mp4"), TypeError, "sequence of frames"),
        (
            lambda: make_processor()([Video([frames(1)[0], np.zeros((56, 56, 3), np.float32)])]),
            ValueError,
            "video 0: frame 1: .*uint8",
        ),
        (lambda: make_processor().process_videos([]), ValueError, "no videos"),
    ],
)
def test_bad_videos_raise(make, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def video_prompt(processor: DreamVLProcessor, parts: list[str], question: str) -> str:
    content = [{"type": part} for part in parts] + [{"type": "text", "text": question}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def test_processor_expands_video_pads_and_returns_video_keys(processor: DreamVLProcessor) -> None:
    ids = processor.tokenizer.special_ids
    texts = [
        video_prompt(processor, ["video", "image"], "What changes?"),
        video_prompt(processor, ["video"], "Hi"),
    ]
    clips = [frames(4, seed=6), [frame for frame in frames(3, 56, 84, seed=7)]]
    image = frames(1, seed=8)[0]
    out = processor(text=texts, images=[image], videos=clips, padding=True)
    assert set(out) == {
        "input_ids",
        "attention_mask",
        "pixel_values",
        "image_grid_thw",
        "pixel_values_videos",
        "video_grid_thw",
    }
    assert out["video_grid_thw"].tolist() == [[2, 4, 4], [2, 4, 6]]
    assert out["pixel_values_videos"].shape == (32 + 48, 1176)
    assert out["image_grid_thw"].tolist() == [[1, 4, 4]]
    assert (out["input_ids"] == ids.video_pad).sum(dim=1).tolist() == [8, 12]
    assert (out["input_ids"] == ids.image_pad).sum(dim=1).tolist() == [4, 0]
    video_only = processor(text=texts[1], videos=[clips[1]])
    assert set(video_only) == {"input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw"}
    assert torch.equal(video_only["pixel_values_videos"], out["pixel_values_videos"][32:])
    decoded = processor.decode(video_only["input_ids"][0])
    assert decoded == texts[1].replace("<|video_pad|>", "<|video_pad|>" * 12)


def test_processor_video_count_mismatch_names_the_problem(processor: DreamVLProcessor) -> None:
    text = video_prompt(processor, ["video", "video"], "Same?")
    with pytest.raises(ValueError, match=r"2 <\|video_pad\|> placeholders but 1 videos"):
        processor(text=text, videos=[frames(2)])
    with pytest.raises(ValueError, match=r"2 <\|video_pad\|> placeholders but 0 videos"):
        processor(text=text)
