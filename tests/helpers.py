"""Helpers the tests import (tests/ is on sys.path through pytest's `pythonpath`)."""
from __future__ import annotations

import os
import uuid

from video_analysis.worker_config import Settings, env_overrides

WID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
VID = "50651c85-90ab-471b-8707-adc0ef16f91f"
# Spec §3 examples, verbatim.
PROCESS_VIDEO = {
    "event": "PROCESS_VIDEO", "video_id": VID, "workspace_id": WID, "workspace_code": "CTX1005",
    "camera_code": "CAM1", "s3_key_raw": f"demo_user/{WID}/{VID}/raw/CCTV_Test1.mp4", "frame_stride": 3,
    "recordedAt": None,
}
PROCESS_VIDEO_DB = {"event": "PROCESS_VIDEO_DB", "video_id": VID, "workspace_id": WID}
SNAPSHOT_READY = {
    "event": "SNAPSHOT_READY", "video_id": VID, "workspace_id": WID, "workspace_code": "CTX1005",
    "camera_code": "CAM1", "track_id": 305,
    "snapshot_s3_key": f"s3://cvitx-uploads-dev-jdfirme/demo_user/{WID}/{VID}/snapshots/CTX1005_CAM1_000305_002272.jpg",
    "recordedAt": None, "detectedIn": 2272, "detectedAt": None, "yolo_type": "SUV",
}


def worker_env(stack, settings: Settings, **extra) -> dict[str, str]:
    """Environment for a subprocess worker: the stack plus these settings as CVITX_ overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CVITX_")}
    env.update(stack.environ())
    env.update(env_overrides(settings.replace(**extra) if extra else settings))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def new_uuid() -> str:
    return str(uuid.uuid4())
