"""Process-group set-up and model wrapping with PyTorch's own engines (DDP, FSDP2).

Launch with ``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -m dreamvlx.cli train ...``;
everything comes from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), nothing is hard-coded.
Backend: NCCL on CUDA, Gloo on CPU (used by the tests: two CPU processes).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group when launched by torchrun; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def wrap_model(model: nn.Module, info: DistInfo, strategy: str) -> nn.Module:
    """DDP (default) or FSDP2 (``fully_shard`` per decoder layer and vision block, then the root)."""
    if not info.enabled:
        return model
    if strategy in ("auto", "ddp"):
        ids = [info.device.index] if info.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        from dreamvlx.modeling.lm import DreamDecoderLayer
        from dreamvlx.modeling.vision import VisionBlock

        for module in model.modules():
            if isinstance(module, (DreamDecoderLayer, VisionBlock)):
                fully_shard(module)
        fully_shard(model)
        return model
    raise ValueError(f"unknown run.strategy {strategy!r} (auto, ddp, fsdp)")


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def no_sync(model: nn.Module, skip: bool) -> AbstractContextManager[Any]:
    """Skip the DDP gradient all-reduce on all but the last accumulation micro-batch."""
    if skip and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return nullcontext()


def all_reduce_sum(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    return float(tensor.item())


def is_sharded(model: nn.Module) -> bool:
    """True for an FSDP2 model (its parameters are DTensors)."""
    return dist.is_initialized() and any(hasattr(p, "full_tensor") for p in unwrap(model).parameters())


def _full_options(strict: bool = True) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, strict=strict)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded, unwrapped state dict. Under FSDP2 this is a collective: every rank must call it."""
    inner = unwrap(model)
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(inner, options=_full_options())
    return inner.state_dict()


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state of the whole model (a collective under FSDP2, like :func:`full_state_dict`)."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(unwrap(model), optimizer, options=_full_options())
    return optimizer.state_dict()


def load_full_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    weights: dict[str, torch.Tensor],
    optim_state: dict[str, Any],
) -> None:
    """Load full (unsharded) weights and optimizer state, resharding them under FSDP2."""
    inner = unwrap(model)
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        set_model_state_dict(inner, weights, options=_full_options())
        # not strict: a trainable parameter that never had a gradient (e.g. the LM head under an action-head
        # objective) has no Adam state, as in the plain optimizer.load_state_dict below
        set_optimizer_state_dict(inner, optimizer, optim_state, options=_full_options(strict=False))
        return
    inner.load_state_dict(weights)
    optimizer.load_state_dict(optim_state)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
