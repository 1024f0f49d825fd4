"""Pure image helpers: crop, letterbox, JPEG, sharpness.

Images are numpy arrays in OpenCV's layout: ``H x W x 3`` ``uint8`` BGR.
Boxes are ``(x1, y1, x2, y2)`` in pixels of the full-resolution frame, x2/y2 exclusive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

DEFAULT_PAD_VALUE = 114  # YOLO's letterbox grey: padding reads as "no content" to the models


@dataclass(frozen=True)
class LetterboxInfo:
    """How a crop was placed on the square canvas: ``canvas = pad + crop * scale``."""

    scale: float
    pad_x: int
    pad_y: int
    new_w: int
    new_h: int


def letterbox(img: np.ndarray, size: int = 640, pad_value: int = DEFAULT_PAD_VALUE) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize ``img`` (H x W x 3 uint8) to fit a ``size x size`` canvas, aspect kept, centered.

    The longer side becomes exactly ``size``; the shorter one ``round(side * scale)`` (at
    least 1 px).  The remaining border is filled with ``pad_value`` on all channels and split
    evenly (the extra pixel of an odd split goes right/bottom).  Small crops are scaled *up*
    so the main model always sees the vehicle at full canvas size.
    """
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"letterbox needs an H x W x 3 image with H, W >= 1, got shape {img.shape}")
    h, w = img.shape[:2]
    scale = size / max(h, w)
    new_w = min(size, max(1, int(round(w * scale))))
    new_h = min(size, max(1, int(round(h * scale))))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(img), (new_w, new_h), interpolation=interp)
    canvas = np.full((size, size, 3), pad_value, dtype=np.uint8)
    pad_x = (size - new_w) // 2
    pad_y = (size - new_h) // 2
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized
    return canvas, LetterboxInfo(scale=scale, pad_x=pad_x, pad_y=pad_y, new_w=new_w, new_h=new_h)


def clamp_box(box: Sequence[float], width: int, height: int, margin: float = 0.0) -> tuple[int, int, int, int]:
    """Grow ``box`` by ``margin`` x its size on each side, round outward, clamp to the frame.

    Returns integer ``(x1, y1, x2, y2)`` with ``0 <= x1 < x2 <= width`` (same for y), so the
    crop is never empty even for a degenerate or off-frame box.
    """
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    if x2 < x1:
        x1, x2 = x2, x1
    if y2 < y1:
        y1, y2 = y2, y1
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    ix1 = int(np.floor(x1 - mx))
    iy1 = int(np.floor(y1 - my))
    ix2 = int(np.ceil(x2 + mx))
    iy2 = int(np.ceil(y2 + my))
    ix1 = min(max(ix1, 0), width - 1)
    iy1 = min(max(iy1, 0), height - 1)
    ix2 = min(max(ix2, ix1 + 1), width)
    iy2 = min(max(iy2, iy1 + 1), height)
    return ix1, iy1, ix2, iy2


def crop_with_margin(frame: np.ndarray, box: Sequence[float], margin: float = 0.10) -> np.ndarray:
    """A copy of ``frame[y1:y2, x1:x2]`` for ``box`` grown by ``margin`` and clamped to the frame.

    A copy, so keeping the crop does not keep the whole frame alive.
    """
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = clamp_box(box, w, h, margin)
    return frame[y1:y2, x1:x2].copy()


def snapshot_from_frame(frame: np.ndarray, box: Sequence[float], size: int = 640, margin: float = 0.10,
                        pad_value: int = DEFAULT_PAD_VALUE) -> np.ndarray:
    """Crop ``box`` (with margin) out of the full-resolution ``frame`` and letterbox it to size x size."""
    return letterbox(crop_with_margin(frame, box, margin), size, pad_value)[0]


def encode_jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    """Baseline JPEG bytes of a BGR uint8 image."""
    ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {img.shape}")
    return buf.tobytes()


JPEG_MAGIC = b"\xff\xd8\xff"


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to BGR uint8; ValueError when the bytes are not a decodable JPEG."""
    if not data.startswith(JPEG_MAGIC):
        kind = "PNG" if data.startswith(b"\x89PNG") else "not a JPEG"
        raise ValueError(f"snapshot bytes are {kind} (no JPEG SOI marker)")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("snapshot bytes start like a JPEG but do not decode (truncated or corrupt)")
    return img


def sharpness(img: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: higher = sharper (blur and motion lower it)."""
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    if grey.size == 0:
        return 0.0
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
