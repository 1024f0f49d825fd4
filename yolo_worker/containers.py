"""Container suppression: a detection that holds a more confident one is dropped (pure numpy).

Non-maximum suppression compares boxes by IoU, so a loose, less confident box around a vehicle
(or around two cars of a dense far queue) survives next to the vehicle's own box whenever the
two are unalike in size: their IoU is small although one lies almost wholly inside the other.
The tracker then holds two tracks of one vehicle, the vehicle gets two snapshots, and the loose
one is often the larger and wins the best-frame ranking.  With the real COCO detector on real
footage (YOLOX-Nano on canersu_highway, 1280x720): an oncoming car's own box at 0.59 sat 98 %
inside a loose box at 0.28 (IoU 0.47, under NMS's 0.5); the loose box kept the car's track and
the car's own box started a second one.

Rule: of two detections where the intersection covers at least ``MIN_COVER`` of the smaller
box, the larger one is dropped when it is less confident than the smaller.  A larger box that is
*more* confident (a truck, with a lower-scored box on its cab) stays, as does the smaller box.
"""
from __future__ import annotations

import numpy as np

MIN_COVER = 0.85  # intersection / smaller box's area from which the smaller counts as inside


def drop_containers(dets: np.ndarray, min_cover: float = MIN_COVER) -> np.ndarray:
    """``dets`` (``D x 6`` = ``x1, y1, x2, y2, conf, cls``, frame px) without each box that holds
    (``min_cover`` of) a smaller, more confident one; rows keep their order.  Classes are not
    compared: the loose box of a car is often scored as another class."""
    d = np.asarray(dets)
    if len(d) < 2:
        return d
    x1, y1, x2, y2, conf = (d[:, i].astype(np.float64) for i in range(5))
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    iw = np.clip(np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]), 0, None)
    inter = iw * ih  # [i, j]: box i's overlap with box j
    # holds[i, j]: box i is the larger and holds j (min_cover of j's area) and j is more confident
    holds = (area[:, None] > area[None, :]) & (inter >= min_cover * np.maximum(area[None, :], 1e-9)) \
        & (conf[None, :] > conf[:, None])
    keep = ~holds.any(axis=1)
    return d if keep.all() else d[keep]
