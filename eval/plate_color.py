"""Plate OCR and colour quality on generated snapshots with ground truth.

Snapshots come from scenes of the evaluation seed range (never trained on), cut by the worker's
own crop + letterbox code at 640x640 (``synth.datasets.snapshot_samples``: mostly unoccluded
vehicles, detector-like box jitter, JPEG artefacts like the video's).  Figures:

* plate: exact match of ``PlateReader.read`` (RapidOCR + the plate-format rules) with the true
  plate, how often it returns a plate at all, and how often a returned plate is wrong;
* colour: top-1 ``base`` from the classical estimator (``estimate_fbl``) and, when the bundle has
  one, from its colour head (what the worker writes).
"""
from __future__ import annotations

import time
from typing import Any, Optional


def evaluate_plate_color(n: int = 100, bundle: Optional[Any] = None, plates: bool = True,
                         first_seed_offset: int = 900) -> dict:
    from ..main_worker.color import estimate_fbl
    from ..main_worker.plate import PlateReader
    from ..synth.catalogue import all_labels
    from ..synth.datasets import EVAL_SEEDS, snapshot_samples

    t0 = time.perf_counter()
    data = snapshot_samples(range(EVAL_SEEDS.start + first_seed_offset, EVAL_SEEDS.stop), n, size=640, every_s=2.0)
    n = len(data.images)
    bases = all_labels()["color_base"]
    truth = [bases[i] for i in data.labels["color_base"]]
    out: dict = {"snapshots": n, "seeds": f"EVAL_SEEDS from {EVAL_SEEDS.start + first_seed_offset}"}
    classical = [estimate_fbl(img)[0]["base"] for img in data.images]
    out["color_base_top1_classical"] = round(sum(a == b for a, b in zip(classical, truth)) / n, 3)
    if bundle is not None and "color_base" in bundle.labels:
        hits = 0
        for s in range(0, n, 32):
            p = bundle.predict(data.images[s:s + 32])["color_base"]
            hits += sum(bundle.labels["color_base"][int(i)] == truth[s + j] for j, i in enumerate(p.argmax(1)))
        out["color_base_top1_head"] = round(hits / n, 3)
    if plates:
        reader = PlateReader()
        reads = [reader.read(img)[0] for img in data.images]
        exact = sum(r == t for r, t in zip(reads, data.plates))
        returned = sum(r is not None for r in reads)
        out["plate_exact_match"] = round(exact / n, 3)
        out["plate_returned"] = round(returned / n, 3)
        out["plate_wrong_when_returned"] = round((returned - exact) / returned, 3) if returned else None
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
