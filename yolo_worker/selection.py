"""Best frame per track: pure ranking and the per-track book-keeping (no I/O, no SQL).

Candidates are compared in the spec's priority order, with tolerances so that noise in
one criterion does not override the next one:

0. **border**: a box cut by the frame edge loses to one that is not, before anything else: a
   cut-off vehicle is a poor snapshot however large.  Cut (:func:`cut_by_edge`): within
   ``EDGE_FRAC`` (1 %) of the frame's shorter side of an edge (at least ``BORDER_PX``), or within
   ``ZONE_FRAC`` (3 %) of it while that side of the box moved towards the edge since the track's
   last box.  Relative, because a detector's box of a vehicle
   running out of the picture ends a few pixels short of the edge, more pixels the larger the
   frame: with a real COCO detector on real footage, oncoming cars' biggest boxes ended 3-10 px
   short of the bottom of 640x360-1280x720 frames while the vehicle was already cut off, and
   ``BORDER_PX`` alone took them as whole views;
0b. **oversized**: a box more than ``OVERSIZE`` (1.8x) the median area of the track's last
   ``SIZE_HISTORY`` boxes not touching the border loses to one that is not: a sudden jump in size is the detector
   merging the vehicle with the one beside or in front of it, and "largest first" would pick
   exactly that merged box (steady growth of an approaching vehicle stays under the factor);
0c. **much less sure**: a box whose confidence is more than ``CONF_GATE`` (0.3) below the
   other's loses: the detector is unsure of the boxes that merge a vehicle with its neighbour
   (two motorcycles side by side in one box, at 0.3 where each alone scores 0.8), and "largest
   first" would again pick exactly that box (on nine unseen clips: 219 -> 220 of 232 vehicles
   with exactly one snapshot, none lost);
1. **area**: larger wins unless the two are within ``AREA_TOL`` (10 %) of the larger;
2. **conf**: higher wins unless within ``CONF_TOL`` (0.05);
3. **sharpness** (variance of Laplacian): higher wins unless within ``SHARP_TOL`` (10 %);
4. **center**: closer to the frame centre wins unless the distances (as fractions of the
   half-diagonal) are within ``CENTER_TOL`` (0.05);
5. **earlier** frame wins.

**Static tracks.**  A track whose box centre stayed within ``STATIC_SHIFT`` (0.3) of its first
box's size (its longer side) for at least ``STATIC_MIN_S`` (0.5 s) of video is *static*: a
parked vehicle, or a static false positive.  A static track is emitted only when its most
confident detection reached ``static_min_conf``: with a real COCO detector on real footage the
false ones (painted arrows and a sign at 0.13-0.30, one for 21 s; one spot of a dense far queue
where cars stream through a box that stays put, 0.27-0.37) never did, while a parked vehicle in
view scores well above it.  A track too short to judge (under ``STATIC_MIN_S``, such as a car
that comes into view just before the clip ends) is not judged.

A track keeps only its current best candidate *and its crop* (never a whole frame), so
memory is bounded by the number of live tracks, not by video length.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from ..worker_config import TAXONOMY

BORDER_PX = 2.0    # the least distance to an edge that counts as touching it, px
EDGE_FRAC = 0.01   # touching: within this fraction of the frame's shorter side (3.6 px at 360, 7.2 at 720)
ZONE_FRAC = 0.03   # approaching: within this fraction and moving towards the edge (10.8 px at 360)
AREA_TOL = 0.10
CONF_TOL = 0.05
SHARP_TOL = 0.10
CENTER_TOL = 0.05
OVERSIZE = 1.8
CONF_GATE = 0.3
SIZE_HISTORY = 9
STATIC_SHIFT = 0.3   # a static track's centre stays within this x its first box's longer side
STATIC_MIN_S = 0.5   # of video, at least, before a track can be called static


@dataclass(frozen=True)
class Candidate:
    """One detection of a track in one processed frame.

    ``box`` is ``(x1, y1, x2, y2)`` in full-resolution frame pixels; ``center_dist`` is the box
    centre's distance to the frame centre as a fraction of the half-diagonal (0 = centre, 1 =
    corner); ``ts_ms`` is the frame's timestamp.
    """

    frame_index: int
    ts_ms: int
    box: tuple[float, float, float, float]
    conf: float
    cls: int
    sharpness: float
    touches_border: bool
    center_dist: float
    oversized: bool = False  # set by TrackBook from the track's recent box sizes
    frame_size: tuple[int, int] = (0, 0)  # (W, H) px of the frame; (0, 0) unknown: no approach test

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def touches_border(box: Sequence[float], frame_w: float, frame_h: float, margin: float = BORDER_PX) -> bool:
    """``(x1, y1, x2, y2)`` within ``margin`` px (``BORDER_PX``) of the frame's edge: cut off,
    leaving or entering."""
    x1, y1, x2, y2 = box[:4]
    return bool(x1 <= margin or y1 <= margin or x2 >= frame_w - margin or y2 >= frame_h - margin)


def cut_by_edge(box: Sequence[float], frame_w: float, frame_h: float,
                prev: Optional[Sequence[float]] = None) -> bool:
    """Whether ``(x1, y1, x2, y2)`` (frame px) shows a vehicle cut by the frame edge (pure).

    Touching: a side within ``max(BORDER_PX, EDGE_FRAC x the shorter side)`` of its edge.
    Approaching: with ``prev``, the track's previous box, a side within ``ZONE_FRAC x the shorter
    side`` of its edge that moved towards it since ``prev`` (a box standing still there, a parked
    vehicle's, is a whole view; one moving away has just come in whole)."""
    short = min(frame_w, frame_h)
    touch, zone = max(BORDER_PX, EDGE_FRAC * short), ZONE_FRAC * short
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    gaps = (x1, y1, frame_w - x2, frame_h - y2)
    if min(gaps) <= touch:
        return True
    if prev is None:
        return False
    px1, py1, px2, py2 = (float(v) for v in prev[:4])
    towards = (px1 - x1, py1 - y1, x2 - px2, y2 - py2)  # px each side moved towards its edge
    return any(m > 0 and g <= zone for g, m in zip(gaps, towards))


def make_candidate(frame_index: int, ts_ms: int, box: Iterable[float], conf: float, cls: int, sharpness: float,
                   frame_w: int, frame_h: int) -> Candidate:
    x1, y1, x2, y2 = (float(v) for v in box)
    border = cut_by_edge((x1, y1, x2, y2), frame_w, frame_h)  # TrackBook adds the approach test
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_diag = float(np.hypot(frame_w / 2, frame_h / 2)) or 1.0
    dist = float(np.hypot(cx - frame_w / 2, cy - frame_h / 2)) / half_diag
    return Candidate(frame_index, int(ts_ms), (x1, y1, x2, y2), float(conf), int(cls), float(sharpness), border, dist,
                     frame_size=(int(frame_w), int(frame_h)))


def _rel_close(a: float, b: float, tol: float) -> bool:
    hi = max(abs(a), abs(b))
    return hi == 0 or abs(a - b) <= tol * hi


def is_better(a: Candidate, b: Candidate) -> bool:
    """True when ``a`` should replace ``b`` as the track's best candidate."""
    if a.touches_border != b.touches_border:
        return not a.touches_border
    if a.oversized != b.oversized:
        return not a.oversized
    if abs(a.conf - b.conf) > CONF_GATE:
        return a.conf > b.conf
    if not _rel_close(a.area, b.area, AREA_TOL):
        return a.area > b.area
    if abs(a.conf - b.conf) > CONF_TOL:
        return a.conf > b.conf
    if not _rel_close(a.sharpness, b.sharpness, SHARP_TOL):
        return a.sharpness > b.sharpness
    if abs(a.center_dist - b.center_dist) > CENTER_TOL:
        return a.center_dist < b.center_dist
    return a.frame_index < b.frame_index


@dataclass
class TrackState:
    """What is kept for one live track: counts, the class vote and the best candidate's crop."""

    track_id: int
    first_frame: int
    first_ts_ms: int
    last_frame: int
    last_ts_ms: int
    last_seen_step: int
    hits: int = 0
    class_votes: Counter = field(default_factory=Counter)
    best: Optional[Candidate] = None
    best_crop: Optional[np.ndarray] = None  # H x W x 3 uint8, cut from the full-resolution frame
    recent_areas: deque = field(default_factory=lambda: deque(maxlen=SIZE_HISTORY))  # px^2, bounded
    last_box: Optional[tuple[float, float, float, float]] = None  # the previous observation's, frame px
    first_box: Optional[tuple[float, float, float, float]] = None  # the first observation's, frame px
    max_shift: float = 0.0  # px, the farthest the box centre got from the first box's centre
    peak_conf: float = 0.0  # the most confident detection of the track

    def observe_motion(self, box: Sequence[float], conf: float) -> None:
        """Fold one observation's box (frame px) and confidence into the static test's figures."""
        if self.first_box is None:
            self.first_box = tuple(float(v) for v in box[:4])  # type: ignore[assignment]
        fx1, fy1, fx2, fy2 = self.first_box  # type: ignore[misc]
        shift = float(np.hypot((box[0] + box[2] - fx1 - fx2) / 2, (box[1] + box[3] - fy1 - fy2) / 2))
        self.max_shift = max(self.max_shift, shift)
        self.peak_conf = max(self.peak_conf, float(conf))

    @property
    def is_static(self) -> bool:
        """Seen for at least ``STATIC_MIN_S`` with its centre within ``STATIC_SHIFT`` of its first
        box's longer side (module docstring)."""
        if self.first_box is None or self.last_ts_ms - self.first_ts_ms < STATIC_MIN_S * 1000:
            return False
        x1, y1, x2, y2 = self.first_box
        return self.max_shift <= STATIC_SHIFT * max(x2 - x1, y2 - y1)

    @property
    def yolo_type(self) -> str:
        """The taxonomy type with the largest confidence-weighted vote over the track's life."""
        cls = max(sorted(self.class_votes), key=lambda c: self.class_votes[c])
        return TAXONOMY[cls]


@dataclass(frozen=True)
class FinishedTrack:
    track_id: int
    best: Candidate
    crop: np.ndarray
    yolo_type: str
    hits: int
    first_ts_ms: int
    last_ts_ms: int


class TrackBook:
    """Keeps one :class:`TrackState` per live track and decides when a track has ended.

    A track ends when it has not been seen for more than ``max_age`` processed frames (the
    tracker's own buffer, so the id can no longer come back) or when the video ends.  Tracks
    with fewer than ``min_hits`` detections are dropped as noise, and static tracks whose peak
    confidence stayed under ``static_min_conf`` as static false positives (module docstring;
    ``dropped`` counts both, ``dropped_static`` the second).
    """

    def __init__(self, max_age: int, min_hits: int, static_min_conf: float = 0.0,
                 owns: Optional[Callable[[int], bool]] = None):
        """``owns(first_frame)``: whether a track that began at that frame is this book's to emit
        (a video segment's, segments.py); None: every track."""
        self.max_age, self.min_hits, self.static_min_conf = max_age, min_hits, static_min_conf
        self.owns = owns
        self.live: dict[int, TrackState] = {}
        self.dropped = 0
        self.dropped_static = 0
        self.not_owned = 0  # tracks that began outside the segment's range: another segment's

    def observe(self, step: int, cand: Candidate, track_id: int, crop_fn) -> None:
        """Record ``cand`` for ``track_id``; ``crop_fn(box)`` cuts the crop when it becomes the best."""
        st = self.live.get(track_id)
        if st is None:
            st = self.live[track_id] = TrackState(track_id, cand.frame_index, cand.ts_ms, cand.frame_index,
                                                  cand.ts_ms, step)
        elif not cand.touches_border and st.last_box is not None and cand.frame_size[0] > 0 \
                and cut_by_edge(cand.box, *cand.frame_size, prev=st.last_box):
            cand = replace(cand, touches_border=True)  # running out of the picture: cut already or next
        st.last_box = cand.box
        st.observe_motion(cand.box, cand.conf)
        st.hits += 1
        st.last_frame, st.last_ts_ms, st.last_seen_step = cand.frame_index, cand.ts_ms, step
        st.class_votes[cand.cls] += cand.conf
        if not cand.touches_border:  # cut-off boxes say nothing about the vehicle's size
            typical = float(np.median(st.recent_areas)) if len(st.recent_areas) >= 3 else None
            if typical is not None and cand.area > OVERSIZE * typical:
                cand = replace(cand, oversized=True)
            st.recent_areas.append(cand.area)
            if st.best is not None and st.best.oversized and len(st.recent_areas) >= 3 \
                    and st.best.area <= OVERSIZE * float(np.median(st.recent_areas)):
                st.best = replace(st.best, oversized=False)  # that size became the track's normal one
        if st.best is None or is_better(cand, st.best):
            st.best, st.best_crop = cand, crop_fn(cand.box)

    def _finish(self, track_ids: list[int]) -> list[FinishedTrack]:
        out = []
        for tid in sorted(track_ids):
            st = self.live.pop(tid)
            if self.owns is not None and not self.owns(st.first_frame):
                self.not_owned += 1
                continue
            if st.hits < self.min_hits or st.best is None or st.best_crop is None:
                self.dropped += 1
                continue
            if st.peak_conf < self.static_min_conf and st.is_static:
                self.dropped += 1
                self.dropped_static += 1
                continue
            out.append(FinishedTrack(tid, st.best, st.best_crop, st.yolo_type, st.hits, st.first_ts_ms, st.last_ts_ms))
        return out

    def owns_live(self) -> bool:
        """Some live track is this book's to emit (always, without ``owns``, while any is live)."""
        return any(self.owns is None or self.owns(st.first_frame) for st in self.live.values())

    def expire(self, step: int) -> list[FinishedTrack]:
        """Tracks unseen for more than ``max_age`` steps, finished (ordered by track id)."""
        return self._finish([tid for tid, st in self.live.items() if step - st.last_seen_step > self.max_age])

    def flush(self) -> list[FinishedTrack]:
        """Every live track, finished: the video has ended."""
        return self._finish(list(self.live))
