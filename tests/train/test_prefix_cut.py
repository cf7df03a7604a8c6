"""Given-prefix samples of the diffusion objective (``objective.prefix_prob``, ``objective.prefix_separator``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from train_fixtures import tiny_config

from dreamvlx.diffusion.losses import mask_for_diffusion
from dreamvlx.train.cli import run, separator_ids
from dreamvlx.train.config import ObjectiveSection
from dreamvlx.train.objectives import (
    IGNORE_INDEX,
    DiffusionObjective,
    cut_points,
    prefix_cut,
    sample_generator,
)

SEP = (7, 8)
# prompt 1 2 [7 8 in the prompt: not a cut] 3 | reply 4 5 7 8 6 6 7 8 9 [7 8 at the end: no token after]
IDS = torch.tensor([1, 2, 7, 8, 3, 4, 5, 7, 8, 6, 6, 7, 8, 9, 7, 8])
SUPERVISED = torch.arange(len(IDS)) >= 5


def test_cut_points_follow_the_separator_inside_the_reply_only() -> None:
    assert cut_points(IDS, SUPERVISED, SEP) == [9, 13]
    assert cut_points(IDS, SUPERVISED, None) == list(range(6, len(IDS)))
    assert cut_points(IDS, torch.zeros_like(SUPERVISED), SEP) == []


def test_prefix_cut_gives_the_reply_before_a_cut_drawn_uniformly() -> None:
    gen = torch.Generator().manual_seed(0)
    assert not prefix_cut(IDS, SUPERVISED, 0.0, SEP, gen).any()
    cuts = Counter()
    for _ in range(400):
        given = prefix_cut(IDS, SUPERVISED, 1.0, SEP, gen)
        cut = int(given.nonzero().max()) + 1
        assert given.tolist() == [5 <= i < cut for i in range(len(IDS))]
        cuts[cut] += 1
    assert set(cuts) == {9, 13} and min(cuts.values()) > 150, cuts
    half = sum(bool(prefix_cut(IDS, SUPERVISED, 0.5, SEP, gen).any()) for _ in range(400))
    assert 150 < half < 250, half


def _batch() -> dict:
    labels = torch.where(SUPERVISED, IDS, torch.full_like(IDS, IGNORE_INDEX))
    return {
        "input_ids": IDS[None].repeat(8, 1),
        "labels": labels[None].repeat(8, 1),
        "attention_mask": torch.ones(8, len(IDS), dtype=torch.long),
        "indices": list(range(8)),
    }


def test_without_prefix_samples_the_masks_are_the_official_ones() -> None:
    batch = _batch()
    prepared = DiffusionObjective(ObjectiveSection(weighting="none"), 99, seed=3).prepare(batch, step=5)
    for row in range(8):
        official, _ = mask_for_diffusion(
            batch["labels"][row : row + 1],
            batch["labels"][row : row + 1] != IGNORE_INDEX,
            generator=sample_generator(3, 5, row),
        )
        assert torch.equal(prepared.masked[row], official[0])


def test_prefix_samples_mask_and_score_only_after_the_cut() -> None:
    batch = _batch()
    cfg = ObjectiveSection(weighting="none", prefix_prob=1.0, prefix_separator=";")
    total_masked = 0
    for step in range(20):
        prepared = DiffusionObjective(cfg, 99, seed=3, separator_ids=SEP).prepare(batch, step)
        for row in range(8):
            masked = prepared.masked[row].nonzero().flatten().tolist()
            assert all(i >= 9 for i in masked), masked  # the first cut is after position 8
            assert torch.equal(prepared.model_inputs["input_ids"][row, :9], IDS[:9])
        assert prepared.count == int(prepared.masked[:, 1:].sum())
        total_masked += int(prepared.masked.sum())
    assert total_masked > 0


def test_a_separator_needs_its_ids_and_must_occur_in_the_data() -> None:
    with pytest.raises(ValueError, match="needs its token ids"):
        DiffusionObjective(ObjectiveSection(prefix_separator=";"), 99, seed=0)

    class Tokenizer:
        def encode(self, text: str) -> list[int]:
            return {";": [7, 8], "#": [42]}[text]

    labels = torch.where(SUPERVISED, IDS, torch.full_like(IDS, IGNORE_INDEX))
    dataset = [{"input_ids": IDS, "labels": labels}]
    assert separator_ids(";", Tokenizer(), dataset) == SEP
    assert separator_ids(None, Tokenizer(), dataset) is None
    with pytest.raises(ValueError, match="occurs in the reply of none"):
        separator_ids("#", Tokenizer(), dataset)


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ({"prefix_prob": 1.5}, "prefix_prob must be in"),
        ({"kind": "ar", "prefix_prob": 0.5}, "diffusion objective only"),
        ({"prefix_separator": ""}, "prefix_separator is empty"),
    ],
)
def test_bad_prefix_settings_are_rejected(tmp_path: Path, objective: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config(tmp_path, objective=objective).validate()


def test_training_with_prefix_samples_runs_end_to_end(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path, objective={"weighting": "none", "prefix_prob": 0.5, "prefix_separator": " is"}
    )
    result = run(cfg)
    assert result.steps == cfg.optim.max_steps
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match="occurs in the reply of none"):
        run(tiny_config(other, objective={"prefix_prob": 0.5, "prefix_separator": " zebra"}))
