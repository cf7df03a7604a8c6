"""Optimizer and learning-rate schedule.

AdamW with parameter groups as in the official (LLaVA-lineage) recipes: parameters of the vision tower
(``visual.*``) use ``optim.vision_lr`` when it is set, those of the projector (``projector.*``)
``optim.projector_lr`` when it is set (LLaVA's ``mm_projector_lr``; the Dream-VL recipes leave it unset),
everything else ``optim.lr``. The schedule is
linear warm-up over ``warmup_ratio * max_steps`` optimizer steps, then cosine decay to
``min_lr_ratio * lr`` (HF ``get_cosine_schedule_with_warmup`` semantics).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dreamvlx.train.config import OptimSection


def build_optimizer(model: nn.Module, cfg: OptimSection) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; vision-tower and projector parameters get their own learning
    rates when set (module docstring)."""
    own_rates = {"vision": cfg.vision_lr, "projector": cfg.projector_lr}
    members: dict[str, list[nn.Parameter]] = {"base": [], "vision": [], "projector": []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        dotted = f".{name}"
        part = "vision" if ".visual." in dotted else "projector" if ".projector." in dotted else "base"
        members[part if own_rates.get(part) is not None else "base"].append(param)
    if not any(members.values()):
        raise ValueError("no trainable parameters: check the freeze recipe")
    rates = {"base": cfg.lr, **own_rates}
    groups = [
        {"params": params, "lr": rates[part], "name": part} for part, params in members.items() if params
    ]
    return torch.optim.AdamW(groups, betas=cfg.betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: OptimSection) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based)."""
    warmup = math.ceil(cfg.warmup_ratio * cfg.max_steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.max_steps - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimSection) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
