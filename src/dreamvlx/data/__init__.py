"""Datasets: robot episodes in the LeRobot v3.0 format (reader, writer, torch adapter), augmentation,
LLaVA conversations (``conversations``) and video clips for Dream-VL (``video_clips``).

Names are imported lazily so that ``import dreamvlx.data.<module>`` does not pull in pyarrow, PyAV or
torch for modules that do not need them.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Episode": "dreamvlx.data.episode",
    "LeRobotDataset": "dreamvlx.data.lerobot",
    "RobotSample": "dreamvlx.data.lerobot",
    "LeRobotWriter": "dreamvlx.data.lerobot_writer",
    "write_episodes": "dreamvlx.data.lerobot_writer",
    "RobotChunkDataset": "dreamvlx.data.robot_dataset",
    "AugmentConfig": "dreamvlx.data.augment",
    "augment_image": "dreamvlx.data.augment",
    "center_crop": "dreamvlx.data.augment",
    "load_video": "dreamvlx.data.video_clips",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dreamvlx.data' has no attribute {name!r}")


__all__ = sorted(_LAZY)
