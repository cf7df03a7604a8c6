"""Checkpoints in the official Hugging Face layout (spec dream-vl.md 1.10).

A checkpoint directory holds ``config.json`` (model_type "dream-vl", official field names), the weights as one
``model.safetensors`` or as shards ``model-0000k-of-0000n.safetensors`` with ``model.safetensors.index.json``
(``{"metadata": {"total_size": bytes}, "weight_map": {key: file}}``), and optionally ``generation_config.json``.
Keys are exactly the official ones (``visual.*``, ``model.*``, ``projector.*``, ``lm_head.weight``).

Loading never holds two copies of the weights: the model is built on the ``meta`` device (no storage), the
checkpoint's key names and shapes are checked against it from the safetensors headers alone (every missing,
unexpected or mis-shaped key is reported at once), then tensors are read one at a time, cast to ``dtype``,
moved to ``device`` and assigned shard by shard.

A checkpoint's tokenizer (when the directory holds one) must fit the model: every token id needs an embedding row,
so ids ``>= config.vocab_size`` are an error at load time (:func:`check_tokenizer_fits`; the Dream-VLA action ids
151667..151922 fit the 152064 rows of the 7B models).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from dreamvlx.config import DreamVLConfig
from dreamvlx.processing.tokenizer import DreamTokenizer

CONFIG_NAME = "config.json"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
GENERATION_CONFIG_NAME = "generation_config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
_SHARD_PATTERN = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
}


# ---------------------------------------------------------------------------------------------- locating
def resolve_checkpoint_dir(path_or_hub_id: str | Path) -> Path:
    """A local directory as is; otherwise a Hub id ``owner/name`` fetched with ``huggingface_hub.snapshot_download``
    (config, weights and processor files only). Offline, or for an unknown id, a clear ``OSError``."""
    path = Path(path_or_hub_id).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; expected a checkpoint directory")
    text = str(path_or_hub_id)
    if not _HUB_ID.fullmatch(text):
        raise FileNotFoundError(
            f"checkpoint directory not found: {path} (and it is not a Hub id 'owner/name')"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(repo_id=text, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.jinja"])
        )
    except Exception as err:
        raise OSError(
            f"{text!r} is not a local directory and could not be fetched from the Hugging Face Hub "
            f"({type(err).__name__}: {err}). Without network access, download it elsewhere and pass the directory."
        ) from err


def has_weights(directory: Path) -> bool:
    """Whether ``directory`` holds model weights (``model.safetensors`` or a shard index)."""
    return (directory / INDEX_NAME).is_file() or (directory / WEIGHTS_NAME).is_file()


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files of a checkpoint directory: the index's shards, or the single file."""
    index = directory / INDEX_NAME
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index} has no 'weight_map' object")
        files = [directory / name for name in sorted(set(weight_map.values()))]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{index} names shard files that do not exist: {missing}")
        return files
    single = directory / WEIGHTS_NAME
    if single.is_file():
        return [single]
    raise FileNotFoundError(f"no {WEIGHTS_NAME} or {INDEX_NAME} in {directory}")


def checkpoint_shapes(files: list[Path]) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """key -> (file, shape) read from the safetensors headers only (no tensor data)."""
    found: dict[str, tuple[Path, tuple[int, ...]]] = {}
    for file in files:
        with safe_open(file, framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if key in found:
                    raise ValueError(f"key {key!r} appears in both {found[key][0].name} and {file.name}")
                found[key] = (file, tuple(f.get_slice(key).get_shape()))
    return found


def check_keys(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], source: str) -> None:
    """Raise one ``KeyError`` listing every missing, unexpected and mis-shaped key."""
    missing = sorted(k for k in expected if k not in found)
    unexpected = sorted(k for k in found if k not in expected)
    misshaped = sorted(
        f"{k}: checkpoint {list(found[k])} vs model {list(expected[k])}"
        for k in expected
        if k in found and tuple(found[k]) != tuple(expected[k])
    )
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {missing}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {unexpected}")
    if misshaped:
        problems.append(f"mis-shaped keys ({len(misshaped)}): {misshaped}")
    if problems:
        raise KeyError(f"checkpoint {source} does not match the model: " + "; ".join(problems))


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return resolved


def check_tokenizer_fits(tokenizer: DreamTokenizer, vocab_size: int, source: str | Path) -> None:
    """Raise ValueError when ``tokenizer`` has ids the model has no embedding row for (id >= ``vocab_size``)."""
    largest = max(tokenizer.backend.get_vocab(with_added_tokens=True).values())
    if largest >= vocab_size:
        raise ValueError(
            f"the tokenizer of {source} has ids up to {largest} ({largest + 1} ids) but the model's vocab_size "
            f"(embedding rows) is {vocab_size}: ids >= {vocab_size} have no embedding. Use the tokenizer saved with "
            "these weights, or a config whose vocab_size covers every token (added action tokens included)"
        )


