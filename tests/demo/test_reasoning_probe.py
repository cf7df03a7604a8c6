"""The text-only reasoning probe (``experiments/demo_model/reasoning_probe.py``): its data and its scores.

The probe's records in ``experiments/demo_model/reasoning_probe/`` come from this script, so its sample
construction and its scoring are checked here on the shipped demo model (seconds, no training)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from dreamvlx.demo import shipped_model_dir
from dreamvlx.envs.blocksworld.replies import goal_standing, parse_plan_reply

PROBE_DIR = Path(__file__).resolve().parents[2] / "experiments" / "demo_model"


@pytest.fixture(scope="module")
def probe():
    sys.path.insert(0, str(PROBE_DIR))
    try:
        import reasoning_probe

        yield reasoning_probe
    finally:
        sys.path.remove(str(PROBE_DIR))


def test_make_writes_each_format(probe, tmp_path: Path) -> None:
    for reply_format in probe.FORMATS:
        out = tmp_path / f"{reply_format}.json"
        probe.make(out, reply_format, samples=6, seed=3)
        rows = json.loads(out.read_text())
        assert len(rows) == 6
        points = list(probe.query_points(6, seed=3))
        for row, (problem, step) in zip(rows, points):
            user, reply = (turn["value"] for turn in row["conversations"])
            assert user.startswith("Scene: c1: ")
            if reply_format == "tops-only":
                assert "system" not in row  # the scene alone: no goal anywhere
                assert reply == probe.column_tops(step.state)
            elif reply_format == "standing-only":
                assert row["system"].startswith("Goal: c1: ")
                assert reply == goal_standing(step.state, problem.goal)
            else:
                parsed = parse_plan_reply(reply)
                assert parsed.status == "ok" and (parsed.block, parsed.column) == (
                    step.plan[0].block,
                    step.plan[0].column,
                )


@pytest.mark.parametrize("reply_format", ["tops-only", "tops"])
def test_scores_are_rates_of_the_right_sections(probe, reply_format: str) -> None:
    torch.manual_seed(0)
    planner = probe.Planner(str(shipped_model_dir()), reply_format, canvas=72, steps=4)
    queries = probe.held_out(3, seed=5)
    states = probe.score_states(planner, queries, batch=3)
    forced = probe.teacher_forced(planner, queries)
    if reply_format == "tops-only":
        assert set(states) == {"section0_exact"} and set(forced) == {"section0"}
    else:
        assert {"legal", "optimal", "constructive", "section0_exact", "section1_exact"} <= set(states)
        assert set(forced) == {"plan", "section0", "section1"}
    assert all(0.0 <= value <= 1.0 for value in [*states.values(), *forced.values()])


def test_decision_tokens_are_the_letters_dashes_and_digits_of_each_section(probe) -> None:
    plain = ["c", "1", " -", " |", " c", "2", " o", " |", " c", "3", " no"]
    assert probe._decision_tokens(plain, plain=True) == {"section0": [2, 6, 10]}
    plan = [
        '{"',
        "explanation",
        '":',
        ' "',
        "c",
        "1",
        " no",
        " ;",
        " c",
        "1",
        " y",
        '",',
        ' "',
        "plan",
        '":',
        ' [{"',
        "block",
        '":',
        ' "',
        "y",
        '",',
        ' "',
        "column",
        '":',
        ' "',
        "c",
        "2",
        '"}]}',
    ]
    assert probe._decision_tokens(plan, plain=False) == {"section0": [6], "section1": [10], "plan": [19, 26]}
