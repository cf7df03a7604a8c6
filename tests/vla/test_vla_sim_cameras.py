"""``dreamvlx eval sim`` renders as many cameras as a checkpoint's platform takes (unless told otherwise)."""

from __future__ import annotations

import json
from pathlib import Path

from dreamvlx.evals.sim.cli import METAWORLD_CAMERAS, metaworld_cameras


def test_checkpoint_platform_sets_the_default_cameras(make_vla, tmp_path: Path) -> None:
    one_camera = tmp_path / "metaworld"
    make_vla("l1", platform="metaworld").save_pretrained(one_camera)
    assert metaworld_cameras(None, f"checkpoint:{one_camera}") == ("corner",)
    config = json.loads((one_camera / "config.json").read_text())
    config["dreamvlx_vla"]["platform"] = "libero"  # two cameras (the tiny statistics only fit Meta-World)
    two_cameras = tmp_path / "libero"
    two_cameras.mkdir()
    (two_cameras / "config.json").write_text(json.dumps(config))
    assert metaworld_cameras(None, f"checkpoint:{two_cameras}") == METAWORLD_CAMERAS
    assert metaworld_cameras("gripperPOV", f"checkpoint:{one_camera}") == ("gripperPOV",)  # --cameras wins
    assert metaworld_cameras(None, "scripted") == METAWORLD_CAMERAS
    del config["dreamvlx_vla"]  # an official checkpoint: no platform to read
    (one_camera / "config.json").write_text(json.dumps(config))
    assert metaworld_cameras(None, f"checkpoint:{one_camera}") == METAWORLD_CAMERAS
