"""On CPU: how far the engine's actions in bfloat16 move from the float32 model, per decoding case.

    python experiments/blocksworld_small_gpu/bf16_vs_float32_cpu.py > experiments/blocksworld_small_gpu/bf16_vs_float32_cpu.txt

The same seeded random-weight models and observations as ``tests/engine`` (``DECODING_CASES``). Token
cases print the share of equal action values, continuous cases the mean absolute error next to the GPU
test's bound. It reproduces, without a GPU, the deviations the GPU tests met on an H200 (``gpu_tests.txt``).
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "engine"))
from engine_helpers import DECODING_CASES, predict_rows

from conftest import IMAGE_SIZE, INIT_STD
from dreamvlx.engine import ActionEngine, EngineConfig
from dreamvlx.engine.synthetic import random_vla, synthetic_observations, synthetic_processor


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def main() -> None:
    print(f"# {date.today()}, {_cpu_name()} ({os.cpu_count()} cores), torch {torch.__version__}")
    processor = synthetic_processor(IMAGE_SIZE)
    observations = synthetic_observations(4, IMAGE_SIZE, seed=1)
    for objective, settings in DECODING_CASES:
        model = random_vla(objective, processor=processor, seed=0, init_std=INIT_STD, **settings)
        reference = predict_rows(model, observations)
        got = predict_rows(
            ActionEngine(model, EngineConfig.for_device("cpu", dtype=torch.bfloat16)), observations
        )
        if objective in ("flow", "l1"):
            bound = 0.05 * np.abs(reference).mean() + 0.01
            print(
                f"{objective} {settings}: mean |bf16 - float32| {np.abs(got - reference).mean():.3f} (bound {bound:.3f})"
            )
        else:
            print(f"{objective} {settings}: equal to float32 {(got == reference).mean():.3f}")


if __name__ == "__main__":
    main()
