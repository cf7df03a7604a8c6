"""``experiments/demo_model/diagnose.py``: the marks of one held-out image sample, and their rates."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dreamvlx.demo import shipped_model_dir
from dreamvlx.envs.blocksworld.datagen import EpisodeConfig, read_dataset, write_dataset
from dreamvlx.inference import load_dream_vl

PLACES = EpisodeConfig(
    questions_per_image=1, plan_horizon=1, prompt_style="slots", cot=True, standing=True, places=True
)
MARKS = {"scene_exact", "heights_exact", "columns_right", "places_exact", "standing_exact"}
MARKS |= {f"{pass_}_{key}" for pass_ in ("free", "forced", "forced_places") for key in ("legal", "optimal")}
MARKS |= {"forced_places_exact", "forced_standing_exact", "forced_places_standing_exact"}


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heldout-places")
    write_dataset(out, samples=3, seed=99, modes=("planning",), config=PLACES, progress=False)
    return out


def test_rates_count_a_missing_mark_as_zero(diagnose) -> None:
    marks = [{"a": True, "b": 0.5}, {"a": False}, {"a": True, "c": True}, {"b": 1.0}]
    assert diagnose.rates(marks) == {"a": 0.5, "b": 0.375, "c": 0.25}


class WritesTheAnswer:
    """A stand-in for ``generate_tokens`` that writes the rest of one answer after the part of it the prompt
    already ends with (the first call's prompt holds none of it); records each call's prompt length."""

    def __init__(self, answer_ids: list[int]) -> None:
        self.answer_ids, self.prompt_lengths = answer_ids, []

    def __call__(self, model, batch, max_new_tokens, **_) -> SimpleNamespace:
        self.prompt_lengths.append(batch["input_ids"].shape[1])
        given = self.prompt_lengths[-1] - self.prompt_lengths[0]
        return SimpleNamespace(tokens=torch.tensor([self.answer_ids[given:]]))


def test_the_true_reply_gets_every_mark(diagnose, held_out: Path, monkeypatch) -> None:
    """With a model that writes the sample's own answer (after whatever start it is given), every mark is
    right: the scoring reads scene, places, standing and move where the answer puts them."""
    model, processor = load_dream_vl(shipped_model_dir())
    for sample in read_dataset(held_out):
        writer = WritesTheAnswer(processor.tokenizer.encode(sample["conversations"][1]["value"]))
        monkeypatch.setattr(diagnose, "generate_tokens", writer)
        marks = diagnose.sample_marks(model, processor, sample, held_out, steps=2, canvas=144)
        assert set(marks) == MARKS
        assert all(value == 1.0 for value in marks.values()), marks
        first, scene, places = writer.prompt_lengths  # free, after the true scene, after scene and places
        assert first < scene < places


def test_cli_scores_the_shipped_model(diagnose, held_out: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "diagnosis.json"
    argv = ["diagnose.py", str(shipped_model_dir()), str(held_out), "--samples", "2", "--steps", "2"]
    monkeypatch.setattr("sys.argv", [*argv, "--max-new-tokens", "144", "--out", str(out)])
    diagnose.main()
    report = json.loads(out.read_text())
    assert report["samples"] == 2 and report["data"] == str(held_out)
    assert set(report) == MARKS | {"samples", "model", "data"}
    assert all(0.0 <= report[key] <= 1.0 for key in MARKS)
