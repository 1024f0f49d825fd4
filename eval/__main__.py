"""``python -m video_analysis.eval``: quality figures on generated data the models never saw.

    python -m video_analysis.eval classifier [--bundle main.pt] [--n 2000]
    python -m video_analysis.eval detector   [--weights detector.pt] [--scenes 30]
    python -m video_analysis.eval tracking   [--weights detector.pt] [--seed 500001] [--clips 1] [--duration 30] [--stride 3|auto]
    python -m video_analysis.eval plate-color [--n 100] [--bundle main.pt] [--no-plates]
    python -m video_analysis.eval all        (classifier, detector, tracking: one JSON object)
    python -m video_analysis.eval real VIDEO GT.json [--run DIR] [--weights detector.pt] [--stride N]
    python -m video_analysis.eval sheets VIDEO [--out DIR] [--every N]
    python -m video_analysis.eval segments   [--seed 500301] [--duration 1200] [--segment-s 120] [--fps 12.5]

``segments`` runs a generated clip with parked vehicles and long stops whole and as the
segments the worker would plan (yolo_worker/segments.py), each on a fresh tracker, and compares
their snapshot coverage (eval.tracking.compare_segmented).  ``real`` scores the snapshots of a real clip against a hand-made ground truth (eval/real.py):
with ``--run`` those a previous ``analyze --out DIR`` left, else it runs the yolo worker's
pipeline on VIDEO with the configured detector.  ``sheets`` writes contact sheets (frames with
their number and a pixel ruler) for writing such a ground truth.  ``python -m video_analysis
eval ...`` is the same command.

Every figure is printed as JSON.  ``classifier`` and ``detector`` use the same unseen seed
range (``synth.datasets.EVAL_SEEDS``) as the ``metrics.json`` files beside the committed
weights, so with the defaults they recompute those figures; smaller ``--n``/``--scenes`` give
a quicker, noisier estimate.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ..worker_config import Settings, build_settings
from ..worker_utils.errors import WorkerError


def _classifier(args, settings: Settings) -> dict:
    from ..main_worker.model import load_bundle
    from ..synth.datasets import EVAL_SEEDS, snapshot_samples
    from .classifier import evaluate_bundle

    bundle = load_bundle(settings.resolve_path(args.bundle or settings.main_model_path))
    data = snapshot_samples(EVAL_SEEDS, args.n, size=getattr(bundle, "input_size", 640))
    return evaluate_bundle(bundle, data.images, data.labels)


def _detector(args, settings: Settings) -> dict:
    from ..synth.datasets import EVAL_SEEDS
    from .detector import evaluate_detector

    weights = settings.resolve_path(args.weights or settings.detector_path)
    with tempfile.TemporaryDirectory(prefix="cvitx-eval-") as work:
        return evaluate_detector(weights, EVAL_SEEDS[:args.scenes], work, imgsz=args.imgsz)


def stride_for(fps: float, stride: str) -> int:
    """``--stride``: a number, or ``auto`` = the README's advice (1 at 15 fps or less, else 3)."""
    return (1 if fps <= 15.0 else 3) if stride == "auto" else int(stride)


def _segments(args, settings: Settings) -> dict:
    from ..synth.clip import write_clip
    from ..synth.scene import SceneConfig
    from ..yolo_worker.detector import Detector
    from .tracking import compare_segmented

    settings = settings.replace(segment_s=args.segment_s, segment_warmup_s=args.warmup_s, segment_tail_s=args.tail_s)
    if args.weights:
        settings = settings.replace(detector_path=str(Path(args.weights).resolve()))
    cfg = SceneConfig(seed=args.seed, duration_s=args.duration, fps=args.fps, parked=args.parked,
                      stop_probability=args.stop_probability)
    with tempfile.TemporaryDirectory(prefix="cvitx-eval-") as work:
        clip = write_clip(cfg, work, "clip")
        out = compare_segmented(clip.video, settings, stride=args.stride, detector=Detector(settings))
    whole, seg = out["whole"]["coverage"], out["segmented"]["coverage"]
    out["exactly_one_change"] = round((seg["exactly_one"] - whole["exactly_one"]) / max(1, whole["vehicles"]), 4)
    for run in ("whole", "segmented"):
        out[run].pop("track_ids")
    out["clip"] = {"seed": args.seed, "duration_s": args.duration, "fps": args.fps, "parked": args.parked,
                   "stop_probability": args.stop_probability, "frame_stride": args.stride}
    out["settings"] = {"segment_s": args.segment_s, "segment_warmup_s": args.warmup_s, "segment_tail_s": args.tail_s}
    return out


