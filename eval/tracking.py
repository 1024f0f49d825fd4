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


def per_vehicle_snapshots(gt, finished) -> dict[int, int]:
    """Snapshots per ground-truth vehicle (the best IoU >= 0.5 match at the snapshot's frame)."""
    all_boxes = gt.per_frame(0.0)
    out: dict[int, int] = defaultdict(int)
    for ft in finished:
        vid, _iou = best_match(all_boxes.get(ft.best.frame_index, []), ft.best.box)
        if vid is not None:
            out[vid] += 1
    return dict(out)


def compare_segmented(video: str | Path, settings: Settings, stride: int = 3, detector=None,
                      min_visibility: float = 0.5, min_frames: int = 3) -> dict:
    """The video processed whole and as the segments ``settings`` plans for it
    (``segment_s``, ``segment_warmup_s``, ``segment_tail_s``; yolo_worker/segments.py), one after
    the other in this process, each segment on a fresh tracker as another worker would run it.

    Returns each run's snapshot coverage against the ground truth (countable vehicles as in
    :func:`evaluate_tracking`, from the whole run's processed frames), the vehicles whose
    snapshot count differs between the two (``differ``: id -> (whole, segmented)), of those the
    ones with exactly one in the whole run and two or more (``doubled``) or none (``lost``)
    segmented, the track ids (unique across the segments?), and frames processed: the whole
    run's and the segments' (warm-up and tail included)."""
    from ..synth.clip import load_ground_truth
    from ..yolo_worker.detector import Detector
    from ..yolo_worker.pipeline import run_pipeline
    from ..yolo_worker.segments import WHOLE, plan_segments
    from ..yolo_worker.tracking import Tracker
    from ..yolo_worker.video import probe

    gt = load_ground_truth(video)
    info = probe(video)
    detector = detector or Detector(settings)
    segments = plan_segments(info.frame_count, info.fps, stride, settings.segment_s, settings.segment_warmup_s,
                             settings.segment_tail_s, settings.track_max_age + 1)
    runs: dict[str, dict] = {}
    for name, plan in (("whole", [WHOLE]), ("segmented", segments)):
        finished: list = []
        frames: set[int] = set()
        processed = 0
        for seg in plan:
            tracker = Tracker(settings, (info.height, info.width))
            stats = run_pipeline(video, info, stride, settings, detector, tracker, emit=finished.append,
                                 on_tracks=lambda f, _rows: frames.add(f), segment=seg)
            processed += stats.frames_processed
        runs[name] = {"finished": finished, "frames": frames, "processed": processed}
    vehicles = countable_vehicles(gt, sorted(runs["whole"]["frames"]), min_visibility, min_frames)
    all_boxes = gt.per_frame(0.0)
    out: dict = {"segment_count": len(segments)}
    for name, run in runs.items():
        out[name] = {"coverage": snapshot_coverage(all_boxes, [(ft.best.frame_index, ft.best.box)
                                                                for ft in run["finished"]], vehicles),
                     "frames_processed": run["processed"],
                     "track_ids": sorted(ft.track_id for ft in run["finished"])}
    a, b = (per_vehicle_snapshots(gt, runs[k]["finished"]) for k in ("whole", "segmented"))
    out["differ"] = {v: (a.get(v, 0), b.get(v, 0)) for v in sorted(set(a) | set(b)) if a.get(v, 0) != b.get(v, 0)}
    # A vehicle the whole run gave exactly one snapshot, that the segments gave two or none: what
    # a boundary did to a vehicle tracked cleanly.  (Where the whole run itself switched or
    # stitched ids, the segments' trackers, with another history, may switch elsewhere.)
    out["doubled"] = [v for v, (n, m) in out["differ"].items() if n == 1 and m > 1]
    out["lost"] = [v for v, (n, m) in out["differ"].items() if n == 1 and m == 0]
    return out
