"""LM attention: bidirectional vs causal, padding masking, errors on mismatched inputs."""

from __future__ import annotations

import copy

import pytest
import torch
from modeling_helpers import make_images, text_ids

from dreamvlx.modeling import DreamVL
from dreamvlx.modeling.lm import build_attention_mask


def logits(model: DreamVL, ids: torch.Tensor, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(ids, **kwargs).logits


def test_bidirectional_and_causal_differ(tiny_model: DreamVL, causal_model: DreamVL) -> None:
    assert torch.equal(tiny_model.lm_head.weight, causal_model.lm_head.weight)  # same weights
    ids = text_ids(12)
    bidirectional, causal = logits(tiny_model, ids), logits(causal_model, ids)
    # every row differs (also the last: in layer 2 it reads keys that were computed differently in layer 1)
    assert (bidirectional - causal).abs().amax(-1).min() > 1e-3


def test_causal_has_no_future_leakage_and_bidirectional_has(
    tiny_model: DreamVL, causal_model: DreamVL
) -> None:
    ids = text_ids(12)
    changed = ids.clone()
    changed[0, 8] = (ids[0, 8] + 1) % 90
    causal_before, causal_after = logits(causal_model, ids), logits(causal_model, changed)
    torch.testing.assert_close(causal_before[:, :8], causal_after[:, :8], atol=1e-6, rtol=0)
    assert not torch.allclose(causal_before[:, 8:], causal_after[:, 8:], atol=1e-3)
    bi_before, bi_after = logits(tiny_model, ids), logits(tiny_model, changed)
    assert not torch.allclose(bi_before[:, :8], bi_after[:, :8], atol=1e-3)


@pytest.mark.parametrize("attention", ["bidirectional", "causal"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_is_masked(tiny_model: DreamVL, causal_model: DreamVL, attention: str, side: str) -> None:
    # float64: the padded and the unpadded batch take different SDPA kernels, whose float32 rounding alone
    # differs by ~1e-5 on some CPUs; in float64 any difference left is a masking error, not rounding
    model = copy.deepcopy(tiny_model if attention == "bidirectional" else causal_model).double()
    ids = text_ids(10, batch=2)
    mask = torch.ones_like(ids)
    pads = slice(0, 3) if side == "left" else slice(7, 10)
    mask[0, pads] = 0
    positions, _ = model.get_rope_index(ids, None, mask)
    before = logits(model, ids, attention_mask=mask, position_ids=positions)
    changed = ids.clone()
    changed[0, pads] = 7
    after = logits(model, changed, attention_mask=mask, position_ids=positions)
    valid = mask.bool()
    torch.testing.assert_close(before[valid], after[valid], atol=1e-12, rtol=0)
    assert torch.isfinite(before).all()
    # the padded sample's valid rows equal the same tokens run alone, unpadded
    alone = logits(model, ids[:1, valid[0]])
    torch.testing.assert_close(before[0, valid[0]], alone[0], atol=1e-10, rtol=1e-10)


def test_padded_query_rows_get_zero_attention_like_the_official_sdpa_path() -> None:
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    built = build_attention_mask(mask, query_len=3, key_len=3, causal=False, device=torch.device("cpu"))
    assert torch.equal(built.query_valid, mask.bool())
    assert built.mask[0, 0, 1:, 0].logical_not().all()  # valid rows never see the padded key
    assert built.mask.any(-1).all()  # no fully masked row is handed to SDPA (NaN-prone on some backends)
    assert build_attention_mask(torch.ones(2, 3), 3, 3, causal=False, device=torch.device("cpu")).mask is None
    causal = build_attention_mask(None, 3, 3, causal=True, device=torch.device("cpu"))
    assert causal.mask is None and causal.is_causal


def test_fully_padded_sample_stays_finite(tiny_model: DreamVL) -> None:
    ids = text_ids(6, batch=2)
    mask = torch.ones_like(ids)
    mask[1] = 0
    out = logits(tiny_model, ids, attention_mask=mask)
    assert torch.isfinite(out).all()


def test_input_errors(tiny_model: DreamVL) -> None:
    ids = text_ids(6)
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        tiny_model(ids, inputs_embeds=torch.zeros(1, 6, 64))
    with pytest.raises(ValueError, match="attention_mask covers 5 positions but the keys are 6"):
        tiny_model(ids, attention_mask=torch.ones(1, 5))
    with pytest.raises(ValueError, match="position_ids must have shape"):
        tiny_model(ids, position_ids=torch.zeros(2, 1, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="pixel_values are only read with input_ids"):
        pixels, grid = make_images(tiny_model.config, [[1, 2, 2]])
        tiny_model(inputs_embeds=torch.zeros(1, 6, 64), pixel_values=pixels, image_grid_thw=grid)


def test_hidden_states_are_final_norm_and_inputs_embeds_returned(tiny_model: DreamVL) -> None:
    ids = text_ids(6)
    with torch.no_grad():
        out = tiny_model(ids, output_hidden_states=True)
        assert out.hidden_states.shape == (1, 6, 64)
        torch.testing.assert_close(tiny_model.lm_head(out.hidden_states), out.logits)
        torch.testing.assert_close(out.inputs_embeds, tiny_model.model.embed_tokens(ids))
        again = tiny_model(inputs_embeds=out.inputs_embeds).logits
    torch.testing.assert_close(again, out.logits)
    assert tiny_model(ids).hidden_states is None


def test_gradients_reach_every_trainable_part(tiny_model: DreamVL) -> None:
    cfg = tiny_model.config
    pixels, grid = make_images(cfg, [[1, 2, 2]])
    pad = torch.full((1, 1), cfg.pad_token_id)
    ids = torch.cat([text_ids(3), torch.full((1, 1), cfg.image_token_id), text_ids(4, seed=1), pad], dim=1)
    tiny_model.train()
    tiny_model(ids, pixel_values=pixels, image_grid_thw=grid).logits.logsumexp(-1).sum().backward()
    no_grad = [n for n, p in tiny_model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
    assert torch.all(
        tiny_model.model.embed_tokens.weight.grad[cfg.pad_token_id] == 0
    )  # padding_idx row frozen
