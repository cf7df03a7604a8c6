"""``dreamvlx generate`` on tiny random checkpoints: the reply equals what the model's own generate gives for the
prompt rendered by hand (images first, or at the prompt's ``<image>`` placeholders), history, JSON, AR, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamvlx.cli import main
from dreamvlx.config import DreamVLConfig
from dreamvlx.diffusion.history import commit_steps
from dreamvlx.modeling.dream_vl import DreamVL
from dreamvlx.processing import (
    DreamVLImageProcessor,
    DreamVLProcessor,
    ImageProcessorConfig,
    build_small_tokenizer,
)
from dreamvlx.processing.conversation import build_generation_prompt

SEED = 3
REPR_ENTRY = r"(\d+)=(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"  # position=repr(token)


def _save_checkpoint(folder: Path, attention: str) -> Path:
    tokenizer = build_small_tokenizer(["What colour is the square? It is red, green or blue."] * 5, 260)
    config = DreamVLConfig.tiny(vocab_size=len(tokenizer) - 24 + 32, attention=attention)
    torch.manual_seed(0)
    DreamVL(config).save_pretrained(folder)
    images = DreamVLImageProcessor(ImageProcessorConfig(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16))
    DreamVLProcessor(images, tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def diffusion_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_checkpoint(tmp_path_factory.mktemp("bidirectional"), "bidirectional")


@pytest.fixture(scope="module")
def causal_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_checkpoint(tmp_path_factory.mktemp("causal"), "causal")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for index, colour in enumerate([(220, 30, 30), (30, 60, 220)]):
        pixels = np.full((56, 84, 3), 245, dtype=np.uint8)
        pixels[4:52, 10 + 20 * index : 58 + 20 * index] = colour
        path = folder / f"square{index}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def _hand_prompt(
    folder: Path, value: str, image_paths: list[str], system: str | None = None
) -> tuple[DreamVL, DreamVLProcessor, torch.Tensor, dict[str, torch.Tensor]]:
    """Model, processor, prompt ids [1, L] and image tensors for the LLaVA turn ``value``, built without the CLI."""
    model = DreamVL.from_pretrained(folder)
    processor = DreamVLProcessor.from_pretrained(folder)
    counts, image_inputs = [], {}
    if image_paths:
        batch = processor.image_processor([Image.open(p).convert("RGB") for p in image_paths])
        counts = [processor.image_processor.num_image_tokens(g) for g in batch.image_grid_thw.tolist()]
        image_inputs = {
            "pixel_values": torch.as_tensor(batch.pixel_values),
            "image_grid_thw": torch.as_tensor(batch.image_grid_thw),
        }
    turn = [{"from": "human", "value": value}]
    prompt = build_generation_prompt(turn, processor.tokenizer, counts, system)[None]
    return model, processor, prompt, image_inputs


def _expected_text(processor: DreamVLProcessor, ids: list[int]) -> str:
    text = processor.tokenizer.decode(ids, skip_special_tokens=False)
    return text.split("<|im_end|>")[0].split("<|endoftext|>")[0].strip()


def _run_json(capsys: pytest.CaptureFixture, argv: list[str]) -> dict:
    assert main(["generate", *argv, "--device", "cpu", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


GENERATION = {"max_new_tokens": 6, "steps": 3}
GENERATION_ARGS = ["--max-new-tokens", "6", "--steps", "3", "--seed", str(SEED)]


@pytest.mark.parametrize(
    ("prompt", "n_images", "llava_value"),
    [
        ("What colour is the square?", 0, "What colour is the square?"),
        ("What colour is the square?", 1, "<image>\nWhat colour is the square?"),
        ("Compare", 2, "<image>\n<image>\nCompare"),
        ("Left <image> right <image> which is red?", 2, "Left <image> right <image> which is red?"),
    ],
)
def test_diffusion_reply_equals_diffusion_generate(
    diffusion_checkpoint: Path,
    images: list[str],
    capsys: pytest.CaptureFixture,
    prompt: str,
    n_images: int,
    llava_value: str,
) -> None:
    image_args = [arg for path in images[:n_images] for arg in ("--image", path)]
    argv = ["--model", str(diffusion_checkpoint), "--prompt", prompt, *image_args, *GENERATION_ARGS]
    result = _run_json(capsys, argv)

    model, processor, ids, image_inputs = _hand_prompt(diffusion_checkpoint, llava_value, images[:n_images])
    generator = torch.Generator().manual_seed(SEED)
    expected = model.diffusion_generate(ids, generator=generator, **image_inputs, **GENERATION)
    expected_ids = expected[0, ids.shape[1] :].tolist()  # official defaults: origin, temperature 1, top-k 50
    assert result["token_ids"] == expected_ids
    assert result["text"] == _expected_text(processor, expected_ids)
    assert result["tokens"] == [processor.tokenizer.decode([t]) for t in expected_ids]
    assert "steps" not in result


def test_history_system_and_sampling_options(
    diffusion_checkpoint: Path, images: list[str], capsys: pytest.CaptureFixture
) -> None:
    options = {"alg": "entropy", "temperature": 0.5, "top_p": 0.9, "top_k": None, "alg_temp": 0.2}
    argv = [
        "--model",
        str(diffusion_checkpoint),
        "--prompt",
        "Colour?",
        "--image",
        images[0],
        "--system",
        "Be brief.",
    ]
    argv += [
        *GENERATION_ARGS,
        "--alg",
        "entropy",
        "--temperature",
        "0.5",
        "--top-p",
        "0.9",
        "--top-k",
        "none",
    ]
    argv += ["--alg-temp", "0.2", "--history"]
    result = _run_json(capsys, argv)

    model, _, ids, image_inputs = _hand_prompt(
        diffusion_checkpoint, "<image>\nColour?", images[:1], system="Be brief."
    )
    output = model.diffusion_generate(
        ids,
        generator=torch.Generator().manual_seed(SEED),
        output_history=True,
        return_dict_in_generate=True,
        **image_inputs,
        **GENERATION,
        **options,
    )
    expected_ids = output.sequences[0, ids.shape[1] :].tolist()
    expected_steps = commit_steps(output.history, ids, model.config.mask_token_id)[0, ids.shape[1] :].tolist()
    assert result["token_ids"] == expected_ids and result["steps"] == expected_steps
    assert all(0 <= step < 3 for step in expected_steps)

    # the same run as text: the reply, then one line per step listing the positions it committed
    assert main(["generate", *argv, "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.split("\n")
    header = lines.index("--- denoising history (step: position=token) ---")
    assert "\n".join(lines[:header]) == result["text"]
    committed = {}
    for line in filter(None, lines[header + 1 :]):
        step, entries = line.split(": ", 1)
        for position in re.findall(REPR_ENTRY, entries):
            committed[int(position)] = int(step.removeprefix("step "))
    assert [committed[position] for position in range(6)] == expected_steps


def test_causal_checkpoint_decodes_autoregressively(
    causal_checkpoint: Path, images: list[str], capsys: pytest.CaptureFixture
) -> None:
    argv = ["--model", str(causal_checkpoint), "--prompt", "Colour?", "--image", images[1], "--history"]
    for temperature in ("0", "1.0"):
        result = _run_json(
            capsys, [*argv, "--max-new-tokens", "5", "--seed", str(SEED), "--temperature", temperature]
        )
        model, processor, ids, image_inputs = _hand_prompt(causal_checkpoint, "<image>\nColour?", images[1:])
        sequences = model.ar_generate(
            ids,
            max_new_tokens=5,
            temperature=float(temperature),
            generator=torch.Generator().manual_seed(SEED),
            **image_inputs,
        )
        expected_ids = sequences[0, ids.shape[1] :].tolist()
        assert result["token_ids"] == expected_ids
        assert result["text"] == _expected_text(processor, expected_ids)
        assert result["steps"] == list(range(len(expected_ids)))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--image", "missing.png"], "image file(s) not found: missing.png"),
        (["--video", "missing.mp4"], "video file(s) not found: missing.mp4"),
        (["--video", "{broken}"], "broken.mp4: cannot read video"),
        (["--max-frames", "0"], "--max-frames must be at least 1"),
        (
            ["--prompt", "<image> vs <image>", "--image", "{image}"],
            "has 2 <image> placeholder(s) but 1 --image",
        ),
        (["--prompt", "<image>"], "has 1 <image> placeholder(s) but 0 --image"),
        (["--alg", "greedy"], "argument --alg: invalid choice: 'greedy'"),
        (["--steps", "0"], "steps must be >= 1"),
        (["--model", "no/such/folder"], "checkpoint directory not found"),
    ],
)
def test_errors_name_the_problem(
    diffusion_checkpoint: Path,
    images: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    extra: list[str],
    message: str,
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    extra = [arg.replace("{image}", images[0]).replace("{broken}", str(broken)) for arg in extra]
    argv = [
        "generate",
        "--model",
        str(diffusion_checkpoint),
        "--prompt",
        "Colour?",
        *extra,
        "--device",
        "cpu",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_video_and_image_in_command_line_order(
    diffusion_checkpoint: Path, images: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``--video`` then ``--image``: both at the front in that order; the video is the lmms-eval frame choice
    (``--max-frames 3`` of 7 frames: 0, 3, 6), processed as one clip of grid t = 2 at ``<image>``."""
    from dreamvlx.data.video import VideoEncoder, pick_video_codec
    from dreamvlx.data.video_clips import read_frames
    from dreamvlx.processing.image import Video

    clip = tmp_path / "moving.mp4"
    encoder = VideoEncoder(clip, 2, 84, 56, pick_video_codec())
    frames = np.full((7, 56, 84, 3), 245, dtype=np.uint8)
    for k in range(7):
        frames[k, 8:48, 5 * k : 5 * k + 40] = (220, 30, 30)
    encoder.append(frames)
    encoder.close()
    argv = ["--model", str(diffusion_checkpoint), "--prompt", "Where does it go?", "--video", str(clip)]
    result = _run_json(capsys, [*argv, "--image", images[1], "--max-frames", "3", *GENERATION_ARGS])

    model = DreamVL.from_pretrained(diffusion_checkpoint)
    processor = DreamVLProcessor.from_pretrained(diffusion_checkpoint)
    visuals = [Video(read_frames(clip, [0, 3, 6])), Image.open(images[1]).convert("RGB")]
    batch = processor.image_processor(visuals)
    assert batch.image_grid_thw[0, 0] == 2
    counts = [processor.image_processor.num_image_tokens(g) for g in batch.image_grid_thw.tolist()]
    turn = [{"from": "human", "value": "<image>\n<image>\nWhere does it go?"}]
    ids = build_generation_prompt(turn, processor.tokenizer, counts)[None]
    expected = model.diffusion_generate(
        ids,
        pixel_values=torch.as_tensor(batch.pixel_values),
        image_grid_thw=torch.as_tensor(batch.image_grid_thw),
        generator=torch.Generator().manual_seed(SEED),
        **GENERATION,
    )
    assert result["token_ids"] == expected[0, ids.shape[1] :].tolist()
