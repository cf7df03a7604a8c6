"""DreamVLBackend on a tiny random checkpoint (diffusion and causal AR), through the evaluator and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dreamvlx.config import DreamVLConfig
from dreamvlx.envs.blocksworld import asset_dir, grounding_prompt, load_split, planning_prompt
from dreamvlx.evals.viplan.backends import DreamVLBackend, GenerationConfig
from dreamvlx.evals.viplan.cli import main
from dreamvlx.evals.viplan.planning import PlanningConfig, run_planning_episode
from dreamvlx.evals.viplan.querying import ImageSource
from dreamvlx.modeling.dream_vl import DreamVL
from dreamvlx.processing import (
    DreamVLImageProcessor,
    DreamVLProcessor,
    ImageProcessorConfig,
    build_small_tokenizer,
)


@pytest.fixture(scope="module", params=["bidirectional", "causal"])
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = build_small_tokenizer(
        ["Is the red block on top of the green block? Yes No"] * 5, vocab_size=260
    )
    config = DreamVLConfig.tiny(vocab_size=len(tokenizer) - 24 + 32, attention=request.param)
    folder = tmp_path_factory.mktemp(f"ckpt_{request.param}")
    # a fixed draw: the random model's logits are nearly flat, so which draw has near-ties that the padding's
    # rounding can flip must not change from run to run
    torch.manual_seed(0)
    DreamVL(config).save_pretrained(folder)
    images = DreamVLImageProcessor(ImageProcessorConfig(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16))
    DreamVLProcessor(images, tokenizer).save_pretrained(folder)
    return folder


def test_backend_generates_for_a_batch_of_prompts(checkpoint: Path) -> None:
    backend = DreamVLBackend(str(checkpoint), GenerationConfig(max_new_tokens=6, steps=3, device="cpu"))
    problem = load_split("simple")[0]
    image = ImageSource(enabled=True)(problem.initial_state)
    replies = backend.generate_batch(
        [image, image],
        [grounding_prompt('Is the red block in the column labeled "c4"?'), planning_prompt(problem, [])],
    )
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    question = grounding_prompt("Is the red block the topmost of its column?")
    assert backend.generate(image, question) == backend.generate(image, question)  # greedy: deterministic
    with pytest.raises(ValueError, match="needs the rendered state image"):
        backend.generate(None, grounding_prompt("Is the red block the topmost of its column?"))
    # an untrained model writes no JSON: the planning episode ends at its first step
    record = run_planning_episode(problem, backend, ImageSource(enabled=True), PlanningConfig(max_steps=3))
    assert len(record["steps"]) == 1 and record["steps"][0]["status"] != "ok" and not record["goal_reached"]


def test_cli_with_a_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    problems = tmp_path / "problems"
    problems.mkdir()
    shutil.copy(asset_dir() / "problems" / "simple" / "simple_problem_1.pddl", problems)
    argv = [
        "--model",
        str(checkpoint),
        "--mode",
        "planning",
        "--split",
        "simple",
        "--problems",
        str(problems),
    ]
    argv += ["--max-steps", "2", "--workers", "1", "--max-new-tokens", "8", "--diffusion-steps", "2"]
    assert main([*argv, "--device", "cpu", "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["splits"]["simple"]["episodes"] == 1 and summary["max_steps"] == {"simple": 2}
    record = json.loads((tmp_path / "out" / "episodes" / "simple" / "simple_problem_1.json").read_text())
    assert record["steps"][0]["prompt"].endswith("## Current environment state\n<image>")


def test_batched_replies_equal_single_replies_and_history_covers_every_token(checkpoint: Path) -> None:
    backend = DreamVLBackend(str(checkpoint), GenerationConfig(max_new_tokens=6, steps=3, device="cpu"))
    problem = load_split("simple")[0]
    image = ImageSource(enabled=True)(problem.initial_state)
    prompts = [grounding_prompt('Is the red block in the column labeled "c4"?'), planning_prompt(problem, [])]
    # left padding must not change a reply: the long planning prompt pads the short grounding one
    assert backend.generate_batch([image, image], prompts) == [backend.generate(image, p) for p in prompts]
    reply, tokens, steps = backend.generate_with_history(image, prompts[1])
    assert reply == backend.generate(image, prompts[1])
    assert len(tokens) == len(steps) == 6
    if backend.model.config.attention == "causal":
        assert steps == list(range(6))
    else:
        assert all(0 <= s < 3 for s in steps) and steps[-1] >= 0
