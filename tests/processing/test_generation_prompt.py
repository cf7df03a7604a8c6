"""Generation prompts are rendered exactly like the training sequences (image position, system message)."""

from __future__ import annotations

import pytest
import torch

from dreamvlx.processing.conversation import build_generation_prompt, build_training_sequence, chat_to_llava
from dreamvlx.processing.tokenizer import DreamTokenizer


def test_prompt_is_the_training_prefix(small_tokenizer: DreamTokenizer) -> None:
    human = {"from": "human", "value": "Where is the red block?\n<image>"}
    answer = {"from": "gpt", "value": "In column c2."}
    full = build_training_sequence([human, answer], small_tokenizer, [4], system="You plan.")
    prompt = build_generation_prompt([human], small_tokenizer, [4], system="You plan.")
    assert torch.equal(full.input_ids[: len(prompt)], prompt)
    # the prompt ends where the supervised assistant turn begins, with "<|im_start|>assistant\n"
    assert small_tokenizer.decode(prompt.tolist()).endswith("<|im_end|>\n<|im_start|>assistant\n")
    rendered = small_tokenizer.decode(prompt.tolist())
    assert rendered.startswith("<|im_start|>system\nYou plan.<|im_end|>\n<|im_start|>user\n<|image_pad|>")


def test_default_system_message_and_bad_input(small_tokenizer: DreamTokenizer) -> None:
    prompt = build_generation_prompt([{"from": "human", "value": "hi"}], small_tokenizer)
    assert "You are a helpful assistant." in small_tokenizer.decode(prompt.tolist())
    with pytest.raises(ValueError, match="ends with a 'human' turn"):
        build_generation_prompt([{"from": "gpt", "value": "x"}], small_tokenizer)


def test_chat_to_llava_keeps_the_image_in_place_and_splits_off_the_system_text() -> None:
    messages = [
        {"role": "system", "content": "Plan well."},
        {"role": "user", "content": [{"type": "text", "text": "## Goal\nx"}, {"type": "image"}]},
    ]
    system, turns = chat_to_llava(messages)
    assert system == "Plan well."
    assert turns == [{"from": "human", "value": "## Goal\nx\n<image>"}]
    assert chat_to_llava([{"role": "user", "content": "hi"}]) == (None, [{"from": "human", "value": "hi"}])
    with pytest.raises(ValueError, match="unknown role"):
        chat_to_llava([{"role": "tool", "content": "x"}])
    video = [
        {"type": "video"},
        {"type": "text", "text": "What happens?"},
    ]  # LLaVA-OneVision: a video at <image>
    assert chat_to_llava([{"role": "user", "content": video}]) == (
        None,
        [{"from": "human", "value": "<image>\nWhat happens?"}],
    )
    with pytest.raises(ValueError, match="unsupported content part"):
        chat_to_llava([{"role": "user", "content": [{"type": "audio"}]}])
