"""Detect -> track -> best frame per track, streaming finished tracks out as the video is read.

No S3, SQS or SQL here: the caller hands in ``emit(FinishedTrack)`` and gets each track as
soon as it ends (lost for more than ``track_max_age`` processed frames) or, for tracks
still live, when the video ends.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np

from ..worker_config import Settings
from ..worker_utils.imaging import clamp_box, crop_with_margin, sharpness
from .selection import FinishedTrack, TrackBook, make_candidate
from .video import FrameReader, VideoInfo

log = logging.getLogger(__name__)


class DetectorLike(Protocol):
    """``detect(frame) -> D x 6``; a detector may also have ``prepare(width, height)``, called
    with the video's frame size before the first frame (the exported runtime's input size)."""

    def detect(self, frame: np.ndarray) -> np.ndarray: ...


class TrackerLike(Protocol):
    def update(self, dets: np.ndarray, frame: np.ndarray) -> np.ndarray: ...


@dataclass
class PipelineStats:
    frames_read: int = 0
    frames_processed: int = 0
    tracks_emitted: int = 0
    tracks_dropped: int = 0
    wall_s: float = 0.0
    first_emit_s: Optional[float] = None  # seconds from start to the first emitted track
    # How far the decoder had got (frames grabbed from the file) when the first track had been
    # emitted: below the video's frame count = snapshots flow out while the video is read.
    first_emit_frames_grabbed: Optional[int] = None

    @property
    def fps(self) -> float:
        return self.frames_processed / self.wall_s if self.wall_s > 0 else 0.0


def track_rows(dets: np.ndarray, tracks: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(track_id, detection row)`` for each confirmed track: boxes are the detector's own
    (the tracker's are Kalman-smoothed and may run off the vehicle), class and conf too."""
    rows = []
    for t in tracks:
        det_idx = int(t[7])
        if 0 <= det_idx < len(dets):
            rows.append((int(t[4]), dets[det_idx]))
    return rows


def run_pipeline(path: str | Path, info: VideoInfo, stride: int, settings: Settings, detector: DetectorLike,
                 tracker: TrackerLike, emit: Callable[[FinishedTrack], None],
                 check_cancelled: Callable[[], None] = lambda: None,
                 on_progress: Callable[[dict], None] = lambda _p: None,
                 on_tracks: Optional[Callable[[int, list[tuple[int, np.ndarray]]], None]] = None) -> PipelineStats:
    """Process ``path``; calls ``emit`` once per kept track, in order of track end.

    ``on_tracks(frame_index, [(track_id, detection row)])``, when given, sees every processed
    frame's confirmed tracks (evaluation, annotated video).
    """
    prepare = getattr(detector, "prepare", None)
    if prepare is not None and info.width > 0 and info.height > 0:
        prepare(info.width, info.height)  # export / load the runtime for this size (not timed)
    stats = PipelineStats()
    book = TrackBook(max_age=settings.track_max_age, min_hits=settings.min_track_hits)
    t0 = time.perf_counter()
    last_report = t0
    reader = FrameReader(path, stride)

    def _emit(finished: list[FinishedTrack]) -> None:
        for ft in finished:
            emit(ft)
            stats.tracks_emitted += 1
            if stats.first_emit_s is None:
                stats.first_emit_s = time.perf_counter() - t0
                stats.first_emit_frames_grabbed = reader.frames_grabbed

    for step, frame in enumerate(reader, start=1):
        check_cancelled()
        img = frame.image
        h, w = img.shape[:2]
        dets = detector.detect(img)
        tracks = tracker.update(dets, img)
        rows = track_rows(dets, tracks)
        if on_tracks is not None:
            on_tracks(frame.index, rows)
        for track_id, det in rows:
            x1, y1, x2, y2 = clamp_box(det[:4], w, h)
            cand = make_candidate(frame.index, frame.ts_ms, det[:4], det[4], int(det[5]),
                                  sharpness(img[y1:y2, x1:x2]), w, h)
            book.observe(step, cand, track_id, lambda box, img=img: crop_with_margin(img, box, settings.crop_margin))
        _emit(book.expire(step))
        stats.frames_processed = step
        now = time.perf_counter()
        if now - last_report >= settings.progress_interval_s:
            last_report = now
            on_progress(_progress(stats, reader.frames_read, info, len(book.live), now - t0))
    _emit(book.flush())
    stats.frames_read = reader.frames_read
    stats.tracks_dropped = book.dropped
    stats.wall_s = time.perf_counter() - t0
    return stats


def _progress(stats: PipelineStats, frames_read: int, info: VideoInfo, live: int, elapsed: float) -> dict:
    fps = stats.frames_processed / elapsed if elapsed > 0 else 0.0
    total = info.frame_count
    eta = (total - frames_read) / max(frames_read / elapsed, 1e-9) if total and elapsed > 0 else None
    return {"frames_read": frames_read, "frames_total": total or None, "processed_fps": round(fps, 1),
            "live_tracks": live, "snapshots_sent": stats.tracks_emitted,
            "pct": round(100.0 * frames_read / total, 1) if total else None,
            "eta_s": round(eta, 1) if eta is not None else None}
