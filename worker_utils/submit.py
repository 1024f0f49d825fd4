"""Submit a local MP4 the way the API does (spec §7): upload to the raw key, register the
``videos`` row as ``queued``, send PROCESS_VIDEO (or the minimal PROCESS_VIDEO_DB)."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Optional

from ..worker_config import Settings
from .db import Database
from .errors import ValidationFailed
from .keys import build_raw_key, is_uuid
from .repository import upsert_video_queued
from .s3_store import S3Store
from .sqs_queue import SqsQueues
from .validation import validate_video_task


def submit_video(settings: Settings, path: Path, *, workspace_id: str, workspace_code: str, camera_code: str,
                 frame_stride: Optional[int] = None, recorded_at: Optional[str] = None,
                 video_id: Optional[str] = None, db_fallback: bool = False) -> str:
    """Returns the video id. Everything is validated before anything is uploaded."""
    if not path.is_file():
        raise ValidationFailed(f"{path} is not a file")
    video_id = video_id or str(uuid.uuid4())
    for name, value in (("workspace id", workspace_id), ("video id", video_id)):
        if not is_uuid(value):
            raise ValidationFailed(f"{name} {value!r} must be a lower-case UUID")
    filename = path.name if path.suffix == ".mp4" else path.stem + ".mp4"
    key = build_raw_key(workspace_id, video_id, filename, settings.user_prefix)
    stride = frame_stride or settings.default_frame_stride
    message = {"event": "PROCESS_VIDEO", "video_id": video_id, "workspace_id": workspace_id,
               "workspace_code": workspace_code, "camera_code": camera_code, "s3_key_raw": key,
               "frame_stride": stride, "recordedAt": recorded_at}
    validate_video_task(message, settings)  # refuse locally what the worker would refuse
    S3Store(settings).upload_file(path, key, "video/mp4")
    upsert_video_queued(Database(settings), video_id=video_id, workspace_id=workspace_id,
                        workspace_code=workspace_code, camera_code=camera_code, s3_key_raw=key,
                        frame_stride=stride, recorded_at=recorded_at)
    if db_fallback:
        message = {"event": "PROCESS_VIDEO_DB", "video_id": video_id, "workspace_id": workspace_id}
    SqsQueues(settings).send_json(settings.video_queue, message,
                                  "process_video_db" if db_fallback else "process_video")
    return video_id
