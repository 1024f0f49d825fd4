"""`demo`: the README's main command.  Generates a ~30 s traffic clip with ground truth, runs it
through both workers on a private local stack (exactly the `analyze` path), prints the summary
table and the scores against ground truth, writes the HTML report, and stops everything."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .helptext import HelpFormatter
from .job import JobFailed, JobOptions, JobResult, run_job, say


def flat_scores(s: dict) -> dict:
    """The scores as the report's two-column table shows them."""
    cov = s["coverage"]
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    return {
        "vehicles in the clip (countable)": cov["vehicles"],
        "snapshots": cov["snapshots"],
        "vehicles with exactly one snapshot": f"{cov['exactly_one']} ({pct(cov['recall_exactly_one'])})",
        "vehicles with more than one / none": f"{cov['more_than_one']} / {cov['missed']}",
        "snapshots matching no vehicle": cov["unmatched_snapshots"],
        "yolo_type correct": pct(s["yolo_type_accuracy"]),
        "Type correct": pct(s["type_accuracy"]), "Make correct": pct(s["make_accuracy"]),
        "Model correct": pct(s["model_accuracy"]), "base colour correct": pct(s["color_base_accuracy"]),
        "plate read exactly": pct(s["plate_accuracy"]),
    }


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..eval.scoring import score_analyses
    from ..synth.clip import load_ground_truth, write_clip
    from ..synth.scene import SceneConfig
    from .analyze import print_summary, write_annotated, write_job_report

    out = Path(args.out)
    say(f"[0/7] generate a {args.duration:.0f} s demo clip with ground truth (seed {args.seed}) ...")
    try:
        cfg = SceneConfig(width=args.width, height=args.height, fps=args.fps, duration_s=args.duration, seed=args.seed,
                          lighting=args.lighting)
    except ValueError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 2
    clip = write_clip(cfg, out / "clip", "demo")
    say(f"    {clip.video}: {clip.frames} frames, {clip.vehicles} vehicles")
    gt = load_ground_truth(clip.video)
    opts = JobOptions(video=clip.video, out=out, frame_stride=args.frame_stride, annotated=args.annotated,
                      detector=args.detector, main_model=args.main_model, cmt_model=args.cmt_model,
                      timeout_s=args.timeout)
    scores: dict = {}

    def report(result: JobResult) -> Path:
        scores.update(score_analyses(result.analyses, gt, cfg.fps, opts.stride(result.settings)))
        return write_job_report(result, "CVITX demo: synthetic traffic clip", scores=flat_scores(scores),
                                video_info={"width": cfg.width, "height": cfg.height, "fps": cfg.fps,
                                            "duration_s": cfg.duration_s, "seed": cfg.seed},
                                annotated=write_annotated(result, opts))

    try:
        result = run_job(opts, report)
    except JobFailed as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    print_summary(result)
    print()
    print("Scores against ground truth")
    for k, v in flat_scores(scores).items():
        print(f"  {k:<38} {v}")
    (result.report_dir / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    say(f"report: {result.report_dir / 'index.html'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("demo", help="the whole system on a generated clip: local stack, both workers, scores, report",
                       description="Generate a synthetic traffic clip with ground truth, run it through both workers "
                                   "exactly as in production (local moto_server + throwaway PostgreSQL, workers as "
                                   "separate processes), print the results and the scores against ground truth, and "
                                   "write an HTML report. Everything it starts is stopped at the end.",
                       formatter_class=HelpFormatter)
    s.add_argument("--out", default="out/demo", help="output directory (clip, report, worker logs)")
    s.add_argument("--seed", type=int, default=7, help="scene seed (the same seed gives the same clip)")
    s.add_argument("--duration", type=float, default=30.0, help="clip length in seconds")
    s.add_argument("--width", type=int, default=960, help="clip width in pixels")
    s.add_argument("--height", type=int, default=540, help="clip height in pixels")
    s.add_argument("--fps", type=float, default=25.0, help="clip frame rate")
    s.add_argument("--lighting", choices=("day", "dusk", "night"), default="day", help="scene lighting")
    s.add_argument("--frame-stride", type=int, default=None, help="process every N-th frame (default: default_frame_stride of the settings)")
    s.add_argument("--detector", help="detector weights (default: the demo detector in yolo_worker/bundle/demo)")
    s.add_argument("--main-model", help="main-model bundle (default: main_worker/bundle/demo/main.pt)")
    s.add_argument("--cmt-model", help="a second bundle: Baseline vs CMT compare mode (e.g. main_worker/bundle/demo/cmt.pt)")
    s.add_argument("--annotated", action="store_true", help="also write an annotated MP4")
    s.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    s.set_defaults(func=_cmd_demo)
