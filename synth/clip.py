"""Write a generated scene as an H.264 MP4 plus its ground truth.

Output for ``write_clip(cfg, out_dir, name)``:

* ``<name>.mp4`` - H.264 (libx264 through the ffmpeg binary that ``imageio-ffmpeg`` ships;
  yuv420p, ``cfg.crf`` quality, the exact frame rate as a rational, e.g. 30000/1001 or 25/2);
  falls back to OpenCV's MPEG-4 Part 2 writer when that binary is missing;
* ``<name>.gt.txt`` - MOTChallenge ground truth, one line per vehicle per frame:
  ``frame(1-based), id, left, top, width, height, 1, class(1..8, taxonomy order), visibility``;
* ``<name>.json`` - the scene config (:func:`config_record`) and the per-vehicle table (type,
  make, model, colour, plate, lane, first/last frame; ``parked: true`` for a parked vehicle).

:func:`load_ground_truth` reads both back.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..worker_utils.vocab import TAXONOMY
from .scene import ADDED_FIELDS, Scene, SceneConfig


def ffmpeg_exe() -> Optional[str]:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - package or binary missing: fall back
        return shutil.which("ffmpeg")


def fps_fraction(fps: float) -> Fraction:
    """12.5 -> 25/2, 29.97 -> 30000/1001 (NTSC rates are meant, not 2997/100)."""
    for ntsc in (24000, 30000, 60000):
        if abs(fps - ntsc / 1001) < 0.006:
            return Fraction(ntsc, 1001)
    return Fraction(fps).limit_denominator(1000)


class _Writer:
    def __init__(self, path: Path, cfg: SceneConfig):
        self.path = path
        exe = ffmpeg_exe()
        self.proc = None
        self.cv = None
        if exe:
            fr = fps_fraction(cfg.fps)
            cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                   "-s", f"{cfg.width}x{cfg.height}", "-r", f"{fr.numerator}/{fr.denominator}", "-i", "-",
                   "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(cfg.crf), "-pix_fmt", "yuv420p",
                   "-threads", "1", "-movflags", "+faststart", str(path)]
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        else:
            self.cv = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), cfg.fps, (cfg.width, cfg.height))

    def write(self, img: np.ndarray) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(np.ascontiguousarray(img).tobytes())
        else:
            self.cv.write(img)

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            if self.proc.wait() != 0:
                raise RuntimeError(f"ffmpeg failed writing {self.path}: {err.strip()}")
        else:
            self.cv.release()


def config_record(cfg: SceneConfig) -> dict:
    """``cfg`` as NAME.json stores it: every field, except those added since the first clips
    (``scene.ADDED_FIELDS``) while they hold their default, so a clip rendered before they
    existed and the same clip rendered now are byte-identical.  ``SceneConfig(**record)``
    gives ``cfg`` back."""
    default = SceneConfig()
    return {k: v for k, v in asdict(cfg).items() if k not in ADDED_FIELDS or v != getattr(default, k)}


@dataclass
class ClipInfo:
    video: Path
    gt: Path
    meta: Path
    frames: int
    vehicles: int


def write_clip(cfg: SceneConfig, out_dir: str | Path, name: str = "clip") -> ClipInfo:
    """Render ``cfg`` to ``out_dir/name.mp4`` with its ground truth; see the module docstring."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video, gt_path, meta_path = out / f"{name}.mp4", out / f"{name}.gt.txt", out / f"{name}.json"
    scene = Scene(cfg)
    writer = _Writer(video, cfg)
    lines = []
    n = 0
    try:
        for i, img, objs in scene.frames():
            writer.write(img)
            n += 1
            for o in objs:
                x1, y1, x2, y2 = o.box
                cls = TAXONOMY.index(scene.by_id[o.vehicle_id].spec.vtype) + 1
                lines.append(f"{i + 1},{o.vehicle_id},{x1:.0f},{y1:.0f},{x2 - x1:.0f},{y2 - y1:.0f},1,{cls},"
                             f"{o.visibility:.3f}")
    finally:
        writer.close()
    gt_path.write_text("\n".join(lines) + "\n")
    table = scene.vehicle_table()
    meta = {"config": config_record(cfg), "frames": n, "vehicles": {str(k): v for k, v in table.items()}}
    meta_path.write_text(json.dumps(meta, indent=1))
    return ClipInfo(video, gt_path, meta_path, n, len(table))


@dataclass
class GroundTruth:
    """A clip's ground truth: ``boxes[frame_index] = [(vehicle_id, (x1, y1, x2, y2), visibility)]``
    (0-based frames) and ``vehicles[vehicle_id] = {type, make, model, color, plate, ...}``."""

    boxes: dict[int, list[tuple[int, tuple[float, float, float, float], float]]]
    vehicles: dict[int, dict]
    config: dict
    frames: int

    def per_frame(self, min_visibility: float = 0.0) -> dict[int, list[tuple[int, tuple]]]:
        return {f: [(vid, b) for vid, b, vis in rows if vis >= min_visibility] for f, rows in self.boxes.items()}


def load_ground_truth(video_or_stem: str | Path) -> GroundTruth:
    p = Path(video_or_stem)
    stem = p.with_suffix("") if p.suffix == ".mp4" else p
    meta = json.loads(Path(f"{stem}.json").read_text())
    boxes: dict[int, list] = {}
    for line in Path(f"{stem}.gt.txt").read_text().splitlines():
        if not line.strip():
            continue
        f, vid, x, y, w, h, _c, _cls, vis = line.split(",")
        x1, y1 = float(x), float(y)
        boxes.setdefault(int(f) - 1, []).append((int(vid), (x1, y1, x1 + float(w), y1 + float(h)), float(vis)))
    return GroundTruth(boxes, {int(k): v for k, v in meta["vehicles"].items()}, meta["config"], meta["frames"])
