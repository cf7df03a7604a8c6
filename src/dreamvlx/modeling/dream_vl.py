"""DreamVL: vision tower -> projector -> Dream LM -> LM head (spec dream-vl.md 1).

State-dict prefixes: ``visual.*`` (Qwen2-VL ViT + merger), ``projector.*`` (Linear -> GELU -> Linear),
``model.*`` (the Dream LM), ``lm_head.weight`` (untied).

The Dream shift: ``forward`` returns logits exactly as the official model, **unshifted**: logit row ``i``
predicts the token at position ``i + 1``. Diffusion generation reads the prediction for position ``j`` from row
``j - 1`` (the loop in :mod:`dreamvlx.diffusion.generation` shifts); the AR control reads the next token from the
last row, as any causal LM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dreamvlx.config import DreamVLConfig
from dreamvlx.modeling.activations import get_activation
from dreamvlx.modeling.checkpoint import PretrainedMixin
from dreamvlx.modeling.lm import DreamLM, KVCache, RMSNorm
from dreamvlx.modeling.rope import get_rope_index
from dreamvlx.modeling.vision import VisionTransformer


@dataclass
class DreamVLOutput:
    """``logits`` [B, L, V] unshifted (row i predicts token i+1), in the model dtype.
    ``hidden_states`` [B, L, D]: final-norm last-layer states (when requested).
    ``inputs_embeds`` [B, L, D]: the embeddings fed to the LM (image features scattered in).
    ``past_key_values``: the cache including these tokens (when ``use_cache``)."""

    logits: torch.Tensor
    hidden_states: torch.Tensor | None = None
    inputs_embeds: torch.Tensor | None = None
    past_key_values: KVCache | None = None


class MultiModalProjector(nn.Module):
    """``linear_2(act(linear_1(x)))`` on the merged vision features: [N, hidden] -> [N, hidden]."""

    def __init__(self, config: DreamVLConfig) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(config.vision_config.hidden_size, config.hidden_size, bias=True)
        self.linear_2 = nn.Linear(config.hidden_size, config.hidden_size, bias=True)
        self.act = get_activation(config.projector_hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class DreamVL(PretrainedMixin, nn.Module):
    """The Dream-VL model. Attention follows ``config.attention`` (bidirectional, or causal for the AR control)."""

    config_class = DreamVLConfig

    def __init__(self, config: DreamVLConfig) -> None:
        super().__init__()
        self.config = config
        self.generation_config: dict[str, Any] | None = None
        self.visual = VisionTransformer(config.vision_config)
        self.model = DreamLM(config)
        self.projector = MultiModalProjector(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.init_weights()

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Random init (spec 1.11): Linear/Conv3d ~ N(0, initializer_range), biases 0; Embedding ~ N(0, std) with
        the padding row zeroed; RMSNorm 1; LayerNorm 1/0. The ViT uses its own ``initializer_range``."""
        for name, module in self.named_modules():
            std = (
                self.config.vision_config.initializer_range
                if name.startswith("visual")
                else self.config.initializer_range
            )
            if isinstance(module, (nn.Linear, nn.Conv3d)):
                module.weight.normal_(0.0, std, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, std, generator=generator)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, RMSNorm):
                module.weight.fill_(1.0)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()

    # ------------------------------------------------------------------ properties
    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    # ------------------------------------------------------------------ inputs
    def get_image_features(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
        """Vision tower + projector: [N_patches, patch_dim] -> [N_image_tokens, D] in the embedding dtype."""
        features = self.visual(pixel_values, image_grid_thw)
        return self.projector(features.to(self.model.embed_tokens.weight.dtype))

    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings [B, L, D] with the projected image features written, in order of occurrence, at the
        ``<|image_pad|>`` positions (row-major over the batch), and the video features likewise at the
        ``<|video_pad|>`` positions (same vision tower and projector). Errors when the counts disagree."""
        pixels = {"image": pixel_values, "video": pixel_values_videos}
        grids = {"image": image_grid_thw, "video": video_grid_thw}
        return embed_with_visual_features(self, input_ids, pixels, grids)[0]

    def get_rope_index(
        self,
        input_ids: torch.Tensor,
        image_grid_thw: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Official position ids ``[3, B, L]`` and ``rope_deltas`` [B, 1]; see :func:`rope.get_rope_index`."""
        cfg = self.config
        return get_rope_index(
            input_ids,
            image_grid_thw,
            attention_mask,
            image_token_id=cfg.image_token_id,
            video_token_id=cfg.video_token_id,
            vision_start_token_id=cfg.vision_start_token_id,
            spatial_merge_size=cfg.vision_config.spatial_merge_size,
            video_grid_thw=video_grid_thw,
        )

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        output_hidden_states: bool = False,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
    ) -> DreamVLOutput:
        """One forward pass; give ``input_ids`` [B, L] (+ images / videos) or ``inputs_embeds`` [B, L, D], not both.

        ``attention_mask`` [B, L_cached + L] (1 = token, 0 = padding). ``position_ids`` [B, L] or [3, B, L];
        when omitted they are ``arange`` (the official fallback, which ignores padding: pass
        ``get_rope_index(...)[0]`` for left-padded batches). Logits are unshifted (row i predicts token i+1).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(
                input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw
            )
        elif pixel_values is not None or pixel_values_videos is not None:
            name = "pixel_values" if pixel_values is not None else "pixel_values_videos"
            raise ValueError(f"{name} are only read with input_ids; scatter them into inputs_embeds yourself")
        hidden, cache = self.model(inputs_embeds, attention_mask, position_ids, past_key_values, use_cache)
        return DreamVLOutput(
            logits=self.lm_head(hidden),
            hidden_states=hidden if output_hidden_states else None,
            inputs_embeds=inputs_embeds,
            past_key_values=cache,
        )

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def ar_generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        eos_token_id: int | None = None,
        generator: torch.Generator | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Autoregressive decoding for the causal AR control, one token per forward with the KV cache.

        ``input_ids`` [B, Lp] (left-pad batches). Greedy when ``temperature == 0``, else sampling from
        ``softmax(logits / temperature)`` with ``generator``. ``eos_token_id`` None means ``config.eos_token_id``
        (pass -1 to never stop early); after a row emits it, the row is filled with ``pad_token_id``; decoding stops when every row has
        finished or after ``max_new_tokens``. Returns [B, Lp + n_generated] (prompt included).
        """
        if not self.config.is_causal:
            raise ValueError(
                "ar_generate needs a causal model (config.attention == 'causal'); this one is bidirectional"
            )
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        batch, prompt_len = input_ids.shape
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
        positions, deltas = self.get_rope_index(input_ids, image_grid_thw, mask, video_grid_thw)
        out = self(
            input_ids,
            attention_mask=mask,
            position_ids=positions,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            use_cache=True,
            pixel_values_videos=pixel_values_videos,
            video_grid_thw=video_grid_thw,
        )
        finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        new_tokens = []
        for step in range(max_new_tokens):
            token = pick_next_token(out.logits[:, -1], temperature, generator)
            token = token.masked_fill(finished, self.config.pad_token_id)
            new_tokens.append(token)
            if eos is not None:
                finished |= token == eos
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            mask = torch.cat((mask, mask.new_ones(batch, 1)), dim=1)
            position = (prompt_len + step + deltas).view(batch, 1)  # continues each row's positions
            out = self(
                inputs_embeds=self.model.embed_tokens(token[:, None]),  # generated tokens are text, even an
                attention_mask=mask,  # <|image_pad|> / <|video_pad|> (as in CachedEmbeddingDenoiser)
                position_ids=position,
                past_key_values=out.past_key_values,
                use_cache=True,
            )
        return torch.cat((input_ids, torch.stack(new_tokens, dim=1)), dim=1)

    @torch.no_grad()
    def diffusion_generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        generation_tokens_hook_func: Callable | None = None,
        generation_logits_hook_func: Callable | None = None,
        generator: torch.Generator | None = None,
        generation_config: Any = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        **generation_kwargs: Any,
    ) -> Any:
        """Masked-diffusion generation with the official argument names (``max_new_tokens``, ``steps``,
        ``temperature``, ``top_p``, ``top_k``, ``alg``, ``alg_temp``, ``output_history``,
        ``return_dict_in_generate``, ...; see :class:`dreamvlx.diffusion.config.DiffusionGenerationConfig`).

        Defaults are the official effective ones, built from this model's config like the official code
        (``DiffusionGenerationConfig.from_model_config``: mask / pad / eos ids, position limit); the stored
        ``generation_config.json`` is not consulted (spec 4.1); pass a ``generation_config`` (a
        ``DiffusionGenerationConfig``, or a mapping such as ``self.generation_config``, read like the official
        explicit config: class defaults for omitted fields) to override.
        The vision tower runs once (first denoising call), see :class:`CachedEmbeddingDenoiser`. Returns the
        canvas [B, Lp + max_new_tokens] (prompt included), or an output with ``.sequences`` / ``.history`` when
        ``return_dict_in_generate``.
        """
        if "position_ids" in generation_kwargs:
            raise NotImplementedError("position_ids are recomputed by the official rule at every step")
        generation_config = self.base_generation_config(generation_config)
        repeats = generation_kwargs.get("num_return_sequences", generation_config.num_return_sequences)
        return self.diffusion_generate_with(
            CachedEmbeddingDenoiser(
                self, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw, repeats=repeats
            ),
            input_ids,
            attention_mask,
            generator=generator,
            generation_config=generation_config,
            tokens_hook=generation_tokens_hook_func,
            logits_hook=generation_logits_hook_func,
            **generation_kwargs,
        )

    def diffusion_generate_with(
        self,
        denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        generation_config: Any = None,
        **generation_kwargs: Any,
    ) -> Any:
        """The loop of :meth:`diffusion_generate` around any denoiser ``(x [B, L], attention_mask [B, L]) ->
        unshifted logits [B, L, V]`` (this model's :class:`CachedEmbeddingDenoiser`, or an engine's), with this
        model's default generation config when ``generation_config`` is None; ``generation_kwargs`` as
        :func:`dreamvlx.diffusion.generation.diffusion_generate` (official names, hooks included)."""
        from dreamvlx.diffusion.generation import diffusion_generate

        return diffusion_generate(
            denoise,
            input_ids,
            attention_mask,
            generation_config=self.base_generation_config(generation_config),
            generator=generator,
            **generation_kwargs,
        )

    def base_generation_config(self, generation_config: Any = None) -> Any:
        """The ``DiffusionGenerationConfig`` that generation arguments override: this model's official default
        (``from_model_config``) for None, a mapping read as :meth:`_generation_config_from_mapping`, or the
        given config itself."""
        from dreamvlx.diffusion.config import DiffusionGenerationConfig

        if generation_config is None:
            return DiffusionGenerationConfig.from_model_config(self.config)
        if isinstance(generation_config, Mapping):
            return self._generation_config_from_mapping(generation_config)
        return generation_config

    def _generation_config_from_mapping(self, data: Mapping[str, Any]) -> Any:
        """A generation_config.json mapping (e.g. ``self.generation_config``) as the official code reads an explicit
        ``DreamVLGenerationConfig``: the class defaults (``temperature`` 0, no top-p / top-k) for fields the
        mapping omits, the model's token ids where it leaves them unset, a ``max_length`` of 20 (the HF default)
        extended by the prompt length; keys that are not generation arguments (``transformers_version``,
        ``_from_model_config``, ...) are ignored."""
        from dreamvlx.diffusion.config import DiffusionGenerationConfig

        known = set(DiffusionGenerationConfig.field_names())
        values = {key: value for key, value in data.items() if key in known}
        for key in ("mask_token_id", "pad_token_id", "eos_token_id", "max_length", "max_new_tokens"):
            if values.get(key) is None:
                values.pop(key, None)
        if (
            values.get("max_length") == 20
        ):  # the HF default max_length: the official code adds the prompt length
            values.pop("max_length")
        base = DiffusionGenerationConfig.from_model_config(
            self.config, temperature=0.0, top_p=None, top_k=None
        )
        return base.update(**values)


