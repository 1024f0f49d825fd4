"""Training and evaluation data cut from generated scenes.

* :func:`random_config` - a varied scene (resolution, frame rate, camera, lighting, weather,
  traffic) from one seed.
* :func:`write_detector_dataset` - frames as JPEG + YOLO labels (class = taxonomy index) in
  the layout ultralytics trains on.
* :func:`snapshot_samples` - vehicle snapshots cut by the worker's own code
  (``worker_utils.imaging.crop_with_margin`` + ``letterbox`` to 640x640), with the detector's
  box noise imitated by jittering the ground-truth box, then area-downsampled by
  ``model_input // 640`` exactly as the main-model bundle's first layer does; plus labels.

Seeds decide everything: training uses one seed range, evaluation another
(:data:`TRAIN_SEEDS`, :data:`EVAL_SEEDS`), so the metrics are on scenes never trained on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Optional

import cv2
import numpy as np

from ..worker_utils.imaging import crop_with_margin, letterbox
from ..worker_utils.vocab import TAXONOMY
from .catalogue import all_labels
from .scene import Scene, SceneConfig

TRAIN_SEEDS = range(1000, 100000)  # training draws from here
EVAL_SEEDS = range(500000, 600000)  # metrics.json is computed here (never trained on)
RESOLUTIONS = ((640, 360), (768, 432), (960, 540), (640, 480), (854, 480))


def random_config(seed: int, **overrides) -> SceneConfig:
    r = np.random.default_rng(seed + 7919)
    w, h = RESOLUTIONS[int(r.integers(len(RESOLUTIONS)))]
    light = ("day", "dusk", "night")[int(r.choice(3, p=[0.6, 0.2, 0.2]))]
    kw = dict(width=w, height=h, fps=float(r.choice([10.0, 12.5, 15.0, 25.0, 29.97])), seed=seed,
              camera_height_m=float(r.uniform(5.0, 9.0)), camera_tilt_deg=float(r.uniform(8.0, 16.0)),
              hfov_deg=float(r.uniform(65.0, 85.0)), lanes=int(r.choice([2, 3, 4], p=[0.2, 0.3, 0.5])),
              vehicles_per_min=float(r.uniform(6.0, 14.0)), lighting=light, rain=bool(r.random() < 0.15),
              noise_sigma=float(r.choice([0.0, 0.0, 3.0, 6.0])), crf=int(r.integers(20, 31)))
    kw.update(overrides)
    return SceneConfig(**kw)


def _scene_frames(cfg: SceneConfig, every_s: float, warmup_s: float = 2.0):
    """Every ``every_s`` seconds of a scene, after a warm-up: (frame, objects, scene)."""
    scene = Scene(cfg)
    step = max(1, int(round(every_s * cfg.fps)))
    start = int(round(warmup_s * cfg.fps))
    dt = 1.0 / cfg.fps
    for i in range(cfg.frame_count):
        if i >= start and (i - start) % step == 0:  # render only the frames used
            img, objs = scene.render(i)
            yield img, objs, scene
        scene._step(dt)


def _jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Compression artefacts like the video's (the worker sees decoded H.264)."""
    ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def write_detector_dataset(root: str | Path, seeds: Iterable[int], frames_per_scene: int = 8,
                           long_side: int = 416, min_visibility: float = 0.3, duration_s: float = 24.0,
                           traffic_scale: float = 1.0, stop_probability: Optional[float] = None) -> int:
    """Write ``root/images/*.jpg`` + ``root/labels/*.txt`` (YOLO format); returns the image count.

    Vehicles less than ``min_visibility`` visible are left unlabelled (and rare).
    ``traffic_scale`` multiplies each scene's arrival rate and ``stop_probability`` (when given)
    replaces its chance of a vehicle stopping: denser, queueing traffic gives the detector more
    vehicles that overlap each other, the case it misses most."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    n = 0
    for seed in seeds:
        cfg = random_config(seed, duration_s=duration_s)
        cfg = replace(cfg, vehicles_per_min=cfg.vehicles_per_min * traffic_scale,
                      stop_probability=cfg.stop_probability if stop_probability is None else stop_probability)
        every = (duration_s - 2.0) / frames_per_scene
        for k, (img, objs, scene) in enumerate(_scene_frames(cfg, every)):
            if k >= frames_per_scene:
                break
            H, W = img.shape[:2]
            s = long_side / max(H, W)
            small = cv2.resize(img, (int(round(W * s)), int(round(H * s))), interpolation=cv2.INTER_AREA)
            small = _jpeg_roundtrip(small, int(scene.rng.integers(60, 92)))
            lines = []
            for o in objs:
                if o.visibility < min_visibility:
                    continue
                x1, y1, x2, y2 = o.box
                cx, cy, bw, bh = (x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H
                lines.append(f"{TAXONOMY.index(scene.by_id[o.vehicle_id].spec.vtype)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
            name = f"s{seed}_{k:02d}"
            cv2.imwrite(str(root / "images" / f"{name}.jpg"), small, [int(cv2.IMWRITE_JPEG_QUALITY), 95])
            (root / "labels" / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
            n += 1
    return n


@dataclass
class SnapshotSet:
    """``images``: N x S x S x 3 uint8 BGR (the 640x640 snapshot area-downsampled to S);
    ``labels``: head -> N int64 (index into ``catalogue.all_labels()[head]``); ``plates``: N str."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    plates: list[str]


