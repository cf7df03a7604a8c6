"""KV cache, AR decoding (causal control) and the diffusion_generate wrapper."""

from __future__ import annotations

import copy

import pytest
import torch
from modeling_helpers import image_prompt, make_images, text_ids

from dreamvlx.modeling import CachedEmbeddingDenoiser, DreamVL
from dreamvlx.modeling.dream_vl import repeat_visual_features
from dreamvlx.modeling.lm import AttentionMask
from dreamvlx.modeling.rope import mrope_cos_sin


def greedy_by_recomputation(
    model: DreamVL, ids: torch.Tensor, mask: torch.Tensor, n: int, **images
) -> torch.Tensor:
    """Reference AR decoding: a full forward over the whole sequence for every new token, no cache. Generated
    tokens are text (even an image or video pad), as in ``ar_generate``."""
    prompt_len = ids.shape[1]
    for _ in range(n):
        positions, _ = model.get_rope_index(ids, images.get("image_grid_thw"), mask)
        with torch.no_grad():
            embeds = torch.cat(
                (
                    model.embed_inputs(ids[:, :prompt_len], **images),
                    model.model.embed_tokens(ids[:, prompt_len:]),
                ),
                dim=1,
            )
            logits = model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits
        ids = torch.cat([ids, logits[:, -1].argmax(-1)[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return ids


def test_kv_cache_decoding_equals_full_recomputation_with_images(causal_model: DreamVL) -> None:
    cfg = causal_model.config
    pixels, grid = make_images(cfg, [[1, 4, 4], [1, 2, 4]])
    ids = image_prompt(cfg, [4, 2])
    mask = torch.ones_like(ids)
    images = {"pixel_values": pixels, "image_grid_thw": grid}
    cached = causal_model.ar_generate(ids, max_new_tokens=8, eos_token_id=-1, **images)
    assert cached.shape == (1, ids.shape[1] + 8) and torch.equal(cached[:, : ids.shape[1]], ids)
    assert torch.equal(cached, greedy_by_recomputation(causal_model, ids, mask, 8, **images))


def test_kv_cache_decoding_with_left_padding(causal_model: DreamVL) -> None:
    ids = text_ids(7, batch=2, seed=4)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    cached = causal_model.ar_generate(ids, attention_mask=mask, max_new_tokens=6, eos_token_id=-1)
    assert torch.equal(cached, greedy_by_recomputation(causal_model, ids, mask, 6))
    alone = causal_model.ar_generate(ids[1:, 3:], max_new_tokens=6, eos_token_id=-1)
    assert torch.equal(cached[1, 3:], alone[0])  # padding changes nothing


def test_cached_logits_equal_full_forward(causal_model: DreamVL) -> None:
    ids = text_ids(10)
    with torch.no_grad():
        full = causal_model(ids).logits
        prefix = causal_model(ids[:, :6], use_cache=True)
        assert prefix.past_key_values.length == 6 and len(prefix.past_key_values.layers) == 2
        rest = causal_model(ids[:, 6:], past_key_values=prefix.past_key_values, use_cache=True)
    assert rest.past_key_values.length == 10
    torch.testing.assert_close(torch.cat([prefix.logits, rest.logits], dim=1), full, atol=1e-5, rtol=1e-5)


def test_bidirectional_prefix_cache_matches_its_definition(tiny_model: DreamVL) -> None:
    """Cached prefix = the prefix computed on its own; the new tokens attend to it and to each other."""
    ids = text_ids(10)
    with torch.no_grad():
        prefix = tiny_model(ids[:, :6], use_cache=True)
        rest = tiny_model(ids[:, 6:], past_key_values=prefix.past_key_values).logits
        # the definition as one masked pass: prefix rows see only the prefix, suffix rows see everything
        allowed = torch.ones(1, 1, 10, 10, dtype=torch.bool)
        allowed[..., :6, 6:] = False
        positions = torch.arange(10).expand(3, 1, 10)
        cos, sin = mrope_cos_sin(
            positions, 16, tiny_model.config.rope_theta, tiny_model.config.mrope_section, torch.float32
        )
        h = tiny_model.model.embed_tokens(ids)
        for layer in tiny_model.model.layers:
            h, _ = layer(h, cos, sin, AttentionMask(allowed, False, None))
        reference = tiny_model.lm_head(tiny_model.model.norm(h))
        full = tiny_model(ids).logits
    torch.testing.assert_close(rest, reference[:, 6:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(rest, full[:, 6:], atol=1e-3)  # an approximation of the full bidirectional pass


def test_ar_generate_stops_at_eos_and_pads(causal_model: DreamVL) -> None:
    ids = text_ids(5, batch=2)
    free = causal_model.ar_generate(ids, max_new_tokens=6, eos_token_id=-1)
    eos = int(free[0, 7])  # make the third token of row 0 the end of sequence
    out = causal_model.ar_generate(ids, max_new_tokens=6, eos_token_id=eos)
    assert torch.equal(out[0, :8], free[0, :8])
    assert (out[0, 8:] == causal_model.config.pad_token_id).all()


def test_ar_generate_sampling_is_reproducible(causal_model: DreamVL) -> None:
    ids = text_ids(5)
    draw = [
        causal_model.ar_generate(
            ids,
            max_new_tokens=8,
            temperature=1.5,
            eos_token_id=-1,
            generator=torch.Generator().manual_seed(1),
        )
        for _ in range(2)
    ]
    assert torch.equal(draw[0], draw[1])


def test_ar_generate_needs_a_causal_model(tiny_model: DreamVL) -> None:
    with pytest.raises(ValueError, match="needs a causal model"):
        tiny_model.ar_generate(text_ids(4), max_new_tokens=2)


# ---------------------------------------------------------------------------------------------- diffusion
def test_denoiser_runs_the_vision_tower_once_and_matches_full_forwards(tiny_model: DreamVL) -> None:
    cfg = tiny_model.config
    pixels, grid = make_images(cfg, [[1, 4, 4]])
    prompt = image_prompt(cfg, [4])
    calls = []
    handle = tiny_model.visual.register_forward_hook(lambda *args: calls.append(1))
    seen = []

    def tokens_hook(step, x, logits):
        seen.append(x.clone())
        return x

    try:
        out = tiny_model.diffusion_generate(
            prompt,
            pixel_values=pixels,
            image_grid_thw=grid,
            max_new_tokens=6,
            steps=3,
            temperature=0.0,
            alg="maskgit_plus",
            generation_tokens_hook_func=tokens_hook,
            return_dict_in_generate=True,
            output_history=True,
        )
    finally:
        handle.remove()
    assert len(calls) == 1
    assert out.sequences.shape == (1, prompt.shape[1] + 6) and torch.equal(
        out.sequences[:, : prompt.shape[1]], prompt
    )
    assert (out.sequences != cfg.mask_token_id).all() and len(out.history) == 3
    # replay: the cached-embedding denoiser gives the logits of a full forward on every canvas it saw
    denoise = CachedEmbeddingDenoiser(tiny_model, pixels, grid)
    mask = torch.ones_like(out.sequences)
    for canvas in seen[
        :-1
    ]:  # the canvases the loop denoised (before the loop and after each step but the last)
        with torch.no_grad():
            cached = denoise(canvas, mask)
            full = tiny_model(canvas, attention_mask=mask, pixel_values=pixels, image_grid_thw=grid).logits
        torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


def test_denoiser_reembeds_tokens_a_hook_changed_and_guards_image_slots(tiny_model: DreamVL) -> None:
    cfg = tiny_model.config
    pixels, grid = make_images(cfg, [[1, 2, 2]])
    canvas = torch.cat([image_prompt(cfg, [1]), torch.full((1, 3), cfg.mask_token_id)], dim=1)
    mask = torch.ones_like(canvas)
    denoise = CachedEmbeddingDenoiser(tiny_model, pixels, grid)
    with torch.no_grad():
        denoise(canvas, mask)
        edited = canvas.clone()
        edited[0, 1] = 3  # a prompt (non-mask) token changed by a hook
        edited[0, -1] = cfg.image_token_id  # a generated <|image_pad|> is text, not an image slot
        full = tiny_model(inputs_embeds=tiny_model.embed_inputs(canvas, pixels, grid).index_put(
            (torch.tensor([0, 0]), torch.tensor([1, canvas.shape[1] - 1])),
            tiny_model.model.embed_tokens(torch.tensor([3, cfg.image_token_id])),
        )).logits  # fmt: skip
        torch.testing.assert_close(denoise(edited, mask), full, atol=1e-5, rtol=1e-5)
        slot = int((canvas[0] == cfg.image_token_id).nonzero()[0])
        edited[0, slot] = 5
        with pytest.raises(ValueError, match="image position"):
            denoise(edited, mask)


def test_diffusion_generate_reads_a_stored_generation_config_mapping(tiny_model: DreamVL) -> None:
    """``model.generation_config`` (the parsed generation_config.json) can be passed back explicitly: it is read
    like the official explicit ``DreamVLGenerationConfig`` (class defaults: temperature 0, no top-p / top-k;
    token ids from the model; non-generation keys ignored), so it equals the same call with those values."""
    ids = text_ids(5, seed=3)
    stored = {
        "steps": 4,
        "alg": "entropy",
        "transformers_version": "4.51.3",
        "_from_model_config": False,
        "max_length": 20,
        "mask_token_id": None,
    }
    tiny_model.generation_config = stored
    with torch.no_grad():
        out = tiny_model.diffusion_generate(ids, generation_config=tiny_model.generation_config)
        expected = tiny_model.diffusion_generate(
            ids, steps=4, alg="entropy", temperature=0.0, top_p=None, top_k=None, max_new_tokens=20
        )
    assert out.shape == (1, ids.shape[1] + 20) and torch.equal(out, expected)
    assert stored["mask_token_id"] is None  # the caller's mapping is not modified


def test_ar_generate_reads_a_generated_image_pad_as_text(causal_model: DreamVL) -> None:
    """An (undertrained) AR model may emit ``<|image_pad|>``; decoding goes on with it embedded as text, as the
    diffusion loop does, instead of failing for want of pixel values."""
    model = copy.deepcopy(causal_model)
    image = model.config.image_token_id
    ids = text_ids(5)

    def by_recomputation(n: int) -> torch.Tensor:  # every token embedded as text, no cache
        out = ids
        for _ in range(n):
            with torch.no_grad():
                logits = model(inputs_embeds=model.model.embed_tokens(out)).logits[:, -1]
            out = torch.cat([out, logits.argmax(-1, keepdim=True)], dim=1)
        return out

    first = int(by_recomputation(1)[0, -1])
    with torch.no_grad():  # the image pad's logits: 1.5 x those of the first token chosen, so it wins
        model.lm_head.weight[image] = 1.5 * model.lm_head.weight[first]
    reference = by_recomputation(6)
    assert int(reference[0, ids.shape[1]]) == image
    assert torch.equal(model.ar_generate(ids, max_new_tokens=6, eos_token_id=-1), reference)


# ---------------------------------------------------------------------------------------------- videos
def video_prompt(config, n_tokens: int, vision_start: bool = False) -> torch.Tensor:
    """[1, L]: text, an optional ``<|vision_start|>``, ``n_tokens`` video pads, text."""
    start = [config.vision_start_token_id] if vision_start else []
    return torch.cat(
        [text_ids(3)[0], torch.tensor(start + [config.video_token_id] * n_tokens), text_ids(4, seed=1)[0]]
    ).unsqueeze(0)


def test_a_video_decodes_as_the_same_clip_given_as_an_image(
    tiny_model: DreamVL, causal_model: DreamVL
) -> None:
    """Without ``<|vision_start|>`` (the chat template) positions are 1-D, so a clip at ``<|video_pad|>`` with
    ``pixel_values_videos`` is the same input as the clip at ``<|image_pad|>`` with ``pixel_values`` (how
    LLaVA-OneVision trains on videos): identical diffusion and AR generations."""
    cfg = tiny_model.config
    pixels, grid = make_images(cfg, [[4, 2, 4]])  # 4 temporal patches -> 8 tokens
    as_video = video_prompt(cfg, 8)
    as_image = as_video.masked_fill(as_video == cfg.video_token_id, cfg.image_token_id)
    settings = {"max_new_tokens": 5, "steps": 5, "temperature": 0.0, "alg": "maskgit_plus"}
    video_out = tiny_model.diffusion_generate(
        as_video, pixel_values_videos=pixels, video_grid_thw=grid, **settings
    )
    image_out = tiny_model.diffusion_generate(as_image, pixel_values=pixels, image_grid_thw=grid, **settings)
    assert torch.equal(video_out[:, as_video.shape[1] :], image_out[:, as_image.shape[1] :])
    video_ar = causal_model.ar_generate(
        as_video, pixel_values_videos=pixels, video_grid_thw=grid, max_new_tokens=4, eos_token_id=-1
    )
    image_ar = causal_model.ar_generate(
        as_image, pixel_values=pixels, image_grid_thw=grid, max_new_tokens=4, eos_token_id=-1
    )
    assert torch.equal(video_ar[:, as_video.shape[1] :], image_ar[:, as_image.shape[1] :])


def test_video_denoiser_uses_3d_positions_after_vision_start_and_guards_video_slots(
    tiny_model: DreamVL,
) -> None:
    cfg = tiny_model.config
    pixels, grid = make_images(cfg, [[2, 2, 4]])  # 4 tokens
    canvas = torch.cat(
        [video_prompt(cfg, 4, vision_start=True), torch.full((1, 3), cfg.mask_token_id)], dim=1
    )
    mask = torch.ones_like(canvas)
    denoise = CachedEmbeddingDenoiser(tiny_model, None, None, pixels, grid)
    positions, _ = tiny_model.get_rope_index(canvas, None, mask, grid)
    assert not torch.equal(positions[0], positions[1])  # real M-RoPE: the rows differ on the video block
    with torch.no_grad():
        full = tiny_model(
            canvas,
            attention_mask=mask,
            position_ids=positions,
            pixel_values_videos=pixels,
            video_grid_thw=grid,
        ).logits
        torch.testing.assert_close(denoise(canvas, mask), full, atol=1e-5, rtol=1e-5)
        edited = canvas.clone()
        edited[0, int((canvas[0] == cfg.video_token_id).nonzero()[0])] = 5
        with pytest.raises(ValueError, match="video position"):
            denoise(edited, mask)


# ---------------------------------------------------------------------------------------------- several per prompt
def test_repeat_visual_features_follows_the_repeated_prompts() -> None:
    grid = torch.tensor([[1, 2, 2], [1, 2, 4], [1, 4, 4]])  # 1, 2 and 4 tokens
    features = torch.arange(7.0)[:, None]
    repeated, grids = repeat_visual_features(features, grid, [3, 0, 4], merge_size=2, repeats=2)
    assert repeated.squeeze(-1).tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 3, 4, 5, 6]
    assert grids.tolist() == [[1, 2, 2], [1, 2, 4], [1, 2, 2], [1, 2, 4], [1, 4, 4], [1, 4, 4]]
    with pytest.raises(ValueError, match="prompt 0 holds 2 pad tokens"):
        repeat_visual_features(features, grid, [2, 4], merge_size=2, repeats=2)
    with pytest.raises(ValueError, match="1 images are left over"):
        repeat_visual_features(features, grid, [3], merge_size=2, repeats=2)


def test_num_return_sequences_with_images_repeats_each_prompts_images(tiny_model: DreamVL) -> None:
    """The official code raises here (it repeats the prompts, not their images); each generation of a prompt
    must see that prompt's images: equal to generating from the prompts and images repeated by hand, with the
    vision tower run on the original images only."""
    cfg = tiny_model.config
    pixels, grid = make_images(cfg, [[1, 4, 4], [1, 2, 4], [1, 2, 2]])
    first, second = image_prompt(cfg, [4, 2]), image_prompt(cfg, [1], seed=5)
    width = max(first.shape[1], second.shape[1])
    prompts = torch.cat([torch.nn.functional.pad(p, (width - p.shape[1], 0)) for p in (first, second)])
    mask = torch.cat([(torch.arange(width) >= width - p.shape[1]).long()[None] for p in (first, second)])
    settings = {"max_new_tokens": 4, "steps": 4, "temperature": 0.8, "alg": "maskgit_plus"}
    patches = []
    handle = tiny_model.visual.register_forward_hook(
        lambda module, args, out: patches.append(args[0].shape[0])
    )
    try:
        out = tiny_model.diffusion_generate(
            prompts,
            mask,
            pixels,
            grid,
            num_return_sequences=3,
            generator=torch.Generator().manual_seed(0),
            **settings,
        )
    finally:
        handle.remove()
    assert patches == [16 + 8 + 4]
    by_hand_pixels = torch.cat([pixels[:24]] * 3 + [pixels[24:]] * 3)
    by_hand_grid = torch.cat([grid[:2]] * 3 + [grid[2:]] * 3)
    expected = tiny_model.diffusion_generate(
        prompts.repeat_interleave(3, dim=0),
        mask.repeat_interleave(3, dim=0),
        by_hand_pixels,
        by_hand_grid,
        generator=torch.Generator().manual_seed(0),
        **settings,
    )
    assert out.shape == (6, width + 4) and torch.equal(out, expected)
