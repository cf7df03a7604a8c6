"""``dreamvlx train --preset NAME [--section.key value ...]``.

Examples::

    dreamvlx train --preset blocksworld-tiny                       # diffusion, CPU
    dreamvlx train --preset blocksworld-tiny --objective.kind ar   # the AR control, same everything else
    torchrun --nproc-per-node 8 -m dreamvlx.cli train --preset dream-vl-7b-stage2a \\
        --data.train_json data/mammoth_si.json --data.image_folder data/images --run.strategy fsdp
    dreamvlx train --list-presets
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dreamvlx.settings import apply_overrides, parse_override_args
from dreamvlx.train.config import TrainConfig
from dreamvlx.train.presets import PRESETS, get_preset


def parse_config(argv: list[str]) -> TrainConfig:
    parser = argparse.ArgumentParser(
        prog="dreamvlx train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", required=True, help="a preset name (see --list-presets)")
    args, rest = parser.parse_known_args(argv)
    cfg = apply_overrides(get_preset(args.preset), parse_override_args(rest))
    cfg.validate()
    return cfg


def separator_ids(separator: str | None, tokenizer, dataset, checked: int = 16) -> tuple[int, ...] | None:
    """The token ids of ``objective.prefix_separator`` (None when unset). A separator that occurs in the
    reply of none of the first ``checked`` samples is a ValueError: every cut would silently be skipped."""
    if separator is None:
        return None
    from dreamvlx.train.objectives import IGNORE_INDEX, cut_points

    ids = tuple(tokenizer.encode(separator))
    for index in range(min(checked, len(dataset))):
        item = dataset[index]
        if cut_points(item["input_ids"], item["labels"] != IGNORE_INDEX, ids):
            return ids
    raise ValueError(
        f"objective.prefix_separator {separator!r} (token ids {list(ids)}) occurs in the reply of none of "
        f"the first {min(checked, len(dataset))} samples of data.train_json"
    )


def run(cfg: TrainConfig, until_step: int | None = None):  # -> TrainResult
    """Build processor, model and data for ``cfg`` and train (see :meth:`Trainer.train` for ``until_step``)."""
    from dreamvlx.data.conversations import ConversationCollator, ConversationDataset, load_samples
    from dreamvlx.modeling.dream_vl import DreamVL
    from dreamvlx.train.build import (
        build_small_processor,
        enable_activation_checkpointing,
        load_processor,
        rescale_vision_init_,
        set_attention,
        small_model_config,
    )
    from dreamvlx.train.distributed import barrier, init_distributed, wrap_model
    from dreamvlx.train.freezing import apply_freeze_recipe
    from dreamvlx.train.trainer import Trainer

    info = init_distributed(cfg.run.device)
    torch.manual_seed(cfg.run.seed)
    samples = load_samples(cfg.data.train_json)
    out_dir = Path(cfg.run.out_dir)
    if cfg.model.init is not None:
        processor = load_processor(cfg.model.init, cfg.data)
        model = DreamVL.from_pretrained(cfg.model.init, dtype=torch.float32)
        if model.config.attention != cfg.attention:
            set_attention(model, cfg.attention)
    else:
        processor_dir = out_dir / "processor"
        if info.is_main and not (processor_dir / "tokenizer.json").exists():
            build_small_processor(cfg.model, cfg.data, samples).save_pretrained(processor_dir)
        barrier(info)
        processor = load_processor(processor_dir, cfg.data)
        model = DreamVL(small_model_config(cfg.model, processor.tokenizer, cfg.attention))
        rescale_vision_init_(model)
    apply_freeze_recipe(model, cfg.freeze.recipe, cfg.freeze.vision_from_block)
    if cfg.freeze.lora_rank > 0:
        from dreamvlx.vla.lora import apply_lora

        model = apply_lora(
            model, rank=cfg.freeze.lora_rank, alpha=cfg.freeze.lora_alpha, dropout=cfg.freeze.lora_dropout
        )
    if cfg.run.gradient_checkpointing:
        enable_activation_checkpointing(model)
    model.to(info.device)
    if info.is_main:
        n = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(
            f"model: {n / 1e6:.2f} M parameters ({trainable / 1e6:.2f} M trainable), "
            f"attention={cfg.attention}, objective={cfg.objective.kind}, device={info.device}",
            flush=True,
        )
    dataset = ConversationDataset(
        samples,
        processor,
        cfg.data.image_folder,
        cfg.data.prompt_version,
        cfg.data.max_length,
        video_folder=cfg.data.video_folder or None,
        video_fps=cfg.data.video_fps,
        frames_upbound=cfg.data.frames_upbound,
    )
    trainer = Trainer(
        cfg,
        wrap_model(model, info, cfg.run.strategy),
        dataset,
        dataset.lengths(),
        ConversationCollator(processor.tokenizer.special_ids.endoftext, cfg.data.padding),
        info,
        mask_token_id=processor.tokenizer.special_ids.mask,
        save_extra=processor.save_pretrained,
        separator_ids=separator_ids(cfg.objective.prefix_separator, processor.tokenizer, dataset),
    )
    return trainer.train(until_step)


def main(argv: list[str]) -> int:
    from dreamvlx.vla.train import VLA_PRESETS
    from dreamvlx.vla.train import main as vla_main

    if "--list-presets" in argv:
        for name in sorted([*PRESETS, *VLA_PRESETS]):
            print(name)
        return 0
    preset = argv[argv.index("--preset") + 1] if "--preset" in argv[:-1] else None
    if preset in VLA_PRESETS:
        return vla_main(argv)
    result = run(parse_config(argv))
    print(f"done: {result.steps} steps, final loss {result.final_loss:.4f}; model in {result.final_dir}")
    return 0
