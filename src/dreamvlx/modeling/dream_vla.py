"""DreamVLA: the Dream-VL backbone reading images, instruction and proprioception, emitting an action chunk.

What the VLA forward adds to :class:`~dreamvlx.modeling.dream_vl.DreamVL` (spec dream-vla.md 1.2), in order:

1. Token embeddings with the image features scattered into the ``<|image_pad|>`` slots (as DreamVL).
2. Action-slot embeddings (``action_slots`` [B, L] bool, N = chunk * A per row, time-major) are **replaced**
   by zeros (one-step discrete, L1) or by ``NoisyActionProjector(noisy_actions)`` (DDIM, flow matching);
   discrete diffusion and the AR control keep the token embeddings (mask tokens / action tokens).
3. A timestep token ``SinusoidalPositionalEncoding(t)`` (DDIM, flow) and then a proprio token
   ``ProprioProjector(proprio)`` are **prepended**: the sequence is ``[proprio][timestep][chat tokens][padding]``
   and the attention mask gets a 1 per prepended token.
4. Position ids are always ``attention_mask.cumsum(1)`` over the extended mask (1-based, 1-D, the three M-RoPE
   sections equal; right padding repeats the last id, left padding leaves the first tokens' ids unchanged).
5. The states of the prepended tokens are dropped, so ``hidden_states`` ([B, L, D], final-norm last layer) and
   ``logits`` ([B, L, V], unshifted) align with ``input_ids``.

The Dream shift: logit row i predicts token i + 1, so the prediction for an action token at position j -- its
logits and the hidden state fed to the action head -- is read at position j - 1
(:meth:`DreamVLA.action_hidden_states`, :meth:`DreamVLA.action_logits`).

Modules besides the backbone (official names, :mod:`dreamvlx.modeling.heads`): ``proprio_projector`` (when
``use_proprio``), ``action_head`` (L1 / DDIM / flow) and ``noisy_action_projector`` (DDIM / flow). The checkpoint
layout (backbone safetensors + ``{component}--{step}_checkpoint.pt`` + ``dataset_statistics.json``) is in
:mod:`dreamvlx.vla.checkpoint`; the objectives' losses and decoders in :mod:`dreamvlx.vla.objectives`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamvlx.actions.normalization import DatasetStatistics
from dreamvlx.config import DreamVLConfig
from dreamvlx.modeling.dream_vl import DreamVL
from dreamvlx.modeling.heads import ACTION_HEADS, ActionHead, NoisyActionProjector, ProprioProjector
from dreamvlx.modeling.lm import KVCache
from dreamvlx.processing.processor import DreamVLProcessor
from dreamvlx.vla.config import HEAD_OBJECTIVES, NOISY_OBJECTIVES, VLASettings

VLA_SETTINGS_KEY = "dreamvlx_vla"


@dataclass
class DreamVLAConfig(DreamVLConfig):
    """``DreamVLConfig`` + ``n_action_bins`` (256) + ``norm_stats`` (official ``DreamVLAConfig``) + our
    ``dreamvlx_vla`` entry (the :class:`VLASettings`; written only when set)."""

    n_action_bins: int = 256
    norm_stats: dict[str, Any] = field(default_factory=dict)
    dreamvlx_vla: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if out.get(VLA_SETTINGS_KEY) is None:
            out.pop(VLA_SETTINGS_KEY, None)
        return out

    @property
    def vla_settings(self) -> VLASettings | None:
        return None if self.dreamvlx_vla is None else VLASettings.from_dict(self.dreamvlx_vla)


@dataclass
class DreamVLAOutput:
    """``logits`` [B, L, V] unshifted (None with ``compute_logits=False``); ``hidden_states`` [B, L, D] final-norm
    last layer aligned with ``input_ids``; ``attention_mask`` [B, n_prefix + L_cached + L] including the prepended
    tokens; ``action_hidden_states`` [B, N, D] read one position before each action slot; ``action_head_output``
    [B, chunk, A] (L1: actions, DDIM: noise, flow: velocity); ``past_key_values`` when ``use_cache``."""

    logits: torch.Tensor | None
    hidden_states: torch.Tensor
    attention_mask: torch.Tensor
    inputs_embeds: torch.Tensor
    action_hidden_states: torch.Tensor | None = None
    action_head_output: torch.Tensor | None = None
    past_key_values: KVCache | None = None


class DreamVLA(DreamVL):
    """Dream-VLA model (module docstring). Build with a :class:`DreamVLAConfig` whose ``dreamvlx_vla`` is set, or
    pass ``settings``. ``attach(processor, norm_stats)`` makes :meth:`predict_action` usable."""

    config_class = DreamVLAConfig
    config: DreamVLAConfig
    name_or_path: str | None = (
        None  # set by the loaders: the checkpoint the backbone came from (PEFT reads it)
    )

    def __init__(self, config: DreamVLAConfig, settings: VLASettings | None = None) -> None:
        if not isinstance(config, DreamVLAConfig):
            config = DreamVLAConfig.from_dict(config.to_dict())
        settings = settings or config.vla_settings
        if settings is None:
            raise ValueError(
                "DreamVLA needs VLA settings (objective, platform, ...): pass settings=VLASettings(...) or a config "
                f"with '{VLA_SETTINGS_KEY}'"
            )
        if settings.attention != config.attention:
            raise ValueError(
                f"objective {settings.objective!r} needs config.attention = {settings.attention!r}, "
                f"the config says {config.attention!r}"
            )
        config.dreamvlx_vla = settings.to_dict()
        super().__init__(config)
        self.settings = settings
        robot, dim = settings.robot, config.hidden_size
        self.proprio_projector = ProprioProjector(dim, robot.proprio_dim) if settings.use_proprio else None
        self.action_head: ActionHead | None = (
            ACTION_HEADS[settings.objective](dim, robot.action_dim)
            if settings.objective in HEAD_OBJECTIVES
            else None
        )
        self.noisy_action_projector = (
            NoisyActionProjector(dim) if settings.objective in NOISY_OBJECTIVES else None
        )
        self.processor: DreamVLProcessor | None = None
        self.norm_stats: dict[str, DatasetStatistics] = {}
        self._policy: Any = None

    # ------------------------------------------------------------------ inference context
    def attach(self, processor: DreamVLProcessor, norm_stats: Mapping[str, DatasetStatistics]) -> DreamVLA:
        """Give the model its processor and normalisation statistics (required by :meth:`predict_action`).

        The statistics must cover the configured ``unnorm_key`` (KeyError otherwise) and match the platform's
        action / proprio dims (ValueError otherwise)."""
        from dreamvlx.vla.policy import VLAPolicy

        self.processor = processor
        self.norm_stats = dict(norm_stats)
        self._policy = VLAPolicy(self, processor, self.norm_stats)
        return self

    @property
    def policy(self) -> Any:
        if self._policy is None:
            raise RuntimeError(
                "this DreamVLA has no processor / normalisation statistics: load it with DreamVLA.from_pretrained "
                "or call model.attach(processor, norm_stats)"
            )
        return self._policy

    # ------------------------------------------------------------------ forward
    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        output_hidden_states: bool = True,
        *,
        proprio: torch.Tensor | None = None,
        action_slots: torch.Tensor | None = None,
        noisy_actions: torch.Tensor | None = None,
        diffusion_time: torch.Tensor | None = None,
        zero_action_embeddings: bool = False,
        compute_logits: bool = True,
    ) -> DreamVLAOutput:
        """The VLA forward (module docstring).

        Args:
            input_ids: [B, L] (or ``inputs_embeds`` [B, L, D], image features already scattered).
            attention_mask: [B, L_cached + L] (1 = token), without the prepended tokens; default all ones.
            position_ids: must be None: VLA positions are always ``cumsum`` of the extended attention mask.
            proprio: [B, P] normalised proprio (required iff the model has a proprio projector).
            action_slots: [B, L] bool, the N action-token positions of every row (needed to replace their
                embeddings and to read the action states).
            noisy_actions: [B, chunk, A] noisy normalised actions (DDIM / flow), projected into the slots.
            diffusion_time: [B] timestep (DDIM: integer as float, flow: t in [0, 1]) for the timestep token.
            zero_action_embeddings: replace the action-slot embeddings by zeros (one-step discrete, L1).
            past_key_values / use_cache: KV cache (AR control). The prepended tokens are part of the first
                forward only; later forwards pass the returned ``attention_mask`` extended by their tokens.
            compute_logits: skip the LM head (continuous objectives only read hidden states).
        """
        del output_hidden_states  # the final hidden states are always returned
        if position_ids is not None:
            raise ValueError(
                "DreamVLA recomputes position ids as attention_mask.cumsum(1); do not pass position_ids"
            )
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        embeds = (
            self.embed_inputs(input_ids, pixel_values, image_grid_thw)
            if inputs_embeds is None
            else inputs_embeds
        )
        batch, length = embeds.shape[:2]
        cached = 0 if past_key_values is None else past_key_values.length
        if attention_mask is None:
            attention_mask = torch.ones(batch, cached + length, dtype=torch.long, device=embeds.device)
        embeds = self._replace_action_embeddings(embeds, action_slots, noisy_actions, zero_action_embeddings)
        prefix = self.prefix_tokens(
            batch, proprio, diffusion_time, embeds.dtype, first_forward=past_key_values is None
        )
        if prefix is not None:
            embeds = torch.cat((prefix, embeds), dim=1)
            attention_mask = torch.cat(
                (attention_mask.new_ones(batch, prefix.shape[1]), attention_mask), dim=1
            )
        n_prefix = 0 if prefix is None else prefix.shape[1]
        positions = attention_mask.long().cumsum(dim=1)[:, -embeds.shape[1] :]
        hidden, cache = self.model(embeds, attention_mask, positions, past_key_values, use_cache)
        hidden = hidden[:, n_prefix:]
        out = DreamVLAOutput(
            logits=self.lm_head(hidden) if compute_logits else None,
            hidden_states=hidden,
            attention_mask=attention_mask,
            inputs_embeds=embeds[:, n_prefix:],
            past_key_values=cache,
        )
        if action_slots is not None and past_key_values is None:
            out.action_hidden_states = self.action_hidden_states(hidden, action_slots)
            if self.action_head is not None:
                out.action_head_output = self.action_head(out.action_hidden_states)
        return out

    def _check_slots(self, action_slots: torch.Tensor, shape: tuple[int, int]) -> None:
        n = self.settings.num_action_tokens
        if action_slots.dtype != torch.bool or tuple(action_slots.shape) != shape:
            raise ValueError(
                f"action_slots must be a bool tensor of shape {list(shape)}, got {action_slots.dtype} "
                f"{list(action_slots.shape)}"
            )
        per_row = action_slots.sum(dim=1)
        if bool((per_row != n).any()):
            raise ValueError(
                f"every row needs exactly {n} action slots (chunk x action_dim), got {per_row.tolist()}"
            )

    def _replace_action_embeddings(
        self,
        embeds: torch.Tensor,
        action_slots: torch.Tensor | None,
        noisy_actions: torch.Tensor | None,
        zero: bool,
    ) -> torch.Tensor:
        if noisy_actions is None and not zero:
            return embeds
        if noisy_actions is not None and zero:
            raise ValueError("give noisy_actions or zero_action_embeddings, not both")
        if action_slots is None:
            raise ValueError("replacing the action embeddings needs action_slots")
        batch, length, dim = embeds.shape
        self._check_slots(action_slots, (batch, length))
        n = self.settings.num_action_tokens
        if noisy_actions is not None:
            if self.noisy_action_projector is None:
                raise ValueError(f"objective {self.settings.objective!r} has no noisy-action projector")
            if noisy_actions.numel() != batch * n:
                raise ValueError(
                    f"noisy_actions must hold {n} values per row, got shape {list(noisy_actions.shape)}"
                )
            features = self.noisy_action_projector(noisy_actions.reshape(batch, n, 1))
        else:
            features = embeds.new_zeros(batch, n, dim)
        return embeds.masked_scatter(action_slots[..., None].expand_as(embeds), features.to(embeds.dtype))

    def prefix_tokens(
        self,
        batch: int,
        proprio: torch.Tensor | None,
        diffusion_time: torch.Tensor | None,
        dtype: torch.dtype,
        first_forward: bool,
    ) -> torch.Tensor | None:
        """The prepended tokens (module docstring, item 3): [B, n_prefix, D] = ``[proprio][timestep]`` (each when
        used) in ``dtype``, or None. ``proprio`` [B, P] normalised (required iff the model has a proprio
        projector); ``diffusion_time`` [B] (DDIM / flow only). With ``first_forward`` False (a cached forward)
        both must be None and the result is None. Used by :meth:`forward` and by the
        :class:`~dreamvlx.engine.ActionEngine` steps."""
        if not first_forward:
            if proprio is not None or diffusion_time is not None:
                raise ValueError(
                    "proprio / diffusion_time belong to the first forward (they are in the KV cache)"
                )
            return None
        tokens = []
        if self.proprio_projector is not None:
            if proprio is None:
                raise ValueError("this model was built with use_proprio=True: pass proprio [B, P]")
            if proprio.shape != (batch, self.settings.robot.proprio_dim):
                raise ValueError(
                    f"proprio must be [B={batch}, P={self.settings.robot.proprio_dim}], got {list(proprio.shape)}"
                )
            tokens.append(self.proprio_projector(proprio)[:, None])
        elif proprio is not None:
            raise ValueError("this model has no proprio projector (use_proprio=False); do not pass proprio")
        if diffusion_time is not None:
            if self.action_head is None or not self.action_head.uses_noisy_actions:
                raise ValueError(f"objective {self.settings.objective!r} takes no diffusion_time")
            tokens.append(self.action_head.time_encoder(diffusion_time.reshape(batch))[:, None])
        if not tokens:
            return None
        return torch.cat([t.to(dtype) for t in tokens], dim=1)  # [proprio][timestep]

    def action_hidden_states(self, hidden_states: torch.Tensor, action_slots: torch.Tensor) -> torch.Tensor:
        """[B, L, D] -> [B, N, D]: the states **one position before** each action slot (Dream shift: the state at
        j - 1 predicts token j), in slot order."""
        batch, length, dim = hidden_states.shape
        self._check_slots(action_slots, (batch, length))
        return hidden_states[:, :-1][action_slots[:, 1:]].reshape(batch, -1, dim)

    def action_logits(self, logits: torch.Tensor, action_slots: torch.Tensor) -> torch.Tensor:
        """[B, L, V] unshifted logits -> [B, N, V]: row j - 1 scores the action token at slot j (Dream shift)."""
        return self.action_hidden_states(logits, action_slots)

    # ------------------------------------------------------------------ prediction
    def predict_action(
        self,
        images: Sequence[Any],
        instruction: str,
        proprio: np.ndarray | Sequence[float] | None = None,
        unnorm_key: str | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """One action chunk ``[chunk, action_dim]`` float32 in the robot's units.

        ``images``: uint8 [H, W, 3] arrays or PIL images, primary camera first, as many as the platform's cameras
        (224 x 224 when ``settings.image_size`` says so). ``proprio``: raw robot state [P] (required iff the
        model uses proprio; NaN/inf rejected). ``unnorm_key``: statistics entry (default: the configured one).
        ``generator``: randomness of the DDIM / flow start noise (and of sampling when temperature > 0)."""
        proprio_batch = None if proprio is None else [proprio]
        return self.predict_action_batch([images], [instruction], proprio_batch, unnorm_key, generator)[0]

    def predict_action_batch(
        self,
        images: Sequence[Sequence[Any]],
        instructions: Sequence[str],
        proprio: Sequence[Any] | None = None,
        unnorm_key: str | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Batched :meth:`predict_action`: ``images[b]`` the camera list of sample b -> ``[B, chunk, dim]``."""
        return self.policy.predict(images, instructions, proprio, unnorm_key, generator)

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        path_or_hub_id: str | Path,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        *,
        base_model: str | Path | None = None,
        merge: bool = True,
        **settings_overrides: Any,
    ) -> DreamVLA:
        """Load the official ``Dream-VLA`` layout (see :mod:`dreamvlx.vla.checkpoint`); ``settings_overrides``
        (e.g. ``objective="flow", platform="libero"``) replace or supply the stored :class:`VLASettings`.

        A checkpoint without merged weights loads from its ``lora_adapter/``: the backbone is read from
        ``base_model`` (a folder or Hub id; default: the adapter's ``base_model_name_or_path``) and the adapter
        merged into it (the merged checkpoint's weights). Passing ``base_model`` uses the adapter even when merged
        weights exist; ``merge=False`` keeps the adapter unmerged (PEFT LoRA layers, active; such a model cannot be
        saved in the official layout)."""
        from dreamvlx.vla.checkpoint import load_dream_vla

        return load_dream_vla(
            cls,
            path_or_hub_id,
            dtype=dtype,
            device=device,
            base_model=base_model,
            merge=merge,
            **settings_overrides,
        )

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | Path,
        *,
        max_shard_size: int | str = "5GB",
        state_dict: dict[str, torch.Tensor] | None = None,
        step: int | None = None,
    ) -> Path:
        """Write the official layout (backbone, head component files, statistics, processor); ``step`` None names
        the component files ``--latest_checkpoint.pt``."""
        from dreamvlx.vla.checkpoint import save_dream_vla

        return save_dream_vla(
            self, save_directory, max_shard_size=max_shard_size, state_dict=state_dict, step=step
        )

    def read_full_state_dict(self, directory: str | Path) -> dict[str, torch.Tensor]:
        """The weights of a checkpoint directory (backbone + component files) under this model's state-dict
        names, on CPU (a resumed run loads them, resharded under FSDP2)."""
        from dreamvlx.vla.checkpoint import read_dream_vla_state_dict

        return read_dream_vla_state_dict(self, Path(directory))
