"""Container and part suppression: loose boxes around a vehicle and boxes on a part of one go (pure numpy).

Non-maximum suppression compares boxes by IoU, so a loose, less confident box around a vehicle
(or around two cars of a dense far queue) survives next to the vehicle's own box whenever the
two are unalike in size: their IoU is small although one lies almost wholly inside the other.
The tracker then holds two tracks of one vehicle, the vehicle gets two snapshots, and the loose
one is often the larger and wins the best-frame ranking.  With the real COCO detector on real
footage (YOLOX-Nano on canersu_highway, 1280x720): an oncoming car's own box at 0.59 sat 98 %
inside a loose box at 0.28 (IoU 0.47, under NMS's 0.5); the loose box kept the car's track and
the car's own box started a second one.

The opposite case, **parts**: a box on one part of a vehicle (the rear of a receding car or
lorry, seen from behind) inside the vehicle's whole box, of the same class and much less sure.
It too starts a second track: on 4ku_traffic (1280x720, a motorway seen from an overpass) the
rear of a lorry at 0.34 inside the lorry's box at 0.58, and rear boxes of receding cars.

Rules, for two detections where the intersection covers at least ``MIN_COVER`` of the smaller box:

* the larger is dropped when it is less confident than the smaller (a loose box, whatever the
  classes: the loose box of a car is often scored as another class);
* the smaller is dropped when it has the larger's class and is more than ``PART_GAP`` less
  confident (a part).  Of another class it stays: a motorcycle beside a light truck or a car in
  front of a bus lies inside the larger box too (on the generated clips, the one vehicle this rule
  lost without the class test was such a motorcycle).

Measured (YOLOX-Nano, stride 3, AMD EPYC with AVX-512 BF16): canersu_highway 26 -> 27 of 30
vehicles with exactly one snapshot (loose boxes); 4ku_traffic 66 -> 71 of 78 (parts); the MIT clip
(15 of 15) and nine generated clips (149 of 159, the demo detector) unchanged.
"""
from __future__ import annotations

import numpy as np

MIN_COVER = 0.85  # intersection / smaller box's area from which the smaller counts as inside
PART_GAP = 0.2  # a part is this much less sure than the whole (4ku, before the class test: 0.1-0.2 gave 72 of 78, 0.3 68, 0.4 66)


def drop_containers(dets: np.ndarray, min_cover: float = MIN_COVER, part_gap: float = PART_GAP) -> np.ndarray:
    """``dets`` (``D x 6`` = ``x1, y1, x2, y2, conf, cls``, frame px) without each box that holds
    (``min_cover`` of) a smaller, more confident one, and without each box that lies inside a
    larger one of its class more than ``part_gap`` surer (module docstring); rows keep their order."""
    d = np.asarray(dets)
    if len(d) < 2:
        return d
    x1, y1, x2, y2, conf = (d[:, i].astype(np.float64) for i in range(5))
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    iw = np.clip(np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]), 0, None)
    inter = iw * ih  # [i, j]: box i's overlap with box j
    # inside[i, j]: box i is the larger and holds min_cover of box j's area
    inside = (area[:, None] > area[None, :]) & (inter >= min_cover * np.maximum(area[None, :], 1e-9))
    holds = inside & (conf[None, :] > conf[:, None])  # i holds a surer j: i goes
    same = d[:, 5][:, None] == d[:, 5][None, :]
    part = inside & same & (conf[:, None] > conf[None, :] + part_gap)  # j is a much less sure part of i: j goes
    keep = ~holds.any(axis=1) & ~part.any(axis=0)
    return d if keep.all() else d[keep]
