"""``experiments/demo_model/train_decomposed.sh`` and ``decomposed_planner.py`` in miniature on the CPU: every
lane trains its stages in order, each from the weights the lane names (steps divided by 500, batch 4, from
the shipped model), and the planner scores the chain of the models it leaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dreamvlx.demo import shipped_model_dir
from dreamvlx.envs.blocksworld.chain_data import write_call_data
from dreamvlx.envs.blocksworld.datagen import EpisodeConfig, write_dataset
from dreamvlx.train.chain_recipe import CURRICULUM

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "demo_model" / "train_decomposed.sh"
FORMATS = ("goal-only", "goal-paired", "places-paired", "tops-only", "standing-from-places", "move-from-tops")
# run -> (data file, steps after the divisor, the weights it starts from)
EXPECTED = {
    "dec-goal-only": ("probe-goal-only.json", 2, "INIT"),
    "dec-goal-paired": ("probe-goal-paired.json", 2, "dec-goal-only"),
    "dec-places": ("probe-places-paired.json", 4, "dec-goal-paired"),
    "dec-places-more": ("probe-places-paired.json", 4, "dec-places"),
    "dec-places-more2": ("probe-places-paired.json", 4, "dec-places-more"),
    "dec-tops": ("probe-tops-only.json", 4, "INIT"),
    "dec-standing": ("probe-standing-from-places.json", 4, "INIT"),
    "dec-move": ("probe-move-from-tops.json", 4, "INIT"),
    "dec-multitask": ("dec-multitask.json", 10, "dec-places"),
    "dec-multitask2": ("dec-multitask2.json", 10, "dec-places-more2"),
    "dec-read": ("read-mix.json", 24, "dec-multitask2"),
    "dec-move-ranked": ("move-ranked-mix.json", 12, "dec-read"),
    "dec-simple-places": ("simple-places-mix.json", 8, "dec-move-ranked"),
    "dec-move-more": ("move-more-mix.json", 8, "dec-simple-places"),
}
IMAGE_RUNS = ("dec-read", "dec-move-ranked", "dec-simple-places", "dec-move-more")


def test_the_src_curriculum_is_the_lanes_that_made_the_shipped_model() -> None:
    previous = "INIT"
    for stage in CURRICULUM:
        _json_name, steps, start = EXPECTED[stage.name]
        assert (stage.steps // 500, start) == (steps, previous), stage.name
        previous = stage.name


def _lane(lane: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), lane], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400
    )


@pytest.mark.timeout(900)
def test_every_lane_trains_its_stages_in_order_and_the_chain_is_scored(probe, tmp_path: Path) -> None:
    data, runs = tmp_path / "data", tmp_path / "runs"
    data.mkdir()
    for reply_format in FORMATS:
        probe.make(data / f"probe-{reply_format}.json", reply_format, samples=16, seed=3)
    parts = [(data / f"probe-{f}.json", 8) for f in ("move-from-tops", "tops-only", "places-paired")]
    probe.mix_data(data / "dec-multitask.json", parts, seed=0)
    probe.mix_data(data / "dec-multitask2.json", parts[::-1], seed=1)
    write_dataset(
        data / "read", 6, seed=3, modes=["grounding"], config=EpisodeConfig(prompt_style="slots", cot=True)
    )
    probe.make_read(data / "read", data / "read-scene.json")
    probe.mix_data(
        data / "read-mix.json", [(data / "read-scene.json", None), (data / "dec-multitask2.json", 4)], 0
    )
    write_call_data(data / "chain-move.json", "move", 8, seed=3, progress=False)
    probe.mix_data(
        data / "move-ranked-mix.json", [(data / "chain-move.json", None), (data / "read-scene.json", None)], 0
    )
    write_call_data(data / "chain-places-simple.json", "places-simple", 8, seed=3, progress=False)
    probe.mix_data(
        data / "simple-places-mix.json",
        [(data / "chain-places-simple.json", None), (data / "read-scene.json", None)],
        0,
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "RUNS_DIR": str(runs),
        "DATA_DIR": str(data),
        "INIT": str(shipped_model_dir()),
        "STEP_DIVISOR": "500",
        "BATCH": "4",
    }
    probe.mix_data(
        data / "move-more-mix.json", [(data / "chain-move.json", None), (data / "read-scene.json", None)], 1
    )
    for lane in ("places", "steps", "multitask", "read", "move-ranked", "simple-places", "move-more"):
        done = _lane(lane, env)
        assert done.returncode == 0, done.stderr[-2000:]
    for run, (json_name, steps, start) in EXPECTED.items():
        config = json.loads((runs / run / "train_config.json").read_text())
        assert (runs / run / "final" / "model.safetensors").is_file()
        assert config["data"]["train_json"] == str(data / json_name)
        assert config["optim"]["max_steps"] == steps
        assert config["model"]["init"] == (env["INIT"] if start == "INIT" else str(runs / start / "final"))
        assert (config["data"]["image_folder"] == str(data / "read")) == (run in IMAGE_RUNS)
    again = _lane("steps", env)  # a lane run again skips what it has made
    assert again.returncode == 0 and again.stdout.count("exists: skipped") == 3
    wrong = _lane("everything", env)
    assert wrong.returncode == 2 and "unknown lane 'everything'" in wrong.stderr

    out = tmp_path / "chain.json"
    models = {step: runs / f"dec-{step}" / "final" for step in ("places", "standing", "tops", "move")}
    chain = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "demo_model" / "decomposed_planner.py")]
        + [arg for step, path in models.items() for arg in (f"--{step}", str(path))]
        + ["--states", "4", "--batch", "2", "--steps", "2", "--no-benchmark", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert chain.returncode == 0, chain.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["models"] == {step: str(path) for step, path in models.items()}
    assert report["given"] == [] and report["held_out_states"] == 4 and "benchmark_text_scene" not in report
    assert {"places_exact", "standing_exact", "tops_exact", "legal", "optimal"} <= set(report["states"])
