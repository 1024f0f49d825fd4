"""Annotated MP4 for debugging the tracker: boxes, track ids, taxonomy type, and the frame each
snapshot was taken from (thick red box, "SNAPSHOT").  Runs the same deterministic detector and
tracker as the worker, so ids and picks match the worker's run."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..worker_config import TAXONOMY, Settings
from .detector import Detector
from .pipeline import track_rows
from .track_ids import TrackIds
from .tracking import Tracker
from .video import FrameReader, probe


def _colour(track_id: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(track_id)
    return tuple(int(c) for c in rng.integers(60, 255, 3))


def annotate_video(video: Path, out: Path, settings: Settings, stride: int, picks: dict[int, int]) -> Path:
    """Write ``out`` (MP4) with one annotated frame per processed frame; ``picks`` = track -> offset ms."""
    info = probe(video)
    detector, tracker = Detector(settings), Tracker(settings, (info.height, info.width))
    ids = TrackIds(settings.track_max_age, frame_size=(info.width, info.height))  # as the pipeline does
    fps = max(1.0, (info.fps or 25.0) / stride)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (info.width, info.height))
    try:
        for step, frame in enumerate(FrameReader(video, stride), start=1):
            img = frame.image.copy()
            dets = detector.detect(frame.image)
            for track_id, det in ids.relabel(step, track_rows(dets, tracker.update(dets, frame.image))):
                x1, y1, x2, y2 = (int(v) for v in det[:4])
                picked = picks.get(track_id) == frame.ts_ms
                colour = (0, 0, 255) if picked else _colour(track_id)
                cv2.rectangle(img, (x1, y1), (x2, y2), colour, 4 if picked else 2)
                label = f"#{track_id} {TAXONOMY[int(det[5])]} {det[4]:.2f}" + (" SNAPSHOT" if picked else "")
                cv2.putText(img, label, (x1, max(12, y1 - 5)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
            cv2.putText(img, f"frame {frame.index}  {frame.ts_ms / 1000:.2f} s", (8, 18), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, (255, 255, 255), 1, cv2.LINE_AA)
            writer.write(img)
    finally:
        writer.release()
    return out
