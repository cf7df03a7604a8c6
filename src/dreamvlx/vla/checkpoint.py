"""The released ``Dream-org/Dream-VLA-7B`` checkpoint layout (spec dream-vla.md 1.6), read and written.

A directory holds:

* ``config.json``: ``DreamVLAConfig`` (Dream-VL fields + ``n_action_bins`` + ``norm_stats``; ours adds
  ``dreamvlx_vla``, the :class:`~dreamvlx.vla.config.VLASettings`);
* the backbone weights (``visual.*``, ``projector.*``, ``model.*``, ``lm_head.weight``) as ``model.safetensors``
  or shards + index (the merged model of the official fine-tune);
* ``{action_head|proprio_projector|noisy_action_projector}--{STEP|latest}_checkpoint.pt``: ``torch.save`` of the
  component state dicts with the DDP ``module.`` prefix (written with it, stripped when read; exactly one file per
  component must match, as the official eval requires);
* ``dataset_statistics.json`` (required: loading a VLA without statistics is an error);
* the processor / tokenizer files (tokenizer with the action tokens).

``lora_adapter/`` (PEFT, see :mod:`dreamvlx.vla.lora`) sits beside the merged weights, or replaces them (the
official fine-tune with ``merge_lora_during_training=False``). Merged weights are loaded when present; otherwise
(or with an explicit ``base_model`` / ``merge=False``) the backbone is read from the base checkpoint (``base_model``,
else the adapter's ``base_model_name_or_path``: a local folder or a Hub id) and the adapter applied to it, merged at
the base's stored precision before any ``dtype`` cast -- the weights a merged checkpoint of the same base holds.

A loaded model records where its backbone came from in ``name_or_path`` (a local folder as an absolute path, else
the Hub id), so that PEFT writes it as ``base_model_name_or_path`` of adapters trained on top of it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dreamvlx.actions.normalization import (
    STATISTICS_FILENAME,
    DatasetStatistics,
    load_all_dataset_statistics,
    save_dataset_statistics,
)
from dreamvlx.modeling.checkpoint import (
    CONFIG_NAME,
    GENERATION_CONFIG_NAME,
    INDEX_NAME,
    WEIGHTS_NAME,
    as_dtype,
    check_tokenizer_fits,
    has_weights,
    load_weights_into,
    read_state_dict,
    resolve_checkpoint_dir,
    save_weights,
)
from dreamvlx.processing.processor import DreamVLProcessor
from dreamvlx.vla.config import VLASettings
from dreamvlx.vla.lora import ADAPTER_DIR, load_lora_adapter, read_adapter_config

COMPONENTS = ("action_head", "proprio_projector", "noisy_action_projector")
BACKBONE_MODULES = ("visual", "projector", "model", "lm_head")
DDP_PREFIX = "module."


def component_filename(component: str, step: int | None) -> str:
    """``{component}--{step}_checkpoint.pt`` (``latest`` when ``step`` is None)."""
    return f"{component}--{'latest' if step is None else int(step)}_checkpoint.pt"


def backbone_view(model: nn.Module) -> nn.Module:
    """A module sharing the backbone submodules of ``model`` whose state dict is exactly the backbone's keys."""
    view = nn.Module()
    for name in BACKBONE_MODULES:
        view.add_module(name, getattr(model, name))
    return view


def find_component_file(directory: Path, component: str) -> Path | None:
    """The one ``{component}--*_checkpoint.pt`` of ``directory`` (None if absent; ValueError if several)."""
    pattern = re.compile(rf"{re.escape(component)}--[^/]*checkpoint\.pt")
    matches = sorted(p for p in directory.iterdir() if pattern.fullmatch(p.name))
    if len(matches) > 1:
        raise ValueError(
            f"{directory} holds several {component} files {[p.name for p in matches]}; keep exactly one"
        )
    return matches[0] if matches else None


