"""yolo_worker handler: PROCESS_VIDEO / PROCESS_VIDEO_DB -> snapshots in S3 + SNAPSHOT_READY.

Per message:

1. validate (schema + semantic checks); PROCESS_VIDEO_DB is resolved from the ``videos`` row;
2. ``videos.status`` -> ``processing`` (a PROCESS_VIDEO for a video the API never registered
   creates the row); a video already ``done`` is skipped: redelivery never moves it back and
   never re-emits;
3. stream the MP4 to a temp file, probe it, enforce the configured limits;
4. run detect -> track -> best frame; for each finished track: letterbox 640x640 JPEG ->
   S3 put at the deterministic key -> ``image_analyses`` row ``queued`` -> SNAPSHOT_READY;
5. ``videos.status`` -> ``done``.

A redelivery of an unfinished video (crash, kill, lost DB) re-runs the same deterministic
pipeline: the same keys are overwritten with the same bytes, existing analysis rows are kept,
and SNAPSHOT_READY is sent again only for rows still ``queued`` (main_worker treats repeats
idempotently).  Whatever sends the message to the DLQ (a permanent failure, the last of
several transient ones, a stall), the poller first calls :meth:`YoloWorker.dead_letter`,
which marks the video ``error`` with the DLQ's reason.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Optional

from ..worker_config import Settings
from ..worker_utils.db import Database
from ..worker_utils import readiness
from ..worker_utils.errors import BadMedia, PermanentError, ValidationFailed
from ..worker_utils.imaging import encode_jpeg, letterbox
from ..worker_utils.keys import build_snapshot_key, build_snapshot_uri, is_uuid
from ..worker_utils.logs import log_context, log_stage
from ..worker_utils.messages import ProcessSegment, ProcessVideo, ProcessVideoDb
from ..worker_utils.poller import Dependency, HandlerContext, Poller, one_at_a_time
from ..worker_utils.repository import (ensure_video_processing, fail_segment, fail_video, finish_segment, get_video,
                                       insert_analysis_queued, plan_video_segments, set_video_status, start_segment)
from ..worker_utils.s3_store import S3Store
from ..worker_utils.sqs_queue import ReceivedMessage, SqsQueues
from ..worker_utils.timeutil import detected_at, format_iso8601
from ..worker_utils.validation import validate_snapshot_ready, validate_video_task
from .detector import Detector
from .pipeline import PipelineStats, run_pipeline
from .segments import WHOLE, Segment, describe, plan_segments
from .selection import FinishedTrack
from .tracking import Tracker, reid_status
from .video import VideoInfo, probe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoJob:
    video_id: str
    workspace_id: str
    workspace_code: str
    camera_code: str
    s3_key_raw: str
    frame_stride: int
    recorded_at: Optional[str]


class YoloWorker:
    """Holds the loaded detector and the adapters; ``handle`` serves one message."""

    def __init__(self, settings: Settings, *, s3: Optional[S3Store] = None, sqs: Optional[SqsQueues] = None,
                 db: Optional[Database] = None, detector: Optional[Detector] = None):
        self.settings = settings
        self.s3 = s3 or S3Store(settings)
        self.sqs = sqs or SqsQueues(settings)
        self.db = db or Database(settings)
        self.detector = detector or Detector(settings)  # at start-up: bad weights fail before serving
        self._dead_letter_db = Database(settings)  # dead_letter's own connection (see there)
        self.last_stats: Optional[PipelineStats] = None
        _log_tracker_mode(settings)

    # --- message -> job --------------------------------------------------------
    def _job(self, msg: ProcessVideo | ProcessVideoDb) -> VideoJob:
        if isinstance(msg, ProcessVideo):
            return VideoJob(msg.video_id, msg.workspace_id, msg.workspace_code, msg.camera_code, msg.s3_key_raw,
                            msg.frame_stride or self.settings.default_frame_stride, msg.recordedAt)
        row = get_video(self.db, msg.video_id)
        if row is None:
            raise ValidationFailed(f"PROCESS_VIDEO_DB names video {msg.video_id}, which is not in the videos table; "
                                   "register the video first or send a full PROCESS_VIDEO")
        if str(row["workspace_id"]) != msg.workspace_id:
            raise ValidationFailed(f"video {msg.video_id} belongs to workspace {row['workspace_id']}, "
                                   f"not {msg.workspace_id}")
        recorded = format_iso8601(row["recorded_at"]) if row["recorded_at"] is not None else None
        full = {"event": "PROCESS_VIDEO", "video_id": msg.video_id, "workspace_id": msg.workspace_id,
                "workspace_code": row["workspace_code"], "camera_code": row["camera_code"],
                "s3_key_raw": row["s3_key_raw"], "frame_stride": row["frame_stride"], "recordedAt": recorded}
        try:  # the row must satisfy the same contract as a full message
            resolved = validate_video_task(full, self.settings)
        except ValidationFailed as exc:
            raise ValidationFailed(f"videos row of {msg.video_id} is not a valid job: {exc.reason}") from None
        return self._job(resolved)

    # --- handler -----------------------------------------------------------------
    def handle(self, message: ReceivedMessage, ctx: HandlerContext) -> None:
        received = time.monotonic()  # SQS's visibility cap counts from the receive
        ctx.progress("validate")
        msg = validate_video_task(message.body, self.settings)
        with log_context(video_id=msg.video_id):
            if isinstance(msg, ProcessSegment):
                self._handle_segment(msg, ctx, received)
                return
            job = self._job(msg)
            before = ensure_video_processing(
                self.db, video_id=job.video_id, workspace_id=job.workspace_id,
                workspace_code=job.workspace_code, camera_code=job.camera_code, s3_key_raw=job.s3_key_raw,
                frame_stride=job.frame_stride, recorded_at=job.recorded_at)
            if before == "done":
                log.info("video already done; redelivery skipped (nothing re-emitted)")
                return
            stats = self._process(job, ctx, WHOLE, received)
            if stats is None:
                return  # planned as segments: the last segment to finish marks the video done
            ctx.progress("finish")
            set_video_status(self.db, job.video_id, "done", allowed_from=("processing",))
            log.info("video done", extra=_stats_fields(stats))

    def _handle_segment(self, msg: ProcessSegment, ctx: HandlerContext, received: float) -> None:
        """One segment of a long video: its frames, its tracks (segments.py), its row; the video
        is done when the last of its segments is."""
        job = VideoJob(msg.video_id, msg.workspace_id, msg.workspace_code, msg.camera_code, msg.s3_key_raw,
                       msg.frame_stride, msg.recordedAt)
        plan = msg.segment.model_dump()
        seg = Segment(**plan)
        with log_context(segment=f"{seg.index + 1}/{seg.count}"):
            row = get_video(self.db, job.video_id)
            if row is None or str(row["workspace_id"]) != job.workspace_id:
                raise ValidationFailed(f"PROCESS_SEGMENT names video {job.video_id} of workspace {job.workspace_id}, "
                                       "which is not in the videos table; segments come from a PROCESS_VIDEO, "
                                       "send that instead")
            if row["status"] == "done":
                log.info("video already done; segment skipped (nothing re-emitted)")
                return
            if start_segment(self.db, job.video_id, plan) == "done":
                log.info("segment already done; redelivery skipped (nothing re-emitted)")
                return
            stats = self._process(job, ctx, seg, received)
            assert stats is not None  # a segment is never planned again
            ctx.progress("finish")
            done, total, finished = finish_segment(self.db, job.video_id, seg.index, stats.tracks_emitted)
            fields = {**_stats_fields(stats), "segments_done": done, "segments": total,
                      "frames_outside_segment": stats.frames_outside}
            log.info("video done" if finished else "segment done", extra=fields)

    def dead_letter(self, message: ReceivedMessage, reason: str, code: str) -> None:
        """The poller's terminal-state hook: the message is going to the DLQ, so its videos row
        (where one exists, belongs to the message's workspace and is not done) becomes ``error``
        with the same reason.  Runs on its own connection: a stalled handler may hold the
        worker's.  Raises DependencyDown while the database is down (nothing is dead-lettered)."""
        video_id, workspace_id = _ids_of(message.body)
        if not (video_id and workspace_id):
            return
        index = _segment_of(message.body)
        if index is not None:
            failed = fail_segment(self._dead_letter_db, video_id, workspace_id, index, reason)
        else:
            failed = fail_video(self._dead_letter_db, video_id, workspace_id, reason)
        if failed:
            log.info("video marked error", extra={"video_id": video_id, "error_code": code, "segment": index})

    def dependencies(self) -> list[Dependency]:
        s = self.settings
        return [readiness.database(self.db), readiness.s3(self.s3, s, "raw"),
                readiness.sqs(self.sqs, [s.video_queue, s.video_dlq, s.snapshot_queue])]

    def poller(self, name: str = "yolo_worker") -> Poller:
        """The poller that serves this worker, as ``run_poller`` runs it."""
        s = self.settings
        return Poller(s, s.video_queue, s.video_dlq, one_at_a_time(self.handle), batch_size=1, sqs=self.sqs,
                      name=name, on_dead_letter=self.dead_letter, dependencies=self.dependencies())

    def _process(self, job: VideoJob, ctx: HandlerContext, segment: Segment, received: float) -> Optional[PipelineStats]:
        """Download, probe and process the video (``segment``: one segment of it).  A whole video
        longer than ``segment_s`` is not processed here: its segments are announced and None returned."""
        s = self.settings
        ctx.progress("download")
        with log_stage(log, "download"):
            path = self.s3.download_to_file(job.s3_key_raw, max_bytes=s.max_video_bytes, suffix=".mp4",
                                            on_chunk=lambda _n: ctx.progress())
        try:
            ctx.progress("open video")
            info = probe(path)
            self._check_limits(info)
            log.info("video opened", extra={"width": info.width, "height": info.height, "fps": round(info.fps, 3),
                                            "frames": info.frame_count, "frame_stride": job.frame_stride})
            if segment is WHOLE:
                try:
                    plan = plan_segments(info.frame_count, info.fps, job.frame_stride, s.segment_s,
                                         s.segment_warmup_s, s.segment_tail_s, s.track_max_age + 1)
                except ValueError as exc:  # segments shorter than their warm-up at this frame rate
                    raise PermanentError(f"cannot cut this {info.fps:g} fps video into segments: {exc}") from None
                if len(plan) > 1:
                    self._announce(job, plan, info)
                    return None
            cap = VisibilityCap(s, received, segment, info)
            tracker = Tracker(s, (info.height, info.width))

            def on_progress(p: dict) -> None:
                log.info("progress", extra=p)
                cap.check(p)

            stats = run_pipeline(path, info, job.frame_stride, s, self.detector, tracker,
                                 emit=lambda ft: self._emit(job, ft), check_cancelled=ctx.check_cancelled,
                                 on_progress=on_progress, report=ctx.progress, segment=segment)
        finally:
            os.unlink(path)
        if stats.frames_read == 0:
            raise BadMedia("the video has no decodable frames (empty or corrupt); re-encode and re-upload it")
        if segment.end_frame is not None and stats.frames_read < segment.end_frame:
            raise BadMedia(f"video decoding stopped at frame {stats.frames_read}, inside {describe(segment, info.fps)} "
                           f"(its frames run to {segment.end_frame}): the file is corrupt or truncated; re-encode "
                           "and re-upload it")
        if segment.end_frame is None and \
                stats.frames_read + _missing_frames_tolerance(info.frame_count) < info.frame_count:
            # Decoding stopped early: corrupt data mid-file.  The snapshots already sent are
            # real vehicles of the decoded part; the video must not claim to be complete.
            raise BadMedia(f"video decoding stopped at frame {stats.frames_read} of the {info.frame_count} its "
                           "container declares: the file is corrupt or truncated; re-encode and re-upload it")
        self.last_stats = stats
        return stats

    def _announce(self, job: VideoJob, plan: list[Segment], info: VideoInfo) -> None:
        """Record the segments and send one PROCESS_SEGMENT per segment not done yet (a
        redelivered PROCESS_VIDEO re-announces the recorded plan), to the video queue: any
        worker takes any of them."""
        s = self.settings
        recorded = plan_video_segments(self.db, job.video_id, [_segment_dict(g) for g in plan])
        sent = 0
        for spec, status in recorded:
            if status == "done":
                continue
            body = {"event": "PROCESS_SEGMENT", "video_id": job.video_id, "workspace_id": job.workspace_id,
                    "workspace_code": job.workspace_code, "camera_code": job.camera_code,
                    "s3_key_raw": job.s3_key_raw, "frame_stride": job.frame_stride, "recordedAt": job.recorded_at,
                    "segment": spec}
            validate_video_task(body, s)  # never send what a worker would reject
            self.sqs.send_json(s.video_queue, body, "process_segment")
            sent += 1
        log.info("video planned as segments", extra={"segments": len(recorded), "announced": sent,
                                                     "segment_s": s.segment_s, "duration_s": round(info.duration_s, 1)})

    def _check_limits(self, info: VideoInfo) -> None:
        s = self.settings
        if info.width * info.height > s.max_video_pixels:
            raise BadMedia(f"video is {info.width}x{info.height}, over the max_video_pixels limit "
                           f"({s.max_video_pixels}); downscale it or raise the limit")
        if info.duration_s > s.max_video_duration_s:
            raise BadMedia(f"video lasts {info.duration_s:.0f} s, over the max_video_duration_s limit "
                           f"({s.max_video_duration_s:.0f} s); split it or raise the limit")

    def _emit(self, job: VideoJob, ft: FinishedTrack) -> None:
        s = self.settings
        offset = ft.best.ts_ms
        key = build_snapshot_key(job.workspace_id, job.video_id, job.workspace_code, job.camera_code, ft.track_id,
                                 offset, s.user_prefix)
        uri = build_snapshot_uri(s.bucket, key)
        snap, _ = letterbox(ft.crop, s.snapshot_size, s.letterbox_pad_value)
        jpeg = encode_jpeg(snap, s.jpeg_quality)
        self.s3.put_bytes(key, jpeg, "image/jpeg")
        at = detected_at(job.recorded_at, offset)
        status = insert_analysis_queued(self.db, video_id=job.video_id, workspace_id=job.workspace_id,
                                        track_id=ft.track_id, snapshot_uri=uri, detected_in_ms=offset, detected_at=at,
                                        yolo_type=ft.yolo_type, track_first_ms=ft.first_ts_ms,
                                        track_last_ms=ft.last_ts_ms, bbox=ft.best.box)
        if status != "queued":
            log.info("snapshot already analysed; not re-announced", extra={"track_id": ft.track_id, "status": status})
            return
        message = {"event": "SNAPSHOT_READY", "video_id": job.video_id, "workspace_id": job.workspace_id,
                   "workspace_code": job.workspace_code, "camera_code": job.camera_code, "track_id": ft.track_id,
                   "snapshot_s3_key": uri, "recordedAt": job.recorded_at, "detectedIn": offset, "detectedAt": at,
                   "yolo_type": ft.yolo_type}
        validate_snapshot_ready(message, s)  # never send what main_worker would reject
        self.sqs.send_json(s.snapshot_queue, message, "snapshot_ready")
        log.info("snapshot ready", extra={"track_id": ft.track_id, "detected_in_ms": offset,
                                          "frame_index": ft.best.frame_index,
                                          "yolo_type": ft.yolo_type, "bytes": len(jpeg), "hits": ft.hits})


def _stats_fields(stats: PipelineStats) -> dict:
    """The ``video done`` / ``segment done`` line's figures."""
    return {"frames_read": stats.frames_read, "frames_processed": stats.frames_processed,
            "frames_detected": stats.frames_detected, "frames_carried": stats.frames_carried,
            "snapshots": stats.tracks_emitted, "dropped_tracks": stats.tracks_dropped,
            "dropped_static_tracks": stats.tracks_dropped_static, "processed_fps": round(stats.fps, 1),
            "first_emit_s": None if stats.first_emit_s is None else round(stats.first_emit_s, 2),
            "first_emit_frames_grabbed": stats.first_emit_frames_grabbed,
            "decode_threads": stats.decode_threads, "duration_ms": round(stats.wall_s * 1e3, 1)}


def _segment_dict(g: Segment) -> dict:
    return {"index": g.index, "count": g.count, "start_frame": g.start_frame, "end_frame": g.end_frame,
            "warm_frame": g.warm_frame, "tail_frame": g.tail_frame, "first_track_id": g.first_track_id}


class VisibilityCap:
    """SQS's cap on a message's visibility (``visibility_cap_s``, 12 h from its receive): past it
    the heartbeat cannot extend it, and the message reappears on another worker and starts again.
    At each progress line the time the work will have taken (elapsed since the receive + the
    line's ETA for this segment or video) is checked against ``CAP_FRACTION`` of the cap; over
    it, the work stops with a permanent error that names the cap and the fix (it would only loop)."""

    CAP_FRACTION = 0.9  # room for the last snapshots' writes and the delete

    def __init__(self, settings: Settings, received: float, segment: Segment, info: VideoInfo):
        self.settings, self.received, self.segment, self.info = settings, received, segment, info

    def check(self, progress: dict) -> None:
        eta = progress.get("eta_s")
        if eta is None:
            return
        s = self.settings
        cap = s.visibility_cap_s
        elapsed = time.monotonic() - self.received
        projected = elapsed + float(eta)
        if projected <= self.CAP_FRACTION * cap:
            return
        seg, fps = self.segment, self.info.fps
        what = (describe(seg, fps) if seg.count > 1 else "this video")
        owned_s = ((seg.end_frame if seg.end_frame is not None else self.info.frame_count) - seg.start_frame) / fps \
            if fps > 0 else 0.0
        fit = max(1.0, owned_s * 0.75 * cap / projected) if owned_s > 0 else None
        advice = (f"set segment_s to {fit:.0f} s or less (now {s.segment_s:.0f} s; segments run in parallel on any "
                  "workers)" if fit is not None else "lower segment_s")
        raise PermanentError(
            f"{what} would take about {projected / 3600:.2f} h ({progress.get('processed_fps')} processed frames/s), "
            f"past SQS's visibility cap of {cap / 3600:.2f} h ({cap:.0f} s) from the message's receive "
            f"(visibility_cap_s): it "
            f"would reappear on another worker and start again; {advice}, raise frame_stride, or run a faster "
            "detector (a GPU, a smaller detector_imgsz)")


def _log_tracker_mode(settings: Settings) -> None:
    """Say once, at start-up, whether the tracker uses appearance (re-ID) or motion only; a
    BoT-SORT configured for re-ID weights it cannot use here (the spec's ``deepsort.engine``
    without a GPU, a missing file) is a WARNING: identities across occlusions are weaker."""
    use_reid, why = reid_status(settings)
    if use_reid or settings.tracker != "botsort":
        log.info("tracker ready", extra={"tracker": settings.tracker, "reid": use_reid, "why": why})
    else:
        log.warning("tracker re-ID unavailable here: motion-only", extra={"tracker": settings.tracker, "why": why})


def _missing_frames_tolerance(declared: int) -> int:
    """Frames a complete file may decode short of its declared count (edit lists, a dropped
    last frame): 2 or 1 %, whichever is larger."""
    return max(2, declared // 100)


def _ids_of(body: str) -> tuple[Optional[str], Optional[str]]:
    """``(video_id, workspace_id)`` of a video task that failed validation, where well-formed.

    Only PROCESS_VIDEO / PROCESS_VIDEO_DB / PROCESS_SEGMENT bodies name a video whose processing
    just failed; a foreign event that landed on this queue (a misrouted SNAPSHOT_READY) says
    nothing about the state of the video it mentions, so it leaves that row alone."""
    try:
        obj = json.loads(body)
        event, vid, wid = obj.get("event"), obj.get("video_id"), obj.get("workspace_id")
    except (ValueError, AttributeError):
        return None, None
    if event not in ("PROCESS_VIDEO", "PROCESS_VIDEO_DB", "PROCESS_SEGMENT"):
        return None, None
    ok = [v if isinstance(v, str) and is_uuid(v) else None for v in (vid, wid)]
    return ok[0], ok[1]


def _segment_of(body: str) -> Optional[int]:
    """The segment index of a PROCESS_SEGMENT body, where well-formed (None otherwise)."""
    try:
        obj = json.loads(body)
        index = obj["segment"]["index"] if obj.get("event") == "PROCESS_SEGMENT" else None
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
    return index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else None
