"""Colour as the spec's FBL array: ``[{"finish", "base", "lightness", "conf"}]`` (1-3 items).

Two sources:

* :func:`fbl_from_heads` - the bundle's colour heads (base, finish, lightness probabilities);
* :func:`estimate_fbl` - a classical fallback for bundles without a colour head: take the
  vehicle pixels (the central part of the letterboxed content, away from padding and most of
  the road), cluster them in CIE Lab with k-means (k=3), and name each cluster by the nearest
  reference colour (``vocab.COLOR_BGR``, Lab distance).  Lightness is "Light" when the cluster is
  clearly lighter than the named colour's reference; finish is "Metallic" when the cluster's
  brightness varies strongly (specular highlights), "Matte" when it is very uniform, else null.
  ``conf`` is the cluster's share of the vehicle pixels.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from ..worker_utils.imaging import DEFAULT_PAD_VALUE
from ..worker_utils.vocab import COLOR_BASES, COLOR_BGR

_REF_LAB = cv2.cvtColor(np.array([[COLOR_BGR[b] for b in COLOR_BASES]], np.uint8), cv2.COLOR_BGR2LAB)[0].astype(np.float32)


def fbl_from_heads(p_base: np.ndarray, p_finish: Optional[np.ndarray], p_light: Optional[np.ndarray],
                   finishes: Sequence[Optional[str]], lightness: Sequence[Optional[str]],
                   max_items: int = 3, min_conf: float = 0.15) -> list[dict]:
    """Top base colours (always at least one, up to ``max_items`` above ``min_conf``)."""
    order = np.argsort(-p_base)
    finish = finishes[int(np.argmax(p_finish))] if p_finish is not None else None
    light = lightness[int(np.argmax(p_light))] if p_light is not None else None
    items = []
    for rank, i in enumerate(order[:max_items]):
        if rank > 0 and p_base[i] < min_conf:
            break
        items.append({"finish": finish if rank == 0 else None, "base": COLOR_BASES[int(i)],
                      "lightness": light if rank == 0 else None, "conf": round(float(p_base[i]), 4)})
    return items


def vehicle_pixels(snapshot: np.ndarray, pad_value: int = DEFAULT_PAD_VALUE) -> np.ndarray:
    """N x 3 BGR pixels of the vehicle: the central 60 % of the non-padding content."""
    mask = np.any(snapshot != pad_value, axis=2)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return snapshot.reshape(-1, 3)
    x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    w, h = x2 - x1, y2 - y1
    core = snapshot[y1 + int(0.2 * h):y2 - int(0.2 * h), x1 + int(0.2 * w):x2 - int(0.2 * w)]
    return core.reshape(-1, 3) if core.size else snapshot[y1:y2, x1:x2].reshape(-1, 3)


def estimate_fbl(snapshot: np.ndarray, k: int = 3, max_items: int = 3, min_share: float = 0.15) -> list[dict]:
    """Classical colour estimate of a 640x640 BGR snapshot; see the module docstring."""
    px = vehicle_pixels(snapshot)
    if len(px) > 4000:  # k-means cost, not accuracy, grows with pixels
        px = px[np.random.default_rng(0).choice(len(px), 4000, replace=False)]
    lab = cv2.cvtColor(px.reshape(-1, 1, 3).astype(np.uint8), cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)
    k = max(1, min(k, len(lab)))
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, labels, centers = cv2.kmeans(lab, k, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    shares = np.bincount(labels, minlength=k) / len(labels)
    items = []
    for c in np.argsort(-shares):
        if items and shares[c] < min_share:
            break
        center = centers[c]
        d = np.linalg.norm(_REF_LAB - center, axis=1)
        base_i = int(np.argmin(d))
        spread = float(lab[labels == c, 0].std())
        finish = "Metallic" if spread > 18 else ("Matte" if spread < 4 else None)
        light = "Light" if center[0] - _REF_LAB[base_i, 0] > 25 else None
        items.append({"finish": finish, "base": COLOR_BASES[base_i], "lightness": light,
                      "conf": round(float(shares[c]), 4)})
        if len(items) == max_items:
            break
    return items
