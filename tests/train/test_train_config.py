"""Typed configuration: presets, dotted overrides, validation errors that name the key."""

from __future__ import annotations

import pytest

from dreamvlx.settings import apply_overrides, parse_override_args
from dreamvlx.train.cli import parse_config
from dreamvlx.train.presets import PRESETS, get_preset


def test_overrides_are_typed() -> None:
    cfg = apply_overrides(
        get_preset("blocksworld-tiny"),
        parse_override_args(
            [
                "--optim.lr",
                "3e-4",
                "--run.tensorboard=true",
                "--optim.betas",
                "0.8,0.95",
                "--optim.vision_lr",
                "none",
                "--objective.kind",
                "ar",
            ]
        ),
    )
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.run.tensorboard is True
    assert cfg.optim.betas == (0.8, 0.95)
    assert cfg.optim.vision_lr is None
    assert cfg.attention == "causal"  # one switch makes the AR control
    assert get_preset("blocksworld-tiny").attention == "bidirectional"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--optim.lrr", "1"], "unknown key 'lrr'"),
        (["--optim.lr", "fast"], "not a valid float"),
        (["--objective.kind", "gpt"], "not one of"),
        (["--run.tensorboard", "maybe"], "not a boolean"),
        (["--optim.lr"], "needs a value"),
    ],
)
def test_bad_overrides_name_the_problem(argv: list[str], message: str) -> None:
    with pytest.raises((KeyError, ValueError), match=message):
        apply_overrides(get_preset("blocksworld-tiny"), parse_override_args(argv))


def test_unknown_preset_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="blocksworld-tiny"):
        get_preset("nope")


def test_parse_config_validates(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"data\.train_json"):
        parse_config(["--preset", "blocksworld-tiny", "--data.train_json", ""])
    with pytest.raises(ValueError, match=r"optim\.projector_lr must be positive, got -0\.001"):
        parse_config(["--preset", "blocksworld-tiny", "--optim.projector_lr", "-1e-3"])
    cfg = parse_config(["--preset", "dream-vl-7b-stage2a", "--data.train_json", str(tmp_path / "x.json")])
    assert cfg.freeze.recipe == "stage2" and cfg.optim.vision_lr == pytest.approx(2e-6)
    assert set(PRESETS) >= {
        "blocksworld-tiny",
        "blocksworld-small",
        "dream-vl-7b-stage1",
        "dream-vl-7b-stage3",
    }
