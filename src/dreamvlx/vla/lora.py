"""LoRA for Dream-VLA fine-tuning through ``peft`` (the official recipe, spec dream-vla.md section 4).

Rank 32, ``lora_alpha = min(rank, 16)``, dropout 0, ``init_lora_weights="gaussian"``, on **every** ``nn.Linear`` of
the backbone (vision tower incl. merger, projector, LLM); ``lm_head``, the embeddings, all norms and the Conv3d
patch embedding stay frozen. The extra modules (action head, proprio / noisy-action projectors) are not adapted:
they train fully, as in the official optimizer (which, unlike the release, here also includes the flow-matching
head and projector, spec 8.1).

``merge_lora`` folds the adapters into the base weights (``W + (alpha / r) B A``) and returns the plain
:class:`~dreamvlx.modeling.dream_vla.DreamVLA`, whose state dict has the official keys again.

The adapter on disk (``lora_adapter/``, PEFT's layout): ``adapter_config.json`` (``r``, ``lora_alpha``,
``base_model_name_or_path``, ...) and ``adapter_model.safetensors`` with keys
``base_model.model.<module path>.lora_{A|B}.weight`` (``<module path>`` as in the model's own ``named_modules``,
e.g. ``model.layers.0.self_attn.q_proj``; A is [r, in], B is [out, r]). :func:`load_lora_adapter` applies such an
adapter to a model holding the base weights (the official release may ship only the adapter, spec dream-vla.md
1.6).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from safetensors import safe_open
from torch import nn

BACKBONE_PREFIXES = ("visual.", "projector.", "model.")
FULLY_TRAINED = ("action_head", "proprio_projector", "noisy_action_projector")
ADAPTER_DIR = "lora_adapter"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_ADAPTER_KEY = re.compile(r"base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight")


def lora_target_modules(model: nn.Module) -> list[str]:
    """Names of the backbone's ``nn.Linear`` modules (all of them except ``lm_head``)."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and name.startswith(BACKBONE_PREFIXES)
    ]


def apply_lora(model: nn.Module, rank: int = 32, alpha: int | None = None, dropout: float = 0.0) -> Any:
    """Wrap ``model`` in a ``peft.PeftModel`` with the official LoRA recipe; returns the wrapper.

    Trainable afterwards: the LoRA matrices and the extra modules; everything else is frozen."""
    from peft import LoraConfig, get_peft_model

    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    config = LoraConfig(
        r=rank,
        lora_alpha=min(rank, 16) if alpha is None else alpha,
        lora_dropout=dropout,
        target_modules=lora_target_modules(model),
        init_lora_weights="gaussian",
    )
    peft_model = get_peft_model(model, config)
    for name, param in model.named_parameters():
        if name.split(".", 1)[0] in FULLY_TRAINED:
            param.requires_grad_(True)
    return peft_model


def merge_lora(peft_model: Any) -> nn.Module:
    """Fold the adapters into the base weights; returns the unwrapped model with the official keys."""
    return peft_model.merge_and_unload()


def save_lora_adapter(peft_model: Any, directory: str | Path) -> Path:
    """Write the PEFT adapter to ``directory/lora_adapter`` (as the official fine-tune does).

    The embeddings are never adapted by this recipe, so PEFT's check for a resized vocabulary (which would read
    the base model's config through Hugging Face classes) is skipped."""
    target = Path(directory) / ADAPTER_DIR
    peft_model.save_pretrained(str(target), save_embedding_layers=False)
    return target


def read_adapter_config(adapter_dir: str | Path) -> dict[str, Any]:
    """The ``adapter_config.json`` of a PEFT LoRA adapter folder (FileNotFoundError / ValueError otherwise)."""
    path = Path(adapter_dir) / ADAPTER_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"LoRA adapter folder {adapter_dir} has no {ADAPTER_CONFIG}")
    config = json.loads(path.read_text())
    if config.get("peft_type") != "LORA":
        raise ValueError(f"{path} describes a {config.get('peft_type')!r} adapter; only LoRA adapters load")
    return config


def adapter_module_paths(adapter_file: str | Path) -> list[str]:
    """The module paths adapted by ``adapter_model.safetensors`` (from the key names only, no tensor data).

    Every key must be ``base_model.model.<module path>.lora_{A|B}.weight`` and every module needs both A and B
    (ValueError naming the offending keys / modules otherwise)."""
    with safe_open(str(adapter_file), framework="pt") as f:
        keys = list(f.keys())
    parts: dict[str, set[str]] = {}
    unrecognised = []
    for key in keys:
        match = _ADAPTER_KEY.fullmatch(key)
        if match is None:
            unrecognised.append(key)
        else:
            parts.setdefault(match["module"], set()).add(match["part"])
    if unrecognised:
        raise ValueError(
            f"{adapter_file} has keys that are not LoRA A/B matrices "
            f"('base_model.model.<module>.lora_A.weight'): {sorted(unrecognised)}"
        )
    if not parts:
        raise ValueError(f"{adapter_file} holds no LoRA tensors")
    incomplete = sorted(module for module, found in parts.items() if found != {"A", "B"})
    if incomplete:
        raise ValueError(f"{adapter_file} lacks lora_A or lora_B for the modules {incomplete}")
    return sorted(parts)


