"""The LLaVA conversation dataset: a sample's ``"system"`` field reaches the training sequence."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from dreamvlx.data.conversations import ConversationDataset
from dreamvlx.processing import (
    DEFAULT_SYSTEM_MESSAGE,
    DreamVLImageProcessor,
    DreamVLProcessor,
    ImageProcessorConfig,
    build_small_tokenizer,
    build_training_sequence,
)


def test_system_field_replaces_the_default_system_message(tmp_path: Path) -> None:
    Image.new("RGB", (56, 56), (200, 30, 30)).save(tmp_path / "red.png")
    turns = [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "red"}]
    samples = [
        {"id": "with", "image": "red.png", "system": "Goal: stack the red block", "conversations": turns},
        {"id": "without", "image": "red.png", "conversations": turns},
    ]
    tokenizer = build_small_tokenizer(["Goal: stack the red block", "red", DEFAULT_SYSTEM_MESSAGE], 300)
    images = DreamVLImageProcessor(ImageProcessorConfig(min_pixels=56 * 56, max_pixels=56 * 56))
    dataset = ConversationDataset(samples, DreamVLProcessor(images, tokenizer), tmp_path)
    for index, system in ((0, "Goal: stack the red block"), (1, None)):
        expected = build_training_sequence(turns, tokenizer, [4], "qwen_2_5", system)
        item = dataset[index]
        assert item["input_ids"].tolist() == list(expected.input_ids)
        assert item["labels"].tolist() == list(expected.labels)
        assert dataset.lengths()[index] == len(expected.input_ids)
    text = tokenizer.decode(dataset[0]["input_ids"].tolist())
    assert "Goal: stack the red block" in text and DEFAULT_SYSTEM_MESSAGE not in text
    assert DEFAULT_SYSTEM_MESSAGE in tokenizer.decode(dataset[1]["input_ids"].tolist())