def snapshot_from_box(frame: np.ndarray, box, rng: Optional[np.random.Generator], jitter: float = 0.06,
                      margin: float = 0.10) -> np.ndarray:
    """The worker's snapshot of ``box`` in ``frame`` (640x640 BGR), the box jittered by up to
    ``jitter`` x its size per edge to imitate a detector's imprecision."""
    x1, y1, x2, y2 = box
    if rng is not None and jitter > 0:
        w, h = x2 - x1, y2 - y1
        d = rng.uniform(-jitter, jitter, 4) * np.array([w, h, w, h])
        x1, y1, x2, y2 = x1 + d[0], y1 + d[1], x2 + d[2], y2 + d[3]
    return letterbox(crop_with_margin(frame, (x1, y1, x2, y2), margin), 640)[0]


def downsample(snapshot: np.ndarray, size: int) -> np.ndarray:
    """640 -> ``size`` by area averaging (what the bundle's AvgPool does for 640 / size)."""
    return cv2.resize(snapshot, (size, size), interpolation=cv2.INTER_AREA)


def snapshot_samples(seeds: Iterable[int], n: int, size: int = 128, every_s: float = 1.0,
                     min_visibility: float = 0.7, duration_s: float = 20.0) -> SnapshotSet:
    """``n`` labelled snapshots from scenes of ``seeds`` (each vehicle sampled at most every
    ``every_s`` seconds; mostly unoccluded and not cut by the frame edge, like the worker's best frames)."""
    labels = all_labels()
    idx = {h: {v: i for i, v in enumerate(vals)} for h, vals in labels.items()}
    imgs, plates = [], []
    lab: dict[str, list[int]] = {h: [] for h in labels}
    for seed in seeds:
        cfg = random_config(seed, duration_s=duration_s)
        for img, objs, scene in _scene_frames(cfg, every_s, warmup_s=0.5):
            q = int(scene.rng.integers(60, 92))
            frame = _jpeg_roundtrip(img, q)
            for o in objs:
                if o.visibility < min_visibility or o.truncated:
                    continue
                spec = scene.by_id[o.vehicle_id].spec
                snap = snapshot_from_box(frame, o.box, scene.rng)
                imgs.append(downsample(snap, size))
                plates.append(spec.plate)
                for h, value in (("type", spec.vtype), ("make", spec.make), ("model", spec.model),
                                 ("color_base", spec.colour.base), ("finish", spec.colour.finish),
                                 ("lightness", spec.colour.lightness)):
                    lab[h].append(idx[h][value])
                if len(imgs) >= n:
                    return SnapshotSet(np.stack(imgs), {h: np.array(v, np.int64) for h, v in lab.items()}, plates)
    if not imgs:
        raise ValueError("no snapshots: the seeds produced no visible vehicles")
    return SnapshotSet(np.stack(imgs), {h: np.array(v, np.int64) for h, v in lab.items()}, plates)

