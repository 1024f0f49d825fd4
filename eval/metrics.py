"""Quality metrics against ground truth (pure numpy + motmetrics).

Boxes are ``(x1, y1, x2, y2)`` pixels.  Ground truth and hypotheses are given per frame as
``{frame_index: [(object_id, box), ...]}``; only processed frames are scored.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, Sequence

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
        g = list(gt.get(frame, []))
        if not g:
            unmatched += 1
            continue
        ious = iou_matrix([box], [b for _, b in g])[0]
        j = int(np.argmax(ious))
        if ious[j] >= iou_threshold:
            covered[g[j][0]] += 1
        else:
            unmatched += 1
    vehicles = list(vehicles)
    once = sum(1 for v in vehicles if covered.get(v, 0) == 1)
    return {"vehicles": len(vehicles), "snapshots": len(snapshots), "exactly_one": once,
            "more_than_one": sum(1 for v in vehicles if covered.get(v, 0) > 1),
            "missed": sum(1 for v in vehicles if covered.get(v, 0) == 0), "unmatched_snapshots": unmatched,
            "recall_exactly_one": round(once / len(vehicles), 4) if vehicles else 1.0}