# ---------------------------------------------------------------------------------------------- saving
def save_dream_vla(
    model: Any,
    save_directory: str | Path,
    *,
    max_shard_size: int | str = "5GB",
    state_dict: dict[str, torch.Tensor] | None = None,
    step: int | None = None,
) -> Path:
    """Write ``model`` (a DreamVLA with processor and statistics attached) in the official layout."""
    if not model.norm_stats or model.processor is None:
        raise ValueError(
            "a DreamVLA checkpoint must carry its normalisation statistics and processor: call "
            "model.attach(processor, norm_stats) before save_pretrained"
        )
    weights = state_dict if state_dict is not None else model.state_dict()
    unmerged = [k for k in weights if ".lora_" in k or ".base_layer." in k]
    if unmerged:
        raise ValueError(
            f"this DreamVLA carries unmerged LoRA adapters ({unmerged[:3]}...): the official layout holds plain "
            "weights; load it with merge=True (the default) before saving"
        )
    directory = Path(save_directory)
    directory.mkdir(parents=True, exist_ok=True)
    parts: dict[str, dict[str, torch.Tensor]] = {c: {} for c in COMPONENTS}
    backbone: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        component = key.split(".", 1)[0]
        if component in parts:
            parts[component][DDP_PREFIX + key.split(".", 1)[1]] = tensor.detach().cpu()
        else:
            backbone[key] = tensor
    float_dtypes = {t.dtype for t in backbone.values() if t.is_floating_point()}
    stored = str(next(iter(float_dtypes))).removeprefix("torch.") if len(float_dtypes) == 1 else None
    save_weights(backbone, directory, max_shard_size)
    stats_json = {key: stats.to_json() for key, stats in model.norm_stats.items()}
    model.config.replace(torch_dtype=stored, norm_stats=stats_json).save(directory / CONFIG_NAME)
    for component, tensors in parts.items():
        for stale in directory.glob(f"{component}--*_checkpoint.pt"):
            stale.unlink()
        if tensors:
            torch.save(tensors, directory / component_filename(component, step))
    save_dataset_statistics(directory / STATISTICS_FILENAME, model.norm_stats)
    model.processor.save_pretrained(directory)
    if model.generation_config is not None:
        (directory / GENERATION_CONFIG_NAME).write_text(json.dumps(model.generation_config, indent=2) + "\n")
    return directory


# ---------------------------------------------------------------------------------------------- loading
def _read_component(
    path: Path, dtype: torch.dtype | None, device: torch.device | str | None
) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    out = {}
    for key, tensor in state.items():
        name = key[len(DDP_PREFIX) :] if key.startswith(DDP_PREFIX) else key
        target = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
        out[name] = tensor.to(device=device or "cpu", dtype=target)
    return out


def _component_files(model: Any, directory: Path) -> list[tuple[str, nn.Module, Path]]:
    """``(name, module, file)`` of every component ``model`` has; errors for a missing file, or a file of a
    component this model's objective lacks."""
    found = []
    for component in COMPONENTS:
        module = getattr(model, component)
        path = find_component_file(directory, component)
        if module is None:
            if path is not None:
                raise ValueError(
                    f"{directory} has {path.name} but objective {model.settings.objective!r} "
                    f"(use_proprio={model.settings.use_proprio}) has no {component}; check the objective"
                )
            continue
        if path is None:
            raise FileNotFoundError(
                f"{directory} has no {component}--*_checkpoint.pt, needed by objective {model.settings.objective!r}"
            )
        found.append((component, module, path))
    return found


def _load_components(
    model: Any, directory: Path, dtype: torch.dtype | None, device: torch.device | str | None, assign: bool
) -> None:
    for component, module, path in _component_files(model, directory):
        try:
            module.load_state_dict(_read_component(path, dtype, device), strict=True, assign=assign)
        except RuntimeError as exc:
            raise KeyError(f"{path.name} does not match the {component} of this model: {exc}") from None


