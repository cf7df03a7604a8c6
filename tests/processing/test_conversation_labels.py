"""Training sequences of spec §5.1: the SFT (qwen_2_5) and pretraining (plain) forms and their label masks."""

from __future__ import annotations

import pytest
import torch

from dreamvlx.processing import IGNORE_INDEX, DreamTokenizer, build_training_sequence
from dreamvlx.processing.conversation import ends_of, move_single_image_to_front

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
PAD = "<|image_pad|>"


def supervised_text(tokenizer: DreamTokenizer, ids: torch.Tensor, labels: torch.Tensor) -> str:
    keep = labels != IGNORE_INDEX
    assert torch.equal(labels[keep], ids[keep])  # a supervised label is always the token itself
    return tokenizer.decode(ids[keep])


def test_sft_sequence_and_label_rules(small_tokenizer: DreamTokenizer) -> None:
    conversation = [
        {"from": "human", "value": "What colour is it?\n<image>"},
        {"from": "gpt", "value": "Red."},
        {"from": "human", "value": "Sure?"},
        {"from": "gpt", "value": "Yes."},
    ]
    sample = build_training_sequence(conversation, small_tokenizer, image_token_counts=[4])
    assert sample.input_ids.dtype == sample.labels.dtype == torch.long
    assert sample.input_ids.shape == sample.labels.shape
    expected_text = (
        SYSTEM
        + f"<|im_start|>user\n{PAD * 4}\nWhat colour is it?<|im_end|>\n"  # the single <image> moved to the front
        + "<|im_start|>assistant\nRed.<|im_end|>\n"
        + "<|im_start|>user\nSure?<|im_end|>\n"
        + "<|im_start|>assistant\nYes.<|im_end|>\n"
    )
    assert small_tokenizer.decode(sample.input_ids) == expected_text
    # supervised: whole assistant turns; in system/user turns only <|im_start|>, <|im_end|> and single "\n" tokens
    assert supervised_text(small_tokenizer, sample.input_ids, sample.labels) == (
        "<|im_start|>\n<|im_end|>\n"
        + "<|im_start|>\n\n<|im_end|>\n"
        + "<|im_start|>assistant\nRed.<|im_end|>\n"
        + "<|im_start|>\n<|im_end|>\n"
        + "<|im_start|>assistant\nYes.<|im_end|>\n"
    )
    image_positions = sample.input_ids == small_tokenizer.special_ids.image_pad
    assert int(image_positions.sum()) == 4
    assert (sample.labels[image_positions] == IGNORE_INDEX).all()
    assert small_tokenizer.special_ids.endoftext not in sample.input_ids.tolist()  # no EOS appended


def test_merged_newline_tokens_are_not_the_newline_id(small_tokenizer: DreamTokenizer) -> None:
    merged = small_tokenizer.encode(".\n")
    assert len(merged) == 1 and merged != [small_tokenizer.special_ids.newline]  # precondition of this test
    conversation = [{"from": "human", "value": "Look.\nNow"}, {"from": "gpt", "value": "Done.\nOk"}]
    sample = build_training_sequence(conversation, small_tokenizer)
    positions = (sample.input_ids == merged[0]).nonzero().flatten().tolist()
    assert len(positions) == 2
    assert sample.labels[positions[0]] == IGNORE_INDEX  # inside the user turn
    assert sample.labels[positions[1]] == merged[0]  # inside the assistant turn


def test_leading_gpt_turn_is_dropped_and_multi_image_turns_stay(small_tokenizer: DreamTokenizer) -> None:
    conversation = [
        {"from": "gpt", "value": "Ignored greeting."},
        {"from": "human", "value": "<image> and <image> differ?"},
        {"from": "gpt", "value": "No."},
    ]
    sample = build_training_sequence(conversation, small_tokenizer, image_token_counts=[4, 6])
    text = small_tokenizer.decode(sample.input_ids)
    assert "Ignored" not in text
    assert (
        text
        == SYSTEM
        + f"<|im_start|>user\n{PAD * 4} and {PAD * 6} differ?<|im_end|>\n<|im_start|>assistant\nNo.<|im_end|>\n"
    )


def test_move_single_image_to_front() -> None:
    assert move_single_image_to_front("Q <image> R") == "<image>\nQ  R"
    assert move_single_image_to_front("<image>\nQ") == "<image>\nQ"
    assert move_single_image_to_front("a <image> b <image>") == "a <image> b <image>"
    assert move_single_image_to_front("no image") == "no image"


def test_plain_pretraining_form(small_tokenizer: DreamTokenizer) -> None:
    conversation = [
        {"from": "human", "value": "Describe <image> briefly."},
        {"from": "gpt", "value": "A red block."},
    ]
    sample = build_training_sequence(conversation, small_tokenizer, image_token_counts=[4], version="plain")
    caption = small_tokenizer.encode("A red block.\n")
    pad = small_tokenizer.special_ids.image_pad
    assert sample.input_ids.tolist() == [pad] * 4 + caption
    assert sample.labels.tolist() == [IGNORE_INDEX] * 4 + caption


@pytest.mark.parametrize(
    ("conversation", "counts", "version", "message"),
    [
        ([{"from": "human", "value": "<image> hi"}], [], "qwen_2_5", "more <image> placeholders"),
        ([{"from": "human", "value": "hi"}], [4], "qwen_2_5", "0 <image> placeholders but 1"),
        ([{"from": "human", "value": "<image> hi"}], [0], "qwen_2_5", "must be positive"),
        ([{"from": "user", "value": "hi"}], [], "qwen_2_5", "'from' must be one of"),
        ([{"role": "user", "content": "hi"}], [], "qwen_2_5", "LLaVA format"),
        ([], [], "qwen_2_5", "empty"),
        ([{"from": "human", "value": "<image>"}] * 3, [4], "plain", "exactly 2 turns"),
        ([{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}], [4], "plain", "needs <image>"),
        ([{"from": "human", "value": "x"}], [], "llava_v1", "version"),
    ],
)
def test_bad_conversations_raise(
    small_tokenizer: DreamTokenizer, conversation: list, counts: list, version: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_training_sequence(conversation, small_tokenizer, image_token_counts=counts, version=version)  # type: ignore[arg-type]


def test_ends_of_finds_every_occurrence_including_the_last_tokens() -> None:
    assert ends_of([5, 1, 2, 7, 1, 2], [1, 2]) == [3, 6]
    assert ends_of([1, 1, 1], [1, 1]) == [2, 3]  # overlapping occurrences
    assert ends_of([3, 4], [1, 2]) == [] and ends_of([1], [1, 2]) == []
