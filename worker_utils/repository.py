"""SQL for the three tables, in one place. Every statement is parameterised; the column lists
are composed with ``psycopg2.sql`` (tests/security/test_sql_parameterised.py checks both).

Status moves never go backwards from ``done``: each UPDATE carries the allowed source
states in its WHERE clause, so a redelivered message cannot undo finished work.
"""
from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from psycopg2 import sql

from .db import Database
from .errors import ValidationFailed

VIDEO_COLUMNS = ("id", "workspace_id", "workspace_code", "camera_code", "s3_key_raw", "frame_stride",
                 "recorded_at", "status", "error", "created_at", "updated_at")
# Column lists are composed with psycopg2.sql (quoted identifiers), never formatted into text.
_GET_VIDEO = sql.SQL("SELECT {} FROM videos WHERE id = %s").format(sql.SQL(", ").join(map(sql.Identifier, VIDEO_COLUMNS)))


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
    return db.fetchone(_GET_VIDEO, (video_id,))


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

_RESULT_COLS = sql.SQL(", ").join(map(sql.Identifier, RESULT_COLUMNS))
_RESULT_UPDATES = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in RESULT_COLUMNS)
# one row (cursor.execute) ...
_UPSERT_RESULT = sql.SQL(
    "INSERT INTO image_analysis_results (analysis_id, variant, {cols}) VALUES (%s, %s, {values})"
    " ON CONFLICT (analysis_id, variant) DO UPDATE SET {updates}, updated_at = now()"
).format(cols=_RESULT_COLS, values=sql.SQL(", ").join(sql.Placeholder() * len(RESULT_COLUMNS)),
         updates=_RESULT_UPDATES)
# ... and many rows (psycopg2.extras.execute_values fills the one %s after VALUES)
_UPSERT_RESULTS_MANY = sql.SQL(
    "INSERT INTO image_analysis_results (analysis_id, variant, {cols}) VALUES %s"
    " ON CONFLICT (analysis_id, variant) DO UPDATE SET {updates}, updated_at = now()"
).format(cols=_RESULT_COLS, updates=_RESULT_UPDATES)


def _result_values(r: dict[str, Any]) -> list[Any]:
    """A results row's :data:`RESULT_COLUMNS` values, the JSON columns wrapped for psycopg2."""
    from psycopg2.extras import Json

    return [Json(r[c]) if c in ("colors", "payload") and r[c] is not None else r[c] for c in RESULT_COLUMNS]


def finish_analysis(db: Database, analysis_id: str, results: list[dict[str, Any]]) -> bool:
    """Upsert one results row per variant and mark the analysis ``done``, in one transaction.

    ``results`` items hold ``variant`` plus :data:`RESULT_COLUMNS` (``colors`` and ``payload``
    as Python objects).  Returns False (and writes nothing) when the analysis is already done:
    a duplicate delivery finishing second changes no finished value.
    """
    with db.transaction("DB finish analysis") as cur:
        cur.execute("SELECT status FROM image_analyses WHERE id = %s FOR UPDATE", (analysis_id,))
        row = cur.fetchone()
        if row is None or row["status"] == "done":
            return False
        for r in results:
            cur.execute(_UPSERT_RESULT, (analysis_id, r["variant"], *_result_values(r)))
        cur.execute("UPDATE image_analyses SET status = 'done', error = NULL, updated_at = now() WHERE id = %s",
                    (analysis_id,))
        return True


def fail_analysis(db: Database, snapshot_uri: str, reason: str, workspace_id: Optional[str] = None) -> bool:
    """Mark the analysis ``error`` with ``reason`` where a row exists, is not done and (given
    ``workspace_id``) belongs to that workspace."""
    n = db.execute("UPDATE image_analyses SET status = 'error', error = %s, updated_at = now()"
                   " WHERE snapshot_s3_key = %s AND status <> 'done'"
                   " AND (%s::text IS NULL OR workspace_id::text = %s::text)",
                   (reason[:2000], snapshot_uri, workspace_id, workspace_id))
    return n > 0


def fail_video(db: Database, video_id: str, workspace_id: str, reason: str) -> bool:
    """Mark the video ``error`` with ``reason`` where its row exists, belongs to ``workspace_id``
    and is not done (a done video never moves back)."""
    n = db.execute("UPDATE videos SET status = 'error', error = %s, updated_at = now()"
                   " WHERE id::text = %s AND workspace_id::text = %s AND status <> 'done'",
                   (reason[:2000], video_id, workspace_id))
    return n > 0


# --- a receive's worth of analyses at once (main_worker batches) ------------------------------
#
# The batch forms do what the per-message functions above do, for every message of a batch, in
# one transaction and a fixed handful of statements (rather than two transactions of two or
# three statements per message).  Any error fails the whole call and writes nothing, so the
# caller can redo the batch one message at a time with the functions above to find out which
# message the error belongs to (``main_worker.worker`` does, for permanent errors).

