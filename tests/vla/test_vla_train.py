"""``run_vla`` with the ``metaworld-tiny`` preset on a tiny synthetic LeRobot v3 dataset, a handful of steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dreamvlx.data.episode import Episode
from dreamvlx.data.lerobot_writer import write_episodes
from dreamvlx.modeling.dream_vla import DreamVLA
from dreamvlx.vla.train import VLA_PRESETS, run_vla

TINY_MODEL = {
    "vla.image_size": "56", "model.hidden_size": "32", "model.intermediate_size": "64",
    "model.num_hidden_layers": "1", "model.num_attention_heads": "2", "model.num_key_value_heads": "1",
    "model.vision_depth": "1", "model.vision_embed_dim": "32", "model.tokenizer_vocab_size": "260",
    "run.device": "cpu",
}  # fmt: skip


def _episode(rng: np.random.Generator, length: int, task: str) -> Episode:
    frames = rng.integers(0, 256, size=(length, 56, 56, 3), dtype=np.uint8)
    return Episode(
        frames={"corner": frames},
        state=rng.uniform(size=(length, 4)),
        action=rng.uniform(-1, 1, size=(length, 4)),
        task=task,
    )


def _write_two_episode_dataset(root):
    """A two-episode LeRobot v3 dataset (10 and 9 frames, two instructions) at ``root``; returns ``root`` and
    the generator that drew it (the tests draw their query image from it next)."""
    rng = np.random.default_rng(0)
    write_episodes(
        [_episode(rng, 10, "reach the button"), _episode(rng, 9, "open the drawer")],
        root,
        fps=10,
        use_video=False,
        progress=False,
    )
    return root, rng


@pytest.mark.parametrize("objective", ["flow", "discrete_diffusion"])
def test_metaworld_tiny_preset_trains_and_saves_a_loadable_policy(tmp_path, objective) -> None:
    root, rng = _write_two_episode_dataset(tmp_path / "mw-data")
    overrides = {
        **TINY_MODEL, "data.root": str(root), "vla.objective": objective,
        "optim.max_steps": "3", "optim.batch_size": "2", "run.out_dir": str(tmp_path / "run"),
        "run.save_every": "2", "run.log_every": "1",
    }  # fmt: skip
    result = run_vla("metaworld-tiny", overrides)
    assert result.steps == 3 and np.isfinite(result.final_loss)
    model = DreamVLA.from_pretrained(result.final_dir)
    assert model.settings.objective == objective and set(model.norm_stats) == {"mw-data"}
    actions = model.predict_action(
        [rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)], "reach the button", proprio=np.full(4, 0.5)
    )
    assert actions.shape == (8, 4) and np.all(np.isfinite(actions))


def test_presets_are_registered_with_their_platform_chunking() -> None:
    assert {"metaworld-tiny", "metaworld-small", "libero-7b-flow"} <= set(VLA_PRESETS)
    libero = VLA_PRESETS["libero-7b-flow"]
    assert (libero.vla.objective, libero.vla.robot.chunk_size, libero.vla.robot.action_dim) == ("flow", 8, 7)
    assert libero.lora_rank == 32 and libero.optim.lr == 1e-4 and len(libero.data.camera_keys) == 2
    with pytest.raises(KeyError, match="unknown VLA preset"):
        run_vla("no-such-preset", {})


def test_fine_tuning_from_a_hub_backbone_adds_the_action_tokens(tmp_path, monkeypatch) -> None:
    """``model.init`` names a Hub id whose tokenizer has no action tokens (as ``Dream-org/Dream-VLA-7B`` before the
    official fine-tune calls ``add_tokens``, spec 2.3): the processor is fetched like the weights and the 256
    ``<|action_k|>`` are appended right after ``<|mask|>`` (the embedding rows already cover them)."""
    import huggingface_hub
    import torch

    from dreamvlx.modeling.dream_vl import DreamVL
    from dreamvlx.processing import (
        DreamVLImageProcessor,
        DreamVLProcessor,
        ImageProcessorConfig,
        build_small_tokenizer,
    )
    from dreamvlx.processing.small_tokenizer import action_token
    from dreamvlx.train.build import small_model_config
    from dreamvlx.train.config import ModelSection
    from dreamvlx.vla.train import prompt_text

    root, rng = _write_two_episode_dataset(tmp_path / "mw-data")
    tokenizer = build_small_tokenizer([prompt_text("reach the button")] * 4, 260)  # no action tokens
    assert tokenizer.special_ids.mask == len(tokenizer) - 1
    section = ModelSection(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        vision_depth=1, vision_embed_dim=32,
    )  # fmt: skip
    config = small_model_config(section, tokenizer, "bidirectional").replace(vocab_size=len(tokenizer) + 300)
    torch.manual_seed(0)
    backbone_dir = tmp_path / "hub-snapshot"
    DreamVL(config).save_pretrained(backbone_dir)
    hub_pixels = ImageProcessorConfig(min_pixels=28 * 28)  # differs from the fine-tune setting
    DreamVLProcessor(DreamVLImageProcessor(hub_pixels), tokenizer).save_pretrained(backbone_dir)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **_: str(backbone_dir))
    overrides = {
        "model.init": "some-org/tiny-dream-vl", "data.root": str(root), "vla.objective": "l1",
        "vla.image_size": "56", "optim.max_steps": "2", "optim.batch_size": "2", "run.out_dir": str(tmp_path / "run"),
        "run.save_every": "2", "run.log_every": "1", "run.device": "cpu",
    }  # fmt: skip
    result = run_vla("metaworld-tiny", overrides)
    assert result.steps == 2 and np.isfinite(result.final_loss)
    model = DreamVLA.from_pretrained(result.final_dir)
    tok = model.processor.tokenizer
    mask = tok.special_ids.mask
    assert [tok.token_to_id(action_token(k)) for k in (0, 255)] == [mask + 1, mask + 256]
    assert (
        model.processor.image_processor.config.min_pixels == 56 * 56
    )  # official min_pixels = patches * 28 * 28
    actions = model.predict_action(
        [rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)], "reach the button", proprio=np.full(4, 0.5)
    )
    assert actions.shape == (8, 4) and np.all(np.isfinite(actions))


def _checkpoint_tensors(folder) -> dict:
    """Every tensor of a Dream-VLA checkpoint folder: backbone safetensors and the component files."""
    import torch
    from safetensors.torch import load_file

    tensors = {f"backbone.{k}": v for k, v in load_file(folder / "model.safetensors").items()}
    for path in sorted(folder.glob("*--*_checkpoint.pt")):
        component = path.name.split("--")[0]
        state = torch.load(path, weights_only=True)
        tensors.update({f"{component}.{k}": v for k, v in state.items()})
    return tensors


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_killed_and_resumed_vla_run_reaches_the_same_weights(tmp_path, lora_rank) -> None:
    """Flow matching (action head, noisy-action and proprio projectors beside the backbone), fully fine-tuned or
    with LoRA adapters: a run stopped after step 3 and restarted from its step-2 checkpoint ends with the
    uninterrupted run's weights, adapters, heads and optimizer moments included."""
    import torch

    root, _ = _write_two_episode_dataset(tmp_path / "mw-data")
    common = {
        **TINY_MODEL, "data.root": str(root), "vla.objective": "flow", "lora_rank": str(lora_rank),
        "optim.max_steps": "5", "optim.batch_size": "2", "run.save_every": "2",
    }  # fmt: skip
    straight = run_vla("metaworld-tiny", {**common, "run.out_dir": str(tmp_path / "straight")})
    resumed_dir = str(tmp_path / "resumed")
    stopped = run_vla("metaworld-tiny", {**common, "run.out_dir": resumed_dir}, until_step=3)
    assert stopped.steps == 3
    resumed = run_vla("metaworld-tiny", {**common, "run.out_dir": resumed_dir})
    assert resumed.steps == 5 and resumed.resumed_from == 2
    a, b = _checkpoint_tensors(straight.final_dir), _checkpoint_tensors(resumed.final_dir)
    assert a.keys() == b.keys() and any(k.startswith("action_head.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    if lora_rank:
        adapters = [load_adapter(run.final_dir) for run in (straight, resumed)]
        assert adapters[0].keys() == adapters[1].keys()
        assert all(torch.equal(adapters[0][k], adapters[1][k]) for k in adapters[0])


def load_adapter(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "lora_adapter" / "adapter_model.safetensors")


def _gloo_worker(rank: int, overrides: dict, port: int, until_step: int | None) -> None:
    import os

    import torch

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK="0"
    )
    torch.set_num_threads(1)
    try:
        result = run_vla("metaworld-tiny", overrides, until_step=until_step)
        if rank == 0 and result.resumed_from is not None:
            (Path(overrides["run.out_dir"]) / "resumed_from.txt").write_text(str(result.resumed_from))
    finally:
        torch.distributed.destroy_process_group()


def _spawn_gloo(overrides: dict, until_step: int | None = None) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.start_processes(
        _gloo_worker, args=(overrides, port, until_step), nprocs=2, start_method="spawn", join=True
    )


def test_fsdp_vla_run_resumes_to_the_same_weights(tmp_path) -> None:
    """Two gloo processes with FSDP2: a Dream-VLA run (flow heads) stopped after step 3 and restarted from its
    step-2 checkpoint ends bit-identical to the uninterrupted FSDP2 run."""
    import torch

    root, _ = _write_two_episode_dataset(tmp_path / "mw-data")
    common = {
        **TINY_MODEL, "data.root": str(root), "vla.objective": "flow", "optim.max_steps": "4",
        "optim.batch_size": "2", "run.save_every": "2", "run.strategy": "fsdp",
    }  # fmt: skip
    _spawn_gloo({**common, "run.out_dir": str(tmp_path / "straight")})
    resumed_dir = tmp_path / "resumed"
    _spawn_gloo({**common, "run.out_dir": str(resumed_dir)}, until_step=3)
    _spawn_gloo({**common, "run.out_dir": str(resumed_dir)})
    assert (resumed_dir / "resumed_from.txt").read_text() == "2"
    a = _checkpoint_tensors(tmp_path / "straight" / "final")
    b = _checkpoint_tensors(resumed_dir / "final")
    assert a.keys() == b.keys() and any(k.startswith("noisy_action_projector.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gloo_processes_equal_one_process_for_a_head_objective(tmp_path, strategy) -> None:
    """Flow matching never runs the LM head: it is frozen (``unused_modules``), so DDP does not wait for its
    gradient (it raised before) and both strategies take the single process's steps on the doubled batch."""
    import torch

    root, _ = _write_two_episode_dataset(tmp_path / "mw-data")
    common = {
        **TINY_MODEL, "data.root": str(root), "vla.objective": "flow", "optim.max_steps": "3",
        "run.save_every": "100",
    }  # fmt: skip
    one = run_vla("metaworld-tiny", {**common, "optim.batch_size": "4", "run.out_dir": str(tmp_path / "one")})
    two = {
        **common,
        "optim.batch_size": "2",
        "run.strategy": strategy,
        "run.out_dir": str(tmp_path / strategy),
    }
    _spawn_gloo(two)
    a, b = _checkpoint_tensors(one.final_dir), _checkpoint_tensors(tmp_path / strategy / "final")
    assert a.keys() == b.keys()
    for key in a:  # float summation order only (as tests/train/test_ddp.py)
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-5, msg=key)
    from dreamvlx.train.metrics import read_metrics

    assert read_metrics(tmp_path / "one" / "metrics.jsonl")[0]["grad_norm"] > 0  # the steps moved the weights
