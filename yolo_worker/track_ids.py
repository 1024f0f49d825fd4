"""The worker's own track ids: dense per video, and split where the tracker hands an id over.

The tracker (BoT-SORT / ByteTrack, with buffered IoU, see ``tracking.py``) keeps a lost track
alive for ``track_max_age`` frames and matches it against new detections by IoU.  At a frame
edge this hands the id of a vehicle that just left to a vehicle that enters there in another
lane, often moving the other way: on the dense 12.5 fps test clip four of the seven vehicles
without a snapshot had lost theirs this way (the merged track's best frame showed the newcomer,
and the leaver got nothing).

:class:`TrackIds` relabels every confirmed track row before selection sees it:

* ids are the worker's own, 1, 2, 3 ... in order of first appearance in the video (the
  tracker's ids skip the numbers of tentative tracks it never confirmed);
* a tracker id whose next box breaks with its own motion, shape *and* lane gets a new id from
  there on: **motion** -- the box's IoU with where the track's recent velocity (over its last
  ``HISTORY`` boxes) puts it is under ``MIN_MOTION_IOU`` (0.45); **shape** -- its height
  changed by ``MAX_HEIGHT_RATIO`` (1.45x) or more; **lane** -- its foot point (the bottom centre,
  where the vehicle meets the road) is at least ``MIN_LANE_SHIFT`` (0.5) of the old box's height
  off the track's path, measured across the track's own motion (:func:`path_axes`), from where
  the motion puts it.  Any one of these happens to a single vehicle (a fast motorcycle, a
  box cut by the frame edge or briefly covering a neighbour); all three together almost only
  when the id moved to a vehicle in another lane.  At the frame's side edge one sign is
  enough: a track whose last box touches the left or right edge while moving out there, and whose
  next box is ``EDGE_LANE_SHIFT`` (0.35) of a box height off its lane line, was handed to a
  vehicle entering there (a leaving vehicle, cut by the edge, changes its width, not its lane).
  The older part then ends like any lost track (after ``track_max_age``) and keeps its own best
  frame; the newer part is a track of its own;

* the opposite mistake, **fragmentation**: a vehicle hidden for a few frames (behind a bus, a
  queue of motorcycles) often slows or stops meanwhile; the tracker's Kalman prediction runs on
  at the old speed, misses it when it reappears and starts a new id, and the vehicle gets two
  snapshots.  A new tracker id is *stitched* to a worker id lost at most ``max_age`` frames ago
  (:func:`is_continuation`) when its first box is where that vehicle could be now: in its lane
  (foot points within ``STITCH_LANE`` = 0.35 of the box height across its motion), of its height
  (within ``STITCH_HEIGHT_RATIO`` = 1.3x), and along its path between where it was last seen and
  where its recent velocity puts it (with ``STITCH_MARGIN`` = half the box's extent along the path
  either side).  Boxes at
  the frame edge are never stitched: that is where vehicles leave and others enter.  Of several
  lost tracks the one nearest along its path wins; each is stitched at most once.

Measured on nine unseen generated clips (seeds 500202-500210: 30 s, 640x360, 12.5 fps, 15
vehicles a minute, stride 1, the demo detector): the hand-over split took vehicles with exactly
one snapshot from 209 to 214 of 232 (0.90 -> 0.92; on the dense clip of
tests/yolo_worker/test_worker_e2e.py 27 -> 31 of 36).  With the third-stage detector, stitching
and the edge rule (and selection's confidence gate) took 217 to 223 of 232, and 194 to 197 of 208
on nine clips never used to tune them (seeds 500211-500219); 224 with association on IoU alone.

Pure: numpy and plain data, no I/O.  "At the frame edge" is selection's border test
(:func:`selection.touches_border`, within ``BORDER_PX``).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .selection import BORDER_PX, touches_border

MIN_MOTION_IOU = 0.45
MAX_HEIGHT_RATIO = 1.45
MIN_LANE_SHIFT = 0.5  # of the box height: how far the foot point must be off the path to be another lane
HISTORY = 4  # boxes kept per track for its velocity
STITCH_LANE = 0.35  # of the box height: foot points this close across the motion are one lane
STITCH_HEIGHT_RATIO = 1.3
STITCH_MARGIN = 0.5  # of the box width, either side of the stretch from last seen to predicted
EDGE_LANE_SHIFT = 0.35  # of the box height: a leaver's id given to a newcomer in another lane


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``(x1, y1, x2, y2)`` boxes (pixels)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def predicted_box(history: Sequence[tuple[int, np.ndarray]], step: int) -> np.ndarray:
    """Where a track's last box moves by ``step`` at its recent velocity (box corners per
    processed frame, from the oldest to the newest of ``history`` = ``[(step, box)]``)."""
    s_last, last = history[-1]
    s_first, first = history[0]
    if s_last == s_first:
        return last
    velocity = (last - first) / (s_last - s_first)
    return last + velocity * (step - s_last)


MIN_PATH_SPEED = 0.5  # px per processed frame: a slower track has no direction; its lanes run across the image


def foot(box: np.ndarray) -> np.ndarray:
    """The bottom-centre point of ``(x1, y1, x2, y2)``: where the vehicle meets the road."""
    return np.array([(box[0] + box[2]) / 2, box[3]], dtype=np.float64)


def path_axes(history: Sequence[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """``(along, across)``: unit vectors along the track's recent motion (of its foot point, over
    ``history``) and across it.  A track moving slower than ``MIN_PATH_SPEED`` moves along the
    image rows (x, y).

    Why the motion's own axes: a lane runs along the vehicle's path.  On the generated scenes (and
    a camera looking across a road) paths are near horizontal and "another lane" is a bottom edge
    off vertically; on a camera looking along the road (an overpass, a pole over the carriageway)
    vehicles come at the camera diagonally, and an approaching car's bottom edge moves down the
    image every frame in its own lane.  Measured on 4ku_traffic (1280x720, YOLOX-Nano, stride 3):
    with the vertical test, the split rule cut oncoming cars in two where one box was partial
    (a car at 55 px then 85 px tall, 36 px below the vertical prediction, 15 px off its path)."""
    (s0, b0), (s1, b1) = history[0], history[-1]
    if s1 != s0:
        v = (foot(b1) - foot(b0)) / (s1 - s0)
        speed = float(np.hypot(*v))
        if speed >= MIN_PATH_SPEED:
            along = v / speed
            return along, np.array([-along[1], along[0]])
    return np.array([1.0, 0.0]), np.array([0.0, 1.0])


def lane_offset(history: Sequence[tuple[int, np.ndarray]], ref: np.ndarray, box: np.ndarray) -> float:
    """How far ``box``'s foot point lies off the track's path through ``ref``'s (px, across the motion)."""
    _along, across = path_axes(history)
    return abs(float((foot(box) - foot(ref)) @ across))


