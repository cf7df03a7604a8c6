"""Dream-VLA training: ``run_vla(preset, overrides)`` and the VLA presets of ``dreamvlx train --preset NAME``.

Presets (``VLA_PRESETS``):

- ``metaworld-tiny``: a small Dream-VLA trained from scratch on CPU in a few minutes (small byte-level tokenizer
  with the 256 action tokens, 2-block vision tower, 4-layer LM of width 128), one 224 x 224 camera, proprio,
  Meta-World platform (chunk 8 x 4). Used by the tests with a handful of steps.
- ``metaworld-small``: the same recipe at GPU size (width 512, 8 layers, bf16 autocast).
- ``libero-7b-flow``: the released recipe (spec dream-vla.md section 4) for GPU users: start from
  ``Dream-org/Dream-VLA-7B``, flow matching, 2 cameras (primary then wrist), proprio, LoRA rank 32 (alpha 16),
  AdamW lr 1e-4 with weight decay 0.01, no warm-up, batch 8 per GPU on 8 GPUs, 200k steps, bf16. Differences from
  the release (on purpose, spec 8): the flow head and projector are trained, gradient clipping at 1.0 (the release
  has none: set ``--optim.max_grad_norm 1e9`` for parity) and the schedule is the trainer's cosine (the release
  uses a x0.1 step at 100k).

Every preset selects its objective with ``--vla.objective`` (``discrete_diffusion``, ``discrete``, ``l1``, ``ddim``,
``flow``, ``ar``) and reads a LeRobot v3.0 dataset (``dreamvlx data metaworld --out DIR``) with the platform's
chunking (``dreamvlx.actions.platforms``, never guessed from the command line). Statistics are computed from the
data and stored in every checkpoint (``dataset_statistics.json`` under ``unnorm_key`` = the dataset folder name
unless ``--vla.unnorm_key`` is given).

Example::

    dreamvlx data metaworld --out data/metaworld-mt10 --tasks mt10 --episodes-per-task 20
    dreamvlx train --preset metaworld-tiny --data.root data/metaworld-mt10 --vla.objective l1
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dreamvlx.settings import apply_overrides, to_dict
from dreamvlx.train.config import ModelSection, ObjectiveSection, OptimSection, RunSection, TrainConfig
from dreamvlx.vla.config import VLASettings


@dataclass(frozen=True)
class VLADataSection:
    """The LeRobot v3.0 dataset: cameras in the model's order (primary first), proprio key, augmentation."""

    root: str = "data/metaworld-mt10"
    camera_keys: tuple[str, ...] = ("observation.images.corner",)
    state_key: str = "observation.state"
    pad_episode_ends: bool = False
    image_aug: bool = False


@dataclass(frozen=True)
class VLATrainConfig:
    """One VLA run: model size (or ``model.init``), data, VLA settings, optimisation, LoRA rank, run options."""

    model: ModelSection = field(default_factory=ModelSection)
    data: VLADataSection = field(default_factory=VLADataSection)
    vla: VLASettings = field(default_factory=lambda: VLASettings(platform="metaworld"))
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)
    lora_rank: int = 0  # > 0: the official LoRA recipe (peft), heads fully trained
    n_action_bins: int = 256

    def validate(self) -> None:
        robot = self.vla.robot
        if len(self.data.camera_keys) != robot.num_images:
            raise ValueError(
                f"platform {robot.name!r} takes {robot.num_images} camera(s), --data.camera_keys gives "
                f"{list(self.data.camera_keys)}"
            )
        if self.vla.image_size is None:
            raise ValueError("training needs a fixed --vla.image_size")
        if not Path(self.data.root).is_dir():
            raise FileNotFoundError(
                f"dataset not found: {self.data.root} (write one with `dreamvlx data metaworld --out DIR`)"
            )

    def trainer_config(self) -> TrainConfig:
        """The generic trainer's view of this run (its objective section only names the attention kind)."""
        return TrainConfig(
            model=self.model,
            objective=ObjectiveSection(kind="ar" if self.vla.objective == "ar" else "diffusion"),
            optim=self.optim,
            run=self.run,
        )


_TINY_MODEL = ModelSection(
    hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
    vision_depth=2, vision_embed_dim=64, vision_num_heads=2, tokenizer_vocab_size=512,
)  # fmt: skip

