"""The engine in bfloat16 on CPU: the same actions as the plain model cast to bfloat16, for every objective.

Why this test exists: on an H200 (``experiments/blocksworld_small_gpu/gpu_tests.txt``) the bf16 GPU engine
agreed with the float32 CPU model on only 38-57% of the tokens of multi-step decoding (4-step discrete
diffusion, AR) and off by 0.26 on average for 4-step flow, while one-step decoding and L1 passed. The same
numbers appear on CPU with bf16 alone (4-step discrete 63%, AR 40%, flow 0.23; 1-step 97%;
``experiments/blocksworld_small_gpu/bf16_vs_float32_cpu.py``), and the engine
in bf16 equals the plain model in bf16 exactly (this test): bf16 rounding flips near-tied argmaxes of a
random-weight model, and every later step of a multi-step decoding is conditioned on the flipped tokens.
The divergence is the precision's, not the engine's; the GPU tests compare multi-step decoding in float32.

The comparison runs on pinned CPU kernels (``PINNED_KERNELS``: ATen's AVX2 kernels, oneDNN capped at AVX2).
On a CPU with AVX-512 BF16 (measured on an AMD EPYC, 2026-12-05), oneDNN's native bf16 matmuls round
differently for the engine's and the model's tensor shapes (a prefix cache against the whole sequence),
and 4-step discrete diffusion and AR then differ in 11% of values, while with both capped at AVX2 they are
equal bit for bit, as on the CPUs without it this test was written on. Each case therefore runs in a child
pytest process with those variables set (they must be set before torch first dispatches a kernel), so that
the assertion, still exact, means the same on every CI host.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from engine_helpers import CASE_IDS, DECODING_CASES, predict_rows

from dreamvlx.engine import ActionEngine, EngineConfig

PINNED_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
"""The kernel choice under which the exact comparison is made (module docstring)."""


@pytest.mark.parametrize(("objective", "settings"), DECODING_CASES, ids=CASE_IDS)
def test_bf16_engine_equals_the_bf16_model(request, objective, settings) -> None:
    if any(os.environ.get(name) != value for name, value in PINNED_KERNELS.items()):
        child = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
            cwd=request.config.rootpath,
            env={**os.environ, **PINNED_KERNELS},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert child.returncode == 0, (
            f"pinned-kernel run failed:\n{child.stdout[-4000:]}{child.stderr[-2000:]}"
        )
        return
    # the fixtures are built only in the pinned process, where they are used
    make_model, observations = (request.getfixturevalue(name) for name in ("make_model", "observations"))
    model = make_model(objective, **settings)
    reference = predict_rows(copy.deepcopy(model).to(torch.bfloat16), observations)
    got = predict_rows(
        ActionEngine(model, EngineConfig.for_device("cpu", dtype=torch.bfloat16)), observations
    )
    np.testing.assert_array_equal(got, reference)
