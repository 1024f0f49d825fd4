"""Score a finished job's rows (``repository.list_analyses``) against a generated clip's ground truth.

Each snapshot is matched to the ground-truth vehicle whose box overlaps its ``bbox`` best in the
frame at ``detected_in_ms`` (IoU >= 0.5).  Reported: snapshot-per-vehicle coverage over the
countable vehicles (``eval.tracking.countable_vehicles``), yolo_type accuracy, and the baseline
variant's Type/Make/Model, base colour and plate accuracy over the matched snapshots.
"""
from __future__ import annotations

from typing import Optional

from .metrics import best_match, snapshot_coverage
from .tracking import countable_vehicles


def frame_of(ms: int, fps: float) -> int:
    return int(round(ms * fps / 1000.0))


def match_snapshots(analyses: list[dict], gt, fps: float, iou_threshold: float = 0.5) -> list[tuple[dict, Optional[int]]]:
    """``(analysis, vehicle_id or None)`` for each analysis (None without a box or a match)."""
    boxes = gt.per_frame(0.0)
    return [(a, best_match(boxes.get(frame_of(a["detected_in_ms"], fps), []), a["bbox"], iou_threshold)[0]
             if a.get("bbox") else None) for a in analyses]


def score_analyses(analyses: list[dict], gt, fps: float, stride: int, variant: str = "baseline") -> dict:
    frames = range(0, gt.frames, stride)
    vehicles = countable_vehicles(gt, frames)
    snaps = [(frame_of(a["detected_in_ms"], fps), a["bbox"]) for a in analyses if a.get("bbox")]
    cov = snapshot_coverage(gt.per_frame(0.0), snaps, vehicles)
    matched = [(a, gt.vehicles[v]) for a, v in match_snapshots(analyses, gt, fps) if v is not None]
    hits = {"yolo_type": 0, "type": 0, "make": 0, "model": 0, "color_base": 0, "plate": 0}
    scored = {k: 0 for k in hits}
    for a, truth in matched:
        scored["yolo_type"] += 1
        hits["yolo_type"] += a["yolo_type"] == truth["type"]
        r = next((x for x in a.get("results") or [] if x["variant"] == variant), None)
        if r is None:
            continue
        for k in ("type", "make", "model"):
            scored[k] += 1
            hits[k] += r.get(k) == truth[k]
        if r.get("colors"):
            scored["color_base"] += 1
            hits["color_base"] += r["colors"][0]["base"] == truth["color"]["base"]
        scored["plate"] += 1
        hits["plate"] += (r.get("plate") or "") == truth["plate"]
    acc = {f"{k}_accuracy": (round(hits[k] / scored[k], 4) if scored[k] else None) for k in hits}
    return {"coverage": cov, "matched_snapshots": len(matched), **acc}