def load_norm_stats(directory: Path, config_stats: dict[str, Any]) -> dict[str, DatasetStatistics]:
    """``dataset_statistics.json`` of the checkpoint, else non-empty ``config.norm_stats``; an error without both."""
    if (directory / STATISTICS_FILENAME).is_file():
        return load_all_dataset_statistics(directory / STATISTICS_FILENAME)
    if config_stats:
        return {key: DatasetStatistics.from_json(entry, key) for key, entry in config_stats.items()}
    raise FileNotFoundError(
        f"{directory} has no {STATISTICS_FILENAME} and config.json has empty norm_stats: a Dream-VLA cannot "
        "unnormalise its actions without the statistics of its training data"
    )


def resolve_settings(stored: VLASettings | None, overrides: dict[str, Any], directory: Path) -> VLASettings:
    if stored is not None:
        return stored.replace(**overrides) if overrides else stored
    missing = [name for name in ("objective", "platform") if name not in overrides]
    if missing:
        raise ValueError(
            f"{directory}/config.json has no 'dreamvlx_vla' settings (an official checkpoint): pass {missing} to "
            "DreamVLA.from_pretrained, e.g. objective='flow', platform='libero'"
        )
    return VLASettings(**overrides)


def checkpoint_name(path_or_hub_id: str | Path) -> str:
    """``name_or_path`` of a model loaded from ``path_or_hub_id``: an existing local folder as an absolute path,
    anything else (a Hub id) as given."""
    path = Path(path_or_hub_id).expanduser()
    return str(path.resolve()) if path.is_dir() else str(path_or_hub_id)


def _adapter_to_apply(directory: Path, base_model: str | Path | None, merge: bool) -> Path | None:
    """``directory/lora_adapter`` when the backbone must be built from base + adapter, None for merged weights."""
    weights = has_weights(directory)
    if weights and base_model is None and merge:
        return None
    adapter_dir = directory / ADAPTER_DIR
    if adapter_dir.is_dir():
        return adapter_dir
    if not weights:
        raise FileNotFoundError(
            f"{directory} holds neither model weights ({WEIGHTS_NAME} or {INDEX_NAME}) nor a {ADAPTER_DIR}/ "
            "(PEFT LoRA adapter to apply to a base model): not a Dream-VLA checkpoint"
        )
    raise FileNotFoundError(
        f"base_model= / merge=False apply the LoRA adapter of a checkpoint, but {directory} has no {ADAPTER_DIR}/"
    )


def _load_adapted_backbone(
    model: Any,
    directory: Path,
    adapter_dir: Path,
    base_model: str | Path | None,
    merge: bool,
    device: torch.device | str | None,
) -> Any:
    """Base weights (stored dtype, on ``device``) into the backbone of the meta ``model``, then the adapter applied;
    returns the model (merged, or carrying PEFT LoRA layers with ``merge=False``)."""
    recorded = read_adapter_config(adapter_dir).get("base_model_name_or_path")
    base = base_model if base_model is not None else recorded
    origin = (
        "base_model="
        if base_model is not None
        else f"base_model_name_or_path of {adapter_dir}/adapter_config.json"
    )
    if not base:
        raise FileNotFoundError(
            f"{directory} has no merged weights and {adapter_dir}/adapter_config.json records no "
            "base_model_name_or_path: pass the base checkpoint as base_model= (e.g. 'Dream-org/Dream-VLA-7B')"
        )
    try:
        base_dir = resolve_checkpoint_dir(base)
        load_weights_into(backbone_view(model), base_dir, device=device, assign=True)
    except OSError as err:
        raise FileNotFoundError(
            f"the LoRA adapter of {directory} needs its base model, which could not be loaded from {str(base)!r} "
            f"({origin}): {err}. Pass the base checkpoint folder as base_model="
        ) from err
    model.name_or_path = checkpoint_name(base)  # what PEFT records as the adapter's base
    return load_lora_adapter(model, adapter_dir, merge=merge)


