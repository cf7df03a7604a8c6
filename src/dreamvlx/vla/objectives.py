"""The Dream-VLA objectives: one training loss and one inference procedure each (spec dream-vla.md section 3).

Training follows the trainer's two-phase interface (:mod:`dreamvlx.train.objectives`): ``prepare(batch, step)``
draws all noise (per sample, from a generator seeded by ``(seed, step, dataset index)``) and counts the loss
elements, ``loss_sum(model, prepared)`` runs the model **through its forward** (so DDP synchronises the heads too,
unlike the official code, spec 8.15) and returns the summed loss; the trainer divides by the global count.

=====================  ==============================================  ==========================================
objective              loss (summed; count)                            inference (``decode``)
=====================  ==============================================  ==========================================
discrete_diffusion     CART-weighted CE of the masked action tokens   ``diffusion_generate`` on 58 mask tokens,
                       and suffix (count: masked tokens)              action slots restricted to action ids
discrete               CE of the action tokens + suffix, action       one forward, argmax over the action ids
                       embeddings zeroed (count: label tokens)
l1                     ``|head(h) - a|`` (count: action values)        one forward, head output
ddim                   ``(head(h) - eps)^2`` at a random timestep      ``ddim_inference_steps`` forwards from noise
flow                   ``(head(h) - (a - eps))^2`` at t ~ Beta        ``flow_steps`` Euler forwards from noise
ar                     next-token CE of action tokens + suffix,        one token per forward with the KV cache,
                       causal attention (count: label tokens)         restricted to action ids
=====================  ==============================================  ==========================================

Every read-out uses the Dream shift: the logits / hidden state for the action token at position j come from
position j - 1 (``DreamVLA.action_logits`` / ``action_hidden_states``). Deviations from the released code, on
purpose (spec section 8): the flow-matching head and projector are trained (8.1); L1 and one-step discrete run
(8.2); discrete decoding is restricted to the action ids instead of clipping stray ids (8.13); right padding is not
CART context (8.6); padded chunk steps past an episode end carry no loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dreamvlx.diffusion.config import DiffusionGenerationConfig
from dreamvlx.diffusion.generation import diffusion_generate
from dreamvlx.diffusion.losses import cart_weights, diffusion_loss_mask, mask_for_diffusion, shift_labels
from dreamvlx.modeling.dream_vl import pick_next_token
from dreamvlx.train.objectives import PreparedBatch, sample_generator
from dreamvlx.vla.config import VLASettings
from dreamvlx.vla.prompt import IGNORE_INDEX, ActionPromptLayout
from dreamvlx.vla.schedulers import (
    DDIMScheduler,
    flow_inference_times,
    flow_interpolate,
    sample_flow_times,
)

FORWARD_KEYS = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw", "proprio", "action_slots")
TARGET_PREFIX = "target_"  # model_inputs entries that are loss targets, not forward arguments


def _split_inputs(prepared: PreparedBatch) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    forward = {k: v for k, v in prepared.model_inputs.items() if not k.startswith(TARGET_PREFIX)}
    targets = {
        k[len(TARGET_PREFIX) :]: v for k, v in prepared.model_inputs.items() if k.startswith(TARGET_PREFIX)
    }
    return forward, targets


def _forward_inputs(batch: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: batch[k] for k in keys if k in batch}


class VLAObjective:
    """Base: settings, run seed and the per-sample generator. ``unused_modules``: top-level modules of the model
    that this objective's loss never reaches; the trainer freezes them (no optimizer state, and DDP does not
    wait for gradients that never come)."""

    unused_modules: tuple[str, ...] = ()

    def __init__(self, settings: VLASettings, seed: int, mask_token_id: int) -> None:
        self.settings = settings
        self.seed = seed
        self.mask_token_id = mask_token_id

    def generators(self, batch: dict[str, Any], step: int) -> list[torch.Generator]:
        return [sample_generator(self.seed, step, int(i)) for i in batch["indices"]]

    def prepare(self, batch: dict[str, Any], step: int) -> PreparedBatch:
        raise NotImplementedError

    def loss_sum(self, model: nn.Module, prepared: PreparedBatch) -> torch.Tensor:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------- token objectives
class DiscreteDiffusionObjective(VLAObjective):
    """Mask the supervised tokens (actions + suffix) with p = (1 - eps) t + eps; CART-weighted CE (spec 3.1)."""

    def prepare(self, batch: dict[str, Any], step: int) -> PreparedBatch:
        labels = batch["labels"]
        masked_rows = []
        for row, gen in enumerate(self.generators(batch, step)):
            masked, _ = mask_for_diffusion(labels[row : row + 1], generator=gen, eps=self.settings.mask_eps)
            masked_rows.append(masked)
        masked = torch.cat(masked_rows)
        inputs = _forward_inputs(batch, "attention_mask", "pixel_values", "image_grid_thw", "proprio")
        inputs["input_ids"] = batch["input_ids"].masked_fill(masked, self.mask_token_id)
        count = int(diffusion_loss_mask(labels, masked).sum())
        return PreparedBatch(inputs, labels, masked, None, count)

    def loss_sum(self, model: nn.Module, prepared: PreparedBatch) -> torch.Tensor:
        logits = model(**prepared.model_inputs).logits
        labels, masked = prepared.labels, prepared.masked
        loss_rows = diffusion_loss_mask(labels, masked)  # row i scores token i + 1 (Dream shift)
        if prepared.count == 0:
            return logits.sum() * 0.0
        nll = F.cross_entropy(logits[loss_rows].float(), shift_labels(labels)[loss_rows], reduction="none")
        # context = rows that are neither scored nor padding (row i is padding when token i + 1 is)
        valid_rows = F.pad(prepared.model_inputs["attention_mask"][:, 1:], (0, 1)).bool()
        weights = cart_weights(~loss_rows & valid_rows, self.settings.cart_p)[loss_rows]
        return (nll * weights).sum()


class TokenCrossEntropyObjective(VLAObjective):
    """CE of every supervised token (actions + suffix) read one position earlier: one-step discrete (action
    embeddings zeroed, bidirectional) and the AR control (token embeddings, causal model)."""

    def prepare(self, batch: dict[str, Any], step: int) -> PreparedBatch:
        keys = FORWARD_KEYS if self.settings.objective == "discrete" else FORWARD_KEYS[:-1]
        inputs = _forward_inputs(batch, *keys)
        count = int((shift_labels(batch["labels"]) != IGNORE_INDEX).sum())
        return PreparedBatch(inputs, batch["labels"], None, None, count)

    def loss_sum(self, model: nn.Module, prepared: PreparedBatch) -> torch.Tensor:
        zero = self.settings.objective == "discrete"
        logits = model(**prepared.model_inputs, zero_action_embeddings=zero).logits
        if prepared.count == 0:
            return logits.sum() * 0.0
        targets = shift_labels(prepared.labels)
        rows = targets != IGNORE_INDEX
        return F.cross_entropy(logits[rows].float(), targets[rows], reduction="sum")


# ---------------------------------------------------------------------------------------------- head objectives
class HeadObjective(VLAObjective):
    """Objectives with an action head; the loss is summed over valid action values (padded steps excluded)."""

    unused_modules = ("lm_head",)  # the action head reads hidden states; the LM head is never run

    def prepare(self, batch: dict[str, Any], step: int) -> PreparedBatch:
        inputs = _forward_inputs(batch, *FORWARD_KEYS)
        actions, valid = batch["actions"], batch["action_valid"]
        inputs[TARGET_PREFIX + "actions"] = actions
        inputs[TARGET_PREFIX + "valid"] = valid
        inputs.update(self.draw_noise(actions, self.generators(batch, step)))
        count = int(valid.sum()) * actions.shape[-1]
        return PreparedBatch(inputs, batch["labels"], None, None, count)

    def draw_noise(self, actions: torch.Tensor, generators: list[torch.Generator]) -> dict[str, torch.Tensor]:
        return {}

    def model_kwargs(self, targets: dict[str, torch.Tensor]) -> dict[str, Any]:
        raise NotImplementedError

    def regression_target(self, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def element_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (prediction - target).pow(2)

    def loss_sum(self, model: nn.Module, prepared: PreparedBatch) -> torch.Tensor:
        forward, targets = _split_inputs(prepared)
        out = model(**forward, **self.model_kwargs(targets), compute_logits=False)
        prediction = out.action_head_output.float()
        losses = self.element_loss(prediction, self.regression_target(targets).float())
        return (losses * targets["valid"][..., None].to(losses.dtype)).sum()


class L1Objective(HeadObjective):
    """L1 regression of the normalised chunk from zeroed action slots (spec 3.3)."""

    def model_kwargs(self, targets: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"zero_action_embeddings": True}

    def regression_target(self, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return targets["actions"]

    def element_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (prediction - target).abs()


class DDIMObjective(HeadObjective):
    """Epsilon prediction at k ~ U{0..T-1}: ``x_k = sqrt(abar_k) a + sqrt(1 - abar_k) eps`` (spec 3.4)."""

    def __init__(self, settings: VLASettings, seed: int, mask_token_id: int) -> None:
        super().__init__(settings, seed, mask_token_id)
        self.scheduler = DDIMScheduler(settings.ddim_train_timesteps)

    def draw_noise(self, actions: torch.Tensor, generators: list[torch.Generator]) -> dict[str, torch.Tensor]:
        noise = torch.stack([torch.randn(actions.shape[1:], generator=g) for g in generators])
        steps = torch.cat(
            [torch.randint(0, self.scheduler.num_train_timesteps, (1,), generator=g) for g in generators]
        )
        return {TARGET_PREFIX + "noise": noise, TARGET_PREFIX + "timesteps": steps}

    def model_kwargs(self, targets: dict[str, torch.Tensor]) -> dict[str, Any]:
        noisy = self.scheduler.add_noise(targets["actions"], targets["noise"], targets["timesteps"])
        return {"noisy_actions": noisy, "diffusion_time": targets["timesteps"].float()}

    def regression_target(self, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return targets["noise"]


class FlowMatchingObjective(HeadObjective):
    """Velocity regression at ``x_t = (1 - t) eps + t a``, target ``a - eps`` (spec 3.5; head and projector
    trained, unlike the release, spec 8.1)."""

    def draw_noise(self, actions: torch.Tensor, generators: list[torch.Generator]) -> dict[str, torch.Tensor]:
        noise = torch.stack([torch.randn(actions.shape[1:], generator=g) for g in generators])
        times = torch.cat([sample_flow_times(1, g, self.settings.flow_time_sampler) for g in generators])
        return {TARGET_PREFIX + "noise": noise, TARGET_PREFIX + "times": times}

    def model_kwargs(self, targets: dict[str, torch.Tensor]) -> dict[str, Any]:
        noisy = flow_interpolate(targets["actions"], targets["noise"], targets["times"])
        return {"noisy_actions": noisy, "diffusion_time": targets["times"]}

    def regression_target(self, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return targets["actions"] - targets["noise"]


def build_vla_objective(settings: VLASettings, seed: int, mask_token_id: int) -> VLAObjective:
    """The training objective named by ``settings.objective`` (``mask_token_id``: the ``<|mask|>`` id)."""
    table: dict[str, type[VLAObjective]] = {
        "discrete_diffusion": DiscreteDiffusionObjective,
        "discrete": TokenCrossEntropyObjective,
        "ar": TokenCrossEntropyObjective,
        "l1": L1Objective,
        "ddim": DDIMObjective,
        "flow": FlowMatchingObjective,
    }
    return table[settings.objective](settings, seed, mask_token_id)


# ---------------------------------------------------------------------------------------------- inference
def _restrict_to_actions(logits: torch.Tensor, layout: ActionPromptLayout) -> torch.Tensor:
    """[..., V] -> [..., n_bins] logits of the action ids only (column k = id ``first + k``)."""
    first, last = layout.action_id_range
    return logits[..., first : last + 1]


def _pick_action_ids(
    logits: torch.Tensor, layout: ActionPromptLayout, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """[B, N, V] -> [B, N] action ids (argmax, or a draw at ``temperature``), among the action ids only."""
    restricted = _restrict_to_actions(logits, layout)
    batch, n, bins = restricted.shape
    picks = pick_next_token(restricted.reshape(batch * n, bins), temperature, generator).reshape(batch, n)
    return picks + layout.action_id_range[0]


def _tokens_to_actions(ids: torch.Tensor, layout: ActionPromptLayout, settings: VLASettings) -> torch.Tensor:
    values = layout.decode_actions(ids.cpu().numpy(), settings.robot.chunk_size)
    return torch.from_numpy(values).float()


def decode_discrete(
    model: nn.Module, batch: dict[str, Any], layout: ActionPromptLayout, generator: torch.Generator | None
) -> torch.Tensor:
    """One-step discrete: one forward with zeroed action slots, argmax of the action logits (spec 3.2)."""
    out = model(**_forward_inputs(batch, *FORWARD_KEYS), zero_action_embeddings=True)
    ids = _pick_action_ids(
        model.action_logits(out.logits, batch["action_slots"]), layout, model.settings.temperature, generator
    )
    return _tokens_to_actions(ids, layout, model.settings)


def decode_head(
    model: nn.Module, batch: dict[str, Any], layout: ActionPromptLayout, generator: torch.Generator | None
) -> torch.Tensor:
    """L1 regression: one forward with zeroed action slots, the head's chunk (spec 3.3)."""
    out = model(**_forward_inputs(batch, *FORWARD_KEYS), zero_action_embeddings=True, compute_logits=False)
    return out.action_head_output.float()