START_COLUMNS = ("video_id", "workspace_id", "track_id", "snapshot_uri", "detected_in_ms", "detected_at",
                 "yolo_type")


def plan_starts(uris: Sequence[str], existing: dict[str, str]) -> tuple[list[Optional[str]], list[int], list[str]]:
    """What :func:`start_analysis` called once per message, in order, would do (pure).

    ``existing``: snapshot key -> status of the rows already there.  Returns the status each
    message finds (None: no row yet), the indexes of the messages that insert a row (the first
    of each missing key) and the keys of the existing rows that move to ``processing`` (not done).
    A later duplicate finds the row as the earlier one left it: ``processing``, or ``done``.
    """
    status = dict(existing)
    before: list[Optional[str]] = []
    inserts: list[int] = []
    updates: list[str] = []
    for i, uri in enumerate(uris):
        was = status.get(uri)
        before.append(was)
        if uri not in status:
            inserts.append(i)
        elif was != "done" and uri in existing and uri not in updates:
            updates.append(uri)
        if was != "done":
            status[uri] = "processing"
    return before, inserts, updates


def start_analyses(db: Database, snaps: Sequence[dict[str, Any]]) -> list[tuple[str, Optional[str]]]:
    """:func:`start_analysis` for each of ``snaps`` (its keyword arguments), in one transaction:
    ``(analysis_id, status before)`` per item, in order.  Rows are locked in key order."""
    from psycopg2.extras import execute_values

    if not snaps:
        return []
    uris = [s["snapshot_uri"] for s in snaps]
    with db.transaction("DB start analysis") as cur:
        cur.execute("SELECT id::text AS id, snapshot_s3_key, status FROM image_analyses"
                    " WHERE snapshot_s3_key = ANY(%s) ORDER BY snapshot_s3_key FOR UPDATE", (sorted(set(uris)),))
        ids = {}
        existing = {}
        for r in cur.fetchall():
            ids[r["snapshot_s3_key"]], existing[r["snapshot_s3_key"]] = r["id"], r["status"]
        before, inserts, updates = plan_starts(uris, existing)
        if inserts:
            rows = execute_values(
                cur,
                "INSERT INTO image_analyses (video_id, workspace_id, track_id, snapshot_s3_key, detected_in_ms,"
                " detected_at, yolo_type, status) VALUES %s"
                " ON CONFLICT (snapshot_s3_key) DO UPDATE SET status = image_analyses.status"
                " RETURNING id::text AS id, snapshot_s3_key",
                # key order, as the locks above: two workers inserting overlapping batches wait
                # for each other instead of deadlocking
                sorted((tuple(snaps[i][c] for c in START_COLUMNS) + ("processing",) for i in inserts),
                       key=lambda row: row[START_COLUMNS.index("snapshot_uri")]),
                fetch=True)
            ids.update({r["snapshot_s3_key"]: r["id"] for r in rows})
        if updates:
            cur.execute("UPDATE image_analyses SET status = 'processing', error = NULL, updated_at = now()"
                        " WHERE snapshot_s3_key = ANY(%s)", (updates,))
        return [(ids[u], b) for u, b in zip(uris, before)]


def plan_finishes(analysis_ids: Sequence[str], status: dict[str, str]) -> list[bool]:
    """Which items :func:`finish_analysis` called once per item, in order, would write (pure):
    the first item of each analysis that exists (in ``status``) and is not done."""
    seen: set[str] = set()
    out = []
    for a in analysis_ids:
        out.append(a in status and status[a] != "done" and a not in seen)
        seen.add(a)
    return out