def load_dream_vla(
    cls: type,
    path_or_hub_id: str | Path,
    *,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    base_model: str | Path | None = None,
    merge: bool = True,
    **settings_overrides: Any,
) -> Any:
    """Build ``cls`` (DreamVLA) from a checkpoint directory; returns it in eval mode with processor and
    statistics attached (errors: FileNotFoundError for missing statistics / weights / components / LoRA base,
    KeyError for an unknown ``unnorm_key`` or mismatching keys, ValueError for a tokenizer longer than the
    vocabulary). ``base_model`` / ``merge`` select the LoRA-adapter path (module docstring)."""
    from dreamvlx.modeling.dream_vla import DreamVLAConfig

    directory = resolve_checkpoint_dir(path_or_hub_id)
    config = DreamVLAConfig.from_json_file(directory / CONFIG_NAME)
    settings = resolve_settings(config.vla_settings, settings_overrides, directory)
    if config.attention != settings.attention:
        config = config.replace(attention=settings.attention)
    norm_stats = load_norm_stats(directory, config.norm_stats)
    processor = DreamVLProcessor.from_pretrained(directory)
    check_tokenizer_fits(processor.tokenizer, config.vocab_size, directory)
    dtype = as_dtype(dtype)
    adapter_dir = _adapter_to_apply(directory, base_model, merge)
    with torch.device("meta"):
        model = cls(config, settings)
    if adapter_dir is None:
        load_weights_into(backbone_view(model), directory, dtype=dtype, device=device, assign=True)
    else:
        model = _load_adapted_backbone(model, directory, adapter_dir, base_model, merge, device)
        if dtype is not None:
            backbone_view(model).to(dtype)
    if merge:
        model.name_or_path = checkpoint_name(path_or_hub_id)
    _load_components(model, directory, dtype, device, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise RuntimeError(f"tensors left unmaterialised after loading {directory}: {leftover}")
    generation_file = directory / GENERATION_CONFIG_NAME
    model.generation_config = json.loads(generation_file.read_text()) if generation_file.is_file() else None
    model.attach(processor, norm_stats)
    return model.eval()


def read_component_weights(model: Any, directory: Path) -> dict[str, torch.Tensor]:
    """The component files of a checkpoint directory (those ``model``'s objective has) as one CPU state dict,
    keys prefixed with the component's name (``action_head.…``), as in ``model.state_dict()``."""
    return {
        f"{component}.{key}": tensor
        for component, _, path in _component_files(model, directory)
        for key, tensor in _read_component(path, None, None).items()
    }


def read_dream_vla_state_dict(model: Any, directory: Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint directory as one CPU state dict under ``model``'s key names (backbone keys as
    stored, then the components): what a resumed run loads, sharded or not."""
    return read_state_dict(directory) | read_component_weights(model, directory)


def init_from_backbone(
    cls: type, path_or_hub_id: str | Path, settings: VLASettings, dtype: torch.dtype | None = None
) -> Any:
    """A DreamVLA for fine-tuning: backbone weights from a checkpoint (e.g. ``Dream-org/Dream-VLA-7B``), the extra
    modules of ``settings`` freshly initialised (PyTorch defaults, as the official heads). Processor and statistics
    are attached by the caller."""
    from dreamvlx.modeling.dream_vla import DreamVLAConfig

    directory = resolve_checkpoint_dir(path_or_hub_id)
    config = DreamVLAConfig.from_json_file(directory / CONFIG_NAME).replace(attention=settings.attention)
    with torch.device("meta"):
        model = cls(config, settings)
    load_weights_into(backbone_view(model), directory, dtype=dtype, assign=True)
    model.name_or_path = checkpoint_name(path_or_hub_id)
    for component in COMPONENTS:
        module = getattr(model, component)
        if module is None:
            continue
        module.to_empty(device="cpu")
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
        if dtype is not None:
            module.to(dtype)
    return model
