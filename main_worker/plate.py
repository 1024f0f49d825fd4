"""Licence plates: RapidOCR (ONNX Runtime, models shipped inside the pip package) + format rules.

The OCR model reads every text line in the snapshot; each line (and each pair of adjacent
lines, for plates printed on two rows or split by the detector) is normalised
(``vocab.normalize_plate``) and kept only if it matches a Philippine plate format
(``vocab.PLATE_PATTERNS``).  The best-scoring valid reading wins; no valid reading -> None.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Optional

import numpy as np

from ..worker_utils.vocab import is_valid_plate, normalize_plate

log = logging.getLogger(__name__)


class PlateReader:
    """Lazily loads RapidOCR once per process (about 0.3 s)."""

    def __init__(self) -> None:
        self._ocr: Any = None
        self._lock = threading.Lock()

    def _engine(self) -> Any:
        with self._lock:
            if self._ocr is None:
                from rapidocr_onnxruntime import RapidOCR

                self._ocr = RapidOCR()
            return self._ocr

    def read(self, snapshot: np.ndarray) -> tuple[Optional[str], Optional[float]]:
        """(plate text, confidence 0-1) of a BGR snapshot, or (None, None)."""
        result, _ = self._engine()(snapshot, use_cls=False)
        return best_plate([(box, text, float(score)) for box, text, score in (result or [])])


def best_plate(lines: list[tuple[Any, str, float]]) -> tuple[Optional[str], Optional[float]]:
    """The best valid plate among OCR lines ``(box, text, score)`` and adjacent pairs of them."""
    # order lines left-to-right, top-to-bottom so pairs are neighbours
    def key(line):
        pts = np.asarray(line[0], dtype=float).reshape(-1, 2)
        return (round(pts[:, 1].mean() / 40), pts[:, 0].mean())

    lines = sorted(lines, key=key)
    readings: list[tuple[str, float]] = [(t, s) for _, t, s in lines]
    readings += [(a[1] + " " + b[1], min(a[2], b[2])) for a, b in zip(lines, lines[1:])]
    best: tuple[Optional[str], Optional[float]] = (None, None)
    for text, score in readings:
        plate = normalize_plate(text)
        if is_valid_plate(plate) and (best[1] is None or score > best[1]):
            best = (plate, round(score, 4))
    return best
