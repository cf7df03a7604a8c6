"""``generate_in_sections`` on a tiny random diffusion checkpoint: each round's section is what plain decoding
gives after the prompt and the sections committed before it, row by row, whatever the batch's left padding;
without the separator in the reply it is plain decoding; bad arguments are refused."""

from __future__ import annotations

import pytest
import torch

from dreamvlx.config import DreamVLConfig
from dreamvlx.inference import build_prompt_batch, generate_in_sections, generate_tokens
from dreamvlx.modeling.dream_vl import DreamVL
from dreamvlx.processing import (
    DreamVLImageProcessor,
    DreamVLProcessor,
    ImageProcessorConfig,
    build_small_tokenizer,
)

CANVAS = 12
DECODING = {"steps": 4, "alg": "entropy", "temperature": 0.0}


@pytest.fixture(scope="module")
def model_and_processor() -> tuple[DreamVL, DreamVLProcessor]:
    tokenizer = build_small_tokenizer(["Which column is red? c1 ; c2 ; c3 | the top block."] * 5, 260)
    torch.manual_seed(0)
    model = DreamVL(DreamVLConfig.tiny(vocab_size=len(tokenizer) - 24 + 32)).eval()
    images = DreamVLImageProcessor(ImageProcessorConfig(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16))
    return model, DreamVLProcessor(images, tokenizer)


def _prompts(processor: DreamVLProcessor, texts: list[str]) -> dict[str, torch.Tensor]:
    return build_prompt_batch(
        processor, [[] for _ in texts], [[{"role": "user", "content": t}] for t in texts]
    )


def _plain(model: DreamVL, processor: DreamVLProcessor, prompt: list[int], canvas: int) -> list[int]:
    ids = torch.tensor([prompt])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    return generate_tokens(model, inputs, max_new_tokens=canvas, **DECODING).tokens[0].tolist()


def test_each_section_is_decoded_after_the_committed_ones(model_and_processor) -> None:
    model, processor = model_and_processor
    texts = ["Which column is red?", "Which column is red? c1 ; c2 ; c3 | the top block."]
    inputs = _prompts(processor, texts)
    plain = generate_tokens(model, inputs, max_new_tokens=CANVAS, **DECODING).tokens
    # a separator that occurs inside the first plain reply, so that rows are cut and decoded again
    separator = [int(plain[0, 2])]
    pad = processor.tokenizer.special_ids.endoftext
    replies = generate_in_sections(model, inputs, separator, max_new_tokens=CANVAS, pad_id=pad, **DECODING)
    assert replies.shape == (2, CANVAS)
    rounds = 0
    for row, mask, reply in zip(inputs["input_ids"], inputs["attention_mask"], replies.tolist()):
        prompt, committed = row[mask.bool()].tolist(), []
        while len(committed) < CANVAS:
            new = _plain(model, processor, prompt + committed, CANVAS - len(committed))
            cut = next((i + 1 for i, token in enumerate(new) if token == separator[0]), len(new))
            committed += new[:cut]
            rounds += 1
            if cut == len(new):
                break
        assert reply == committed
    assert rounds > len(texts), "the separator never cut a reply: the test would not exercise the rounds"


def test_without_the_separator_it_is_plain_decoding(model_and_processor) -> None:
    model, processor = model_and_processor
    inputs = _prompts(processor, ["Which column is red?", "the top block."])
    plain = generate_tokens(model, inputs, max_new_tokens=CANVAS, **DECODING).tokens
    absent = [token for token in range(model.config.vocab_size) if token not in set(plain.flatten().tolist())]
    pad = processor.tokenizer.special_ids.endoftext
    replies = generate_in_sections(model, inputs, absent[:1], max_new_tokens=CANVAS, pad_id=pad, **DECODING)
    assert torch.equal(replies, plain)


def test_bad_arguments_are_refused(model_and_processor) -> None:
    model, processor = model_and_processor
    inputs = _prompts(processor, ["Which column is red?", "the top block."])
    with pytest.raises(ValueError, match="non-empty separator"):
        generate_in_sections(model, inputs, [], max_new_tokens=CANVAS, pad_id=0)
    with pytest.raises(ValueError, match="one query at a time"):
        generate_in_sections(
            model, {**inputs, "pixel_values": torch.zeros(8, 1176)}, [5], max_new_tokens=CANVAS, pad_id=0
        )


def test_a_causal_checkpoint_gets_its_ar_reply(model_and_processor) -> None:
    _, processor = model_and_processor
    torch.manual_seed(1)
    causal = DreamVL(
        DreamVLConfig.tiny(vocab_size=len(processor.tokenizer) - 24 + 32, attention="causal")
    ).eval()
    inputs = _prompts(processor, ["Which column is red?", "the top block."])
    plain = generate_tokens(causal, inputs, max_new_tokens=CANVAS).tokens
    pad = processor.tokenizer.special_ids.endoftext
    assert torch.equal(generate_in_sections(causal, inputs, [5], max_new_tokens=CANVAS, pad_id=pad), plain)