VISUAL_KINDS = ("image", "video")


def embed_with_visual_features(
    model: DreamVL,
    input_ids: torch.Tensor,
    pixels: Mapping[str, torch.Tensor | None],
    grids: Mapping[str, torch.Tensor | None],
    repeats: int = 1,
    features_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    """Token embeddings [B, L, D] of ``input_ids`` with the image and video features at their pad tokens.

    ``pixels`` / ``grids``: the ``"image"`` and ``"video"`` inputs (None when absent). ``repeats``: each prompt
    row appears that many times in ``input_ids`` (adjacent rows, ``num_return_sequences``): the vision tower
    still sees every image once and its features are repeated (:func:`repeat_visual_features`).
    ``features_fn(pixels, grid) -> [N_tokens, D]`` computes the features (default ``model.get_image_features``;
    the engine passes its own). Returns the embeddings and the grids in row order (repeated with the rows), as
    the position ids need them.
    """
    cfg = model.config
    features_fn = features_fn or model.get_image_features
    token_ids = {"image": cfg.image_token_id, "video": cfg.video_token_id}
    embeds = model.model.embed_tokens(input_ids)
    row_grids: dict[str, torch.Tensor | None] = {}
    for kind in VISUAL_KINDS:
        kind_pixels, grid = pixels[kind], grids[kind]
        pixel_name = "pixel_values" if kind == "image" else "pixel_values_videos"
        if kind_pixels is not None and grid is None:
            raise ValueError(f"{pixel_name} were given without {kind}_grid_thw")
        if kind_pixels is None and grid is not None:
            raise ValueError(f"{kind}_grid_thw was given without {pixel_name}")
        slots = input_ids == token_ids[kind]
        features = None if kind_pixels is None else features_fn(kind_pixels, grid)
        if features is not None and repeats > 1:
            per_prompt = slots[::repeats].sum(-1).tolist()
            merge = cfg.vision_config.spatial_merge_size
            features, grid = repeat_visual_features(features, grid, per_prompt, merge, repeats)
        embeds = scatter_visual_features(embeds, slots, kind, features, grid)
        row_grids[kind] = grid
    return embeds, row_grids


def scatter_visual_features(
    embeds: torch.Tensor,
    slots: torch.Tensor,
    kind: str,
    features: torch.Tensor | None,
    grid: torch.Tensor | None,
) -> torch.Tensor:
    """``embeds`` [B, L, D] with ``features`` [N, D] of ``kind`` ("image" or "video") written in order at the
    ``slots`` [B, L] (row-major); errors naming the counts when they disagree (``grid`` names the inputs)."""
    n_slots = int(slots.sum())
    if features is None:
        if n_slots:
            pixel_name = "pixel_values" if kind == "image" else "pixel_values_videos"
            raise ValueError(f"input_ids hold {n_slots} {kind}-pad tokens but no {pixel_name} were given")
        return embeds
    if n_slots != features.shape[0]:
        raise ValueError(
            f"input_ids hold {n_slots} {kind}-pad tokens but the {kind}s {grid.tolist()} give "
            f"{features.shape[0]} features; each {kind} needs t*h*w/4 pad tokens"
        )
    return embeds.masked_scatter(slots.unsqueeze(-1).expand_as(embeds), features.to(embeds.dtype))


def repeat_visual_features(
    features: torch.Tensor,
    grid_thw: torch.Tensor,
    slots_per_prompt: list[int],
    merge_size: int,
    repeats: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and grids of a batch whose prompt rows each appear ``repeats`` times (adjacent rows, as
    ``num_return_sequences`` builds the canvas), from the features of the prompts' images computed once.

    ``features`` [N_tokens, D] and ``grid_thw`` [n, 3] are the images of the B prompts in order; prompt ``b``
    holds ``slots_per_prompt[b]`` pad tokens, filled by its images in order. Returns the features and grids of
    each prompt's images repeated ``repeats`` times, prompt by prompt: [repeats * N_tokens, D], [repeats * n, 3].
    (The official code raises here: it repeats the prompts but not their images, spec §7 item 8.)
    """
    tokens_per_image = (grid_thw.prod(-1) // merge_size**2).tolist()
    pieces = features.split(tokens_per_image)
    order: list[int] = []
    image = 0
    for row, slots in enumerate(slots_per_prompt):
        first, taken = image, 0
        while taken < slots and image < len(tokens_per_image):
            taken += tokens_per_image[image]
            image += 1
        if taken != slots:
            raise ValueError(
                f"prompt {row} holds {slots} pad tokens, which its images (from image {first} on, of "
                f"{tokens_per_image[first:]} tokens) do not fill exactly"
            )
        order += list(range(first, image)) * repeats
    if image != len(tokens_per_image):
        raise ValueError(
            f"{len(tokens_per_image) - image} images are left over after the last prompt's pad tokens"
        )
    return torch.cat([pieces[i] for i in order]), grid_thw[order]


def pick_next_token(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """[B, V] -> [B] int64: argmax when ``temperature == 0``, else a draw from softmax(logits / T) in float32."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class CachedEmbeddingDenoiser:
    """``denoise_fn(x [B, L], attention_mask [B, L]) -> logits [B, L, V]`` (unshifted) for the diffusion loop.

    First call: the canvas is embedded with the image and video features (vision tower run once). Later calls
    reuse those embeddings and re-embed only the tokens that changed since the previous call (the official loop
    re-embeds the previously masked positions, so the results agree; unlike the official loop, tokens a hook
    changed elsewhere are re-embedded too). Image and video slots must not change. Position ids follow the
    official rule on the current canvas, counting only the prompt's images and videos (an ``<|image_pad|>`` or
    ``<|video_pad|>`` the model generates is text).

    ``repeats``: each prompt row appears that many times in the canvas (``num_return_sequences``); the images
    go through the vision tower once and their features are repeated (:func:`repeat_visual_features`).
    """

    def __init__(
        self,
        model: DreamVL,
        pixel_values: torch.Tensor | None,
        image_grid_thw: torch.Tensor | None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        repeats: int = 1,
    ) -> None:
        self.model = model
        self.pixels = {"image": pixel_values, "video": pixel_values_videos}
        self.grids = {"image": image_grid_thw, "video": video_grid_thw}
        self.canvas_grids = dict(self.grids)  # the grids in canvas order (repeated with the prompts)
        self.repeats = repeats
        self.embeds: torch.Tensor | None = None
        self.canvas: torch.Tensor | None = None
        self.visual_slots: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        model, cfg = self.model, self.model.config
        pad_tokens = (x == cfg.image_token_id) | (x == cfg.video_token_id)
        if self.embeds is None or self.canvas is None or self.canvas.shape != x.shape:
            self.embeds, self.canvas_grids = embed_with_visual_features(
                model, x, self.pixels, self.grids, self.repeats
            )
            self.visual_slots = pad_tokens
        else:
            changed = x != self.canvas
            if bool((changed & self.visual_slots).any()):
                raise ValueError(
                    "the canvas changed a token at a vision slot (an image position or a video position); "
                    "those slots are fixed"
                )
            if bool(changed.any()):
                self.embeds[changed] = model.model.embed_tokens(x[changed])
        self.canvas = x.clone()
        rope_ids = x.masked_fill(pad_tokens & ~self.visual_slots, cfg.mask_token_id)
        grids = self.canvas_grids
        positions, _ = model.get_rope_index(rope_ids, grids["image"], attention_mask, grids["video"])
        return model(inputs_embeds=self.embeds, attention_mask=attention_mask, position_ids=positions).logits
