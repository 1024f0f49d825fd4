"""Plate OCR and colour measurement on generated snapshots with ground truth (not a test:
pytest does not collect it; it prints figures for the README).

    python tests/main_worker/measure_plate_color.py [--n 100] [--bundle main_worker/bundle/demo/main.pt]

Snapshots come from scenes of the evaluation seed range (never trained on), cut by the
worker's own crop + letterbox code (``synth.datasets.snapshot_samples`` at 640x640: mostly
unoccluded vehicles, box jittered like a detector's, JPEG artefacts like the video's).
Figures:

* plate: exact match of ``PlateReader.read`` (RapidOCR + the plate-format rules) with the
  true plate; also how often it returns a plate at all and how often a returned plate is wrong;
* colour: top-1 ``base`` of the FBL array, from the classical estimator (``estimate_fbl``)
  and from the bundle's colour head (what the worker writes when the bundle has one).
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Optional


def measure(n: int = 100, bundle_path: Optional[str] = None, plates: bool = True) -> dict:
    from video_analysis.main_worker.color import estimate_fbl
    from video_analysis.main_worker.plate import PlateReader
    from video_analysis.synth.catalogue import all_labels
    from video_analysis.synth.datasets import EVAL_SEEDS, snapshot_samples

    t0 = time.perf_counter()
    data = snapshot_samples(range(EVAL_SEEDS.start + 900, EVAL_SEEDS.stop), n, size=640, every_s=2.0)
    n = len(data.images)
    bases = all_labels()["color_base"]
    truth_base = [bases[i] for i in data.labels["color_base"]]
    out: dict = {"snapshots": n, "seeds": f"EVAL_SEEDS from {EVAL_SEEDS.start + 900}"}

    classical = [estimate_fbl(img)[0]["base"] for img in data.images]
    out["color_base_top1_classical"] = round(sum(a == b for a, b in zip(classical, truth_base)) / n, 3)
    if bundle_path:
        from video_analysis.main_worker.model import load_bundle

        b = load_bundle(bundle_path)
        if "color_base" in b.labels:
            hits = 0
            for s in range(0, n, 32):
                p = b.predict(data.images[s:s + 32])["color_base"]
                hits += sum(b.labels["color_base"][int(i)] == truth_base[s + j] for j, i in enumerate(p.argmax(1)))
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


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--no-plates", action="store_true")
    a = ap.parse_args()
    print(json.dumps(measure(a.n, a.bundle, not a.no_plates), indent=1))
