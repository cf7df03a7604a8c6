"""Fixtures of the demo model's experiment scripts (``experiments/demo_model/``), imported as their modules
with that folder on ``sys.path`` (the scripts import each other by name)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments" / "demo_model"


def _experiment_module(name: str) -> Iterator[ModuleType]:
    sys.path.insert(0, str(EXPERIMENTS_DIR))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(EXPERIMENTS_DIR))


@pytest.fixture(scope="module")
def probe() -> Iterator[ModuleType]:
    """``reasoning_probe.py``."""
    yield from _experiment_module("reasoning_probe")


@pytest.fixture(scope="module")
def decomposed() -> Iterator[ModuleType]:
    """``decomposed_planner.py``."""
    yield from _experiment_module("decomposed_planner")


@pytest.fixture(scope="module")
def diagnose() -> Iterator[ModuleType]:
    """``diagnose.py``."""
    yield from _experiment_module("diagnose")


@pytest.fixture(scope="module")
def chain_errors() -> Iterator[ModuleType]:
    """``chain_errors.py``."""
    yield from _experiment_module("chain_errors")
