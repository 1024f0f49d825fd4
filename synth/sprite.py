"""Draw one vehicle, side view, as a BGR sprite with a coverage mask (pure OpenCV drawing).

``render_vehicle(spec, px_per_m, facing_right)`` returns a :class:`Sprite`: ``image``
(h x w x 3 uint8 BGR), ``mask`` (h x w uint8, 255 where the vehicle is), the ground-contact
row ``ground_y`` and the lamp positions used at night.  Shapes are described in vehicle
coordinates ``(u, v)``: ``u`` 0 (rear) .. 1 (front) along the length, ``v`` 0 (road) .. 1
(roof) up the height, so one description serves every scale.

The plate is drawn on the flank near the rear at 1.2 m wide (three times a real plate,
so that it stays legible at CCTV resolutions; a synthetic-world liberty) and is drawn after
mirroring, so its text reads left-to-right whichever way the vehicle faces.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .catalogue import VehicleSpec

GLASS = (70, 58, 48)
TYRE = (28, 28, 28)
HUB = (150, 150, 150)
DARK = (45, 45, 45)


@dataclass
class Sprite:
    image: np.ndarray  # h x w x 3 uint8
    mask: np.ndarray  # h x w uint8 (0 / 255)
    ground_y: int  # row of the road contact line
    head_lamp: tuple[int, int]  # (x, y) in sprite pixels
    tail_lamp: tuple[int, int]


def _contrast(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    lum = 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]
    return (30, 30, 30) if lum > 140 else (235, 235, 235)


class _Canvas:
    def __init__(self, length_px: float, height_px: float):
        self.L, self.H = length_px, height_px
        self.pad = max(2, int(0.08 * height_px))
        w = int(np.ceil(length_px)) + 2 * self.pad
        h = int(np.ceil(height_px * 1.12)) + 2 * self.pad
        self.img = np.zeros((h, w, 3), np.uint8)
        self.mask = np.zeros((h, w), np.uint8)
        self.ground = h - self.pad

    def p(self, u: float, v: float) -> tuple[int, int]:
        return int(round(self.pad + u * self.L)), int(round(self.ground - v * self.H))

    def poly(self, pts, color, mask: bool = True) -> None:
        arr = np.array([self.p(u, v) for u, v in pts], np.int32)
        cv2.fillPoly(self.img, [arr], color, cv2.LINE_AA)
        if mask:
            cv2.fillPoly(self.mask, [arr], 255)

    def rect(self, u1, v1, u2, v2, color, mask: bool = True) -> None:
        self.poly([(u1, v1), (u1, v2), (u2, v2), (u2, v1)], color, mask)

    def wheel(self, u: float, r_v: float) -> None:
        cx, cy = self.p(u, r_v)
        r = max(1, int(round(r_v * self.H)))
        cv2.circle(self.img, (cx, cy), r, TYRE, -1, cv2.LINE_AA)
        cv2.circle(self.mask, (cx, cy), r, 255, -1)
        cv2.circle(self.img, (cx, cy), max(1, r // 2), HUB, -1, cv2.LINE_AA)

    def windows(self, u1: float, u2: float, v1: float, v2: float, n: int, gap: float = 0.015) -> None:
        step = (u2 - u1) / n
        for i in range(n):
            self.rect(u1 + i * step + gap, v1, u1 + (i + 1) * step - gap, v2, GLASS, mask=False)


def _body(c: _Canvas, spec: VehicleSpec, col: tuple[int, int, int]) -> dict:
    """Silhouette of the type; returns anchor heights used by markings: belt (v of the
    marking band), low (skirt top), door (emblem centre u, v), roof (v of the roof line)."""
    t = spec.vtype
    if t == "Car":
        c.poly([(0.0, 0.18), (0.0, 0.5), (0.06, 0.56), (0.94, 0.56), (1.0, 0.45), (1.0, 0.18)], col)
        c.poly([(0.2, 0.55), (0.32, 0.96), (0.66, 0.96), (0.8, 0.55)], col)
        c.poly([(0.24, 0.58), (0.34, 0.9), (0.48, 0.9), (0.48, 0.58)], GLASS, mask=False)
        c.poly([(0.5, 0.58), (0.5, 0.9), (0.64, 0.9), (0.75, 0.58)], GLASS, mask=False)
        c.wheel(0.18, 0.17); c.wheel(0.82, 0.17)
        return {"belt": (0.3, 0.38), "low": 0.28, "door": (0.5, 0.36), "roof": 0.96, "lamp_v": 0.42}
    if t == "SUV":
        c.poly([(0.0, 0.2), (0.0, 0.58), (0.93, 0.6), (1.0, 0.5), (1.0, 0.2)], col)
        c.poly([(0.03, 0.58), (0.07, 0.97), (0.7, 0.97), (0.82, 0.6)], col)
        c.windows(0.09, 0.7, 0.64, 0.9, 3)
        c.wheel(0.18, 0.2); c.wheel(0.82, 0.2)
        return {"belt": (0.34, 0.42), "low": 0.3, "door": (0.48, 0.4), "roof": 0.97, "lamp_v": 0.46}
    if t == "Van":
        c.poly([(0.0, 0.14), (0.0, 0.96), (0.74, 0.98), (0.95, 0.6), (1.0, 0.5), (1.0, 0.14)], col)
        c.windows(0.05, 0.72, 0.62, 0.9, 4)
        c.wheel(0.16, 0.15); c.wheel(0.84, 0.15)
        return {"belt": (0.32, 0.4), "low": 0.26, "door": (0.45, 0.4), "roof": 0.98, "lamp_v": 0.4}
    if t == "LightTruck":
        c.rect(0.0, 0.2, 0.72, 1.0, col)  # cargo box
        c.rect(0.0, 0.14, 1.0, 0.22, DARK)  # chassis rail
        c.poly([(0.74, 0.14), (0.74, 0.86), (0.93, 0.86), (1.0, 0.55), (1.0, 0.14)], col)  # cab
        c.poly([(0.78, 0.56), (0.78, 0.8), (0.92, 0.8), (0.97, 0.56)], GLASS, mask=False)
        c.wheel(0.14, 0.13); c.wheel(0.26, 0.13); c.wheel(0.86, 0.13)
        return {"belt": (0.5, 0.58), "low": 0.36, "door": (0.36, 0.6), "roof": 1.0, "lamp_v": 0.35}
    if t == "Utility":
        c.poly([(0.0, 0.2), (0.0, 0.62), (0.44, 0.62), (0.44, 0.2)], col)  # bed
        c.rect(0.02, 0.58, 0.42, 0.62, DARK, mask=False)  # open bed rim
        c.poly([(0.44, 0.2), (0.44, 0.96), (0.72, 0.96), (0.8, 0.6), (1.0, 0.55), (1.0, 0.2)], col)
        c.poly([(0.48, 0.62), (0.48, 0.9), (0.7, 0.9), (0.76, 0.62)], GLASS, mask=False)
        c.wheel(0.18, 0.19); c.wheel(0.82, 0.19)
        return {"belt": (0.34, 0.42), "low": 0.3, "door": (0.6, 0.42), "roof": 0.96, "lamp_v": 0.45}
    if t == "Motorcycle":
        c.wheel(0.16, 0.21); c.wheel(0.84, 0.21)
        c.poly([(0.12, 0.3), (0.3, 0.52), (0.7, 0.55), (0.92, 0.45), (0.8, 0.3), (0.45, 0.25)], col)  # fairing
        c.rect(0.3, 0.52, 0.62, 0.58, DARK)  # seat
        c.poly([(0.4, 0.56), (0.42, 0.85), (0.58, 0.85), (0.56, 0.56)], (60, 50, 45))  # rider torso
        cx, cy = c.p(0.5, 0.92)
        r = max(1, int(round(0.08 * c.H)))
        cv2.circle(c.img, (cx, cy), r, DARK, -1, cv2.LINE_AA)
        cv2.circle(c.mask, (cx, cy), r, 255, -1)
        return {"belt": (0.36, 0.42), "low": 0.3, "door": (0.72, 0.42), "roof": 0.6, "lamp_v": 0.48}
    if t == "CarouselBus":
        c.poly([(0.0, 0.1), (0.0, 0.95), (0.98, 0.95), (1.0, 0.85), (1.0, 0.1)], col)
        c.windows(0.03, 0.86, 0.52, 0.85, 8)
        c.rect(0.88, 0.14, 0.96, 0.85, GLASS, mask=False)  # door
        c.wheel(0.14, 0.1); c.wheel(0.8, 0.1)
        return {"belt": (0.36, 0.44), "low": 0.22, "door": (0.5, 0.32), "roof": 0.95, "lamp_v": 0.3}
    if t == "E-Jeepney":
        c.rect(0.0, 0.14, 0.86, 0.78, col)
        c.poly([(0.86, 0.14), (0.86, 0.6), (1.0, 0.55), (1.0, 0.14)], col)  # hood
        c.rect(-0.01, 0.78, 0.88, 0.9, DARK)  # overhanging roof
        c.windows(0.04, 0.84, 0.52, 0.76, 6, gap=0.02)
        c.rect(0.02, 0.44, 0.85, 0.48, (0, 215, 255), mask=False)  # jeepney livery: yellow + red pinstripes
        c.rect(0.02, 0.22, 0.85, 0.25, (40, 40, 210), mask=False)
        c.wheel(0.16, 0.14); c.wheel(0.8, 0.14)
        return {"belt": (0.3, 0.38), "low": 0.26, "door": (0.45, 0.34), "roof": 0.9, "lamp_v": 0.4}
    raise ValueError(f"unknown vehicle type {t!r}")


def _finish(c: _Canvas, spec: VehicleSpec) -> None:
    """Metallic: a bright specular band and a vertical gradient; Matte: flat and slightly dull;
    none: a mild top-lit gradient.  Applied to body pixels only."""
    m = c.mask > 0
    if not m.any():
        return
    img = c.img.astype(np.float32)
    rows = np.linspace(1.0, 0.0, img.shape[0], dtype=np.float32)[:, None, None]
    if spec.colour.finish == "Metallic":
        gain = 0.85 + 0.3 * rows
        band = np.exp(-((rows - 0.55) / 0.05) ** 2) * 70.0
        out = img * gain + band
    elif spec.colour.finish == "Matte":
        out = img * 0.93
    else:
        out = img * (0.92 + 0.12 * rows)
    img[m] = np.clip(np.broadcast_to(out, img.shape), 0, 255)[m]
    c.img = img.astype(np.uint8)


def _markings(c: _Canvas, spec: VehicleSpec, anchors: dict, col: tuple[int, int, int]) -> None:
    k = _contrast(col)
    if spec.style == "stripe":
        v1, v2 = anchors["belt"]
        c.rect(0.04, v1, 0.96, v2, k, mask=False)
    elif spec.style == "twotone":
        c.rect(0.0, 0.08 if spec.vtype != "Motorcycle" else 0.25, 1.0, anchors["low"], DARK, mask=False)
        c.img[c.mask == 0] = 0  # the skirt follows the body outline
    else:  # emblem
        u, v = anchors["door"]
        cx, cy = c.p(u, v)
        r = max(2, int(round(0.13 * c.H)))
        cv2.circle(c.img, (cx, cy), r, k, max(1, r // 3), cv2.LINE_AA)
        roof = anchors["roof"]
        c.rect(0.25, roof - 0.05, 0.7, roof - 0.01, k, mask=False)
    if spec.model_index == 1:  # roof rack / top box
        if spec.vtype == "Motorcycle":
            c.rect(0.12, 0.55, 0.3, 0.75, DARK)
        else:
            roof = anchors["roof"]
            c.rect(0.2, roof, 0.75, roof + 0.07, DARK)
            for u in (0.24, 0.47, 0.71):
                c.rect(u - 0.012, roof - 0.01, u + 0.012, roof + 0.07, DARK)


def draw_plate(img: np.ndarray, x1: int, y1: int, w: int, h: int, text: str) -> None:
    """White plate with a thin border and black text fitted to the plate, drawn in place."""
    H, W = img.shape[:2]
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(W, x1 + w), min(H, y1 + h)
    if x2 - x1 < 4 or y2 - y1 < 3:
        return
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (245, 245, 245), -1)
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (40, 40, 40), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, 2)
    scale = min(0.86 * (x2 - x1) / tw, 0.66 * (y2 - y1) / th)
    thick = max(1, int(round(scale * 2.2)))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    org = (x1 + (x2 - x1 - tw) // 2, y1 + (y2 - y1 + th) // 2)
    cv2.putText(img, text, org, font, scale, (20, 20, 20), thick, cv2.LINE_AA)


def render_vehicle(spec: VehicleSpec, px_per_m: float, facing_right: bool = True) -> Sprite:
    """The vehicle at ``px_per_m`` pixels per metre, front to the right unless ``facing_right`` is False."""
    c = _Canvas(spec.length_m * px_per_m, spec.height_m * px_per_m)
    col = spec.colour.bgr()
    anchors = _body(c, spec, col)
    _finish(c, spec)
    _markings(c, spec, anchors, col)
    lamp_v = anchors["lamp_v"]
    head, tail = c.p(0.99, lamp_v), c.p(0.01, lamp_v)
    # Plate on the flank near the rear: 0.9 m wide (0.5 m on motorcycles), 1:3.2.
    plate_w = (0.7 if spec.vtype == "Motorcycle" else 1.2) * px_per_m
    plate_h = plate_w / 3.2
    pu = 0.04 if spec.vtype != "Motorcycle" else 0.0
    px, py = c.p(pu, anchors["low"] + 0.02)
    img, mask = c.img, c.mask
    w = img.shape[1]
    if not facing_right:
        img, mask = img[:, ::-1].copy(), mask[:, ::-1].copy()
        head, tail = (w - 1 - head[0], head[1]), (w - 1 - tail[0], tail[1])
        px = w - 1 - px - int(round(plate_w))
    draw_plate(img, px, py - int(round(plate_h)), int(round(plate_w)), int(round(plate_h)), spec.plate)
    img[mask == 0] = 0
    return Sprite(img, mask, c.ground, head, tail)
