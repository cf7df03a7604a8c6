"""Named training presets (``dreamvlx train --preset NAME``).

- ``blocksworld-tiny``: a small Dream-VL trained from scratch on CPU on generated ViPlan BlocksWorld
  data (the model of ``dreamvlx demo``; data: ``dreamvlx data viplan --out data/blocksworld --samples
  64000 --modes grounding,planning --questions-per-image 1 --plan-horizon 1 --prompt-style slots --cot``,
  the format ``dreamvlx.demo`` documents). Images are downscaled by ``max_pixels`` to 112x168 (96 patches, 24 LLM
  tokens): the cubes stay well resolved and the sequence stays short.
- ``blocksworld-small``: the same task on one GPU with a larger model (bf16 autocast).
- ``dream-vl-7b-stage1`` / ``-stage2a`` / ``-stage2b`` / ``-stage3``: the paper's Dream-VL recipes
  (spec dream-vl.md section 5.7) for users with GPUs: start from the given checkpoint (a Dream-VL or a
  Dream-7B converted into the Dream-VL layout), projector-only pretraining, then vision blocks >= 16 +
  merger + projector + LM with a vision learning rate of 2e-6, cosine schedule, 3% warm-up, weight
  decay 0, gradient clipping 1.0, gradient checkpointing, bf16. Per-device batch and accumulation are
  the official ones (16x1, then 4x2 on 8 GPUs per node); set ``--data.train_json`` to the LLaVA data.
  Stage 3 (OneVision) data holds video samples too (a ``"video"`` field, files under ``--data.video_folder``;
  frames as the official ``video_fps = 1``, ``frames_upbound = 10``, the ``DataSection`` defaults).
- Models trained from scratch use ``objective.weighting=none`` (plain mean over masked tokens), not the
  official CART weighting: CART weights a token by the clean context within a few positions of it, so a
  fully masked answer, which can only be predicted from the image far away, gets almost no weight, and
  a small model from scratch learns to read the image very slowly (measured in tests/train/test_overfit.py
  on a 2-colour task: with CART the fully masked answer ignored the image after 150 steps; with none it
  was right). The 7B recipes keep CART, as in the official fine-tuning.
- Every preset has an AR twin through ``--objective.kind ar`` (causal mask, next-token loss).
"""

from __future__ import annotations

import dataclasses

from dreamvlx.train.config import (
    DataSection,
    FreezeSection,
    ModelSection,
    ObjectiveSection,
    OptimSection,
    RunSection,
    TrainConfig,
)

_BLOCKSWORLD_DATA = DataSection(
    train_json="data/blocksworld/index.json",
    image_folder="data/blocksworld",
    max_length=1536,
    min_pixels=3136,
    max_pixels=112 * 168,
)


def _stage(lr: float, vision_lr: float | None, recipe: str, batch: int, accum: int, name: str) -> TrainConfig:
    return TrainConfig(
        model=ModelSection(init="Dream-org/Dream-VL-7B"),
        data=DataSection(
            max_length=8192,
            min_pixels=512 * 28 * 28,
            max_pixels=4096 * 28 * 28,
            padding="official",
            prompt_version="plain" if name == "stage1" else "qwen_2_5",
        ),
        objective=ObjectiveSection(kind="diffusion", weighting="cart", cart_p=0.1),
        optim=OptimSection(
            lr=lr,
            vision_lr=vision_lr,
            weight_decay=0.0,
            warmup_ratio=0.03,
            max_grad_norm=1.0,
            batch_size=batch,
            grad_accum=accum,
            max_steps=10_000,
        ),
        freeze=FreezeSection(recipe=recipe, vision_from_block=16),
        run=RunSection(
            out_dir=f"runs/dream-vl-7b-{name}",
            precision="bf16",
            gradient_checkpointing=True,
            save_every=1000,
            log_every=1,
        ),
    )


PRESETS: dict[str, TrainConfig] = {
    "blocksworld-tiny": TrainConfig(
        model=ModelSection(
            hidden_size=192,
            intermediate_size=512,
            num_hidden_layers=4,
            num_attention_heads=6,
            num_key_value_heads=2,
            vision_depth=2,
            vision_embed_dim=96,
            vision_num_heads=3,
            tokenizer_vocab_size=1024,
        ),
        data=_BLOCKSWORLD_DATA,
        objective=ObjectiveSection(weighting="none"),
        optim=OptimSection(lr=2e-3, warmup_ratio=0.05, batch_size=8, max_steps=800, weight_decay=0.01),
        run=RunSection(out_dir="runs/blocksworld-tiny", save_every=50, log_every=10),
    ),
    "blocksworld-small": TrainConfig(
        model=ModelSection(
            hidden_size=512,
            intermediate_size=1536,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=2,
            vision_depth=4,
            vision_embed_dim=256,
            vision_num_heads=4,
            tokenizer_vocab_size=2048,
        ),
        data=dataclasses.replace(_BLOCKSWORLD_DATA, max_pixels=196 * 308),
        objective=ObjectiveSection(weighting="none"),
        optim=OptimSection(lr=1e-3, warmup_ratio=0.03, batch_size=32, max_steps=6000, weight_decay=0.01),
        run=RunSection(out_dir="runs/blocksworld-small", save_every=1000, log_every=20, precision="bf16"),
    ),
    "dream-vl-7b-stage1": _stage(1e-3, None, "projector", 16, 1, "stage1"),
    "dream-vl-7b-stage2a": _stage(1e-5, 2e-6, "stage2", 4, 2, "stage2a"),
    "dream-vl-7b-stage2b": _stage(5e-6, 2e-6, "stage2", 4, 2, "stage2b"),
    "dream-vl-7b-stage3": _stage(5e-6, 2e-6, "stage2", 4, 2, "stage3"),
}


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
