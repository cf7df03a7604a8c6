"""Resumable batch order, DDP slicing, and the warm-up + cosine schedule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dreamvlx.train.config import OptimSection
from dreamvlx.train.optim import lr_factor
from dreamvlx.train.sampler import ResumableBatchSampler


def _lengths(n: int = 40) -> list[int]:
    return list(np.random.default_rng(1).integers(5, 100, size=n))


def test_two_ranks_together_see_the_single_process_batches() -> None:
    single = ResumableBatchSampler(_lengths(), batch_size=4, seed=3)
    ranks = [ResumableBatchSampler(_lengths(), batch_size=2, seed=3, world_size=2, rank=r) for r in range(2)]
    for batch, *parts in itertools.islice(zip(single, *ranks), 25):
        assert batch == parts[0] + parts[1]


def test_resume_continues_the_same_order_across_epochs() -> None:
    full = list(itertools.islice(ResumableBatchSampler(_lengths(), 4, seed=5), 23))
    first = ResumableBatchSampler(_lengths(), 4, seed=5)
    head = list(itertools.islice(first, 13))
    resumed = ResumableBatchSampler(_lengths(), 4, seed=5)
    resumed.load_state_dict(first.state_dict())
    tail = list(itertools.islice(resumed, 10))
    assert head + tail == full


def test_length_grouping_reduces_padding_and_keeps_every_sample_once_per_epoch() -> None:
    lengths = _lengths(256)
    grouped = ResumableBatchSampler(lengths, 8, seed=0, group_by_length=True).epoch_order(0)
    plain = ResumableBatchSampler(lengths, 8, seed=0, group_by_length=False).epoch_order(0)
    assert sorted(np.concatenate(grouped).tolist()) == list(range(256))

    def waste(batches):
        return sum(int(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b)) for b in batches)

    assert waste(grouped) < 0.5 * waste(plain)


def test_too_small_dataset_is_an_error() -> None:
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ResumableBatchSampler([1, 2, 3], batch_size=2, seed=0, world_size=2)


def test_cosine_schedule_with_warmup() -> None:
    cfg = OptimSection(max_steps=100, warmup_ratio=0.1, min_lr_ratio=0.0)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(55, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(100, cfg) == pytest.approx(0.0, abs=1e-12)


def test_parameter_groups_give_vision_tower_and_projector_their_own_rates() -> None:
    from torch import nn

    from dreamvlx.train.optim import build_optimizer

    model = nn.ModuleDict(
        {
            "visual": nn.Linear(2, 2),
            "projector": nn.Linear(2, 2),
            "model": nn.Linear(2, 2),
            "lm_head": nn.Linear(2, 2),
        }
    )
    names = {id(p): n for n, p in model.named_parameters()}

    def groups(**rates) -> dict[str, tuple[float, list[str]]]:
        optimizer = build_optimizer(model, OptimSection(lr=1e-3, **rates))
        return {
            g["name"]: (g["lr"], sorted(names[id(p)] for p in g["params"])) for g in optimizer.param_groups
        }

    everything = sorted(names.values())
    assert groups() == {"base": (1e-3, everything)}
    split = groups(vision_lr=1e-4, projector_lr=2e-4)
    assert split["vision"] == (1e-4, ["visual.bias", "visual.weight"])
    assert split["projector"] == (2e-4, ["projector.bias", "projector.weight"])
    assert split["base"] == (1e-3, ["lm_head.bias", "lm_head.weight", "model.bias", "model.weight"])
    model["model"].requires_grad_(False)
    model["lm_head"].requires_grad_(False)
    assert set(groups(projector_lr=2e-4)) == {"base", "projector"}  # the vision tower takes the base rate
