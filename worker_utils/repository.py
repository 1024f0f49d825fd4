"""SQL for the three tables, in one place. Every statement is parameterised.

Status moves never go backwards from ``done``: each UPDATE carries the allowed source
states in its WHERE clause, so a redelivered message cannot undo finished work.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from .db import Database
from .errors import ValidationFailed

VIDEO_COLUMNS = ("id, workspace_id, workspace_code, camera_code, s3_key_raw, frame_stride, "
                 "recorded_at, status, error, created_at, updated_at")


def upsert_video_queued(db: Database, *, video_id: str, workspace_id: str, workspace_code: str, camera_code: str,
                        s3_key_raw: str, frame_stride: int, recorded_at: Optional[str]) -> None:
    """Register (or re-register) a video as ``queued``: what the API does before PROCESS_VIDEO."""
    db.execute(
        "INSERT INTO videos (id, workspace_id, workspace_code, camera_code, s3_key_raw, frame_stride, recorded_at, status)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, 'queued')"
        " ON CONFLICT (id) DO UPDATE SET workspace_id = EXCLUDED.workspace_id,"
        " workspace_code = EXCLUDED.workspace_code, camera_code = EXCLUDED.camera_code,"
        " s3_key_raw = EXCLUDED.s3_key_raw, frame_stride = EXCLUDED.frame_stride, recorded_at = EXCLUDED.recorded_at,"
        " status = 'queued', error = NULL, updated_at = now()",
        (video_id, workspace_id, workspace_code, camera_code, s3_key_raw, frame_stride, recorded_at),
    )


def get_video(db: Database, video_id: str) -> Optional[dict[str, Any]]:
    return db.fetchone(f"SELECT {VIDEO_COLUMNS} FROM videos WHERE id = %s", (video_id,))


def set_video_status(db: Database, video_id: str, status: str, error: Optional[str] = None,
                     allowed_from: tuple[str, ...] = ("uploaded", "queued", "processing", "error")) -> bool:
    """Move a video to ``status`` if it is in one of ``allowed_from``; False when it was not."""
    n = db.execute(
        "UPDATE videos SET status = %s, error = %s, updated_at = now() WHERE id = %s AND status = ANY(%s)",
        (status, error, video_id, list(allowed_from)),
    )
    return n > 0


def list_analyses(db: Database, video_id: str) -> list[dict[str, Any]]:
    return db.fetchall(
        "SELECT a.id, a.track_id, a.snapshot_s3_key, a.detected_in_ms, a.detected_at, a.yolo_type, a.status, a.error,"
        " a.track_first_ms, a.track_last_ms, a.bbox,"
        " COALESCE(json_agg(json_build_object('variant', r.variant, 'type', r.type, 'type_conf', r.type_conf,"
        " 'make', r.make, 'make_conf', r.make_conf, 'model', r.model, 'model_conf', r.model_conf,"
        " 'colors', r.colors, 'plate', r.plate, 'plate_conf', r.plate_conf) ORDER BY r.variant)"
        " FILTER (WHERE r.id IS NOT NULL), '[]') AS results"
        " FROM image_analyses a LEFT JOIN image_analysis_results r ON r.analysis_id = a.id"
        " WHERE a.video_id = %s GROUP BY a.id ORDER BY a.detected_in_ms, a.track_id",
        (video_id,),
    )


def insert_analysis_queued(db: Database, *, video_id: str, workspace_id: str, track_id: int, snapshot_uri: str,
                           detected_in_ms: int, detected_at: Optional[str], yolo_type: str,
                           track_first_ms: Optional[int] = None, track_last_ms: Optional[int] = None,
                           bbox: Optional[Sequence[int]] = None) -> str:
    """Insert the snapshot's analysis row as ``queued`` unless it exists; returns the row's status.

    ``bbox`` is the chosen detection's ``(x1, y1, x2, y2)`` in full-frame pixels.

    A redelivered video finds its rows already there (UNIQUE snapshot_s3_key) and leaves them as
    they are, so a finished analysis is never reset.
    """
    with db.transaction("DB insert image_analyses") as cur:
        cur.execute(
            "INSERT INTO image_analyses (video_id, workspace_id, track_id, snapshot_s3_key, detected_in_ms,"
            " detected_at, yolo_type, track_first_ms, track_last_ms, bbox, status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'queued')"
            " ON CONFLICT (snapshot_s3_key) DO NOTHING RETURNING status",
            (video_id, workspace_id, track_id, snapshot_uri, detected_in_ms, detected_at, yolo_type,
             track_first_ms, track_last_ms, None if bbox is None else [int(round(v)) for v in bbox]),
        )
        row = cur.fetchone()
        if row:
            return row["status"]
        cur.execute("SELECT status FROM image_analyses WHERE snapshot_s3_key = %s", (snapshot_uri,))
        return cur.fetchone()["status"]


def ensure_video_processing(db: Database, *, video_id: str, workspace_id: str, workspace_code: str,
                            camera_code: str, s3_key_raw: str, frame_stride: int,
                            recorded_at: Optional[str]) -> Optional[str]:
    """Start work on a PROCESS_VIDEO: create the row if the API never did (ops hand-sent the
    message), else move it to ``processing``.  Returns the status it had before, or None if new.
    A ``done`` video stays ``done`` (the caller skips it).  A row of another workspace is
    ValidationFailed: the task's workspace must own the video it names."""
    with db.transaction("DB start video") as cur:
        cur.execute("SELECT status, workspace_id::text AS workspace_id FROM videos WHERE id = %s FOR UPDATE",
                    (video_id,))
        row = cur.fetchone()
        if row is None:
            cur.execute(
                "INSERT INTO videos (id, workspace_id, workspace_code, camera_code, s3_key_raw, frame_stride,"
                " recorded_at, status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'processing')",
                (video_id, workspace_id, workspace_code, camera_code, s3_key_raw, frame_stride, recorded_at),
            )
            return None
        if row["workspace_id"] != workspace_id:
            raise ValidationFailed(f"video {video_id} belongs to workspace {row['workspace_id']}, not {workspace_id}; "
                                   "a task may only name its own workspace's videos")
        if row["status"] != "done":
            cur.execute("UPDATE videos SET status = 'processing', error = NULL, updated_at = now() WHERE id = %s",
                        (video_id,))
        return row["status"]


