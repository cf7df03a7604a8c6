"""``TextEngine``: Dream-VL text generation on the engine's forward (vision once, static shapes, CUDA graphs).

* :meth:`TextEngine.diffusion_generate` is ``DreamVL.diffusion_generate`` (same arguments, same loop:
  :func:`dreamvlx.diffusion.generation.diffusion_generate`) with the model calls replaced by the engine's.
* :meth:`TextEngine.threshold_generate` is confidence-threshold parallel decoding: at every step each masked
  position gets a token and a confidence (its probability under the sampling settings, as ``maskgit_plus``);
  every masked position whose confidence **exceeds** ``threshold`` (strictly) is committed, and in any case the
  single most confident masked position of each row that still has masks, so each step makes progress and
  generation ends after at most ``max_new_tokens`` steps. ``threshold >= 1`` therefore commits exactly one token
  per step (a probability never exceeds 1); lower thresholds commit more tokens per step when the model is
  sure. There is no fixed step count: the number of forwards adapts to the model's confidence.

Both read the prediction for canvas position ``j`` from logit row ``j - 1`` (the Dream shift).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dreamvlx.diffusion.config import DiffusionGenerationConfig
from dreamvlx.diffusion.sampling import sample_tokens
from dreamvlx.engine.backbone import attention_mask, lm_forward, rotary
from dreamvlx.engine.base import EngineBase
from dreamvlx.engine.config import EngineConfig
from dreamvlx.engine.unmasking import commit_above_threshold
from dreamvlx.modeling.dream_vl import DreamVL, embed_with_visual_features


@dataclass
class ThresholdGenerateOutput:
    """``sequences`` [B, Lp + max_new_tokens] (prompt included); ``commits`` [steps, B] int64 tokens committed per
    step and row; ``history``: the canvas after each step (when asked for)."""

    sequences: torch.Tensor
    commits: torch.Tensor
    history: list[torch.Tensor] | None = None

    @property
    def steps(self) -> int:
        return self.commits.shape[0]


class _EngineDenoiser:
    """``(x [B, L], attention_mask [B, L]) -> unshifted logits [B, L, V]`` for one generation (fixed canvas).

    On the first call: the images and videos go through the vision tower once, the vision slots and the
    official position ids (constant over the generation: the canvas only holds text) are fixed. Every call
    re-embeds the canvas tokens and keeps the image and video features at the vision slots."""

    def __init__(
        self,
        engine: TextEngine,
        pixel_values: torch.Tensor | None,
        image_grid_thw: torch.Tensor | None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        repeats: int = 1,
    ) -> None:
        self.engine = engine
        self.pixels = {"image": pixel_values, "video": pixel_values_videos}
        self.grids = {"image": image_grid_thw, "video": video_grid_thw}
        self.repeats = repeats
        self.image_embeds: torch.Tensor | None = None
        self.image_slots: torch.Tensor | None = None
        self.positions: torch.Tensor | None = None
        self.padded = False

    def _setup(self, x: torch.Tensor, attention_mask: torch.Tensor) -> None:
        model = self.engine.model
        self.image_embeds, grids = embed_with_visual_features(
            model, x, self.pixels, self.grids, self.repeats, self.engine.image_features
        )
        self.image_slots = (x == model.config.image_token_id) | (x == model.config.video_token_id)
        self.positions, _ = model.get_rope_index(x, grids["image"], attention_mask, grids["video"])
        self.padded = bool((attention_mask == 0).any())

    def logits(self, x: torch.Tensor, attention_mask: torch.Tensor, rows: slice) -> torch.Tensor:
        """Unshifted logits of ``rows`` only: [B, len(rows), V]."""
        if self.image_embeds is None or self.image_embeds.shape[:2] != x.shape:
            self._setup(x, attention_mask)
        embeds = torch.where(
            self.image_slots[..., None], self.image_embeds, self.engine.model.model.embed_tokens(x)
        )
        return self.engine._lm(
            embeds=embeds,
            positions=self.positions,
            key_valid=attention_mask,
            static={"padded": self.padded, "rows": (rows.start, rows.stop)},
        )

    def __call__(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.logits(x, attention_mask, slice(0, x.shape[1]))


class TextEngine(EngineBase):
    """Fast text generation for one ``DreamVL`` (module docstring); ``config`` as :class:`ActionEngine`'s."""

    def __init__(self, model: DreamVL, config: EngineConfig | None = None) -> None:
        super().__init__(model, config)
        self._lm = self.step_runner(self._lm_step)

    def _lm_step(
        self,
        embeds: torch.Tensor,
        positions: torch.Tensor,
        key_valid: torch.Tensor,
        padded: bool,
        rows: tuple[int, int],
    ) -> torch.Tensor:
        model = self.model
        cos, sin = rotary(model.model, positions, embeds.dtype)
        query_index = torch.arange(embeds.shape[1], device=embeds.device)
        mask = attention_mask(key_valid, query_index, causal=model.config.is_causal, padded=padded)
        return model.lm_head(lm_forward(model.model, embeds, cos, sin, mask, slice(*rows)))

    @torch.no_grad()
    def diffusion_generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        generation_config: DiffusionGenerationConfig | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        **generation_kwargs: object,
    ) -> object:
        """``DreamVL.diffusion_generate`` on the engine (same arguments, defaults and outputs): the model's
        ``diffusion_generate_with`` around the engine's denoiser."""
        generation_config = self.model.base_generation_config(generation_config)
        repeats = generation_kwargs.get("num_return_sequences", generation_config.num_return_sequences)
        return self.model.diffusion_generate_with(
            _EngineDenoiser(
                self, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw, repeats=repeats
            ),
            input_ids,
            attention_mask,
            generator=generator,
            generation_config=generation_config,
            **generation_kwargs,
        )

    @torch.no_grad()
    def threshold_generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        *,
        max_new_tokens: int,
        threshold: float = 0.9,
        temperature: float = 0.0,
        top_p: float | None = None,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        output_history: bool = False,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
    ) -> ThresholdGenerateOutput:
        """Confidence-threshold parallel decoding of ``max_new_tokens`` positions after the prompt ``input_ids``
        [B, Lp] (left-pad batches; no mask token in the prompt). See the module docstring."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if threshold < 0 or threshold != threshold:
            raise ValueError(f"threshold must be a number >= 0, got {threshold}")
        mask_id = self.model.config.mask_token_id
        if bool((input_ids == mask_id).any()):
            raise ValueError(
                f"the prompt contains the mask token (id {mask_id}); threshold decoding fills only new positions"
            )
        batch, prompt_len = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = torch.nn.functional.pad(input_ids, (0, max_new_tokens), value=mask_id)
        mask = torch.nn.functional.pad(attention_mask.long(), (0, max_new_tokens), value=1)
        denoise = _EngineDenoiser(self, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw)
        rows = slice(prompt_len - 1, x.shape[1] - 1)  # row j - 1 predicts position j (Dream shift)
        commits, history = [], [] if output_history else None
        while bool((x[:, prompt_len:] == mask_id).any()):
            logits = denoise.logits(x, mask, rows)
            flat = logits.reshape(-1, logits.shape[-1]).float()
            confidence, tokens = sample_tokens(flat, temperature, top_p, top_k, generator=generator)
            region = x[:, prompt_len:]
            new_region, chosen = commit_above_threshold(
                region,
                region == mask_id,
                confidence.view(batch, max_new_tokens),
                tokens.view(batch, max_new_tokens),
                threshold,
            )
            x = torch.cat((x[:, :prompt_len], new_region), dim=1)
            commits.append(chosen.sum(dim=1))
            if history is not None:
                history.append(x.clone())
        return ThresholdGenerateOutput(x, torch.stack(commits), history)
