"""Submit a local MP4 the way the API does (spec §7): register the ``videos`` row as ``queued``,
upload to the raw key, send PROCESS_VIDEO (or the minimal PROCESS_VIDEO_DB), in that order.

The row comes first so that nothing ever sits in S3 or on the queue without a row: a failure
after it leaves a ``queued`` row that ``reconcile`` finds.  Each failing step raises a
:class:`WorkerError` whose reason says what was left behind and how to finish or undo it.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Optional

from ..worker_config import Settings
from .db import Database
from .errors import ValidationFailed, WorkerError
from .keys import build_raw_key, is_uuid
from .repository import upsert_video_queued
from .s3_store import S3Store
from .sqs_queue import SqsQueues
from .validation import validate_video_task


def _left_behind(step: str, exc: WorkerError, left: str, finish: str, undo: str = "") -> WorkerError:
    """The error a failed step raises: what failed, what is left behind, how to finish (and undo)."""
    return WorkerError(f"{step} failed ({exc.reason}). {left} To finish: {finish}." + (f" To undo: {undo}." if undo else ""),
                       code=exc.code)


def submit_video(settings: Settings, path: Path, *, workspace_id: str, workspace_code: str, camera_code: str,
                 frame_stride: Optional[int] = None, recorded_at: Optional[str] = None,
                 video_id: Optional[str] = None, db_fallback: bool = False) -> str:
    """Returns the video id. Everything is validated before anything is written."""
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
    if db_fallback:
        message = {"event": "PROCESS_VIDEO_DB", "video_id": video_id, "workspace_id": workspace_id}
    uri = f"s3://{settings.bucket}/{key}"
    again = f"run the same command again with --video-id {video_id}"
    drop_row = f"the videos row with id {video_id} (delete it with psql)"
    try:
        upsert_video_queued(Database(settings), video_id=video_id, workspace_id=workspace_id,
                            workspace_code=workspace_code, camera_code=camera_code, s3_key_raw=key,
                            frame_stride=stride, recorded_at=recorded_at)
    except WorkerError as exc:
        raise _left_behind(f"registering video {video_id} in the database", exc,
                           "Nothing was uploaded or sent.", "fix the database and run the same command again") from exc
    try:
        S3Store(settings).upload_file(path, key, "video/mp4")
    except WorkerError as exc:
        raise _left_behind(f"uploading {path} to {uri}", exc,
                           f"The videos row {video_id} is registered as queued; nothing was sent.", again,
                           drop_row) from exc
    try:
        SqsQueues(settings).send_json(settings.video_queue, message,
                                      "process_video_db" if db_fallback else "process_video")
    except WorkerError as exc:
        raise _left_behind(f"sending {message['event']} for video {video_id}", exc,
                           f"The videos row is registered as queued and the file is uploaded to {uri}; no message "
                           "was sent.", f"{again}, or python -m video_analysis reconcile --video {video_id} --apply",
                           f"delete {uri} and {drop_row}") from exc
    return video_id
