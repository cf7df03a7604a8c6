"""Vision tower (per-image attention, patch embedding, errors) and position ids (spec test vectors)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from modeling_helpers import image_prompt, make_images, text_ids

from dreamvlx.modeling import DreamVL
from dreamvlx.modeling.rope import get_rope_index, mrope_cos_sin, vision_patch_rows_cols


# ---------------------------------------------------------------------------------------------- vision
def test_images_do_not_attend_to_each_other(tiny_model: DreamVL) -> None:
    pixels, grid = make_images(tiny_model.config, [[1, 4, 4], [1, 4, 6]])
    changed = pixels.clone()
    changed[16:] = torch.randn(24, pixels.shape[1])  # image 2 only
    with torch.no_grad():
        before, after = tiny_model.visual(pixels, grid), tiny_model.visual(changed, grid)
        alone = tiny_model.visual(pixels[:16], grid[:1])
    torch.testing.assert_close(before[:4], after[:4], atol=1e-6, rtol=0)
    torch.testing.assert_close(before[:4], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before[4:], after[4:], atol=1e-3)


def test_temporal_groups_of_a_video_attend_separately(tiny_model: DreamVL) -> None:
    pixels, grid = make_images(tiny_model.config, [[2, 2, 2]])
    with torch.no_grad():
        both = tiny_model.visual(pixels, grid)
        first = tiny_model.visual(pixels[:4], torch.tensor([[1, 2, 2]]))
    torch.testing.assert_close(both[:1], first, atol=1e-5, rtol=1e-5)


def test_same_size_and_mixed_size_images_give_the_same_features(tiny_model: DreamVL) -> None:
    """The batched (equal groups) and the looped attention paths agree."""
    pixels, grid = make_images(tiny_model.config, [[1, 4, 4], [1, 4, 4]])
    extra, extra_grid = make_images(tiny_model.config, [[1, 2, 2]], seed=1)
    with torch.no_grad():
        equal = tiny_model.visual(pixels, grid)
        mixed = tiny_model.visual(torch.cat([pixels, extra]), torch.cat([grid, extra_grid]))
    torch.testing.assert_close(equal, mixed[:8], atol=1e-5, rtol=1e-5)


def test_patch_embed_equals_the_official_conv3d(tiny_model: DreamVL) -> None:
    pixels, _ = make_images(tiny_model.config, [[1, 2, 2]])
    proj = tiny_model.visual.patch_embed.proj
    with torch.no_grad():
        conv = F.conv3d(pixels.view(-1, 3, 2, 14, 14), proj.weight, stride=proj.stride).view(4, -1)
        ours = tiny_model.visual.patch_embed(pixels)
    torch.testing.assert_close(ours, conv, atol=1e-5, rtol=1e-5)


def test_rotary_patch_order_test_vector() -> None:
    rows_cols = vision_patch_rows_cols(torch.tensor([[1, 4, 6]]), merge_size=2)
    expected = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3), (0, 4)]
    assert [tuple(rc) for rc in rows_cols[:9].tolist()] == expected
    assert rows_cols.shape == (24, 2)


def test_vision_input_errors(tiny_model: DreamVL) -> None:
    pixels, grid = make_images(tiny_model.config, [[1, 4, 4]])
    with pytest.raises(ValueError, match="pixel_values has 15 patches but image_grid_thw"):
        tiny_model.visual(pixels[:15], grid)
    with pytest.raises(ValueError, match=r"pixel_values must have shape \[N_patches, 1176\]"):
        tiny_model.visual(pixels[:, :100], grid)
    with pytest.raises(ValueError, match="divisible by 2"):
        tiny_model.visual(pixels[:12], torch.tensor([[1, 3, 4]]))


def test_image_token_count_mismatch_is_a_clear_error(tiny_model: DreamVL) -> None:
    cfg = tiny_model.config
    pixels, grid = make_images(cfg, [[1, 4, 4]])  # 4 features
    with pytest.raises(ValueError, match=r"hold 3 image-pad tokens .* give 4 features"):
        tiny_model(image_prompt(cfg, [3]), pixel_values=pixels, image_grid_thw=grid)
    with pytest.raises(ValueError, match="hold 4 image-pad tokens but no pixel_values"):
        tiny_model(image_prompt(cfg, [4]))


def test_video_features_are_scattered_at_video_pads_and_counts_are_checked(tiny_model: DreamVL) -> None:
    cfg = tiny_model.config
    image_pixels, image_grid = make_images(cfg, [[1, 2, 4]])  # 2 tokens
    video_pixels, video_grid = make_images(cfg, [[2, 2, 4], [3, 2, 2]], seed=1)  # 4 + 3 tokens
    ids = image_prompt(cfg, [4, 2, 3])
    runs = (ids[0] == cfg.image_token_id).nonzero().squeeze(-1)
    ids[0, runs[:4]] = cfg.video_token_id  # first run: video 0; second: the image; third: video 1
    ids[0, runs[6:]] = cfg.video_token_id
    video_slots = ids[0] == cfg.video_token_id
    with torch.no_grad():
        embeds = tiny_model.embed_inputs(ids, image_pixels, image_grid, video_pixels, video_grid)
        torch.testing.assert_close(
            embeds[0, video_slots], tiny_model.get_image_features(video_pixels, video_grid)
        )
        torch.testing.assert_close(
            embeds[0, ids[0] == cfg.image_token_id], tiny_model.get_image_features(image_pixels, image_grid)
        )
    with pytest.raises(ValueError, match=r"hold 7 video-pad tokens but no pixel_values_videos"):
        tiny_model(ids, pixel_values=image_pixels, image_grid_thw=image_grid)
    six_pixels, six_grid = make_images(cfg, [[2, 2, 4], [2, 2, 2]])
    with pytest.raises(ValueError, match=r"hold 7 video-pad tokens but the videos .* give 6 features"):
        tiny_model(
            ids,
            pixel_values=image_pixels,
            image_grid_thw=image_grid,
            pixel_values_videos=six_pixels,
            video_grid_thw=six_grid,
        )


def test_image_features_are_scattered_in_order(tiny_model: DreamVL) -> None:
    cfg = tiny_model.config
    pixels, grid = make_images(cfg, [[1, 4, 4], [1, 2, 4]])
    ids = image_prompt(cfg, [4, 2])
    with torch.no_grad():
        embeds = tiny_model.embed_inputs(ids, pixels, grid)
        features = tiny_model.get_image_features(pixels, grid)
    slots = (ids[0] == cfg.image_token_id).nonzero().squeeze(-1)
    torch.testing.assert_close(embeds[0, slots], features)
    text = (ids[0] != cfg.image_token_id).nonzero().squeeze(-1)
    torch.testing.assert_close(embeds[0, text], tiny_model.model.embed_tokens(ids[0, text]))


# ---------------------------------------------------------------------------------------------- position ids
SPEC_IDS = {"image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652}


def spec_rope_index(ids: torch.Tensor, grid: torch.Tensor | None, mask: torch.Tensor):
    """get_rope_index with the official 7B token ids (those of the spec's test vectors)."""
    return get_rope_index(ids, grid, mask, spatial_merge_size=2, **SPEC_IDS)


def test_rope_index_without_vision_start_is_1d() -> None:
    """Spec 1.7 test vector 1 (chat-template layout: no <|vision_start|>)."""
    pad, im_start, im_end, img = 151643, 151644, 151645, 151655
    ids = torch.tensor([[pad, pad, im_start, 872, 198, img, img, img, img, im_end, 198]])
    mask = torch.tensor([[0, 0] + [1] * 9])
    for grid in (None, torch.tensor([[1, 4, 4]])):
        positions, deltas = spec_rope_index(ids, grid, mask)
        expected = torch.tensor([1, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8])
        assert all(torch.equal(positions[r, 0], expected) for r in range(3))
        assert deltas.tolist() == [[-2]]


def test_rope_index_with_vision_start_is_3d() -> None:
    """Spec 1.7 test vector 2 (Qwen2-VL layout with <|vision_start|>)."""
    pad, im_start, im_end, vs, ve, img = 151643, 151644, 151645, 151652, 151653, 151655
    ids = torch.tensor([[pad, im_start, 872, 198, vs, img, img, img, img, ve, im_end, 198]])
    mask = torch.tensor([[0] + [1] * 11])
    positions, deltas = spec_rope_index(ids, torch.tensor([[1, 4, 4]]), mask)
    assert positions[0, 0].tolist() == [1, 0, 1, 2, 3, 4, 4, 4, 4, 6, 7, 8]
    assert positions[1, 0].tolist() == [1, 0, 1, 2, 3, 4, 4, 5, 5, 6, 7, 8]
    assert positions[2, 0].tolist() == [1, 0, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8]
    assert deltas.tolist() == [[-3]]


def test_rope_index_errors_and_text_branch(tiny_model: DreamVL) -> None:
    cfg = tiny_model.config
    ids = text_ids(6)
    positions, deltas = tiny_model.get_rope_index(ids)
    assert (
        positions.shape == (3, 1, 6)
        and positions[1, 0].tolist() == list(range(6))
        and deltas.tolist() == [[0]]
    )
    ids[0, 1], ids[0, 2] = cfg.vision_start_token_id, cfg.image_token_id
    with pytest.raises(ValueError, match="more images"):
        tiny_model.get_rope_index(ids, torch.zeros(0, 3, dtype=torch.long))
    ids[0, 2] = cfg.video_token_id
    with pytest.raises(ValueError, match="more videos"):
        tiny_model.get_rope_index(ids, torch.tensor([[1, 2, 2]]))


def test_rope_index_of_a_video_block_is_3d_over_time() -> None:
    """A ``<|vision_start|><|video_pad|>`` block of grid [2, 4, 4] (2 x 2 x 2 LLM tokens): temporal row counts
    the temporal patches, then h and w as for an image; text after it continues from the block's max + 1."""
    im_start, im_end, vs, ve, vid = 151644, 151645, 151652, 151653, 151656
    ids = torch.tensor([[im_start, 872, 198, vs] + [vid] * 8 + [ve, im_end]])
    positions, deltas = get_rope_index(
        ids, None, None, spatial_merge_size=2, video_grid_thw=torch.tensor([[2, 4, 4]]), **SPEC_IDS
    )
    assert positions[0, 0].tolist() == [0, 1, 2, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 7]
    assert positions[1, 0].tolist() == [0, 1, 2, 3, 4, 4, 5, 5, 4, 4, 5, 5, 6, 7]
    assert positions[2, 0].tolist() == [0, 1, 2, 3, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7]
    assert deltas.tolist() == [[-6]]


def test_rope_index_takes_images_and_videos_in_order_with_running_indices() -> None:
    """Sample 0: video then image; sample 1: image. Each kind has its own running index over the batch, so
    sample 1 reads the second image grid; a pad run without ``<|vision_start|>`` stays 1-D."""
    pad, vs, img, vid = 151643, 151652, 151655, 151656
    first = [vs, vid, vid, 7, vs, img]  # video grid [2, 2, 2] -> 2 tokens; image grid [1, 2, 2] -> 1 token
    second = [pad, 7, vs] + [img] * 4 + [img, img]  # image grid [1, 4, 4] -> 4 tokens, then 2 stray pads
    ids = torch.tensor([first + [8] * 3, second])
    mask = torch.tensor([[1] * 9, [0] + [1] * 8])
    image_grids, video_grids = torch.tensor([[1, 2, 2], [1, 4, 4]]), torch.tensor([[2, 2, 2]])
    positions, deltas = get_rope_index(
        ids, image_grids, mask, spatial_merge_size=2, video_grid_thw=video_grids, **SPEC_IDS
    )
    assert positions[0, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert positions[1, 0].tolist() == [0, 1, 1, 3, 4, 5, 6, 7, 8]  # the video: t 1, 2 and h 1, 1
    assert positions[0, 1].tolist() == [1, 0, 1, 2, 2, 2, 2, 4, 5]
    assert positions[1, 1].tolist() == [1, 0, 1, 2, 2, 3, 3, 4, 5]
    assert positions[2, 1].tolist() == [1, 0, 1, 2, 3, 2, 3, 4, 5]
    assert deltas.tolist() == [[0], [-3]]


def test_mrope_with_identical_rows_is_1d_rope() -> None:
    positions = torch.tensor([[0, 3, 5, 9]])
    cos3, sin3 = mrope_cos_sin(positions.expand(3, 1, 4), 16, 10000.0, [2, 3, 3], torch.float32)
    inv_freq = 1.0 / 10000.0 ** (torch.arange(0, 16, 2).float() / 16)
    angles = positions[0, :, None].float() * inv_freq
    emb = torch.cat([angles, angles], dim=-1)
    torch.testing.assert_close(cos3[0, 0], emb.cos())
    torch.testing.assert_close(sin3[0, 0], emb.sin())
