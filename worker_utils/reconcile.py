"""Find rows whose message was lost and announce them again (``python -m video_analysis reconcile``).

A row can wait forever without a message in flight: after a DLQ purge, after a stack restart
that kept Postgres but lost the queues, after snapshot tasks were dead-lettered for a database
fault.  This module finds

* videos still ``uploaded``, ``queued`` or ``processing``, and
* analyses still ``queued`` or ``processing``

that nothing has touched for a while, and plans one action per row:

* **resend**: PROCESS_VIDEO or SNAPSHOT_READY rebuilt from the rows and validated against the
  schemas, the row marked ``queued`` again (only if no worker touched it since it was read),
  then the message sent.  A resend is safe because the workers are idempotent: a message
  that was not lost after all only repeats finished work, which changes nothing;
* **error**: the S3 object the message would name is gone, or the rows cannot form a valid
  message; the row is marked ``error`` with the reason (a resend would only dead-letter);
* **covered**: an analysis whose video is resent in the same run (the yolo_worker announces
  every snapshot of a video it processes again).

Whether a message is in flight cannot be asked of SQS row by row, so it is judged by time: a
row is stuck when it is idle longer than the threshold (a video's activity is its row's
``updated_at`` and its newest snapshot row).  Choose a threshold above the longest time a
video takes.  The queues' depths are shown beside the plan: an empty queue with nothing in
flight means no row has a message.

:func:`plan` is pure (rows + which objects exist -> actions); :func:`reconcile` is the adapter.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Sequence

from ..worker_config import Settings
from .db import Database
from .errors import MissingObject, ValidationFailed
from .keys import parse_snapshot_uri
from .repository import (fail_analysis, requeue_analysis, requeue_video, set_video_status, stuck_analyses,
                         stuck_videos)
from .s3_store import S3Store
from .sqs_queue import SqsQueues
from .timeutil import detected_at, format_iso8601
from .validation import validate_snapshot_ready, validate_video_task

log = logging.getLogger(__name__)

DEFAULT_OLDER_THAN_S = 30 * 60
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 60, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"1d"`` (a bare number is minutes) -> seconds (pure)."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration; use e.g. 90s, 30m, 2h or 1d")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class Action:
    """What to do with one stuck row.  ``kind``: resend | error | covered."""

    kind: str
    table: str  # videos | image_analyses
    row_id: str
    video_id: str
    status: str
    idle_s: float
    why: str
    queue: Optional[str] = None  # resend: where to
    schema: Optional[str] = None  # resend: the message's schema
    message: Optional[dict] = None  # resend: the message
    updated_at: Any = None  # the row as read: a later write by a worker wins over this action
    key: Optional[str] = None  # the row's S3 key (error: the one that is gone)


def _iso(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_iso8601(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    return str(value)


def video_message(row: Mapping[str, Any]) -> dict:
    """PROCESS_VIDEO for a ``videos`` row (pure)."""
    return {"event": "PROCESS_VIDEO", "video_id": row["id"], "workspace_id": row["workspace_id"],
            "workspace_code": row["workspace_code"], "camera_code": row["camera_code"],
            "s3_key_raw": row["s3_key_raw"], "frame_stride": row["frame_stride"], "recordedAt": _iso(row["recorded_at"])}


def snapshot_message(row: Mapping[str, Any]) -> dict:
    """SNAPSHOT_READY for an ``image_analyses`` row joined with its video's codes (pure)."""
    recorded = _iso(row["recorded_at"])
    return {"event": "SNAPSHOT_READY", "video_id": row["video_id"], "workspace_id": row["workspace_id"],
            "workspace_code": row["workspace_code"], "camera_code": row["camera_code"], "track_id": row["track_id"],
            "snapshot_s3_key": row["snapshot_s3_key"], "recordedAt": recorded, "detectedIn": row["detected_in_ms"],
            "detectedAt": detected_at(recorded, row["detected_in_ms"]), "yolo_type": row["yolo_type"]}


def snapshot_key(row: Mapping[str, Any], settings: Settings) -> Optional[str]:
    """The S3 key of an analysis row's snapshot, or None when its URI is not in the configured bucket/prefix."""
    try:
        return parse_snapshot_uri(row["snapshot_s3_key"], settings.bucket, settings.user_prefix).key
    except ValueError:
        return None


_VALIDATORS = {"process_video": validate_video_task, "snapshot_ready": validate_snapshot_ready}


def _resend_or_error(base: dict, message: dict, schema: str, queue: str, object_present: bool, gone: str,
                     settings: Settings) -> Action:
    """Resend ``message`` when it validates and its object is there, else mark the row error (pure)."""
    try:
        _VALIDATORS[schema](message, settings)
    except ValidationFailed as exc:
        return Action("error", why=f"reconcile: the rows cannot form a valid {message['event']}: {exc.reason}", **base)
    if not object_present:
        return Action("error", why=f"reconcile: {gone}", **base)
    return Action("resend", why=f"no activity; {message['event']} sent again", queue=queue, schema=schema,
                  message=message, **base)


