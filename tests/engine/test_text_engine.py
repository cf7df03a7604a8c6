"""TextEngine: ``diffusion_generate`` equal to the model's, and confidence-threshold parallel decoding."""

from __future__ import annotations

import pytest
import torch

from dreamvlx.diffusion.generation import dream_shift
from dreamvlx.diffusion.sampling import sample_tokens
from dreamvlx.engine import EngineConfig, TextEngine
from dreamvlx.engine.synthetic import synthetic_config
from dreamvlx.modeling import DreamVL
from dreamvlx.processing import render_chat

NEW = 12


@pytest.fixture
def text_model(engine_processor) -> DreamVL:
    config = synthetic_config(engine_processor.tokenizer, "tiny", "bidirectional")
    config.initializer_range = 0.3
    torch.manual_seed(0)
    return DreamVL(config).eval()


@pytest.fixture
def prompts(engine_processor, observations) -> dict:
    """Two left-padded chat prompts with one image each."""
    images, instructions, _ = observations
    texts = [
        render_chat(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t}]}],
            add_generation_prompt=True,
        )
        for t in instructions[:2]
    ]
    inputs = engine_processor(
        text=texts, images=[[i[0]] for i in images[:2]], padding=True, padding_side="left"
    )
    assert (inputs["attention_mask"] == 0).any()
    return inputs


@pytest.mark.parametrize("alg", ["maskgit_plus", "entropy"])
def test_diffusion_generate_equals_the_models(text_model, prompts, alg) -> None:
    options = {
        "max_new_tokens": NEW,
        "steps": 4,
        "temperature": 0.0,
        "alg": alg,
        "top_k": None,
        "top_p": None,
    }
    expected = text_model.diffusion_generate(**prompts, **options)
    got = TextEngine(text_model, EngineConfig()).diffusion_generate(**prompts, **options)
    assert got.shape == (2, prompts["input_ids"].shape[1] + NEW)
    assert torch.equal(got, expected)


def test_several_generations_per_image_prompt_equal_the_models(text_model, prompts) -> None:
    options = {"max_new_tokens": NEW, "steps": 4, "temperature": 0.7, "num_return_sequences": 2}
    expected = text_model.diffusion_generate(**prompts, generator=torch.Generator().manual_seed(1), **options)
    engine = TextEngine(text_model, EngineConfig())
    got = engine.diffusion_generate(**prompts, generator=torch.Generator().manual_seed(1), **options)
    assert got.shape == (4, prompts["input_ids"].shape[1] + NEW) and torch.equal(got, expected)


def test_diffusion_generate_with_images_and_videos_equals_the_models(
    text_model, engine_processor, observations
) -> None:
    """One prompt with a video (``<|video_pad|>``, two frames of the observation camera) and an image."""
    images, instructions, _ = observations
    text = render_chat(
        [
            {
                "role": "user",
                "content": [{"type": "video"}, {"type": "image"}, {"type": "text", "text": instructions[0]}],
            }
        ],
        add_generation_prompt=True,
    )
    video = [images[0][0], images[1][0], images[2][0]]  # odd count: the last frame is repeated
    inputs = engine_processor(text=text, images=[images[0][0]], videos=[video])
    assert inputs["video_grid_thw"][0, 0] == 2
    options = {"max_new_tokens": NEW, "steps": 4, "temperature": 0.0, "alg": "maskgit_plus"}
    expected = text_model.diffusion_generate(**inputs, **options)
    engine = TextEngine(text_model, EngineConfig())
    assert torch.equal(engine.diffusion_generate(**inputs, **options), expected)
    without_video = {k: v for k, v in inputs.items() if k not in ("pixel_values_videos", "video_grid_thw")}
    with pytest.raises(ValueError, match="hold 8 video-pad tokens but no pixel_values_videos"):
        engine.diffusion_generate(**without_video, **options)


def _first_step_confidence(model: DreamVL, prompts: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain-model confidences / argmax tokens of the new positions on the all-mask canvas, [B, NEW] each."""
    ids = torch.nn.functional.pad(prompts["input_ids"], (0, NEW), value=model.config.mask_token_id)
    mask = torch.nn.functional.pad(prompts["attention_mask"], (0, NEW), value=1)
    positions, _ = model.get_rope_index(ids, prompts["image_grid_thw"], mask)
    with torch.no_grad():
        logits = model(
            ids,
            mask,
            positions,
            pixel_values=prompts["pixel_values"],
            image_grid_thw=prompts["image_grid_thw"],
        ).logits
    new = dream_shift(logits)[:, -NEW:]
    confidence, tokens = sample_tokens(new.reshape(-1, new.shape[-1]))
    return confidence.view(2, NEW), tokens.view(2, NEW)


def test_threshold_decoding_commits_exactly_the_confident_positions(text_model, prompts) -> None:
    confidence, tokens = _first_step_confidence(text_model, prompts)
    threshold = float(confidence.flatten().sort().values[-6])  # a few positions per batch lie above it
    out = TextEngine(text_model, EngineConfig()).threshold_generate(
        **prompts, max_new_tokens=NEW, threshold=threshold, output_history=True
    )
    mask_id = text_model.config.mask_token_id
    committed = out.history[0][:, -NEW:] != mask_id
    expected = confidence > threshold
    expected[torch.arange(2), confidence.argmax(dim=1)] = True  # at least one per row
    assert torch.equal(committed, expected)
    assert torch.equal(out.history[0][:, -NEW:][committed], tokens[committed])
    assert out.commits[0].tolist() == expected.sum(dim=1).tolist()
    assert not (out.sequences[:, -NEW:] == mask_id).any()
    assert out.commits.sum(dim=0).tolist() == [NEW, NEW]
    assert torch.equal(out.sequences[:, :-NEW], prompts["input_ids"])


def test_threshold_one_commits_one_token_per_step(text_model, prompts) -> None:
    out = TextEngine(text_model, EngineConfig()).threshold_generate(
        **prompts, max_new_tokens=NEW, threshold=1.0
    )
    assert out.steps == NEW
    assert (out.commits == 1).all()
    assert not (out.sequences == text_model.config.mask_token_id).any()


def test_threshold_zero_commits_everything_at_once(text_model, prompts) -> None:
    out = TextEngine(text_model, EngineConfig()).threshold_generate(
        **prompts, max_new_tokens=NEW, threshold=0.0
    )
    assert out.steps == 1 and out.commits.tolist() == [[NEW, NEW]]
    _, tokens = _first_step_confidence(text_model, prompts)
    assert torch.equal(out.sequences[:, -NEW:], tokens)


def test_threshold_decoding_rejects_bad_arguments(text_model, prompts) -> None:
    engine = TextEngine(text_model, EngineConfig())
    with pytest.raises(ValueError, match="threshold"):
        engine.threshold_generate(**prompts, max_new_tokens=4, threshold=-0.5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        engine.threshold_generate(**prompts, max_new_tokens=0)
    ids = prompts["input_ids"].clone()
    ids[:, -1] = text_model.config.mask_token_id
    with pytest.raises(ValueError, match="mask token"):
        engine.threshold_generate(**{**prompts, "input_ids": ids}, max_new_tokens=4)