def _tracking(args, settings: Settings) -> dict:
    from ..synth.clip import write_clip
    from ..synth.datasets import random_config
    from ..yolo_worker.detector import Detector
    from .tracking import evaluate_tracking, pooled_coverage

    if args.weights:
        settings = settings.replace(detector_path=str(Path(args.weights).resolve()))
    detector = Detector(settings)
    runs = []
    for seed in range(args.seed, args.seed + args.clips):
        cfg = random_config(seed, duration_s=args.duration, lighting="day", rain=False, noise_sigma=0.0)
        with tempfile.TemporaryDirectory(prefix="cvitx-eval-") as work:
            clip = write_clip(cfg, work, "clip")
            out = evaluate_tracking(clip.video, settings, stride=stride_for(cfg.fps, args.stride), detector=detector)
        out["clip"] = {"seed": seed, "width": cfg.width, "height": cfg.height, "fps": cfg.fps,
                       "duration_s": cfg.duration_s}
        runs.append(out)
    if len(runs) == 1:
        return runs[0]
    return {"clips": runs, "coverage": pooled_coverage([r["coverage"] for r in runs])}


def _plate_color(args, settings: Settings) -> dict:
    from ..main_worker.model import load_bundle
    from .plate_color import evaluate_plate_color

    bundle = load_bundle(settings.resolve_path(args.bundle or settings.main_model_path))
    return evaluate_plate_color(args.n, bundle, plates=not args.no_plates)


def _real(args, settings: Settings) -> dict:
    from .real import evaluate_real, summary_line

    if args.weights:
        settings = settings.replace(detector_path=str(Path(args.weights).resolve()))
    if args.run and (args.weights or args.stride):
        raise ValueError("--weights and --stride choose how the pipeline runs; with --run the snapshots "
                         "come from that run: give one or the other")
    report = evaluate_real(args.video, args.gt, settings, run_dir=args.run, stride=args.stride, grow=args.grow,
                           edge_px=args.edge_px, choose_detector=not args.weights)
    if report.get("notice"):
        print(f"note: {report['notice']}", file=sys.stderr)
    print(summary_line(report), file=sys.stderr)
    return report