VLA_PRESETS: dict[str, VLATrainConfig] = {
    "metaworld-tiny": VLATrainConfig(
        model=_TINY_MODEL,
        vla=VLASettings(objective="l1", platform="metaworld", image_size=224),
        optim=OptimSection(lr=1e-3, warmup_ratio=0.05, batch_size=8, max_steps=300, weight_decay=0.01),
        run=RunSection(out_dir="runs/metaworld-tiny", save_every=100, log_every=10),
    ),
    "metaworld-small": VLATrainConfig(
        model=ModelSection(
            hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
            num_key_value_heads=2, vision_depth=4, vision_embed_dim=256, vision_num_heads=4, tokenizer_vocab_size=1024,
        ),
        vla=VLASettings(objective="flow", platform="metaworld", image_size=224),
        data=VLADataSection(image_aug=True),
        optim=OptimSection(lr=5e-4, warmup_ratio=0.03, batch_size=32, max_steps=20_000, weight_decay=0.01),
        run=RunSection(out_dir="runs/metaworld-small", save_every=2000, log_every=20, precision="bf16"),
    ),
    "libero-7b-flow": VLATrainConfig(
        model=ModelSection(init="Dream-org/Dream-VLA-7B"),
        data=VLADataSection(
            root="data/libero_10_no_noops",
            camera_keys=("observation.images.image", "observation.images.wrist_image"),
            image_aug=True,
        ),
        vla=VLASettings(objective="flow", platform="libero", image_size=224, flow_steps=4),
        optim=OptimSection(lr=1e-4, warmup_ratio=0.0, weight_decay=0.01, batch_size=8, max_steps=200_000),
        run=RunSection(out_dir="runs/libero-7b-flow", save_every=50_000, log_every=10, precision="bf16"),
        lora_rank=32,
    ),
}  # fmt: skip


def get_vla_preset(name: str) -> VLATrainConfig:
    if name not in VLA_PRESETS:
        raise KeyError(f"unknown VLA preset {name!r}; known: {', '.join(sorted(VLA_PRESETS))}")
    return VLA_PRESETS[name]


def prompt_text(instruction: str) -> str:
    """The chat text of a VLA prompt without image tokens: the corpus a small tokenizer is trained on."""
    from dreamvlx.processing.chat import render_chat
    from dreamvlx.vla.prompt import INSTRUCTION_TEMPLATE

    message = {"role": "user", "content": INSTRUCTION_TEMPLATE.format(instruction=instruction)}
    return render_chat([message], add_generation_prompt=True)


def build_processor(cfg: VLATrainConfig, instructions: list[str]) -> Any:
    """A small tokenizer (with the action tokens) trained on the prompts, and an image processor that keeps the
    images at ``image_size`` (``min_pixels = max_pixels = image_size ** 2``, as the official ``patches`` setting)."""
    from dreamvlx.processing import (
        DreamVLImageProcessor,
        DreamVLProcessor,
        ImageProcessorConfig,
        build_small_tokenizer,
    )

    texts = [prompt_text(i.lower() if cfg.vla.lowercase_instruction else i) for i in instructions]
    tokenizer = build_small_tokenizer(
        texts * 4, cfg.model.tokenizer_vocab_size, num_action_tokens=cfg.n_action_bins
    )
    pixels = cfg.vla.image_size**2
    return DreamVLProcessor(
        DreamVLImageProcessor(ImageProcessorConfig(min_pixels=pixels, max_pixels=pixels)), tokenizer
    )


def load_init_processor(cfg: VLATrainConfig) -> Any:
    """The processor of ``model.init`` (a directory or Hub id, resolved like the weights) prepared as the official
    fine-tune does (spec dream-vla.md 1.3, 2.3): the ``n_action_bins`` tokens ``<|action_k|>`` appended (tokens
    already present are kept) and ``min_pixels = image_size ** 2`` (the official ``patches * 28 * 28``)."""
    from dreamvlx.modeling.checkpoint import resolve_checkpoint_dir
    from dreamvlx.processing.processor import DreamVLProcessor
    from dreamvlx.processing.small_tokenizer import action_token

    assert cfg.model.init is not None and cfg.vla.image_size is not None
    processor = DreamVLProcessor.from_pretrained(
        resolve_checkpoint_dir(cfg.model.init), min_pixels=cfg.vla.image_size**2
    )
    processor.tokenizer.add_tokens([action_token(k) for k in range(cfg.n_action_bins)])
    return processor