def load_lora_adapter(model: nn.Module, adapter_dir: str | Path, merge: bool = True) -> nn.Module:
    """Apply the PEFT LoRA adapter of ``adapter_dir`` to ``model``, which must already hold the base weights.

    ``merge=True`` folds it in (``merge_and_unload``, the arithmetic of :func:`merge_lora`, so the weights equal
    those of a merged checkpoint written from the same base and adapter) and returns the plain model;
    ``merge=False`` returns ``model`` with PEFT's LoRA layers in place of the adapted ``nn.Linear`` (adapters
    active, kept unmerged). Adapter keys naming no ``nn.Linear`` of the model raise a KeyError listing them.
    The adapter tensors are read onto the adapted layers' device in their stored dtype (PEFT saves float32)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    read_adapter_config(adapter_dir)
    weights_file = adapter_dir / ADAPTER_WEIGHTS
    if not weights_file.is_file():
        raise FileNotFoundError(f"LoRA adapter folder {adapter_dir} has no {ADAPTER_WEIGHTS}")
    modules = adapter_module_paths(weights_file)
    named = dict(model.named_modules())
    unmatched = [m for m in modules if not isinstance(named.get(m), nn.Linear)]
    if unmatched:
        raise KeyError(
            f"{weights_file} adapts modules that are not nn.Linear layers of this {type(model).__name__} "
            f"(keys base_model.model.<module>.lora_A/B.weight): {unmatched}"
        )
    config = LoraConfig.from_pretrained(str(adapter_dir))
    config.target_modules = modules  # exactly the adapted modules, whatever shorthand the file records
    config.inference_mode = True  # loaded adapters are frozen
    config.base_model_name_or_path = None  # the caller chose the base; PEFT records model.name_or_path
    device = named[modules[0]].weight.device  # the adapted layers' device (other modules may be unloaded)
    peft_model = get_peft_model(model, config, low_cpu_mem_usage=True)  # adapter tensors on meta until loaded
    set_peft_model_state_dict(
        peft_model, load_file(str(weights_file), device=str(device)), low_cpu_mem_usage=True
    )
    empty = [name for name, param in peft_model.named_parameters() if param.is_meta and ".lora_" in name]
    if empty:
        raise RuntimeError(f"{weights_file} left adapter tensors unloaded: {empty}")
    return merge_lora(peft_model) if merge else peft_model.get_base_model()


class LoRAVLA(nn.Module):
    """A peft-wrapped DreamVLA with the trainer's checkpoint interface.

    ``forward`` is the DreamVLA forward (adapters active). ``save_pretrained`` writes ``lora_adapter/`` and, as the
    official fine-tune with ``merge_lora_during_training``, the merged model in the official layout (merged on a
    copy, so training continues with the adapters)."""

    def __init__(self, peft_model: Any) -> None:
        super().__init__()
        self.peft_model = peft_model

    @property
    def base(self) -> nn.Module:
        return self.peft_model.get_base_model()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.peft_model(*args, **kwargs)

    def read_full_state_dict(self, directory: str | Path) -> dict[str, Any]:
        """The state dict a resumed run loads from a checkpoint this wrapper saved: the frozen base weights as they
        are now (the run's initial ones, rebuilt from the same ``model.init``), the adapters of
        ``directory/lora_adapter`` and the fully trained extra modules of the component files."""
        from safetensors.torch import load_file

        from dreamvlx.vla.checkpoint import read_component_weights

        if any(hasattr(p, "full_tensor") for p in self.parameters()):
            raise NotImplementedError("resuming a LoRA Dream-VLA run under FSDP2 is not supported; use DDP")
        directory = Path(directory)
        weights = {key: tensor.detach().clone() for key, tensor in self.state_dict().items()}
        adapter_name = self.peft_model.active_adapter
        for key, tensor in load_file(directory / ADAPTER_DIR / ADAPTER_WEIGHTS).items():
            match = _ADAPTER_KEY.fullmatch(key)
            live = (
                match
                and f"peft_model.base_model.model.{match['module']}.lora_{match['part']}.{adapter_name}.weight"
            )
            if live not in weights:
                raise KeyError(f"{directory / ADAPTER_DIR}: {key} adapts no LoRA layer of this model")
            weights[live] = tensor
        for key, tensor in read_component_weights(self.base, directory).items():
            weights[f"peft_model.base_model.model.{key}"] = tensor
        return weights

    def save_pretrained(self, save_directory: str | Path, *, state_dict: Any = None, **options: Any) -> Path:
        """``state_dict`` (the trainer's gathered one) is not used: the adapter and the merged copy are derived from
        the live modules."""
        import copy

        del state_dict
        directory = Path(save_directory)
        save_lora_adapter(self.peft_model, directory)
        merged = merge_lora(copy.deepcopy(self.peft_model))
        merged.attach(self.base.processor, self.base.norm_stats)
        return merged.save_pretrained(directory, **options)