def start_analysis(db: Database, *, video_id: str, workspace_id: str, track_id: int, snapshot_uri: str,
                   detected_in_ms: int, detected_at: Optional[str], yolo_type: str) -> tuple[str, Optional[str]]:
    """Upsert the analysis row by snapshot key and move it to ``processing``.

    Returns ``(analysis_id, status before)``; status before is None for a new row.  A ``done``
    row is left untouched (the caller skips it).  A video missing from ``videos`` is a
    permanent error (foreign key): SNAPSHOT_READY for an unregistered video.
    """
    with db.transaction("DB start analysis") as cur:
        cur.execute("SELECT id::text AS id, status FROM image_analyses WHERE snapshot_s3_key = %s FOR UPDATE",
                    (snapshot_uri,))
        row = cur.fetchone()
        if row is None:
            cur.execute(
                "INSERT INTO image_analyses (video_id, workspace_id, track_id, snapshot_s3_key, detected_in_ms,"
                " detected_at, yolo_type, status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'processing')"
                " ON CONFLICT (snapshot_s3_key) DO UPDATE SET status = image_analyses.status"
                " RETURNING id::text AS id",
                (video_id, workspace_id, track_id, snapshot_uri, detected_in_ms, detected_at, yolo_type),
            )
            return cur.fetchone()["id"], None
        if row["status"] != "done":
            cur.execute("UPDATE image_analyses SET status = 'processing', error = NULL, updated_at = now()"
                        " WHERE id = %s", (row["id"],))
        return row["id"], row["status"]


RESULT_COLUMNS = ("type", "type_conf", "make", "make_conf", "model", "model_conf", "colors", "plate", "plate_conf",
                  "payload", "model_name", "model_version", "latency_ms")


def finish_analysis(db: Database, analysis_id: str, results: list[dict[str, Any]]) -> bool:
    """Upsert one results row per variant and mark the analysis ``done``, in one transaction.

    ``results`` items hold ``variant`` plus :data:`RESULT_COLUMNS` (``colors`` and ``payload``
    as Python objects).  Returns False (and writes nothing) when the analysis is already done:
    a duplicate delivery finishing second changes no finished value.
    """
    from psycopg2.extras import Json

    with db.transaction("DB finish analysis") as cur:
        cur.execute("SELECT status FROM image_analyses WHERE id = %s FOR UPDATE", (analysis_id,))
        row = cur.fetchone()
        if row is None or row["status"] == "done":
            return False
        cols = ", ".join(RESULT_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in RESULT_COLUMNS)
        for r in results:
            values = [Json(r[c]) if c in ("colors", "payload") and r[c] is not None else r[c] for c in RESULT_COLUMNS]
            cur.execute(
                f"INSERT INTO image_analysis_results (analysis_id, variant, {cols})"
                f" VALUES (%s, %s, {', '.join(['%s'] * len(RESULT_COLUMNS))})"
                f" ON CONFLICT (analysis_id, variant) DO UPDATE SET {updates}, updated_at = now()",
                (analysis_id, r["variant"], *values),
            )
        cur.execute("UPDATE image_analyses SET status = 'done', error = NULL, updated_at = now() WHERE id = %s",
                    (analysis_id,))
        return True


def fail_analysis(db: Database, snapshot_uri: str, reason: str) -> bool:
    """Mark the analysis ``error`` with ``reason`` where a row exists and is not done."""
    n = db.execute("UPDATE image_analyses SET status = 'error', error = %s, updated_at = now()"
                   " WHERE snapshot_s3_key = %s AND status <> 'done'", (reason[:2000], snapshot_uri))
    return n > 0