def is_handover(history: Sequence[tuple[int, np.ndarray]], step: int, box: np.ndarray,
                min_iou: float = MIN_MOTION_IOU, max_height_ratio: float = MAX_HEIGHT_RATIO) -> bool:
    """True when ``box`` at ``step`` breaks with the track's motion and shape (see the module
    docstring); ``history`` holds the track's last boxes, oldest first."""
    last = history[-1][1]
    h0, h1 = float(last[3] - last[1]), float(box[3] - box[1])
    if min(h0, h1) <= 0:
        return False
    if max(h0, h1) / min(h0, h1) < max_height_ratio:
        return False
    pred = predicted_box(history, step)
    # another lane: the foot point (where the vehicle meets the road) is off the path by half a box
    return box_iou(pred, box) < min_iou and lane_offset(history, pred, box) >= MIN_LANE_SHIFT * h0


def continuation_gap(history: Sequence[tuple[int, np.ndarray]], step: int, box: np.ndarray) -> float | None:
    """How far (in box widths, along the track's path) ``box`` at ``step`` is from where the lost
    track of ``history`` would be now, when it could be that vehicle (see the module docstring);
    None when it cannot."""
    last = history[-1][1]
    h0, h1 = float(last[3] - last[1]), float(box[3] - box[1])
    w0 = float(last[2] - last[0])
    if min(h0, h1, w0) <= 0 or max(h0, h1) / min(h0, h1) > STITCH_HEIGHT_RATIO:
        return None
    along, across = path_axes(history)
    if abs(float((foot(box) - foot(last)) @ across)) > STITCH_LANE * h0:
        return None
    pred = predicted_box(history, step)
    length = abs(w0 * along[0]) + abs(h0 * along[1])  # the box's extent along the path: its width on a level one
    p, p_pred = float((foot(box) - foot(last)) @ along), float((foot(pred) - foot(last)) @ along)
    lo, hi = min(0.0, p_pred) - STITCH_MARGIN * length, max(0.0, p_pred) + STITCH_MARGIN * length
    if not lo <= p <= hi:
        return None
    return abs(p - p_pred) / length


def is_continuation(history: Sequence[tuple[int, np.ndarray]], step: int, box: np.ndarray) -> bool:
    return continuation_gap(history, step, box) is not None


