"""Detector quality: mAP50 overall and per taxonomy class, through ultralytics' own validator,
on frames of generated scenes (seeds never trained on)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..worker_config import TAXONOMY
from ..worker_utils.offline import ultralytics_offline_without_plot_fonts


def evaluate_detector(weights: str | Path, seeds: Iterable[int], work: str | Path, imgsz: int = 320,
                      frames_per_scene: int = 4) -> dict:
    """``{"map50", "map50_95", "per_class_map50": {type: ap50}, "images", "seeds"}``."""
    from ..synth.datasets import write_detector_dataset
    from ..synth.train_detector import write_data_yaml

    seeds = list(seeds)
    work = Path(work).resolve()
    val = work / "val"
    if not (val / "images").exists():
        write_detector_dataset(val, seeds, frames_per_scene)
    data = write_data_yaml(work, val / "images", val / "images")
    ultralytics_offline_without_plot_fonts()
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    res = model.val(data=str(data), imgsz=imgsz, batch=8, device="cpu", plots=False, verbose=False,
                    project=str(work / "runs"), name="val", exist_ok=True, workers=0)
    ap50 = res.box.ap50  # per class present in the data, in res.box.ap_class_index order
    per_class = {TAXONOMY[int(c)]: round(float(a), 4) for c, a in zip(res.box.ap_class_index, ap50)}
    return {"map50": round(float(res.box.map50), 4), "map50_95": round(float(res.box.map), 4),
            "per_class_map50": per_class, "images": len(list((val / "images").glob("*.jpg"))),
            "seeds": f"{seeds[0]}..{seeds[-1]} ({len(seeds)} scenes, never trained on)"}
