"""The schema of the stored results: one ``image_analysis_results`` row per variant of a
snapshot, built from that variant's head probabilities (pure: no I/O)."""
from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np

from ..worker_utils.messages import SnapshotReady
from ..worker_utils.vocab import COLOR_BASES
from .color import estimate_fbl, fbl_from_heads
from .decoding import Decoded, Hierarchy, decode_output
from .variants import Classifier

HEAD_SUMMARY_K = 5
Plate = tuple[Optional[str], Optional[float]]  # (text, confidence), (None, None) when none was read


def variant_rows(variants: dict[str, Classifier], hierarchies: dict[str, Hierarchy],
                 probs: dict[str, dict[str, np.ndarray]], image: np.ndarray, msg: SnapshotReady, *, topk: int,
                 color_enabled: bool, infer_ms: float, plate: Plate, plate_ms: float) -> list[dict[str, Any]]:
    """Every variant's row for one snapshot.  ``probs``: variant -> {head: C probabilities};
    ``image``: the 640 x 640 x 3 BGR snapshot (the classical colour estimate); times in ms."""
    rows = []
    for name, bundle in variants.items():
        t1 = time.perf_counter()
        p = probs[name]
        dec = decode_output(hierarchies[name], p, topk)
        t2 = time.perf_counter()
        colors, color_source = colors_of(bundle, p, image) if color_enabled else (None, None)
        t3 = time.perf_counter()
        timings = {"inference": infer_ms, "decode": (t2 - t1) * 1e3, "color": (t3 - t2) * 1e3, "plate": plate_ms}
        latency = infer_ms + (t3 - t1) * 1e3 + plate_ms
        rows.append(result_row(name, bundle, dec, colors, plate[0], plate[1], latency, msg,
                               heads=head_summary(bundle, p), timings_ms=timings, color_source=color_source))
    return rows


def colors_of(bundle: Classifier, p: dict[str, np.ndarray], image: np.ndarray) -> tuple[list[dict], str]:
    """(FBL array, where it came from: the model's "model" colour heads or the "classical" estimator)."""
    if "color_base" in p and list(bundle.labels.get("color_base", [])) == list(COLOR_BASES):
        return fbl_from_heads(p["color_base"], p.get("finish"), p.get("lightness"),
                              bundle.labels.get("finish", [None]), bundle.labels.get("lightness", [None])), "model"
    return estimate_fbl(image), "classical"


def head_summary(bundle: Classifier, p: dict[str, np.ndarray], k: int = HEAD_SUMMARY_K) -> dict[str, list[dict]]:
    """Each head's own labels with probabilities, best first (before hierarchy decoding): small
    heads (type, colour, finish, lightness: <= 10 labels) in full, make and model top-``k``.
    What the model saw, so a reviewer can tell a confident head from a close call."""
    out = {}
    for head, probs in p.items():
        if head not in bundle.labels:
            continue
        labels = bundle.labels[head]
        order = np.argsort(-np.asarray(probs), kind="stable")[:len(labels) if len(labels) <= 10 else k]
        out[head] = [{"label": labels[int(i)] if int(i) < len(labels) else int(i), "p": round(float(probs[int(i)]), 4)}
                     for i in order]
    return out


def result_row(variant: str, bundle: Classifier, dec: Decoded, colors: Optional[list[dict]], plate: Optional[str],
               plate_conf: Optional[float], latency_ms: float, msg: SnapshotReady, *,
               heads: Optional[dict[str, list[dict]]] = None, timings_ms: Optional[dict[str, float]] = None,
               color_source: Optional[str] = None) -> dict[str, Any]:
    """One image_analysis_results row; ``payload`` is the full record (~2-4 KB of JSON)."""
    r3 = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
    payload = {
        "variant": variant,
        "type": {"label": dec.type, "conf": r3(dec.type_conf)},
        "make": {"label": dec.make, "conf": r3(dec.make_conf)},
        "model": {"label": dec.model, "conf": r3(dec.model_conf)},
        "topk": list(dec.alternatives),
        "colors": colors,
        "colors_source": color_source,
        "plate": {"text": plate, "conf": r3(plate_conf)} if plate else None,
        "heads": heads or {},
        "model_name": bundle.model_name,
        "model_version": bundle.version,
        "latency_ms": round(latency_ms, 1),
        "timings_ms": {k: round(v, 1) for k, v in (timings_ms or {}).items()},
        "decoding": "hierarchy-consistent best path (see main_worker/decoding.py)",
        "snapshot": {"snapshot_s3_key": msg.snapshot_s3_key, "track_id": msg.track_id, "detectedIn": msg.detectedIn,
                     "detectedAt": msg.detectedAt, "yolo_type": msg.yolo_type,
                     "workspace_code": msg.workspace_code, "camera_code": msg.camera_code},
    }
    return {"variant": variant, "type": dec.type, "type_conf": r3(dec.type_conf), "make": dec.make,
            "make_conf": r3(dec.make_conf), "model": dec.model, "model_conf": r3(dec.model_conf),
            "colors": colors, "plate": plate, "plate_conf": r3(plate_conf), "payload": payload,
            "model_name": bundle.model_name, "model_version": bundle.version, "latency_ms": round(latency_ms, 1)}