def lane_shift(history: Sequence[tuple[int, np.ndarray]], step: int, box: np.ndarray) -> float:
    """How far ``box``'s foot point is off the track's path from where its motion puts it, in its
    last box's heights (:func:`lane_offset`)."""
    last = history[-1][1]
    h0 = float(last[3] - last[1])
    return lane_offset(history, predicted_box(history, step), box) / h0 if h0 > 0 else 0.0


@dataclass
class _Track:
    out_id: int | None  # None: the id went to the track it was stitched to; if this one returns, it gets a new id
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))  # (step, box), never empty once seen


class TrackIds:
    """``relabel(step, rows)`` for each processed frame, in order; one instance per video."""

    def __init__(self, max_age: int, min_iou: float = MIN_MOTION_IOU, max_height_ratio: float = MAX_HEIGHT_RATIO,
                 frame_size: tuple[int, int] | None = None, stitch: bool = True, first_id: int = 1):
        """``frame_size`` (width, height) in pixels: boxes at its edge are never stitched (unknown:
        every box is inside); ``first_id``: the first id given (a segment's, segments.py)."""
        self.max_age = max_age
        self.min_iou, self.max_height_ratio = min_iou, max_height_ratio
        self.frame_size, self.stitch = frame_size, stitch
        self._tracks: dict[int, _Track] = {}
        self._next = first_id
        self.handovers = 0  # splits made, for logs and tests
        self.stitched = 0  # fragments joined, for logs and tests

    def _at_edge(self, box: np.ndarray) -> bool:
        return self.frame_size is not None and touches_border(box, *self.frame_size)

    def _left_at_edge(self, history) -> bool:
        """The track's last box touches the left or right frame edge and it was moving out there."""
        if self.frame_size is None or len(history) < 2:
            return False
        first, last = history[0][1], history[-1][1]  # (step, box) pairs
        vx = (last[0] + last[2] - first[0] - first[2]) / 2
        return bool((last[0] <= BORDER_PX and vx < 0) or (last[2] >= self.frame_size[0] - BORDER_PX and vx > 0))

    def _stitch_to(self, step: int, box: np.ndarray, present: set[int]) -> _Track | None:
        """The lost track a new tracker id's first ``box`` continues, or None."""
        if not self.stitch or self._at_edge(box):
            return None
        live_ids = {self._tracks[k].out_id for k in present if k in self._tracks}
        best, best_gap = None, None
        for tracker_id, t in self._tracks.items():
            last_step, last = t.history[-1]
            if (tracker_id in present or t.out_id is None or t.out_id in live_ids
                    or not 0 < step - last_step <= self.max_age or self._at_edge(last)):
                continue
            gap = continuation_gap(t.history, step, box)
            if gap is not None and (best_gap is None or gap < best_gap):
                best, best_gap = t, gap
        return best

    @property
    def next_id(self) -> int:
        """The id the next new track will get."""
        return self._next

    def _new_id(self) -> int:
        out, self._next = self._next, self._next + 1
        return out

    def relabel(self, step: int, rows: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
        """``[(tracker id, D x 6 detection row)]`` of processed frame ``step`` -> the same rows
        with the worker's ids."""
        out = []
        present = {tracker_id for tracker_id, _ in rows}
        for tracker_id, det in rows:
            box = np.asarray(det[:4], dtype=np.float64)
            t = self._tracks.get(tracker_id)
            if t is None:
                lost = self._stitch_to(step, box, present)
                if lost is not None:  # the lost vehicle, found again: its id and its motion
                    t = self._tracks[tracker_id] = _Track(lost.out_id, deque(lost.history, maxlen=HISTORY))
                    lost.out_id = None
                    self.stitched += 1
                else:
                    t = self._tracks[tracker_id] = _Track(self._new_id())
            elif t.out_id is None:  # its id went to a stitched track meanwhile
                t.out_id = self._new_id()
                t.history.clear()
            elif (is_handover(t.history, step, box, self.min_iou, self.max_height_ratio)
                  or (self._left_at_edge(t.history) and lane_shift(t.history, step, box) >= EDGE_LANE_SHIFT)):
                t.out_id = self._new_id()
                t.history.clear()
                self.handovers += 1
            t.history.append((step, box))
            out.append((t.out_id, det))
        # forget tracker ids the tracker has dropped too (lost longer than its max age)
        for tracker_id in [k for k, t in self._tracks.items() if step - t.history[-1][0] > self.max_age + 1]:
            del self._tracks[tracker_id]
        return out
