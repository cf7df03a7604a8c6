"""Training configuration: one typed dataclass tree per run, named presets, command-line overrides.

``TrainConfig`` groups orthogonal sections (model, data, objective, optimisation, freezing, run);
``dreamvlx train --preset NAME --optim.lr 1e-4 ...`` starts from a preset of ``presets.py`` and
applies dotted overrides through :func:`dreamvlx.settings.apply_overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ModelSection:
    """Which model to train.

    ``init`` names a checkpoint folder (official layout) or hub id to start from; when it is ``None`` a
    model is built from scratch with the architecture below and a small tokenizer trained on the data.
    """

    init: str | None = None
    # Architecture for models built from scratch (ignored when ``init`` is given).
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vision_depth: int = 2
    vision_embed_dim: int = 64
    vision_num_heads: int = 2
    tokenizer_vocab_size: int = 512
    rope_theta: float = 10000.0


@dataclass(frozen=True)
class DataSection:
    """LLaVA-format conversation data (spec dream-vl.md sections 5.1-5.3)."""

    train_json: str = ""
    image_folder: str = ""
    video_folder: str = ""  # folder of the samples' "video" files; empty: image_folder
    video_fps: float = 1.0  # LLaVA-OneVision: frames sampled at this rate ...
    frames_upbound: int = 10  # ... or this many uniformly spaced frames when that gives more
    prompt_version: Literal["qwen_2_5", "plain"] = "qwen_2_5"
    max_length: int = 1024
    # "official": right-pad input_ids AND labels with the pad id, so trailing pads are supervised and
    # maskable (how Dream-VL learns to fill unused canvas slots); "ignore": labels of pads are -100.
    padding: Literal["official", "ignore"] = "official"
    group_by_length: bool = True
    min_pixels: int = 3136
    max_pixels: int = 3211264
    num_workers: int = 0  # processes that read and collate batches ahead of the loop (train/loader.py)


@dataclass(frozen=True)
class ObjectiveSection:
    """The one switch between the diffusion model and its AR control.

    ``diffusion``: bidirectional attention + masked-diffusion loss (CART weighting by default);
    ``ar``: the same architecture with a causal mask + next-token loss. The model's attention mode is
    derived from this field (see :attr:`TrainConfig.attention`), so comparisons stay like for like.
    """

    kind: Literal["diffusion", "ar"] = "diffusion"
    weighting: Literal["cart", "inverse_t", "none"] = "cart"
    cart_p: float = 0.1
    eps: float = 1e-3
    # Given-prefix samples (diffusion only; 0 = the official noising): with this probability a sample's
    # supervised tokens are cut in two at a random point, the part before the cut given clean (neither
    # masked nor scored) and the part after noised as usual, so that a later step of a reasoning reply is
    # trained with the earlier steps it depends on in view (dreamvlx.train.objectives.prefix_cut).
    prefix_prob: float = 0.0
    # Cut only right after an occurrence of this text in the reply (a section separator such as " ;");
    # None cuts before any supervised token but the first.
    prefix_separator: str | None = None


@dataclass(frozen=True)
class OptimSection:
    lr: float = 1e-3
    vision_lr: float | None = None  # separate learning rate for the vision tower (official: 2e-6 at 7B)
    projector_lr: float | None = None  # separate learning rate for the projector (LLaVA's mm_projector_lr)
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 8  # per process, per micro-batch
    grad_accum: int = 1
    max_steps: int = 1000  # optimizer steps


@dataclass(frozen=True)
class FreezeSection:
    """Which parameters train (spec dream-vl.md 5.7).

    ``full``: everything; ``projector``: stage 1 (projector only); ``stage2``: vision blocks from
    ``vision_from_block`` on, the merger, the projector and the whole LM; ``lm``: LM + projector.
    """

    recipe: Literal["full", "projector", "stage2", "lm"] = "full"
    vision_from_block: int = 16
    lora_rank: int = 0  # > 0: LoRA adapters through peft on all linear layers; base weights frozen
    lora_alpha: int = 16
    lora_dropout: float = 0.0


@dataclass(frozen=True)
class RunSection:
    out_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # auto: cuda when available (LOCAL_RANK), else cpu
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"  # with torchrun; auto = ddp
    gradient_checkpointing: bool = False
    save_every: int = 500
    keep_last: int = 2
    log_every: int = 10
    tensorboard: bool = False
    resume: bool = True  # resume from the newest checkpoint in out_dir when there is one
    plot: bool = True


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    optim: OptimSection = field(default_factory=OptimSection)
    freeze: FreezeSection = field(default_factory=FreezeSection)
    run: RunSection = field(default_factory=RunSection)

    @property
    def attention(self) -> str:
        """Attention mode of the trained model: ``causal`` for the AR control, else ``bidirectional``."""
        return "causal" if self.objective.kind == "ar" else "bidirectional"

    def validate(self) -> None:
        """Reject inconsistent settings early, naming the keys involved."""
        if self.optim.batch_size < 1 or self.optim.grad_accum < 1 or self.optim.max_steps < 1:
            raise ValueError("optim.batch_size, optim.grad_accum and optim.max_steps must be >= 1")
        for key in ("lr", "vision_lr", "projector_lr"):
            rate = getattr(self.optim, key)
            if rate is not None and not rate > 0:
                raise ValueError(f"optim.{key} must be positive, got {rate}")
        if not 0.0 <= self.optim.warmup_ratio < 1.0:
            raise ValueError(f"optim.warmup_ratio must be in [0, 1), got {self.optim.warmup_ratio}")
        if self.data.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.data.num_workers}")
        if not 0.0 <= self.objective.prefix_prob <= 1.0:
            raise ValueError(f"objective.prefix_prob must be in [0, 1], got {self.objective.prefix_prob}")
        if self.objective.prefix_prob > 0 and self.objective.kind != "diffusion":
            raise ValueError(
                "objective.prefix_prob applies to the diffusion objective only (the AR control "
                "already sees every earlier token)"
            )
        if self.objective.prefix_separator == "":
            raise ValueError("objective.prefix_separator is empty: give the separator text or leave it unset")
        if not self.data.train_json:
            raise ValueError("data.train_json is empty: give --data.train_json PATH")
