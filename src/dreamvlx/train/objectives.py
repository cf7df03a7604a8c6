"""Training objectives of the language model: masked diffusion and the AR control.

Both work in two phases so that the loss can be normalised by the number of supervised tokens of the
whole optimizer step (all gradient-accumulation micro-batches on all processes) before any backward
pass runs: :meth:`prepare` draws the noise and counts the loss tokens, :meth:`loss_sum` runs the model
and returns the *sum* of the per-token losses. The trainer divides by the global count, so one process
on a batch of 2B and two processes on B each compute the same gradient (the official trainer instead
averages per-micro-batch means; the two agree when every micro-batch has the same count).

Noise is drawn per sample from a generator seeded by ``(seed, step, dataset index)``: the masking of a
sample does not depend on batch composition, world size or resumption.

Conventions (the Dream shift): logit row ``i`` predicts token ``i + 1``; the loss functions in
:mod:`dreamvlx.diffusion.losses` apply the shift, callers pass unshifted logits and unshifted labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dreamvlx.diffusion.losses import (
    diffusion_loss_mask,
    mask_for_diffusion,
    masked_diffusion_loss,
    next_token_loss,
    shift_labels,
)
from dreamvlx.processing.conversation import ends_of
from dreamvlx.train.config import ObjectiveSection

IGNORE_INDEX = -100


@dataclass
class PreparedBatch:
    """A collated batch with its noise drawn. ``count``: loss tokens in this micro-batch."""

    model_inputs: dict[str, torch.Tensor]
    labels: torch.Tensor  # [B, L] unshifted, IGNORE_INDEX where not supervised
    masked: torch.Tensor | None  # [B, L] bool, diffusion only
    t: torch.Tensor | None  # [B], diffusion only
    count: int


def sample_generator(seed: int, step: int, index: int) -> torch.Generator:
    """A CPU generator determined by (run seed, optimizer step, dataset index) alone."""
    state = np.random.SeedSequence([seed, step, index]).generate_state(1, np.uint64)[0]
    gen = torch.Generator()
    gen.manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)
    return gen


def cut_points(
    input_ids: torch.Tensor, supervised: torch.Tensor, separator_ids: tuple[int, ...] | None
) -> list[int]:
    """Where a sample may be cut by :func:`prefix_cut`: positions ``j`` such that the supervised tokens before
    ``j`` are given. With ``separator_ids``, the position right after each occurrence of that token sequence
    that lies within the supervised tokens (and is followed by one); otherwise every supervised position but
    the first. ``input_ids`` and ``supervised``: ``[L]``."""
    where = supervised.nonzero().flatten().tolist()
    if not where:
        return []
    if separator_ids is None:
        return where[1:]
    width, is_supervised = len(separator_ids), set(where)
    return [
        end
        for end in ends_of(input_ids.tolist(), separator_ids)
        if all(position in is_supervised for position in range(end - width, end + 1))
    ]


def prefix_cut(
    input_ids: torch.Tensor,
    supervised: torch.Tensor,
    prob: float,
    separator_ids: tuple[int, ...] | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """``[L]`` bool: the supervised tokens a given-prefix sample keeps clean (none when the sample is not cut).

    With probability ``prob`` the sample is cut at one of its :func:`cut_points`, drawn uniformly, and every
    supervised token before the cut is given. Why: with one masking rate per reply, a token whose evidence is
    k earlier reply tokens sees all of them unmasked with probability ``2 / ((k + 1)(k + 2))`` (4-5% for
    k = 5-6), so a later step of a reasoning chain is seldom trained with its evidence in view, though at
    inference it can be right only once that evidence is decoded. Draws come after the official ones (the
    masks of an uncut sample are the official masks)."""
    given = torch.zeros_like(supervised)
    if prob <= 0 or float(torch.rand((), generator=generator)) >= prob:
        return given
    points = cut_points(input_ids, supervised, separator_ids)
    if not points:
        return given
    cut = points[int(torch.randint(len(points), (), generator=generator))]
    given[:cut] = supervised[:cut]
    return given


class DiffusionObjective:
    """Masked diffusion (spec dream-vl.md 5.4-5.6): supervised tokens masked with p(t), CART weighting;
    optionally given-prefix samples (:func:`prefix_cut`; ``separator_ids``: the token ids of
    ``cfg.prefix_separator``)."""

    def __init__(
        self,
        cfg: ObjectiveSection,
        mask_token_id: int,
        seed: int,
        separator_ids: tuple[int, ...] | None = None,
    ) -> None:
        if cfg.prefix_separator is not None and not separator_ids:
            raise ValueError(f"objective.prefix_separator {cfg.prefix_separator!r} needs its token ids")
        self.cfg = cfg
        self.mask_token_id = mask_token_id
        self.seed = seed
        self.separator_ids = separator_ids

    def prepare(self, batch: dict[str, Any], step: int) -> PreparedBatch:
        labels = batch["labels"]
        masked_rows, t_rows = [], []
        for row, index in enumerate(batch["indices"]):
            gen = sample_generator(self.seed, step, int(index))
            supervised = labels[row : row + 1] != IGNORE_INDEX
            m, t = mask_for_diffusion(labels[row : row + 1], supervised, generator=gen, eps=self.cfg.eps)
            if self.cfg.prefix_prob > 0:
                given = prefix_cut(
                    batch["input_ids"][row], supervised[0], self.cfg.prefix_prob, self.separator_ids, gen
                )
                m = m & ~given
            masked_rows.append(m)
            t_rows.append(t)
        masked = torch.cat(masked_rows)
        t = torch.cat(t_rows)
        noised = torch.where(
            masked, torch.full_like(batch["input_ids"], self.mask_token_id), batch["input_ids"]
        )
        inputs = {k: v for k, v in batch.items() if k in ("attention_mask", "pixel_values", "image_grid_thw")}
        inputs["input_ids"] = noised
        # The normaliser masked_diffusion_loss divides by: loss rows (a masked token at position 0 is
        # never scored, the shift leaves no row before it) or, for inverse_t, supervised targets.
        if self.cfg.weighting == "inverse_t":
            count = int((shift_labels(labels) != IGNORE_INDEX).sum())
        else:
            count = int(diffusion_loss_mask(labels, masked).sum())
        return PreparedBatch(inputs, labels, masked, t, count)

    def loss_sum(self, model: nn.Module, prepared: PreparedBatch) -> torch.Tensor:
        logits = model(**prepared.model_inputs).logits
        if prepared.count == 0:  # nothing masked (t tiny): zero loss that still touches the graph (DDP)
            return logits.sum() * 0.0
        mean = masked_diffusion_loss(
            logits,
            prepared.labels,
            prepared.masked,
            weighting=self.cfg.weighting,
            cart_p=self.cfg.cart_p,
            t=prepared.t,
            eps=self.cfg.eps,
        )
        return mean * prepared.count


class NextTokenObjective:
    """The AR control: causal attention, next-token loss on the supervised tokens (same labels)."""

    def __init__(self, cfg: ObjectiveSection) -> None:
        self.cfg = cfg

    def prepare(self, batch: dict[str, Any], step: int) -> PreparedBatch:
        labels = batch["labels"]
        inputs = {
            k: v
            for k, v in batch.items()
            if k in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw")
        }
        count = int((shift_labels(labels) != IGNORE_INDEX).sum())
        return PreparedBatch(inputs, labels, None, None, count)

    def loss_sum(self, model: nn.Module, prepared: PreparedBatch) -> torch.Tensor:
        logits = model(**prepared.model_inputs).logits
        if prepared.count == 0:
            return logits.sum() * 0.0
        return next_token_loss(logits, prepared.labels) * prepared.count


def build_objective(
    cfg: ObjectiveSection, mask_token_id: int, seed: int, separator_ids: tuple[int, ...] | None = None
) -> DiffusionObjective | NextTokenObjective:
    """The objective of ``cfg.kind``; ``separator_ids``: the token ids of ``cfg.prefix_separator``."""
    if cfg.kind == "diffusion":
        return DiffusionObjective(cfg, mask_token_id, seed, separator_ids)
    return NextTokenObjective(cfg)
