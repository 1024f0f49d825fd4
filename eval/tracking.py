"""Detector + tracker + best-frame selection on a generated clip, scored against its ground truth.

Runs the worker's own pipeline (``yolo_worker.pipeline.run_pipeline`` with the configured
detector and tracker), no S3/SQS/DB, and reports:

* MOT metrics (MOTA, IDF1, ID switches, precision, recall; motmetrics) over the processed
  frames, against ground-truth boxes at least ``min_visibility`` visible;
* snapshot-per-vehicle coverage: of the vehicles that were *countable* (at least
  ``min_visibility`` visible in at least ``min_frames`` processed frames), how many got
  exactly one snapshot, and how often the snapshot's ``yolo_type`` is the vehicle's type.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..worker_config import Settings
from .metrics import best_match, mot_metrics, snapshot_coverage


def countable_vehicles(gt, frames, min_visibility: float = 0.5, min_frames: int = 3) -> list[int]:
    """Vehicles at least ``min_visibility`` visible in at least ``min_frames`` of ``frames``."""
    seen: dict[int, int] = defaultdict(int)
    for f in frames:
        for vid, _box, vis in gt.boxes.get(f, []):
            if vis >= min_visibility:
                seen[vid] += 1
    return sorted(v for v, n in seen.items() if n >= min_frames)


def evaluate_tracking(video: str | Path, settings: Settings, stride: int = 3, detector=None,
                      min_visibility: float = 0.5, min_frames: int = 3) -> dict:
    from ..synth.clip import load_ground_truth
    from ..yolo_worker.detector import Detector
    from ..yolo_worker.pipeline import run_pipeline
    from ..yolo_worker.tracking import Tracker
    from ..yolo_worker.video import probe

    gt = load_ground_truth(video)
    info = probe(video)
    detector = detector or Detector(settings)
    tracker = Tracker(settings, (info.height, info.width))
    hyp: dict[int, list] = {}
    finished = []

    def on_tracks(frame_index: int, rows) -> None:
        hyp[frame_index] = [(tid, tuple(float(v) for v in det[:4])) for tid, det in rows]

    stats = run_pipeline(video, info, stride, settings, detector, tracker, emit=finished.append, on_tracks=on_tracks)
    frames = sorted(hyp)
    gt_frames = gt.per_frame(min_visibility)
    mot = mot_metrics(gt_frames, hyp, frames)
    vehicles = countable_vehicles(gt, frames, min_visibility, min_frames)
    all_boxes = gt.per_frame(0.0)
    snaps = [(ft.best.frame_index, ft.best.box) for ft in finished]
    cov = snapshot_coverage(all_boxes, snaps, vehicles)
    # yolo_type against the type of the vehicle each snapshot matched.
    typed = right = 0
    for ft in finished:
        vid, _iou = best_match(all_boxes.get(ft.best.frame_index, []), ft.best.box)
        if vid is not None:
            typed += 1
            right += gt.vehicles[vid]["type"] == ft.yolo_type
    return {"mot": mot, "coverage": cov, "yolo_type_accuracy": round(right / typed, 4) if typed else None,
            "frames_processed": stats.frames_processed, "frames_read": stats.frames_read, "stride": stride,
            "frames_detected": stats.frames_detected, "frames_carried": stats.frames_carried,
            "processed_fps": round(stats.fps, 1), "tracks_dropped": stats.tracks_dropped,
            "tracks_dropped_static": stats.tracks_dropped_static,
            "first_emit_s": None if stats.first_emit_s is None else round(stats.first_emit_s, 2),
            "wall_s": round(stats.wall_s, 2)}


def pooled_coverage(coverages: list[dict]) -> dict:
    """:func:`metrics.snapshot_coverage` results of several clips added up."""
    keys = ("vehicles", "snapshots", "exactly_one", "more_than_one", "missed", "unmatched_snapshots")
    out = {k: sum(c[k] for c in coverages) for k in keys}
    out["recall_exactly_one"] = round(out["exactly_one"] / out["vehicles"], 4) if out["vehicles"] else 1.0
    return out
