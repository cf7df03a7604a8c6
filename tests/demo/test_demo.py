"""``dreamvlx demo`` end to end on a tiny random checkpoint (data, evaluation, table, report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dreamvlx.config import DreamVLConfig
from dreamvlx.demo import (
    DEMO_EXPLANATION,
    DEMO_PROMPT_STYLE,
    EXPLANATIONS,
    generate_data,
    main,
    shipped_model_dir,
)
from dreamvlx.envs.blocksworld.chain import CALLS
from dreamvlx.envs.blocksworld.datagen import read_dataset
from dreamvlx.envs.blocksworld.problems import load_split
from dreamvlx.envs.blocksworld.replies import STANDING_SEPARATOR
from dreamvlx.evals.viplan.chained import ChainConfig, evaluate_chained
from dreamvlx.modeling.dream_vl import DreamVL
from dreamvlx.processing import (
    DreamVLImageProcessor,
    DreamVLProcessor,
    ImageProcessorConfig,
    build_small_tokenizer,
)
from dreamvlx.train.chain_recipe import CURRICULUM


def tiny_random_model(folder: Path) -> Path:
    """An untrained tiny diffusion Dream-VL with a small tokenizer, saved in ``folder``."""
    tokenizer = build_small_tokenizer(['{"plan": [{"action": "moveblock"}]}'] * 5, vocab_size=260)
    config = DreamVLConfig.tiny(vocab_size=len(tokenizer) - 24 + 32)
    DreamVL(config).save_pretrained(folder)
    images = DreamVLImageProcessor(ImageProcessorConfig(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16))
    DreamVLProcessor(images, tokenizer).save_pretrained(folder)
    return folder


def test_demo_runs_end_to_end_and_writes_its_report(tmp_path: Path, capsys) -> None:
    model_dir = tiny_random_model(tmp_path / "model")

    out = tmp_path / "demo"
    argv = [
        "--out",
        str(out),
        "--samples",
        "12",
        "--model",
        str(model_dir),
        "--split",
        "simple",
        "--workers",
        "1",
    ]
    assert (
        main(
            [*argv, "--planner", "single", "--max-new-tokens", "8", "--steps", "2", "--report-episodes", "1"]
        )
        == 0
    )
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert summary["splits"]["simple"]["episodes"] == 25
    assert (out / "data" / "index.json").is_file() and (out / "summary.png").is_file()
    report = (out / "report.html").read_text()
    assert "Denoising history" in report and "data:image/png;base64" in report
    assert "What the model reads" in report and "Goal: c1: " in report  # the compact goal layout
    index = json.loads((out / "data" / "index.json").read_text())
    assert index["modes"] == ["grounding", "planning"]
    config = index["config"]
    assert (config["prompt_style"], config["standing"], config["places"]) == (
        DEMO_PROMPT_STYLE,
        *EXPLANATIONS[DEMO_EXPLANATION],
    )
    assert "<h2>simple / simple_problem_0: not solved</h2>" in report  # an untrained model solves nothing
    assert "simple" in capsys.readouterr().out


def test_chained_demo_reads_asks_again_and_reports_every_call(tmp_path: Path, capsys) -> None:
    model_dir = tiny_random_model(tmp_path / "model")
    out = tmp_path / "demo"
    argv = [
        "--out",
        str(out),
        "--samples",
        "10",
        "--model",
        str(model_dir),
        "--split",
        "simple",
        "--steps",
        "2",
    ]
    assert main([*argv, "--report-episodes", "1", "--rereads", "1"]) == 0
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert summary["planner"] == "chained" and summary["chain"]["rereads"] == 1
    assert summary["splits"]["simple"]["episodes"] == 25
    # an untrained model reads no scene: each episode's one step was read twice, then ended
    assert summary["rereads"] == 25 and summary["splits"]["simple"]["task_completion_rate"] == 0.0
    mixed = json.loads((out / "data" / "chain.json").read_text())
    assert len(mixed) == 10 and {row["id"].split("-")[0] for row in mixed} == set(CALLS)
    report = (out / "report.html").read_text()
    assert "The first step's calls" in report and "<b>read</b>: <code>Blocks: " in report
    assert "data:image/png;base64" in report and "<sub>" in report  # the image; the denoising history
    assert "simple_problem_0: not solved" in report and "ViPlan BlocksWorld" in capsys.readouterr().out


def test_chained_records_do_not_depend_on_the_number_of_worker_processes(tmp_path: Path) -> None:
    model_dir = str(tiny_random_model(tmp_path / "model"))
    problems = {"simple": load_split("simple")[:2], "hard": load_split("hard")[:1]}
    config = ChainConfig(steps=2, rereads=2)  # an untrained model: re-reads, sampled
    alone = evaluate_chained(problems, model_dir, config, workers=1, progress=False)
    assert sum(step["rereads"] for rs in alone.values() for r in rs for step in r["steps"]) > 0
    assert evaluate_chained(problems, model_dir, config, workers=2, progress=False) == alone


def test_chained_demo_train_runs_the_whole_curriculum_at_a_small_scale(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--samples", "5", "--train", "--train-scale", "4000", "--split", "simple"]
    assert main([*argv, "--steps", "1", "--report-episodes", "0", "--rereads", "0", "--redraws", "0"]) == 0
    for stage in CURRICULUM:
        assert (out / "train" / stage.name / "final" / "model.safetensors").is_file(), stage.name
    record = json.loads((out / "train" / "curriculum.json").read_text())
    assert [(s["name"], s["steps"], s["finished"]) for s in record["stages"]] == [
        (stage.name, max(1, stage.steps // 4000), True) for stage in CURRICULUM
    ]
    assert all(s["last_loss"] > 0 for s in record["stages"])
    assert (out / "train" / "curriculum_loss.png").stat().st_size > 0
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert summary["model"] == str(out / "train" / CURRICULUM[-1].name / "final")


def test_demo_data_formats_for_every_explanation(tmp_path: Path) -> None:
    for sections, explanation in enumerate(EXPLANATIONS, start=1):  # scene; scene, standing; + places
        out = generate_data(
            tmp_path / explanation, 12, seed=0, workers=1, prompt_style="slots", explanation=explanation
        )
        planning = [s for s in read_dataset(out.parent) if s["meta"]["mode"] == "planning"]
        explanations = [json.loads(s["conversations"][1]["value"])["explanation"] for s in planning]
        assert planning and all(len(e.split(STANDING_SEPARATOR)) == sections for e in explanations)
    with pytest.raises(ValueError, match="unknown explanation 'plan'"):
        generate_data(tmp_path / "bad", 2, seed=0, workers=1, explanation="plan")
    with pytest.raises(ValueError, match="give --planner single a --model"):
        main(["--out", str(tmp_path / "single"), "--planner", "single"])
    with pytest.raises(ValueError, match="need standing=True and the 'slots' prompt style"):
        main(
            [
                "--out",
                str(tmp_path / "compact"),
                "--samples",
                "2",
                "--workers",
                "1",
                "--explanation",
                "places",
                "--planner",
                "single",
            ]
        )


def test_shipped_demo_model_is_small_and_loads() -> None:
    folder = shipped_model_dir()
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert 0 < weights <= 16 * 2**20
    model = DreamVL.from_pretrained(folder)
    processor = DreamVLProcessor.from_pretrained(folder)
    assert model.config.attention == "bidirectional"
    assert model.config.mask_token_id == processor.tokenizer.special_ids.mask
    for word in (" -", " no", " r", " g", " b", " y", " p", " o"):  # goal-standing words stay one token each
        assert len(processor.tokenizer.encode(f" |{word} |")) == 3, word
