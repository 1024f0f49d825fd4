"""Main-model quality on labelled snapshots: top-1 of Type, Make and Model after the worker's
hierarchy-consistent decoding (what ends up in the DB), and of the base colour."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..main_worker.decoding import decode_output
from ..main_worker.variants import hierarchy_of


def evaluate_bundle(bundle: Any, images: np.ndarray, labels: dict[str, np.ndarray], batch: int = 64) -> dict:
    """``images``: N x S x S x 3 BGR uint8 snapshots (640 or the bundle's input size);
    ``labels``: head -> N indices into the *catalogue's* label lists, which must equal the bundle's."""
    from ..synth.catalogue import all_labels

    cat = all_labels()
    h = hierarchy_of(bundle)
    n = len(images)
    hits = {"type": 0, "make": 0, "model": 0, "color_base": 0}
    raw_hits = {"type": 0, "make": 0, "model": 0}
    for s in range(0, n, batch):
        p = bundle.predict(images[s:s + batch])
        for j in range(len(next(iter(p.values())))):
            i = s + j
            d = decode_output(h, {head: probs[j] for head, probs in p.items()}, 1)
            hits["type"] += d.type == cat["type"][labels["type"][i]]
            hits["make"] += d.make == cat["make"][labels["make"][i]]
            hits["model"] += d.model == cat["model"][labels["model"][i]]
            for head in raw_hits:
                if head in p:
                    raw_hits[head] += bundle.labels[head][int(np.argmax(p[head][j]))] == cat[head][labels[head][i]]
            if "color_base" in p:
                hits["color_base"] += bundle.labels["color_base"][int(np.argmax(p["color_base"][j]))] == \
                    cat["color_base"][labels["color_base"][i]]
    out = {f"{k}_top1": round(v / n, 4) for k, v in hits.items()}
    out["independent_argmax_top1"] = {k: round(v / n, 4) for k, v in raw_hits.items()}
    out["samples"] = n
    return out
