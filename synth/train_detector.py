"""Train the demo detector: a from-scratch ultralytics YOLOv8n whose classes are the 8 taxonomy names.

    python -m video_analysis.synth.train_detector [--scenes 150] [--epochs 25] [--imgsz 320]

Generates ``--scenes`` training scenes (``--frames`` frames each, seeds from
``datasets.TRAIN_SEEDS``) and a validation set from ``datasets.EVAL_SEEDS``, trains with
ultralytics' own trainer (offline guard on: no font, weight or pip downloads), copies the weights
to ``yolo_worker/bundle/demo/detector.pt`` and writes ``metrics.json`` beside them with the
evaluation command's figures.  Never part of the test command.

By default the run is bounded by wall time, not epochs: ``--budget-min 60`` (the project's
one-hour budget on 2 cores) covers dataset rendering, training and the final evaluation.
Ultralytics' time mode re-estimates the epoch count after the first epoch and fits the
learning-rate schedule and the mosaic close-out to it, so a slower machine trains fewer epochs
rather than overrunning.  ``--epochs N --budget-min 0`` trains a fixed count instead.
``train_stages`` in metrics.json records what the committed weights came from.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from ..worker_config import PACKAGE_DIR, TAXONOMY
from ..worker_utils.offline import ultralytics_offline_without_plot_fonts
from .datasets import EVAL_SEEDS, TRAIN_SEEDS, write_detector_dataset

BUNDLE = PACKAGE_DIR / "yolo_worker" / "bundle" / "demo"


def write_data_yaml(root: Path, train: Path, val: Path) -> Path:
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(TAXONOMY))
    p = root / "data.yaml"
    p.write_text(f"path: {root}\ntrain: {train}\nval: {val}\nnames:\n{names}\n")
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m video_analysis.synth.train_detector", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="artifacts/train_detector", help="scratch directory (datasets, runs)")
    ap.add_argument("--scenes", type=int, default=300, help="training scenes")
    ap.add_argument("--frames", type=int, default=4, help="frames per training scene")
    ap.add_argument("--traffic-scale", type=float, default=1.0,
                    help="multiply each training scene's arrival rate (denser traffic: more overlapping vehicles)")
    ap.add_argument("--stop-probability", type=float, help="each vehicle's chance to stop and queue (scene default 0.15)")
    ap.add_argument("--val-scenes", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=30, help="epochs when --budget-min is 0")
    ap.add_argument("--budget-min", type=float, default=60.0,
                    help="wall-clock budget for the whole run in minutes (0: train --epochs instead)")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--model", default="yolov8n.yaml", help="ultralytics model yaml (built from scratch)")
    ap.add_argument("--init", help="continue from these weights (a second stage) instead of --model")
    ap.add_argument("--first-scene", type=int, default=0,
                    help="offset into TRAIN_SEEDS (a second stage can train on fresh scenes)")
    ap.add_argument("--lr0", type=float, default=0.01)
    ap.add_argument("--mosaic", type=float, default=1.0)
    ap.add_argument("--out", default=str(BUNDLE / "detector.pt"))
    args = ap.parse_args(argv)

    t0 = time.time()
    work = Path(args.work).resolve()
    seeds = TRAIN_SEEDS[args.first_scene:args.first_scene + args.scenes]
    dense = (f"_x{args.traffic_scale:g}" if args.traffic_scale != 1.0 else "") + (
        f"_stop{args.stop_probability:g}" if args.stop_probability is not None else "")
    train, val = work / f"train_{seeds.start}_{seeds.stop}{dense}", work / "val"
    if not (train / "images").exists():
        n = write_detector_dataset(train, seeds, args.frames, traffic_scale=args.traffic_scale,
                                   stop_probability=args.stop_probability)
        print(f"training images: {n}", flush=True)
    if not (val / "images").exists():
        n = write_detector_dataset(val, EVAL_SEEDS[:args.val_scenes], 4)
        print(f"validation images: {n}", flush=True)
    data = write_data_yaml(work, train / "images", val / "images")
    print(f"datasets ready in {time.time() - t0:.0f} s", flush=True)

    ultralytics_offline_without_plot_fonts()
    from ultralytics import YOLO

    hours = 0.0
    if args.budget_min > 0:
        eval_reserve_min = 3.0  # the final evaluation below, measured at about 1 min
        hours = (args.budget_min - eval_reserve_min - (time.time() - t0) / 60) / 60
        if hours <= 0:
            raise SystemExit(f"--budget-min {args.budget_min} is used up by rendering the datasets")
        print(f"training for at most {hours * 60:.1f} min", flush=True)
    model = YOLO(args.init or args.model, task="detect")
    run = "detector" if not args.init else f"detector_from_{Path(args.init).stem}"
    model.train(data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device="cpu", workers=2,
                project=str(work / "runs"), name=run, exist_ok=True, plots=False, amp=False, val=False,
                seed=0, deterministic=True, patience=0, cache=True, close_mosaic=5, fliplr=0.5, verbose=True,
                lr0=args.lr0, mosaic=args.mosaic, warmup_epochs=0 if args.init else 3, time=hours or None)
    epochs_run = model.trainer.epoch + 1
    best = work / "runs" / run / "weights" / "last.pt"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, out)
    train_s = time.time() - t0
    print(f"weights -> {out} ({out.stat().st_size / 1e6:.1f} MB) after {train_s / 60:.1f} min", flush=True)

    from ..eval.detector import evaluate_detector

    metrics = evaluate_detector(out, EVAL_SEEDS[:args.val_scenes], work / "eval", imgsz=args.imgsz)
    stage = {"scenes": args.scenes, "frames_per_scene": args.frames, "epochs": epochs_run, "imgsz": args.imgsz,
             "budget_minutes": args.budget_min or None,
             "model": f"{Path(args.init).name} (continued, no warm-up)" if args.init else args.model, "lr0": args.lr0, "mosaic": args.mosaic,
             "traffic_scale": args.traffic_scale, "stop_probability": args.stop_probability,
             "minutes": round(train_s / 60, 1), "minutes_with_eval": round((time.time() - t0) / 60, 1), "seeds": f"TRAIN_SEEDS[{args.first_scene}:{args.first_scene + args.scenes}]"}
    stages = []
    previous = out.parent / "metrics.json"
    if args.init and previous.exists():  # keep the record of the earlier stage(s)
        old = json.loads(previous.read_text())
        stages = old.get("train_stages") or ([old["train"]] if "train" in old else [])
    metrics.update(train_stages=stages + [stage])
    previous.write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
