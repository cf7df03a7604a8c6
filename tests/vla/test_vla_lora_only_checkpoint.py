"""Dream-VLA checkpoints that ship only ``lora_adapter/`` (the official fine-tune with
``merge_lora_during_training=False``): base + adapter loads to exactly the merged checkpoint; clear errors for a
missing base, a folder without weights or adapter, adapter keys naming no module; tokenizers longer than the
vocabulary are refused by the DreamVL and DreamVLA loaders."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from vla_fixtures import IMAGE_SIZE, PLATFORM, TINY

from dreamvlx.data.episode import Episode
from dreamvlx.data.lerobot_writer import write_episodes
from dreamvlx.modeling.checkpoint import WEIGHTS_NAME
from dreamvlx.modeling.dream_vl import DreamVL
from dreamvlx.modeling.dream_vla import DreamVLA, DreamVLAConfig
from dreamvlx.processing import DreamVLProcessor
from dreamvlx.train.build import small_model_config
from dreamvlx.vla.config import VLASettings
from dreamvlx.vla.lora import ADAPTER_CONFIG, ADAPTER_DIR, ADAPTER_WEIGHTS
from dreamvlx.vla.train import run_vla


@dataclass(frozen=True)
class LoRARun:
    """A LoRA fine-tune from a saved base: ``merged`` (the trainer's checkpoint: merged weights + adapter) and
    ``adapter_only`` (the same folder without the merged weights)."""

    root: Path
    base: Path
    merged: Path
    adapter_only: Path


def _write_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    episodes = [
        Episode(
            frames={"corner": rng.integers(0, 256, size=(n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)},
            state=rng.uniform(size=(n, 4)),
            action=rng.uniform(-1, 1, size=(n, 4)),
            task=task,
        )
        for n, task in ((10, "reach the button"), (9, "open the drawer"))
    ]
    return write_episodes(episodes, root, fps=10, use_video=False, progress=False)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, processor, statistics) -> LoRARun:
    """A tiny flow-matching DreamVLA saved as the base, then three LoRA (rank 4) steps of ``run_vla`` from it."""
    root = tmp_path_factory.mktemp("lora-only")
    settings = VLASettings(objective="flow", platform=PLATFORM, image_size=IMAGE_SIZE)
    torch.manual_seed(0)
    config = DreamVLAConfig.from_dict(
        small_model_config(TINY, processor.tokenizer, settings.attention).to_dict()
    )
    DreamVLA(config, settings).attach(processor, statistics).save_pretrained(root / "base")
    overrides = {
        "data.root": str(_write_dataset(root / "mw-data")), "model.init": str(root / "base"), "lora_rank": "4",
        "vla.objective": "flow", "vla.image_size": str(IMAGE_SIZE), "optim.max_steps": "3",
        "optim.batch_size": "2", "run.out_dir": str(root / "run"), "run.save_every": "3", "run.log_every": "1",
        "run.device": "cpu",
    }  # fmt: skip
    merged = run_vla("metaworld-tiny", overrides).final_dir
    adapter_only = root / "adapter-only"
    shutil.copytree(merged, adapter_only)
    (adapter_only / WEIGHTS_NAME).unlink()
    return LoRARun(root, root / "base", merged, adapter_only)


def _predict(model: DreamVLA) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    generator = torch.Generator().manual_seed(0)
    return model.predict_action([image], "reach the button", proprio=np.full(4, 0.5), generator=generator)


def _adapter_config(folder: Path) -> dict:
    return json.loads((folder / ADAPTER_DIR / ADAPTER_CONFIG).read_text())


def _copy_without_weights(lora_run: LoRARun, name: str) -> Path:
    target = lora_run.root / name
    shutil.copytree(lora_run.adapter_only, target, dirs_exist_ok=True)
    return target


# ---------------------------------------------------------------------------------------------- equivalence
def test_adapter_only_checkpoint_loads_the_merged_weights_exactly(lora_run) -> None:
    assert _adapter_config(lora_run.merged)["base_model_name_or_path"] == str(lora_run.base.resolve())
    merged = DreamVLA.from_pretrained(lora_run.merged)
    from_adapter = DreamVLA.from_pretrained(lora_run.adapter_only)
    expected, loaded = merged.state_dict(), from_adapter.state_dict()
    assert list(expected) == list(loaded)
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)
    base = DreamVLA.from_pretrained(lora_run.base).state_dict()
    changed = [k for k in expected if k.startswith("model.") and not torch.equal(expected[k], base[k])]
    assert changed  # the adapter did move the backbone
    np.testing.assert_array_equal(_predict(merged), _predict(from_adapter))
    assert from_adapter.name_or_path == str(lora_run.adapter_only.resolve())


def test_explicit_base_model_is_used_even_beside_merged_weights(lora_run) -> None:
    moved = lora_run.root / "moved-base"
    shutil.copytree(lora_run.base, moved, dirs_exist_ok=True)
    expected = DreamVLA.from_pretrained(lora_run.merged).state_dict()
    for folder in (lora_run.adapter_only, lora_run.merged):
        loaded = DreamVLA.from_pretrained(folder, base_model=moved, dtype=torch.bfloat16).state_dict()
        assert all(loaded[k].dtype == torch.bfloat16 for k in loaded)
        assert all(torch.equal(expected[k].to(torch.bfloat16), loaded[k]) for k in expected)
    twice = DreamVLA.from_pretrained(lora_run.merged, base_model=lora_run.merged).state_dict()
    assert not torch.equal(
        twice["model.layers.0.self_attn.q_proj.weight"], expected["model.layers.0.self_attn.q_proj.weight"]
    )


def test_unmerged_adapter_predicts_as_the_merged_model_and_refuses_to_save(lora_run) -> None:
    unmerged = DreamVLA.from_pretrained(lora_run.adapter_only, merge=False)
    keys = unmerged.state_dict()
    assert any(".lora_A." in k for k in keys) and any(".base_layer." in k for k in keys)
    assert unmerged.name_or_path == str(lora_run.base.resolve())
    np.testing.assert_allclose(
        _predict(unmerged), _predict(DreamVLA.from_pretrained(lora_run.merged)), rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ValueError, match="unmerged LoRA adapters"):
        unmerged.save_pretrained(lora_run.root / "never-written")


# ---------------------------------------------------------------------------------------------- errors
def test_missing_base_names_the_path_tried(lora_run) -> None:
    folder = _copy_without_weights(lora_run, "lost-base")
    gone = lora_run.root / "no-such-base"
    config = _adapter_config(folder) | {"base_model_name_or_path": str(gone)}
    (folder / ADAPTER_DIR / ADAPTER_CONFIG).write_text(json.dumps(config))
    with pytest.raises(
        FileNotFoundError, match=f"could not be loaded from '{gone}'.*base_model_name_or_path"
    ):
        DreamVLA.from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match=f"could not be loaded from '{gone}' \\(base_model=\\)"):
        DreamVLA.from_pretrained(lora_run.adapter_only, base_model=gone)
    (folder / ADAPTER_DIR / ADAPTER_CONFIG).write_text(json.dumps(config | {"base_model_name_or_path": None}))
    with pytest.raises(
        FileNotFoundError, match="records no base_model_name_or_path: pass the base checkpoint"
    ):
        DreamVLA.from_pretrained(folder)


def test_folder_without_weights_or_adapter_is_an_error(lora_run) -> None:
    folder = _copy_without_weights(lora_run, "empty")
    shutil.rmtree(folder / ADAPTER_DIR)
    with pytest.raises(FileNotFoundError, match=r"neither model weights .* nor a lora_adapter/"):
        DreamVLA.from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="has no lora_adapter/"):
        DreamVLA.from_pretrained(lora_run.base, merge=False)


def test_adapter_keys_matching_no_module_are_named(lora_run) -> None:
    folder = _copy_without_weights(lora_run, "bad-keys")
    weights_file = folder / ADAPTER_DIR / ADAPTER_WEIGHTS
    tensors = load_file(weights_file)
    real = "base_model.model.model.layers.0.self_attn.q_proj"
    assert f"{real}.lora_A.weight" in tensors
    stray = "base_model.model.model.layers.7.self_attn.q_proj"
    for part in ("lora_A", "lora_B"):
        tensors[f"{stray}.{part}.weight"] = tensors.pop(f"{real}.{part}.weight")
    save_file(tensors, weights_file)
    with pytest.raises(KeyError, match=r"not nn.Linear layers.*\['model.layers.7.self_attn.q_proj'\]"):
        DreamVLA.from_pretrained(folder)
    tensors[f"{stray}.lora_magnitude_vector"] = tensors[f"{stray}.lora_A.weight"][0].clone()
    save_file(tensors, weights_file)
    with pytest.raises(
        ValueError, match=r"not LoRA A/B matrices.*layers\.7\.self_attn\.q_proj\.lora_magnitude_vector"
    ):
        DreamVLA.from_pretrained(folder)


# ---------------------------------------------------------------------------------------------- vocabulary
def _grow_tokenizer(folder: Path, extra: int) -> int:
    """Append ``extra`` tokens to the tokenizer saved in ``folder``; returns its new length."""
    processor = DreamVLProcessor.from_pretrained(folder)
    processor.tokenizer.add_tokens([f"<|extra_{k}|>" for k in range(extra)])
    processor.save_pretrained(folder)
    return len(processor.tokenizer)


def test_tokenizer_longer_than_the_vocabulary_is_refused(make_vla, processor, tmp_path) -> None:
    vla_dir, vl_dir = tmp_path / "vla", tmp_path / "vl"
    model = make_vla("l1")
    vocab = model.config.vocab_size
    assert len(processor.tokenizer) == vocab
    model.save_pretrained(vla_dir)
    DreamVL(small_model_config(TINY, processor.tokenizer, "bidirectional")).save_pretrained(vl_dir)
    processor.save_pretrained(vl_dir)
    DreamVL.from_pretrained(vl_dir)  # a tokenizer that fits loads
    for folder, cls in ((vla_dir, DreamVLA), (vl_dir, DreamVL)):
        length = _grow_tokenizer(folder, 3)
        assert length == vocab + 3
        with pytest.raises(
            ValueError, match=f"ids up to {length - 1} .*vocab_size \\(embedding rows\\) is {vocab}"
        ):
            cls.from_pretrained(folder)