# ---------------------------------------------------------------------------------------------- loading
def _read_shard(
    file: Path, keys: list[str], dtype: torch.dtype | None, device: torch.device | str | None
) -> Iterator[tuple[str, torch.Tensor]]:
    with safe_open(file, framework="pt", device="cpu") as f:
        for key in keys:
            tensor = f.get_tensor(key)
            target = dtype if (dtype is not None and tensor.is_floating_point()) else tensor.dtype
            yield key, tensor.to(device=device or "cpu", dtype=target)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint directory (single or sharded safetensors) as one CPU state dict."""
    directory = resolve_checkpoint_dir(path)
    by_file: dict[Path, list[str]] = {}
    for key, (file, _) in checkpoint_shapes(weight_files(directory)).items():
        by_file.setdefault(file, []).append(key)
    return {k: t for file, keys in by_file.items() for k, t in _read_shard(file, keys, None, None)}


def load_weights_into(
    model: nn.Module,
    path: str | Path,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    assign: bool = False,
) -> None:
    """Load a checkpoint directory's weights into ``model`` (keys checked first, all problems reported).

    ``assign=False`` copies into the existing parameters (keeping their dtype/device; ``dtype``/``device``
    only control the staging copy); ``assign=True`` replaces them by the loaded tensors (for meta models).
    """
    directory = resolve_checkpoint_dir(path)
    found = checkpoint_shapes(weight_files(directory))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_keys(expected, {k: shape for k, (_, shape) in found.items()}, str(directory))
    by_file: dict[Path, list[str]] = {}
    for key, (file, _) in found.items():
        by_file.setdefault(file, []).append(key)
    for file, keys in by_file.items():
        shard = dict(_read_shard(file, keys, as_dtype(dtype), device))
        model.load_state_dict(shard, strict=False, assign=assign)
        del shard


# ---------------------------------------------------------------------------------------------- saving
def parse_size(size: int | str) -> int:
    """``5_000_000_000``, ``"5GB"``, ``"500MB"``, ``"2GiB"`` -> bytes."""
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"shard size must be positive, got {size}")
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B)\s*", str(size).upper())
    if not match:
        raise ValueError(f"cannot read shard size {size!r} (use e.g. 5GB, 500MB or an integer of bytes)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def plan_shards(state_dict: dict[str, torch.Tensor], max_shard_bytes: int) -> list[list[str]]:
    """Greedy packing of keys (in state-dict order) into shards of at most ``max_shard_bytes`` (a tensor larger
    than the limit gets a shard of its own)."""
    shards: list[list[str]] = [[]]
    size = 0
    for key, tensor in state_dict.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += nbytes
    return shards


def save_weights(
    state_dict: dict[str, torch.Tensor], directory: Path, max_shard_size: int | str = "5GB"
) -> list[Path]:
    """Write ``state_dict`` as one ``model.safetensors`` or as shards + index; stale weight files are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.name in (WEIGHTS_NAME, INDEX_NAME) or _SHARD_PATTERN.fullmatch(old.name):
            old.unlink()
    shards = plan_shards(state_dict, parse_size(max_shard_size))
    names = (
        [WEIGHTS_NAME]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    weight_map = {}
    for name, keys in zip(names, shards):
        tensors = {k: state_dict[k].detach().to("cpu").contiguous() for k in keys}
        save_file(tensors, str(directory / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(keys, name))
        del tensors
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in state_dict.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (directory / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return [directory / name for name in names]


# ---------------------------------------------------------------------------------------------- the mixin
class PretrainedMixin:
    """``from_pretrained`` / ``save_pretrained`` for a module built as ``cls(config)``.

    The class sets ``config_class``; instances carry ``config`` and ``generation_config`` (the parsed
    generation_config.json, or None). Note: like the official code, ``diffusion_generate`` does not take its
    defaults from ``generation_config`` (spec 4.1); it is stored so that callers can pass it explicitly.
    """

    config_class: ClassVar[type[DreamVLConfig]] = DreamVLConfig
    config: DreamVLConfig
    generation_config: dict[str, Any] | None

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | Path,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
    ) -> Any:
        """Load a checkpoint directory (or Hub id). ``dtype`` None keeps the stored dtype; ``device`` None = CPU.
        Returns the model in eval mode. A tokenizer saved in the directory must fit ``config.vocab_size``
        (:func:`check_tokenizer_fits`)."""
        directory = resolve_checkpoint_dir(path_or_hub_id)
        config = cls.config_class.from_json_file(directory / CONFIG_NAME)
        if (directory / TOKENIZER_CONFIG_NAME).is_file():
            check_tokenizer_fits(DreamTokenizer.from_pretrained(directory), config.vocab_size, directory)
        with torch.device("meta"):
            model = cls(config)  # type: ignore[call-arg]
        load_weights_into(model, directory, dtype=dtype, device=device, assign=True)
        leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if leftover:
            raise RuntimeError(f"tensors left unmaterialised after loading {directory}: {leftover}")
        generation_file = directory / GENERATION_CONFIG_NAME
        model.generation_config = (
            json.loads(generation_file.read_text()) if generation_file.is_file() else None
        )
        return model.eval()

    def save_pretrained(
        self,
        save_directory: str | Path,
        *,
        max_shard_size: int | str = "5GB",
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> Path:
        """Write config.json (+ generation_config.json when set) and the weights in the official layout.

        ``state_dict`` overrides the module's own (e.g. a gathered FSDP state dict).
        """
        directory = Path(save_directory)
        weights = state_dict if state_dict is not None else self.state_dict()  # type: ignore[attr-defined]
        float_dtypes = {t.dtype for t in weights.values() if t.is_floating_point()}
        stored = str(next(iter(float_dtypes))).removeprefix("torch.") if len(float_dtypes) == 1 else None
        save_weights(weights, directory, max_shard_size)
        self.config.replace(torch_dtype=stored).save(directory / CONFIG_NAME)
        if self.generation_config is not None:
            (directory / GENERATION_CONFIG_NAME).write_text(
                json.dumps(self.generation_config, indent=2) + "\n"
            )
        return directory