def _cached_image_inputs(model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
    """Forward inputs with the image features embedded once (reused by every denoising forward)."""
    inputs = _forward_inputs(batch, "attention_mask", "proprio", "action_slots")
    inputs["inputs_embeds"] = model.embed_inputs(
        batch["input_ids"], batch.get("pixel_values"), batch.get("image_grid_thw")
    )
    return inputs


def _start_noise(
    batch: dict[str, Any], settings: VLASettings, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    robot = settings.robot
    shape = (batch["input_ids"].shape[0], robot.chunk_size, robot.action_dim)
    return torch.randn(shape, generator=generator).to(device)


def decode_ddim(
    model: nn.Module, batch: dict[str, Any], layout: ActionPromptLayout, generator: torch.Generator | None
) -> torch.Tensor:
    """DDIM: ``ddim_inference_steps`` forwards from Gaussian noise (eta 0, x0 clipped to [-1, 1]) (spec 3.4)."""
    settings = model.settings
    scheduler = DDIMScheduler(settings.ddim_train_timesteps)
    inputs = _cached_image_inputs(model, batch)
    x = _start_noise(batch, settings, generator, inputs["inputs_embeds"].device)
    n = settings.ddim_inference_steps
    for k in scheduler.inference_timesteps(n):
        time = torch.full((x.shape[0],), float(k), device=x.device)
        eps = model(**inputs, noisy_actions=x, diffusion_time=time, compute_logits=False).action_head_output
        x = scheduler.step(eps.float(), k, x, n)
    return x.float()


def decode_flow(
    model: nn.Module, batch: dict[str, Any], layout: ActionPromptLayout, generator: torch.Generator | None
) -> torch.Tensor:
    """Flow matching: ``flow_steps`` Euler steps of the predicted velocity from noise at t = 0 (spec 3.5)."""
    settings = model.settings
    inputs = _cached_image_inputs(model, batch)
    x = _start_noise(batch, settings, generator, inputs["inputs_embeds"].device)
    dt = 1.0 / settings.flow_steps
    for t in flow_inference_times(settings.flow_steps):
        time = torch.full((x.shape[0],), t, device=x.device)
        velocity = model(
            **inputs, noisy_actions=x, diffusion_time=time, compute_logits=False
        ).action_head_output
        x = x + dt * velocity.float()
    return x.float()


class _VLADenoiser:
    """``denoise_fn(x, attention_mask) -> logits`` for ``diffusion_generate``: images embedded once, changed tokens
    re-embedded, proprio prepended by the VLA forward at every call (no timestep token)."""

    def __init__(self, model: nn.Module, batch: dict[str, Any]) -> None:
        self.model = model
        self.batch = batch
        self.embeds: torch.Tensor | None = None
        self.canvas: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.embeds is None:
            self.embeds = self.model.embed_inputs(
                x, self.batch.get("pixel_values"), self.batch.get("image_grid_thw")
            )
        else:
            changed = x != self.canvas
            if bool(changed.any()):
                self.embeds = self.embeds.clone()
                self.embeds[changed] = self.model.model.embed_tokens(x[changed]).to(self.embeds.dtype)
        self.canvas = x.clone()
        return self.model(
            inputs_embeds=self.embeds, attention_mask=attention_mask, proprio=self.batch.get("proprio")
        ).logits


def decode_discrete_diffusion(
    model: nn.Module, batch: dict[str, Any], layout: ActionPromptLayout, generator: torch.Generator | None
) -> torch.Tensor:
    """Discrete diffusion: ``diffusion_generate`` on ``prompt ++ [mask] * (N + 2)`` (spec 3.1), ``steps`` forwards;
    the action slots are decoded among the action ids only (the shifted logits of slot j come from row j - 1)."""
    settings = model.settings
    prompt_len, n = batch["input_ids"].shape[1], layout.num_action_tokens
    first, last = layout.action_id_range

    def only_action_ids(step: int, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        slots = logits[:, prompt_len : prompt_len + n]  # already shifted: row j scores token j
        outside = torch.ones(slots.shape[-1], dtype=torch.bool, device=slots.device)
        outside[first : last + 1] = False
        logits[:, prompt_len : prompt_len + n] = slots.masked_fill(outside, float("-inf"))
        return logits

    config = DiffusionGenerationConfig.from_model_config(
        model.config,
        max_new_tokens=n + len(layout.suffix_ids),
        steps=settings.diffusion_steps,
        alg=settings.diffusion_alg,
        alg_temp=None,
        temperature=settings.temperature,
        top_p=None,
        top_k=None,
    )
    sequences = diffusion_generate(
        _VLADenoiser(model, batch),
        batch["input_ids"],
        batch["attention_mask"],
        generation_config=config,
        generator=generator,
        logits_hook=only_action_ids,
    )
    return _tokens_to_actions(sequences[:, prompt_len : prompt_len + n], layout, settings)


def decode_ar(
    model: nn.Module,
    batch: dict[str, Any],
    layout: ActionPromptLayout,
    generator: torch.Generator | None,
    use_cache: bool = True,
) -> torch.Tensor:
    """The AR control: N action tokens, one per forward, each read from the last position's logits (the causal
    reading of the Dream shift), restricted to the action ids. ``use_cache=False`` re-runs the whole sequence at
    every step (same tokens; used to test the cache)."""
    settings = model.settings
    inputs = _forward_inputs(
        batch, "input_ids", "attention_mask", "pixel_values", "image_grid_thw", "proprio"
    )
    out = model(**inputs, use_cache=use_cache)
    ids, mask, tokens = batch["input_ids"], out.attention_mask, []
    for step in range(layout.num_action_tokens):
        token = _pick_action_ids(out.logits[:, -1:], layout, settings.temperature, generator)  # [B, 1]
        tokens.append(token)
        if step == layout.num_action_tokens - 1:
            break
        if use_cache:
            mask = torch.cat((mask, mask.new_ones(mask.shape[0], 1)), dim=1)
            out = model(token, attention_mask=mask, past_key_values=out.past_key_values, use_cache=True)
        else:
            ids = torch.cat((ids, token), dim=1)
            grown = dict(inputs, input_ids=ids)
            grown["attention_mask"] = torch.cat(
                (inputs["attention_mask"], inputs["attention_mask"].new_ones(ids.shape[0], len(tokens))),
                dim=1,
            )
            out = model(**grown)
    return _tokens_to_actions(torch.cat(tokens, dim=1), layout, settings)


DECODERS: dict[str, Callable[..., torch.Tensor]] = {
    "discrete_diffusion": decode_discrete_diffusion,
    "discrete": decode_discrete,
    "l1": decode_head,
    "ddim": decode_ddim,
    "flow": decode_flow,
    "ar": decode_ar,
}
PROMPT_ONLY = ("discrete_diffusion", "ar")  # objectives whose inference batch ends at the generation prompt