def _sheets(args, _settings: Settings) -> dict:
    from .sheets import write_sheets

    paths = write_sheets(args.video, args.sheets_out, every=args.every, cols=args.cols, rows=args.rows,
                         tile_width=args.tile_width, grid=args.grid, start=args.start, end=args.end)
    return {"video": str(args.video), "every": args.every, "sheets": [str(p) for p in paths]}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m video_analysis.eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("classifier", help="main-model top-1 (type, make, model, base colour) on unseen snapshots")
    d = sub.add_parser("detector", help="detector mAP50 overall and per class on unseen frames")
    t = sub.add_parser("tracking", help="MOTA/IDF1/ID switches and snapshot-per-vehicle coverage on a new clip")
    pc = sub.add_parser("plate-color", help="plate OCR exact match and base-colour top-1 on unseen snapshots")
    pc.add_argument("--bundle", help="main-model bundle whose colour head is scored too")
    pc.add_argument("--n", type=int, default=100)
    pc.add_argument("--no-plates", action="store_true", help="colour only (OCR takes ~0.1 s a snapshot)")
    r = sub.add_parser("real", help="snapshots of a real clip against a hand-made ground truth (eval/real.py)")
    r.add_argument("video", help="the clip (.mp4)")
    r.add_argument("gt", help="its ground truth: [{id, first_frame, last_frame, kind, note, boxes?}, ...]")
    r.add_argument("--run", help="score what `analyze --out DIR` left in DIR instead of running the pipeline")
    r.add_argument("--weights", help="detector weights (default: the configured detector_path)")
    r.add_argument("--stride", type=int, help="frame stride (default: default_frame_stride of the settings)")
    r.add_argument("--grow", type=float, default=0.25,
                   help="a drawn box is grown by this fraction of its size on each side for the centre test")
    r.add_argument("--edge-px", type=float, default=2.0,
                   help="a snapshot box this close to the frame edge is a cut-off picture (default 2 px)")
    sh = sub.add_parser("sheets", help="contact sheets (frame number + pixel ruler) for writing a ground truth")
    sh.add_argument("video")
    sh.add_argument("--out", dest="sheets_out", default="out/sheets", help="directory (default: out/sheets)")
    sh.add_argument("--every", type=int, default=10, help="every N-th frame (default 10)")
    sh.add_argument("--cols", type=int, default=3)
    sh.add_argument("--rows", type=int, default=4)
    sh.add_argument("--tile-width", type=int, help="tile width in px (default: the frame's, at most 640)")
    sh.add_argument("--grid", type=int, help="grid spacing in original-frame px (default: 50 at 640 wide)")
    sh.add_argument("--start", type=int, default=0, help="first frame")
    sh.add_argument("--end", type=int, help="last frame (default: the last)")
    sg = sub.add_parser("segments", help="a long generated clip whole and in segments: snapshot coverage compared")
    sg.add_argument("--seed", type=int, default=500301)
    sg.add_argument("--duration", type=float, default=1200.0, help="seconds of video (default 1200: 20 min)")
    sg.add_argument("--fps", type=float, default=12.5)
    sg.add_argument("--stride", type=int, default=3)
    sg.add_argument("--parked", type=int, default=3, help="parked vehicles, in view the whole clip")
    sg.add_argument("--stop-probability", type=float, default=0.5, help="chance a vehicle stops at the stop line")
    sg.add_argument("--segment-s", type=float, default=120.0, help="segment length (default 120: ten boundaries)")
    sg.add_argument("--warmup-s", type=float, default=10.0)
    sg.add_argument("--tail-s", type=float, default=60.0)
    sg.add_argument("--weights", help="detector weights (default: the configured detector_path)")
    a = sub.add_parser("all", help="classifier, detector and tracking")
    for p in (c, a):
        p.add_argument("--bundle", help="main-model bundle (default: the configured main_model_path)")
        p.add_argument("--n", type=int, default=2000, help="snapshots (default 2000, as metrics.json)")
    for p in (d, t, a):
        p.add_argument("--weights", help="detector weights (default: the configured detector_path)")
    for p in (d, a):
        p.add_argument("--scenes", type=int, default=30, help="scenes, 4 frames each (default 30, as metrics.json)")
        p.add_argument("--imgsz", type=int, default=320)
    for p in (t, a):
        p.add_argument("--seed", type=int, default=500001)
        p.add_argument("--duration", type=float, default=30.0)
        p.add_argument("--stride", default="3", help="frame stride, or 'auto' (1 at <= 15 fps, else 3)")
        p.add_argument("--clips", type=int, default=1, help="clips of consecutive seeds; coverage is pooled")
    ap.add_argument("--out", help="also write the JSON here")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    settings = build_settings(device="cpu")
    runs = {"classifier": _classifier, "detector": _detector, "tracking": _tracking, "plate-color": _plate_color,
            "real": _real, "sheets": _sheets, "segments": _segments}
    chosen = ["classifier", "detector", "tracking"] if args.what == "all" else [args.what]
    try:
        result = {name: runs[name](args, settings) for name in chosen}
    except (ValueError, WorkerError) as exc:
        if args.what not in ("real", "sheets"):
            raise
        # a wrong file or option given to real/sheets: one line that says what to fix
        print(f"eval {args.what}: {getattr(exc, 'reason', None) or exc}", file=sys.stderr)
        return 2
    text = json.dumps(result if len(result) > 1 else result[chosen[0]], indent=1)
    print(text)
    if getattr(args, "out", None):
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