def build_model(cfg: VLATrainConfig, processor: Any) -> Any:
    """A DreamVLA of the configured size at random init (``model.init`` None) or from a checkpoint's backbone."""
    from dreamvlx.modeling.dream_vla import DreamVLA, DreamVLAConfig
    from dreamvlx.train.build import small_model_config
    from dreamvlx.vla.checkpoint import init_from_backbone

    if cfg.model.init is not None:
        return init_from_backbone(DreamVLA, cfg.model.init, cfg.vla)
    backbone = small_model_config(cfg.model, processor.tokenizer, cfg.vla.attention)
    config = DreamVLAConfig.from_dict(backbone.to_dict() | {"n_action_bins": cfg.n_action_bins})
    return DreamVLA(config, cfg.vla)


def run_vla(preset_name: str, overrides: dict[str, str], until_step: int | None = None) -> Any:
    """Train the preset with ``--section.key value`` overrides applied; returns the trainer's ``TrainResult``
    (``until_step``: stop there without a final save, as if killed; see :meth:`Trainer.train`)."""
    from dreamvlx.actions.platforms import get_platform
    from dreamvlx.data.augment import AugmentConfig
    from dreamvlx.data.robot_dataset import RobotChunkDataset
    from dreamvlx.train.distributed import init_distributed, wrap_model
    from dreamvlx.train.trainer import Trainer
    from dreamvlx.vla.batch import VLABatchBuilder
    from dreamvlx.vla.lora import LoRAVLA, apply_lora
    from dreamvlx.vla.objectives import build_vla_objective
    from dreamvlx.vla.prompt import ActionPromptLayout

    cfg = apply_overrides(get_vla_preset(preset_name), overrides)
    cfg.validate()
    info = init_distributed(cfg.run.device)
    torch.manual_seed(cfg.run.seed)
    settings = cfg.vla
    robot = get_platform(settings.platform)
    dataset = RobotChunkDataset.from_platform(
        cfg.data.root,
        robot,
        cfg.data.camera_keys,
        state_key=cfg.data.state_key if settings.use_proprio else None,
        pad_episode_ends=cfg.data.pad_episode_ends,
        augment=AugmentConfig() if cfg.data.image_aug else None,
        seed=cfg.run.seed,
    )
    unnorm_key = settings.unnorm_key or Path(cfg.data.root).name
    if cfg.model.init is not None:
        processor = load_init_processor(cfg)
    else:
        processor = build_processor(cfg, list(dataset.source.tasks.values()))
    model = build_model(cfg, processor)
    model.attach(processor, {unnorm_key: dataset.statistics})
    layout = ActionPromptLayout(
        processor.tokenizer, settings.num_action_tokens, cfg.n_action_bins, settings.lowercase_instruction
    )
    objective = build_vla_objective(settings, cfg.run.seed, layout.mask_token_id)
    for name in objective.unused_modules:
        getattr(model, name).requires_grad_(False)
    trainable: Any = LoRAVLA(apply_lora(model, cfg.lora_rank)) if cfg.lora_rank > 0 else model
    trainable.to(info.device)
    out_dir = Path(cfg.run.out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "vla_train_config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
        n = sum(p.numel() for p in trainable.parameters())
        k = sum(p.numel() for p in trainable.parameters() if p.requires_grad)
        print(
            f"Dream-VLA: {n / 1e6:.2f} M parameters ({k / 1e6:.2f} M trainable), objective={settings.objective}, "
            f"platform={robot.name}, {len(dataset)} samples, device={info.device}",
            flush=True,
        )
    trainer = Trainer(
        cfg.trainer_config(),
        wrap_model(trainable, info, cfg.run.strategy),
        dataset,
        [1] * len(dataset),
        VLABatchBuilder(processor, layout, settings.use_proprio).collate,
        info,
        mask_token_id=layout.mask_token_id,
        objective=objective,
    )
    return trainer.train(until_step)


def main(argv: list[str]) -> int:
    """``python -m dreamvlx.vla.train --preset NAME [--section.key value ...]`` (also via ``dreamvlx train``)."""
    import argparse

    from dreamvlx.settings import parse_override_args

    parser = argparse.ArgumentParser(
        prog="dreamvlx train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", required=True, help=f"one of: {', '.join(sorted(VLA_PRESETS))}")
    args, rest = parser.parse_known_args(argv)
    result = run_vla(args.preset, parse_override_args(rest))
    print(f"done: {result.steps} steps, final loss {result.final_loss:.4f}; model in {result.final_dir}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
