"""Quality metrics against ground truth (pure numpy + motmetrics).

Boxes are ``(x1, y1, x2, y2)`` pixels.  Ground truth and hypotheses are given per frame as
``{frame_index: [(object_id, box), ...]}``; only processed frames are scored.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

Box = Sequence[float]
PerFrame = Mapping[int, Sequence[tuple[int, Box]]]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N x 4) with every box in ``b`` (M x 4) -> N x M."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def mot_metrics(gt: PerFrame, hyp: PerFrame, frames: Iterable[int], iou_threshold: float = 0.5) -> dict:
    """MOTA, IDF1, ID switches, precision and recall (motmetrics) over ``frames``.

    The distance matrix is ``1 - IoU`` with pairs below ``iou_threshold`` unmatchable; it is
    computed here because motmetrics 1.4's ``iou_matrix`` uses ``np.asfarray`` (gone in NumPy 2).
    """
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for f in frames:
        g, h = list(gt.get(f, [])), list(hyp.get(f, []))
        d = 1.0 - iou_matrix([b for _, b in g], [b for _, b in h])
        d[d > 1.0 - iou_threshold] = np.nan
        acc.update([i for i, _ in g], [i for i, _ in h], d)
    summary = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches", "precision", "recall"],
                                          name="all")
    row = summary.loc["all"]
    return {"mota": round(float(row["mota"]), 4), "idf1": round(float(row["idf1"]), 4),
            "id_switches": int(row["num_switches"]), "precision": round(float(row["precision"]), 4),
            "recall": round(float(row["recall"]), 4)}


def best_match(rows: Sequence[tuple[int, Box]], box: Box, iou_threshold: float = 0.5) -> tuple[Optional[int], float]:
    """``(object id, IoU)`` of the row box that overlaps ``box`` best; the id is None when there
    are no rows or the best IoU is below ``iou_threshold``."""
    rows = list(rows)
    if not rows:
        return None, 0.0
    ious = iou_matrix([box], [b for _, b in rows])[0]
    j = int(np.argmax(ious))
    return (rows[j][0] if ious[j] >= iou_threshold else None), float(ious[j])


def snapshot_coverage(gt: PerFrame, snapshots: Sequence[tuple[int, Box]], vehicles: Iterable[int],
                      iou_threshold: float = 0.5) -> dict:
    """How many ground-truth vehicles are covered by exactly one snapshot.

    A snapshot ``(frame_index, box)`` covers the GT vehicle whose box in that frame overlaps it
    best, when IoU >= ``iou_threshold``.  Returns counts and ``recall_exactly_one`` (vehicles
    with exactly one snapshot / all vehicles), plus the snapshots that matched nothing.
    """
    covered: dict[int, int] = defaultdict(int)
    unmatched = 0
    for frame, box in snapshots:
        vid, _iou = best_match(gt.get(frame, []), box, iou_threshold)
        if vid is None:
            unmatched += 1
        else:
            covered[vid] += 1
    vehicles = list(vehicles)
    once = sum(1 for v in vehicles if covered.get(v, 0) == 1)
    return {"vehicles": len(vehicles), "snapshots": len(snapshots), "exactly_one": once,
            "more_than_one": sum(1 for v in vehicles if covered.get(v, 0) > 1),
            "missed": sum(1 for v in vehicles if covered.get(v, 0) == 0), "unmatched_snapshots": unmatched,
            "recall_exactly_one": round(once / len(vehicles), 4) if vehicles else 1.0}
