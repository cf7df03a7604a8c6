"""The training loop: gradient accumulation, clipping, mixed precision, checkpoints, resume, logging.

One loop serves one CPU process, DDP and FSDP2 (see :mod:`dreamvlx.train.distributed`). Per optimizer
step it takes ``grad_accum`` micro-batches from the resumable sampler, draws their noise
(:mod:`dreamvlx.train.objectives`), normalises the summed token losses by the global token count,
back-propagates, clips, steps AdamW and the cosine schedule, logs, and saves atomic checkpoints.
A run restarted in the same ``out_dir`` resumes from the newest checkpoint and reaches the same
weights as an uninterrupted run (tested in ``tests/train/test_resume.py``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from dreamvlx.settings import to_dict
from dreamvlx.train import checkpointing
from dreamvlx.train.config import TrainConfig
from dreamvlx.train.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    full_optimizer_state,
    full_state_dict,
    is_sharded,
    load_full_state,
    no_sync,
    unwrap,
)
from dreamvlx.train.loader import batch_stream
from dreamvlx.train.metrics import MetricsLogger, plot_loss
from dreamvlx.train.objectives import PreparedBatch, build_objective
from dreamvlx.train.optim import build_optimizer, build_scheduler
from dreamvlx.train.sampler import ResumableBatchSampler

LORA_DIR = "lora_adapter"


@dataclasses.dataclass
class TrainResult:
    steps: int
    final_loss: float
    out_dir: Path
    final_dir: Path | None
    resumed_from: int | None = None  # the checkpoint step this run resumed from (None: started fresh)


def _to_device(prepared: PreparedBatch, device: torch.device) -> PreparedBatch:
    def move(x: Any) -> Any:
        return x.to(device) if isinstance(x, torch.Tensor) else x

    return dataclasses.replace(
        prepared,
        model_inputs={k: move(v) for k, v in prepared.model_inputs.items()},
        labels=move(prepared.labels),
        masked=move(prepared.masked),
        t=move(prepared.t),
    )


class Trainer:
    """Trains ``model`` (a DreamVL, possibly DDP/FSDP-wrapped) on a map-style conversation dataset.

    ``dataset[i]`` returns one sample dict; ``collate(list of samples, indices)`` returns a batch dict
    with ``input_ids``/``labels``/``attention_mask`` [B, L] (and image tensors) plus ``indices``.
    ``save_extra(folder)`` writes the processor/tokenizer files beside the model in every checkpoint.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        model: nn.Module,
        dataset: Sequence[dict[str, Any]],
        lengths: Sequence[int],
        collate: Callable[[list[dict[str, Any]], list[int]], dict[str, Any]],
        info: DistInfo,
        mask_token_id: int,
        save_extra: Callable[[Path], None] | None = None,
        objective: Any = None,
        separator_ids: tuple[int, ...] | None = None,
    ) -> None:
        self.cfg = cfg
        self.model = model
        self.dataset = dataset
        self.collate = collate
        self.info = info
        self.save_extra = save_extra
        self.out_dir = Path(cfg.run.out_dir)
        # any object with prepare(batch, step) -> PreparedBatch and loss_sum(model, prepared) (e.g. the
        # VLA objectives of dreamvlx.vla.objectives); default: the language-model objective of cfg
        # (separator_ids: the token ids of cfg.objective.prefix_separator)
        self.objective = objective or build_objective(
            cfg.objective, mask_token_id, cfg.run.seed, separator_ids
        )
        self.optimizer = build_optimizer(model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim)
        self.sampler = ResumableBatchSampler(
            lengths,
            cfg.optim.batch_size,
            seed=cfg.run.seed,
            world_size=info.world_size,
            rank=info.rank,
            group_by_length=cfg.data.group_by_length,
        )
        self.step = 0
        use_bf16 = cfg.run.precision == "bf16" or (cfg.run.precision == "auto" and info.device.type == "cuda")
        self.autocast_dtype = torch.bfloat16 if use_bf16 else None

    # -- checkpoints -------------------------------------------------------------------------------
    def _model_writer(self) -> Callable[[Path], None]:
        """Gathers the full weights (every rank: a collective under FSDP2); the writer runs on rank 0.

        A LoRA (peft) model is written as the merged model in the official layout plus its adapter in
        ``lora_adapter/`` (what a resume reloads); merging works on a copy, so training is untouched.
        """
        inner = unwrap(self.model)
        if _is_peft(inner):
            merged = copy.deepcopy(inner).merge_and_unload()
            weights = merged.state_dict()

            def write(folder: Path) -> None:
                merged.save_pretrained(folder, state_dict=weights)
                inner.save_pretrained(str(folder / LORA_DIR))
                if self.save_extra is not None:
                    self.save_extra(folder)

            return write
        weights = full_state_dict(self.model)

        def write(folder: Path) -> None:
            inner.save_pretrained(folder, state_dict=weights)
            if self.save_extra is not None:
                self.save_extra(folder)

        return write

    def save(self) -> Path | None:
        write_model = self._model_writer()
        state = {
            "step": self.step,
            "optimizer": full_optimizer_state(self.model, self.optimizer),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "config": to_dict(self.cfg),
        }
        rng = _gather_rng(self.info)
        folder = None
        if self.info.is_main:
            folder = checkpointing.save_checkpoint(
                self.out_dir, self.step, write_model, state, rng, self.cfg.run.keep_last
            )
        barrier(self.info)
        return folder

    def maybe_resume(self) -> bool:
        if not self.cfg.run.resume:
            return False
        folder = checkpointing.latest_checkpoint(self.out_dir)
        if folder is None:
            return False
        state, rng = checkpointing.load_trainer_state(folder, self.info.rank)
        inner = unwrap(self.model)
        if _is_peft(inner):  # the base weights are the run's initial ones; only the adapter trained
            if is_sharded(self.model):
                raise NotImplementedError("resuming a LoRA run under FSDP2 is not supported; use DDP")
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(inner, load_file(folder / LORA_DIR / "adapter_model.safetensors"))
            self.optimizer.load_state_dict(state["optimizer"])
        else:
            from dreamvlx.modeling.checkpoint import read_state_dict

            # models with extra component files (DreamVLA heads) read them into one state dict too
            reader = getattr(inner, "read_full_state_dict", read_state_dict)
            load_full_state(self.model, self.optimizer, reader(folder), state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.step = int(state["step"])
        checkpointing.set_rng_state(rng)
        if self.info.is_main:
            print(f"resumed from {folder} at step {self.step}", flush=True)
        return True

    # -- loop --------------------------------------------------------------------------------------
    def _next_micro_batches(self, batches: Any) -> list[PreparedBatch]:
        out = []
        for _ in range(self.cfg.optim.grad_accum):
            batch, self.sampler.position = next(batches)  # record only what is consumed (resume)
            out.append(_to_device(self.objective.prepare(batch, self.step), self.info.device))
        return out

    def train_step(self, batches: Any) -> dict[str, float]:
        cfg = self.cfg
        micro = self._next_micro_batches(batches)
        local_count = sum(p.count for p in micro)
        global_count = all_reduce_sum(float(local_count), self.info)
        scale = self.info.world_size / max(global_count, 1.0)
        self.model.train()
        loss_sum = 0.0
        n_tokens = 0
        for j, prepared in enumerate(micro):
            n_tokens += int(prepared.model_inputs["attention_mask"].sum())
            with (
                no_sync(self.model, skip=j < len(micro) - 1),
                torch.autocast(
                    self.info.device.type,
                    dtype=self.autocast_dtype or torch.float32,
                    enabled=self.autocast_dtype is not None,
                ),
            ):
                part = self.objective.loss_sum(self.model, prepared)
            (part * scale).backward()
            loss_sum += float(part.detach())
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], cfg.optim.max_grad_norm
        )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        total = all_reduce_sum(loss_sum, self.info)
        return {
            "loss": total / max(global_count, 1.0),
            "grad_norm": float(grad_norm),
            "lr": self.scheduler.get_last_lr()[0],
            "loss_tokens": global_count,
            "tokens": all_reduce_sum(float(n_tokens), self.info),
        }

    def train(self, until_step: int | None = None) -> TrainResult:
        """Train to ``optim.max_steps``; ``until_step`` stops earlier *without* a final save (as if the
        process were killed there), which the resume tests use. Returns the :class:`TrainResult`."""
        cfg = self.cfg
        stop = cfg.optim.max_steps if until_step is None else min(until_step, cfg.optim.max_steps)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        resumed_from = self.step if self.maybe_resume() else None
        if self.info.is_main:
            (self.out_dir / "train_config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
        logger = MetricsLogger(self.out_dir, cfg.run.tensorboard) if self.info.is_main else None
        batches = batch_stream(self.sampler, self.dataset, self.collate, cfg.data.num_workers)
        bar = tqdm(
            total=cfg.optim.max_steps,
            initial=self.step,
            disable=not self.info.is_main,
            desc="train",
            unit="step",
        )
        last: dict[str, float] = {"loss": float("nan")}
        window_start, window_tokens = time.perf_counter(), 0.0
        while self.step < stop:
            last = self.train_step(batches)
            window_tokens += last["tokens"]
            bar.update(1)
            if self.step % cfg.run.log_every == 0 or self.step == cfg.optim.max_steps:
                elapsed = time.perf_counter() - window_start
                last["tokens_per_s"] = window_tokens / max(elapsed, 1e-9)
                window_start, window_tokens = time.perf_counter(), 0.0
                bar.set_postfix(loss=f"{last['loss']:.4f}", tok_s=f"{last['tokens_per_s']:.0f}")
                if logger is not None:
                    logger.log(self.step, last)
            if self.step % cfg.run.save_every == 0 and self.step < cfg.optim.max_steps:
                self.save()
        bar.close()
        if self.step < cfg.optim.max_steps:  # interrupted on purpose: no final save
            if logger is not None:
                logger.close()
            return TrainResult(self.step, float(last["loss"]), self.out_dir, None, resumed_from)
        self.save()
        final_dir = None
        write_model = self._model_writer()
        if self.info.is_main:
            final_dir = self.out_dir / "final"
            write_model(final_dir)
            if logger is not None:
                logger.close()
                if cfg.run.plot and logger.path.exists():
                    plot_loss(logger.path, self.out_dir / "loss.png", title=f"{cfg.objective.kind} loss")
        barrier(self.info)
        return TrainResult(self.step, float(last["loss"]), self.out_dir, final_dir, resumed_from)


def _is_peft(model: nn.Module) -> bool:
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def _gather_rng(info: DistInfo) -> dict[int, dict[str, Any]]:
    """Every rank's RNG state, gathered on rank 0 (saved as rng-rank{R}.pt)."""
    mine = checkpointing.rng_state()
    if not info.enabled:
        return {0: mine}
    import torch.distributed as dist

    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, mine)
    return dict(enumerate(gathered))
