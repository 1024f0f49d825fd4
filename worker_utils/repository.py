"""SQL for the three tables, in one place. Every statement is parameterised.

Status moves never go backwards from ``done``: each UPDATE carries the allowed source
states in its WHERE clause, so a redelivered message cannot undo finished work.
"""
from __future__ import annotations

from typing import Any, Optional

from .db import Database

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
        " COALESCE(json_agg(json_build_object('variant', r.variant, 'type', r.type, 'type_conf', r.type_conf,"
        " 'make', r.make, 'make_conf', r.make_conf, 'model', r.model, 'model_conf', r.model_conf,"
        " 'colors', r.colors, 'plate', r.plate, 'plate_conf', r.plate_conf) ORDER BY r.variant)"
        " FILTER (WHERE r.id IS NOT NULL), '[]') AS results"
        " FROM image_analyses a LEFT JOIN image_analysis_results r ON r.analysis_id = a.id"
        " WHERE a.video_id = %s GROUP BY a.id ORDER BY a.detected_in_ms, a.track_id",
        (video_id,),
    )