def plan(videos: Sequence[Mapping[str, Any]], analyses: Sequence[Mapping[str, Any]],
         exists: Mapping[str, bool], settings: Settings) -> list[Action]:
    """One action per stuck row (pure).  ``exists``: S3 key -> whether the object is there."""
    actions: list[Action] = []
    for v in videos:
        base = dict(table="videos", row_id=v["id"], video_id=v["id"], status=v["status"], idle_s=float(v["idle_s"]),
                    updated_at=v["updated_at"], key=v["s3_key_raw"])
        actions.append(_resend_or_error(
            base, video_message(v), "process_video", settings.video_queue, exists.get(v["s3_key_raw"], False),
            f"the video's object s3://{settings.bucket}/{v['s3_key_raw']} is gone; upload it again and send the "
            "video again", settings))
    resent_videos = {a.row_id for a in actions if a.kind == "resend"}
    for a in analyses:
        base = dict(table="image_analyses", row_id=a["id"], video_id=a["video_id"], status=a["status"],
                    idle_s=float(a["idle_s"]), updated_at=a["updated_at"], key=a["snapshot_s3_key"])
        if a["video_id"] in resent_videos:
            actions.append(Action("covered", why="its video is sent again, which announces its snapshots again",
                                  **base))
            continue
        actions.append(_resend_or_error(
            base, snapshot_message(a), "snapshot_ready", settings.snapshot_queue,
            exists.get(snapshot_key(a, settings) or "", False),
            f"the snapshot {a['snapshot_s3_key']} is gone; the video must be processed again to make it", settings))
    return actions


@dataclass
class ReconcileReport:
    actions: list[Action]
    applied: list[tuple[Action, str]]  # (action, outcome) when applied: sent | marked error | changed meanwhile | ...
    queue_depths: dict[str, dict[str, int]]


def _object_exists(s3: S3Store, key: str) -> bool:
    try:
        s3.head(key)
        return True
    except MissingObject:
        return False


def queue_depths(sqs: SqsQueues, queues: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{queue: {"visible": n, "in_flight": n}}`` (SQS's approximate counts)."""
    out = {}
    for q in queues:
        a = sqs.attributes(q)
        out[q] = {"visible": int(a.get("ApproximateNumberOfMessages", 0)),
                  "in_flight": int(a.get("ApproximateNumberOfMessagesNotVisible", 0))}
    return out


def reconcile(settings: Settings, *, older_than_s: Optional[float] = DEFAULT_OLDER_THAN_S,
              video_id: Optional[str] = None, apply: bool = False, db: Optional[Database] = None,
              s3: Optional[S3Store] = None, sqs: Optional[SqsQueues] = None) -> ReconcileReport:
    """Plan (and with ``apply``, carry out) the actions for the stuck rows.  ``video_id``: that
    video and its analyses, whatever their age (``older_than_s`` is then ignored)."""
    db, s3, sqs = db or Database(settings), s3 or S3Store(settings), sqs or SqsQueues(settings)
    age = None if video_id else older_than_s
    videos = stuck_videos(db, older_than_s=age, video_id=video_id)
    analyses = stuck_analyses(db, older_than_s=age, video_id=video_id)
    keys = {v["s3_key_raw"] for v in videos} | {k for a in analyses if (k := snapshot_key(a, settings))}
    exists = {k: _object_exists(s3, k) for k in sorted(keys)}
    actions = plan(videos, analyses, exists, settings)
    depths = queue_depths(sqs, (settings.video_queue, settings.snapshot_queue))
    applied = [(a, _apply(a, db, sqs)) for a in actions] if apply else []
    return ReconcileReport(actions, applied, depths)


def _apply(action: Action, db: Database, sqs: SqsQueues) -> str:
    """Carry out one action; returns what happened, in a few words."""
    if action.kind == "covered":
        return "left to its video's resend"
    if action.kind == "error":
        if action.table == "videos":
            done = set_video_status(db, action.row_id, "error", action.why[:2000], allowed_from=(action.status,))
        else:
            done = fail_analysis(db, action.key or "", action.why)
        log.warning("reconcile marked a row error", extra={"table": action.table, "row_id": action.row_id,
                                                            "video_id": action.video_id, "error": action.why})
        return "marked error" if done else "changed meanwhile; left alone"
    requeue = requeue_video if action.table == "videos" else requeue_analysis
    if not requeue(db, action.row_id, action.status, action.updated_at):
        return "changed meanwhile; left alone"
    sqs.send_json(action.queue, action.message, action.schema)
    log.info("reconcile sent a message again", extra={"table": action.table, "row_id": action.row_id,
                                                       "video_id": action.video_id, "queue": action.queue})
    return "sent"
