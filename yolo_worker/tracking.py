"""Tracker adapter: ultralytics BoT-SORT (motion + appearance) or ByteTrack (motion only).

``update(dets, frame)`` takes the detector's ``D x 6`` array and the full-resolution BGR frame
and returns ``N x 8`` = ``(x1, y1, x2, y2, track_id, score, cls, det_index)`` for the tracks
confirmed in this frame (boxes in the tracker's buffered space, see below).  One tracker per
video: ids start at 1 for each video.

Appearance (the DeepSORT part) needs re-ID weights: when ``tracker_reid_path`` exists and can
run here (``.pt``/``.onnx``/OpenVINO on any device, the spec's ``deepsort.engine`` on a GPU
with TensorRT) BoT-SORT fuses its embeddings with IoU; otherwise it runs motion-only and logs
why.  Global motion compensation is off: CCTV cameras do not move, and it costs a full-frame
optical flow per frame.

**Buffered IoU.**  The tracker associates by IoU, and a new track is only confirmed when its
next detection overlaps it (IoU >= 0.3) before the Kalman filter knows its velocity.  At CCTV
frame rates a near vehicle moves more than half its width between processed frames (a
motorcycle at 12.5 fps: ~29 px per frame for a 52 px box, IoU 0.28), so it was never
confirmed and got no snapshot at all.  As in C-BIoU tracking (Yang et al., WACV 2023) the
boxes handed to the tracker are enlarged by ``BOX_BUFFER`` of their width/height on each side;
what leaves the tracker is only the track id and the index of the detector's own box
(``det_index``), so snapshots and crops use the unbuffered detection.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..worker_config import Settings
from ..worker_utils.offline import ultralytics_offline

log = logging.getLogger(__name__)

BOX_BUFFER = 0.3  # fraction of a box's width/height added on each side before association


def buffer_boxes(dets: np.ndarray, buffer: float) -> np.ndarray:
    """``dets`` (``D x 6``) with each box enlarged by ``buffer`` x its width/height on each side."""
    out = np.array(dets, dtype=np.float32).reshape(-1, 6)
    if buffer and len(out):
        w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
        out[:, 0] -= buffer * w
        out[:, 2] += buffer * w
        out[:, 1] -= buffer * h
        out[:, 3] += buffer * h
    return out


def _tracker_args(settings: Settings) -> Any:
    ultralytics_offline()
    import ultralytics
    from ultralytics.utils import YAML, IterableSimpleNamespace

    cfg_file = Path(ultralytics.__file__).parent / "cfg" / "trackers" / f"{settings.tracker}.yaml"
    cfg = YAML.load(cfg_file)
    high = settings.detector_conf
    # fuse_score off: association on (buffered) IoU alone.  Fused, a cost is 1 - IoU x score, and a
    # new track of a fast motorcycle (IoU 0.3 with its next box at 50 px a frame) at score 0.9
    # costs 0.73, over the 0.7 a tentative track must beat: it was never confirmed.  Off: 223 ->
    # 224 of 232 vehicles with exactly one snapshot on nine clips, 33 -> 35 of 36 on the dense one.
    cfg.update(track_buffer=settings.track_max_age, gmc_method="none", with_reid=False, fuse_score=False,
               track_high_thresh=high, new_track_thresh=high, track_low_thresh=min(settings.track_low_conf, high))
    return IterableSimpleNamespace(**cfg)


def reid_status(settings: Settings) -> tuple[bool, str]:
    """(use ReID?, why) for the configured tracker and re-ID weights."""
    if settings.tracker != "botsort":
        return False, f"tracker {settings.tracker} is motion-only"
    path = settings.resolve_path(settings.tracker_reid_path)
    if not path.exists():
        return False, f"no re-ID weights at {path}: motion-only BoT-SORT"
    if path.suffix == ".engine":
        import torch

        if not torch.cuda.is_available():
            return False, f"{path.name} is a TensorRT engine and needs a GPU: motion-only BoT-SORT"
    return True, f"appearance from {path.name}"


class Tracker:
    def __init__(self, settings: Settings, frame_shape: tuple[int, int]):
        args = _tracker_args(settings)
        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.byte_tracker import BYTETracker

        use_reid, why = reid_status(settings)
        if settings.tracker == "botsort":
            self.impl: Any = BOTSORT(args)
            if use_reid:
                try:
                    from ultralytics.trackers.utils.reid import ReID

                    self.impl.encoder = ReID(str(settings.resolve_path(settings.tracker_reid_path)))
                    self.impl.args.with_reid = True
                    self.impl.args.model = str(settings.tracker_reid_path)  # not "auto": the encoder gets the frame
                except Exception as exc:  # noqa: BLE001 - fall back rather than fail every video
                    use_reid, why = False, f"re-ID weights failed to load ({type(exc).__name__}: {exc}): motion-only"
        else:
            self.impl = BYTETracker(args)
        self.appearance = use_reid
        self.frame_shape = frame_shape
        self.buffer = BOX_BUFFER
        log.debug("tracker ready", extra={"tracker": settings.tracker, "reid": use_reid, "why": why})

    def update(self, dets: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """``N x 8`` confirmed tracks; columns 0-3 are the tracker's (buffered) boxes: use
        column 7, the index into ``dets``, for the detector's box, score and class."""
        from ultralytics.engine.results import Boxes

        boxes = Boxes(buffer_boxes(dets, self.buffer), self.frame_shape)
        out = self.impl.update(boxes, frame)
        return np.asarray(out, dtype=np.float64).reshape(-1, 8)
