"""The training loop end to end on a tiny model: resume equivalence, freezing, metrics, the AR switch."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from train_fixtures import tiny_config

from dreamvlx.data.conversations import load_samples
from dreamvlx.modeling.dream_vl import DreamVL
from dreamvlx.train.build import build_small_processor, small_model_config
from dreamvlx.train.cli import run
from dreamvlx.train.freezing import apply_freeze_recipe


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_killed_and_resumed_run_reaches_the_same_weights(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    straight = run(tiny_config(tmp_path / "a"))
    assert straight.steps == 8 and straight.final_dir is not None

    (tmp_path / "b").mkdir()
    cfg = tiny_config(tmp_path / "b")
    interrupted = run(cfg, until_step=5)  # "killed" after step 5; last checkpoint is step 3
    assert interrupted.final_dir is None and interrupted.steps == 5
    resumed = run(cfg)  # picks up step 3, replays 4 and 5, finishes
    assert resumed.steps == 8 and resumed.resumed_from == 3 and straight.resumed_from is None
    a, b = _weights(straight.final_dir), _weights(resumed.final_dir)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # the checkpoint folders are in the official layout and load as a model
    model = DreamVL.from_pretrained(resumed.final_dir)
    assert model.config.attention == "bidirectional"
    metrics = [
        json.loads(line) for line in (Path(cfg.run.out_dir) / "metrics.jsonl").read_text().splitlines()
    ]
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(metrics[-1])


def test_ar_switch_trains_a_causal_model(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, objective={"kind": "ar"}, optim={"max_steps": 2})
    result = run(cfg)
    model = DreamVL.from_pretrained(result.final_dir)
    assert model.config.attention == "causal"
    assert torch.isfinite(torch.tensor(result.final_loss))


def test_freeze_recipes_leave_frozen_weights_untouched(tmp_path: Path) -> None:
    from dreamvlx.config import DreamVLConfig, DreamVLVisionConfig

    config = DreamVLConfig.tiny(
        vision_config=DreamVLVisionConfig(depth=3, embed_dim=32, hidden_size=64, num_heads=2)
    )
    model = DreamVL(config)
    apply_freeze_recipe(model, "stage2", vision_from_block=2)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("visual.blocks.2.") for n in trainable)
    assert not any(
        n.startswith(("visual.blocks.0.", "visual.blocks.1.", "visual.patch_embed.")) for n in trainable
    )
    assert {"lm_head.weight", "model.embed_tokens.weight"} <= trainable
    assert any(n.startswith("visual.merger.") for n in trainable)
    apply_freeze_recipe(model, "projector")
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters() if n.startswith("projector.")
    }


def test_training_from_a_checkpoint_with_lm_recipe_keeps_the_vision_tower(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, optim={"max_steps": 2})
    samples = load_samples(cfg.data.train_json)
    processor = build_small_processor(cfg.model, cfg.data, samples)
    init_dir = tmp_path / "init"
    DreamVL(small_model_config(cfg.model, processor.tokenizer, "bidirectional")).save_pretrained(init_dir)
    processor.save_pretrained(init_dir)

    cfg = tiny_config(
        tmp_path, model={"init": str(init_dir)}, freeze={"recipe": "lm"}, optim={"max_steps": 2}
    )
    result = run(cfg)
    before, after = _weights(init_dir), _weights(result.final_dir)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "nothing trained"
    assert all(k.startswith(("model.", "lm_head.", "projector.")) for k in changed)
    assert not any(k.startswith("visual.") for k in changed)


def test_ar_control_from_a_diffusion_checkpoint_with_activation_checkpointing(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, optim={"max_steps": 1}, run={"out_dir": str(tmp_path / "diffusion")})
    first = run(cfg)
    ar = tiny_config(
        tmp_path,
        model={"init": str(first.final_dir)},
        objective={"kind": "ar"},
        optim={"max_steps": 2},
        run={"out_dir": str(tmp_path / "ar"), "gradient_checkpointing": True},
    )
    result = run(ar)
    model = DreamVL.from_pretrained(result.final_dir)
    assert model.config.attention == "causal" and model.model.causal
    assert (
        _weights(result.final_dir).keys() == _weights(first.final_dir).keys()
    )  # names unchanged by the wrapper


def test_lora_run_resumes_exactly_and_writes_merged_weights_plus_adapter(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    lora = {"lora_rank": 4}
    straight = run(tiny_config(tmp_path / "a", freeze=lora, optim={"max_steps": 5}))
    cfg = tiny_config(tmp_path / "b", freeze=lora, optim={"max_steps": 5})
    run(cfg, until_step=4)  # last checkpoint: step 3
    resumed = run(cfg)
    assert resumed.resumed_from == 3
    assert (resumed.final_dir / "lora_adapter" / "adapter_model.safetensors").is_file()
    a, b = _weights(straight.final_dir), _weights(resumed.final_dir)
    assert a.keys() == _weights(resumed.final_dir).keys()  # merged model: official key names
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    DreamVL.from_pretrained(resumed.final_dir)  # loads as a plain Dream-VL


def test_loader_workers_give_the_same_weights_and_resume_exactly(tmp_path: Path) -> None:
    """Batches read ahead by two worker processes train exactly like batches read in the loop, and a
    run killed while the workers had read ahead resumes from the batches it had used."""
    (tmp_path / "a").mkdir()
    in_loop = run(tiny_config(tmp_path / "a"))
    (tmp_path / "b").mkdir()
    cfg = tiny_config(tmp_path / "b", data={"num_workers": 2})
    interrupted = run(cfg, until_step=5)
    assert interrupted.final_dir is None
    resumed = run(cfg)
    assert resumed.resumed_from == 3
    a, b = _weights(in_loop.final_dir), _weights(resumed.final_dir)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
