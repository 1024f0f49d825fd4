"""Motion gating: run the detector only on frames where the picture changed.

CCTV is mostly still: on a real 768x432 street clip 55 % of the processed frames (stride 3) had
no moving pixel against the previous one, and a car park is still for minutes.  Detecting such
a frame again returns the same boxes, so the gate hands the tracker the last detected frame's
boxes instead ("carried over"): parked and queued vehicles keep their tracks, their hit counts
and their best frames, at the cost of a resize and a subtraction (0.1 ms at 640x360, 0.25 ms at
1920x1080 on an Intel Xeon).

The test (Frigate's, simplified): each processed frame is shrunk to a grey image ``width`` px
wide (area interpolation, which also averages away most compression noise; big frames are
thinned first, see :func:`small_grey`) and compared with
the grey image of the **last frame the detector ran on** - not the previous frame - so slow
motion (a vehicle creeping forward in a queue, a lighting change) adds up until it crosses the
threshold.  A frame moved when more than ``min_area`` of its pixels differ by more than
``pixel_threshold`` grey levels.  After ``max_carry`` carried frames in a row the detector runs
anyway, so a gate that misses a change (a vehicle of exactly the road's grey) costs at most
``max_carry`` processed frames of staleness.

Pure numpy/OpenCV, no I/O; one :class:`MotionGate` per video (it holds the reference image).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np


def small_grey(frame: np.ndarray, width: int) -> np.ndarray:
    """``H x W x 3`` BGR (or ``H x W`` grey) uint8 -> ``h x width`` grey uint8, aspect kept
    (``h`` at least 1); frames already at most ``width`` wide keep their size.

    A frame at least four times ``width`` wide is first thinned to every ``k``-th pixel, ``k =
    W // (2 * width)`` (nearest neighbour), so that the grey conversion and the area average run
    on about twice ``width``: 1920x1080 to 320 took 1.2 ms a frame on the pipeline's thread, as
    much as a third of the detector's time, and takes 0.25 (Intel Xeon).  The area step then
    averages 2 x 2 to 3 x 3 of the remaining pixels, as it does for a 640x360 video (2 x 2), so a
    big frame is as tolerant of sensor noise as a small one, no more: grain of sd 4 grey levels
    stays still, grain of sd 10 per channel reads as motion (the detector runs: safe, it only
    saves less) where averaging every 1080p pixel would not.  A still picture samples the same
    pixels every frame, so it stays still."""
    k = frame.shape[1] // (2 * width)
    if k >= 2:
        frame = cv2.resize(frame, (frame.shape[1] // k, max(1, frame.shape[0] // k)),
                           interpolation=cv2.INTER_NEAREST)
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape[:2]
    if w <= width:
        return np.ascontiguousarray(grey)
    return cv2.resize(grey, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def moved_fraction(a: np.ndarray, b: np.ndarray, pixel_threshold: int) -> float:
    """Fraction (0..1) of pixels where two same-shape grey uint8 images differ by more than
    ``pixel_threshold`` grey levels."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.count_nonzero(cv2.absdiff(a, b) > pixel_threshold)) / a.size


@dataclass
class MotionGate:
    """Decides per processed frame whether the detector runs (:meth:`should_detect`).

    ``width`` px grey images; ``pixel_threshold`` grey levels; ``min_area`` fraction of the image;
    ``max_carry`` carried frames in a row before a detection anyway (0 = no limit)."""

    width: int = 320
    pixel_threshold: int = 15
    min_area: float = 0.0005
    max_carry: int = 50
    detected: int = 0  # frames the detector ran on
    carried: int = 0  # frames that got the last detections again
    _reference: Optional[np.ndarray] = None
    _run: int = 0  # carried frames since the last detection

    @classmethod
    def from_settings(cls, settings) -> Optional["MotionGate"]:
        """The gate ``settings`` ask for, or None when ``motion_gating`` is off."""
        if not settings.motion_gating:
            return None
        return cls(width=settings.motion_width, pixel_threshold=settings.motion_pixel_threshold,
                   min_area=settings.motion_min_area, max_carry=settings.motion_max_carry)

    def should_detect(self, frame: np.ndarray) -> bool:
        """True: run the detector on ``frame`` (``H x W x 3`` BGR uint8), which becomes the new
        reference; False: nothing moved since the last detected frame, carry its detections."""
        grey = small_grey(frame, self.width)
        ref = self._reference
        moved = (ref is None or ref.shape != grey.shape
                 or moved_fraction(grey, ref, self.pixel_threshold) > self.min_area
                 or (self.max_carry > 0 and self._run >= self.max_carry))
        if moved:
            self._reference, self._run = grey, 0
            self.detected += 1
        else:
            self._run += 1
            self.carried += 1
        return moved
