"""`analyze PATH.mp4`: a user's own video through the whole system on a private local stack."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Optional

from .helptext import HelpFormatter
from .job import JobFailed, JobOptions, JobResult, run_job, say


def write_job_report(result: JobResult, title: str, *, video_info: Optional[dict] = None,
                     scores: Optional[dict] = None, annotated: Optional[str] = None,
                     notice: Optional[str] = None, demo_classifier: bool = False) -> Path:
    """The HTML report of a job; it names the weights each stage used, ``notice`` (the
    demo-weights warning) goes at its top, and with ``demo_classifier`` the main model's answers
    are marked as demo weights (the demo main model on real footage)."""
    from ..report.html import write_report
    from .weights_notice import stage_weights

    return write_report(result.report_dir, title=title, video=result.video, analyses=result.analyses,
                        timings=result.timings, video_info=video_info, scores=scores,
                        compare=result.settings.main_mode == "compare", annotated_video=annotated,
                        weights=stage_weights(result.settings), notice=notice, demo_classifier=demo_classifier)


DEMO_COLUMNS = "demo weights, not results"


def print_summary(result: JobResult, demo_classifier: bool = False) -> None:
    """The summary table: one row per snapshot.  With ``demo_classifier`` (the demo main model on
    real footage) the detector's type is the result and the main model's columns are bracketed and
    headed as demo weights: its guesses are not presented as answers."""
    tmm_head = f"[{DEMO_COLUMNS}] type / make / model" if demo_classifier else "type / make / model"
    hdr = f"{'track':>6} {'offset':>9} {'yolo_type':<11} {tmm_head:<42} {'conf':>5} {'colour':<16} plate"
    print(hdr)
    print("-" * len(hdr))
    for a in result.analyses:
        r = next((x for x in a["results"] if x["variant"] == "baseline"), None)
        if r is None:
            print(f"{a['track_id']:>6} {a['detected_in_ms'] / 1000:>8.2f}s {a['yolo_type']:<11} "
                  f"{a['status']}: {a.get('error') or ''}")
            continue
        tmm = f"{r['type']} / {r['make']} / {r['model']}"
        colour = (r.get("colors") or [{}])[0]
        cname = " ".join(x for x in (colour.get("finish"), colour.get("lightness"), colour.get("base")) if x)
        conf = f"{100 * r['model_conf']:.0f}%" if r.get("model_conf") is not None else ""
        if demo_classifier:
            tmm, conf = f"[{tmm}]", f"[{conf}]" if conf else ""
        print(f"{a['track_id']:>6} {a['detected_in_ms'] / 1000:>8.2f}s {a['yolo_type']:<11} {tmm:<42} {conf:>5} "
              f"{cname:<16} {r.get('plate') or '-'}")


def write_annotated(result: JobResult, opts: JobOptions) -> Optional[str]:
    """With ``--annotated``: re-run the same deterministic detector + tracker locally, draw every
    processed frame to ``report/annotated.mp4`` and return its name for the report; else None."""
    if not opts.annotated:
        return None
    from ..yolo_worker.annotate import annotate_video

    picks = {a["track_id"]: a["detected_in_ms"] for a in result.analyses}
    return annotate_video(opts.video, result.report_dir / "annotated.mp4", result.settings,
                          opts.stride(result.settings), picks).name


def _cmd_analyze(args: argparse.Namespace) -> int:
    opts = JobOptions(video=Path(args.video), out=Path(args.out), detector=args.detector, main_model=args.main_model,
                      cmt_model=args.cmt_model, frame_stride=args.frame_stride, annotated=args.annotated,
                      timeout_s=args.timeout)
    info = {}
    frames: dict[str, int] = {}
    notice: list[Optional[str]] = [None]
    demo_classifier = [False]  # the demo main model on real footage: its answers marked, not results

    def report(result: JobResult) -> Path:
        from ..eval.run_record import write_job_record

        # each snapshot's frame index and box, for `eval real --run` (results.json has no frame index)
        write_job_record(result, opts.video, {**info, **frames})
        return write_job_report(result, f"CVITX analysis of {opts.video.name}", video_info=info or None,
                                annotated=write_annotated(result, opts), notice=notice[0],
                                demo_classifier=demo_classifier[0])

    try:
        from ..worker_config import build_settings
        from .job import _bundle_changes, check_video
        from .weights_notice import demo_classifier_on_real_footage, demo_weights_notice, detector_for_video

        vi = check_video(opts.video)
        info.update(width=vi.width, height=vi.height, fps=vi.fps, duration_s=vi.duration_s)
        frames["frame_count"] = vi.frame_count
        # the job's own settings (run_job builds them the same way, plus its private stack's)
        job_settings = build_settings({}, **_bundle_changes(opts))
        chosen = detector_for_video(job_settings, opts.video, vi.frame_count)
        if chosen is not job_settings:  # real footage and no --detector: the shipped COCO detector
            opts = dataclasses.replace(opts, detector=chosen.detector_path)
            say(f"detector: {Path(chosen.detector_path).name}, a real COCO detector (not a generated clip; "
                "--detector to choose another)")
        notice[0] = demo_weights_notice(chosen, opts.video, vi.frame_count)
        demo_classifier[0] = demo_classifier_on_real_footage(chosen, opts.video, vi.frame_count)
        if notice[0]:
            say(f"note: {notice[0]}")
        result = run_job(opts, report)
    except JobFailed as exc:
        print(f"analyze failed: {exc}", file=sys.stderr)
        return 1
    print_summary(result, demo_classifier[0])
    say(f"report: {result.report_dir / 'index.html'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("analyze", help="analyse your own MP4 end to end on a private local stack, with a report",
                       description="Run PATH.mp4 through both workers exactly as in production (local moto_server + "
                                   "throwaway PostgreSQL, workers as separate processes), print a summary table and "
                                   "write an HTML report to --out. Everything it starts is stopped at the end.",
                       formatter_class=HelpFormatter)
    s.add_argument("video", help="path of the .mp4 to analyse")
    s.add_argument("--out", default="out/analyze", help="report directory (default: out/analyze)")
    s.add_argument("--detector", help="detector weights (.pt, .onnx, OpenVINO dir, .engine), e.g. yolov8m.pt")
    s.add_argument("--main-model", help="main model: a CVITX bundle (main.pt), or ONNX / OpenVINO .xml / .pt2 / TorchScript "
                                        "with its model card beside it (README, 'Bring your own models')")
    s.add_argument("--cmt-model", help="second bundle (cmt.pt): turns on Baseline vs CMT compare mode")
    s.add_argument("--frame-stride", type=int, help="process every N-th frame (default: default_frame_stride of the settings)")
    s.add_argument("--annotated", action="store_true", help="also write an annotated MP4 (boxes, track ids, types)")
    s.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds (default 3600)")
    s.set_defaults(func=_cmd_analyze)
