"""Shared by the GPU engine tests and the reduced-precision tests: the decoding cases they compare and a
seeded prediction on the first rows of the ``observations`` fixture."""

from __future__ import annotations

import numpy as np
import torch

DECODING_CASES = [
    ("discrete_diffusion", {"diffusion_steps": 1}),
    ("discrete_diffusion", {"diffusion_steps": 4}),
    ("flow", {"flow_steps": 4}),
    ("l1", {}),
    ("ar", {}),
]
CASE_IDS = [f"{objective}-{settings}" for objective, settings in DECODING_CASES]


def predict_rows(policy, observations, rows: int = 3) -> np.ndarray:
    """``policy.predict_action_batch`` on the first ``rows`` robots with a generator seeded 0."""
    images, instructions, proprio = observations
    generator = torch.Generator().manual_seed(0)
    return policy.predict_action_batch(
        images[:rows], instructions[:rows], proprio[:rows], generator=generator
    )