def finish_analyses(db: Database, items: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[bool]:
    """:func:`finish_analysis` for each ``(analysis_id, results)``, in one transaction: whether
    each item was written (False: already done, by an earlier item or another delivery)."""
    from psycopg2.extras import execute_values

    if not items:
        return []
    ids = [a for a, _ in items]
    with db.transaction("DB finish analysis") as cur:
        cur.execute("SELECT id::text AS id, status FROM image_analyses WHERE id = ANY(%s::uuid[])"
                    " ORDER BY id FOR UPDATE", (sorted(set(ids)),))
        written = plan_finishes(ids, {r["id"]: r["status"] for r in cur.fetchall()})
        values = [(a, r["variant"], *_result_values(r)) for (a, results), w in zip(items, written) if w for r in results]
        if values:
            execute_values(cur, _UPSERT_RESULTS_MANY, values, page_size=max(100, len(values)))
        done = [a for a, w in zip(ids, written) if w]
        if done:
            cur.execute("UPDATE image_analyses SET status = 'done', error = NULL, updated_at = now()"
                        " WHERE id = ANY(%s::uuid[])", (done,))
        return written


# --- reconcile: rows whose message was lost (worker_utils/reconcile.py) ----------------------------
#
# "Stuck" is judged by time only (a message in flight cannot be looked up by row): a row still
# waiting or running that nothing has touched for ``older_than_s`` seconds.  A video's activity
# is its row's updated_at and its newest snapshot row (snapshots flow out while it is read).

STUCK_VIDEO_STATUSES = ("uploaded", "queued", "processing")
STUCK_ANALYSIS_STATUSES = ("queued", "processing")


def stuck_videos(db: Database, *, older_than_s: Optional[float] = None,
                 video_id: Optional[str] = None) -> list[dict[str, Any]]:
    """Videos in :data:`STUCK_VIDEO_STATUSES` idle for ``older_than_s`` (None: any age), or only
    ``video_id``; each with ``idle_s`` (seconds since its last activity: the row, its analyses or,
    for a segmented video, its segments), oldest first.  Re-sending a segmented video's
    PROCESS_VIDEO re-announces its unfinished segments (yolo_worker.worker)."""
    return db.fetchall(
        "SELECT v.id::text AS id, v.workspace_id::text AS workspace_id, v.workspace_code, v.camera_code,"
        " v.s3_key_raw, v.frame_stride, v.recorded_at, v.status, v.updated_at,"
        " extract(epoch FROM now() - GREATEST(v.updated_at, max(a.created_at), max(sg.updated_at)))::float AS idle_s"
        " FROM videos v LEFT JOIN image_analyses a ON a.video_id = v.id"
        " LEFT JOIN (SELECT video_id, max(updated_at) AS updated_at FROM video_segments GROUP BY video_id) sg"
        " ON sg.video_id = v.id"
        " WHERE v.status = ANY(%(statuses)s) AND (%(vid)s::uuid IS NULL OR v.id = %(vid)s::uuid)"
        " GROUP BY v.id"
        " HAVING %(age)s::float IS NULL"
        " OR extract(epoch FROM now() - GREATEST(v.updated_at, max(a.created_at), max(sg.updated_at))) >= %(age)s::float"
        " ORDER BY idle_s DESC, v.id",
        {"statuses": list(STUCK_VIDEO_STATUSES), "vid": video_id, "age": older_than_s},
    )


def stuck_analyses(db: Database, *, older_than_s: Optional[float] = None,
                   video_id: Optional[str] = None) -> list[dict[str, Any]]:
    """Analyses in :data:`STUCK_ANALYSIS_STATUSES` untouched for ``older_than_s`` (None: any age),
    or only ``video_id``'s; with their video's codes and recorded_at, oldest first."""
    return db.fetchall(
        "SELECT a.id::text AS id, a.video_id::text AS video_id, a.workspace_id::text AS workspace_id,"
        " v.workspace_code, v.camera_code, v.recorded_at, a.track_id, a.snapshot_s3_key, a.detected_in_ms,"
        " a.yolo_type, a.status, a.updated_at, extract(epoch FROM now() - a.updated_at)::float AS idle_s"
        " FROM image_analyses a JOIN videos v ON v.id = a.video_id"
        " WHERE a.status = ANY(%(statuses)s) AND (%(vid)s::uuid IS NULL OR a.video_id = %(vid)s::uuid)"
        " AND (%(age)s::float IS NULL OR a.updated_at <= now() - make_interval(secs => %(age)s::float))"
        " ORDER BY a.updated_at, a.snapshot_s3_key",
        {"statuses": list(STUCK_ANALYSIS_STATUSES), "vid": video_id, "age": older_than_s},
    )


def requeue_video(db: Database, video_id: str, status: str, updated_at: Any) -> bool:
    """Mark a stuck video ``queued`` again before its task is re-sent, only if the row is still as
    it was read (same status and updated_at): False when a worker touched it meanwhile."""
    n = db.execute("UPDATE videos SET status = 'queued', error = NULL, updated_at = now()"
                   " WHERE id = %s AND status = %s AND updated_at = %s", (video_id, status, updated_at))
    return n > 0


def requeue_analysis(db: Database, analysis_id: str, status: str, updated_at: Any) -> bool:
    """:func:`requeue_video` for an analysis row."""
    n = db.execute("UPDATE image_analyses SET status = 'queued', error = NULL, updated_at = now()"
                   " WHERE id = %s AND status = %s AND updated_at = %s", (analysis_id, status, updated_at))
    return n > 0


# --- segments of a long video (yolo_worker/segments.py) ---------------------------------------

def plan_video_segments(db: Database, video_id: str, plans: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """Record a segmented video's plan (one PROCESS_SEGMENT ``segment`` dict per segment) unless
    one is recorded already, and return the recorded plan with each segment's status, by index: a
    redelivered PROCESS_VIDEO re-announces the first plan, whatever the settings are now."""
    with db.transaction("DB plan segments") as cur:
        cur.execute("SELECT 1 FROM video_segments WHERE video_id = %s LIMIT 1", (video_id,))
        if cur.fetchone() is None:
            for g in plans:
                cur.execute("INSERT INTO video_segments (video_id, segment_index, segment_count, start_frame,"
                            " end_frame, plan) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            (video_id, g["index"], g["count"], g["start_frame"], g["end_frame"], json.dumps(g)))
        cur.execute("SELECT plan, status FROM video_segments WHERE video_id = %s ORDER BY segment_index", (video_id,))
        return [(dict(r["plan"]), r["status"]) for r in cur.fetchall()]


def start_segment(db: Database, video_id: str, plan: dict[str, Any]) -> Optional[str]:
    """Start work on a segment: its row (created if the plan's transaction never ran, e.g. a
    hand-resent PROCESS_SEGMENT) moves to ``processing`` unless it is ``done``.  Returns the status
    it had before (None: new).  The video's own status is left alone: another segment may have
    failed it already."""
    index, count, start, end = plan["index"], plan["count"], plan["start_frame"], plan["end_frame"]
    with db.transaction("DB start segment") as cur:
        cur.execute("INSERT INTO video_segments (video_id, segment_index, segment_count, start_frame, end_frame,"
                    " status, plan) VALUES (%s, %s, %s, %s, %s, 'processing', %s)"
                    " ON CONFLICT (video_id, segment_index) DO NOTHING RETURNING status",
                    (video_id, index, count, start, end, json.dumps(plan)))
        if cur.fetchone() is not None:
            return None
        cur.execute("SELECT status FROM video_segments WHERE video_id = %s AND segment_index = %s FOR UPDATE",
                    (video_id, index))
        before = cur.fetchone()["status"]
        if before != "done":
            cur.execute("UPDATE video_segments SET status = 'processing', error = NULL, updated_at = now()"
                        " WHERE video_id = %s AND segment_index = %s", (video_id, index))
        return before


def finish_segment(db: Database, video_id: str, index: int, snapshots: int) -> tuple[int, int, bool]:
    """Mark a segment ``done``; the video becomes ``done`` when it was the last one not done.
    Returns ``(segments done, segments in all, whether this call finished the video)``.  The
    video's row is locked first, so two workers finishing the last two segments at once cannot
    both see the other's as unfinished."""
    with db.transaction("DB finish segment") as cur:
        cur.execute("SELECT status FROM videos WHERE id = %s FOR UPDATE", (video_id,))
        cur.execute("UPDATE video_segments SET status = 'done', error = NULL, snapshots = %s, updated_at = now()"
                    " WHERE video_id = %s AND segment_index = %s", (snapshots, video_id, index))
        cur.execute("SELECT count(*) FILTER (WHERE status = 'done') AS done, count(*) AS total, max(segment_count)"
                    " AS planned FROM video_segments WHERE video_id = %s", (video_id,))
        row = cur.fetchone()
        done, total = int(row["done"]), int(row["planned"] or row["total"])
        finished = False
        if done == total:
            cur.execute("UPDATE videos SET status = 'done', error = NULL, updated_at = now()"
                        " WHERE id = %s AND status IN ('processing', 'error')", (video_id,))
            finished = cur.rowcount > 0
        return done, total, finished


def fail_segment(db: Database, video_id: str, workspace_id: str, index: int, reason: str) -> bool:
    """A dead-lettered segment: its row ``error`` with ``reason``, and the video ``error`` with
    ``segment <k> of <n>: <reason>`` (fail_video's rules: its own workspace, never from done)."""
    with db.transaction("DB fail segment") as cur:
        cur.execute("UPDATE video_segments SET status = 'error', error = %s, updated_at = now()"
                    " WHERE video_id::text = %s AND segment_index = %s AND status <> 'done' RETURNING segment_count",
                    (reason[:2000], video_id, index))
        row = cur.fetchone()
    count = f" of {row['segment_count']}" if row else ""
    return fail_video(db, video_id, workspace_id, f"segment {index + 1}{count}: {reason}")


def segment_progress(db: Database, video_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``video_id -> (segments done, segments planned)`` for the segmented ones of ``video_ids``."""
    if not video_ids:
        return {}
    rows = db.fetchall("SELECT video_id::text AS video_id, count(*) FILTER (WHERE status = 'done') AS done,"
                       " max(segment_count) AS planned FROM video_segments WHERE video_id::text = ANY(%s)"
                       " GROUP BY video_id", (list(video_ids),))
    return {r["video_id"]: (int(r["done"]), int(r["planned"])) for r in rows}
