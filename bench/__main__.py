"""``python -m video_analysis.bench`` (``make bench``): the performance figures, as JSON on stdout.

    python -m video_analysis.bench                 # a-e, the static-camera case and threads (about 7-9 min on 2 cores)
    python -m video_analysis.bench yolo main       # a+b, c only
    python -m video_analysis.bench --quick         # short clips: a smoke run in a few minutes
    python -m video_analysis.bench yolo --detector team.onnx --imgsz 320   # a team's detector file
    python -m video_analysis.bench yolo --detector team.onnx --video real.mp4   # a+b on your own footage too

Groups: ``yolo`` = a (end to end, motion gating off, vs detector-only) + b (end to end vs naive
ultralytics track loop) on continuous traffic, the static-camera case (a car park: parked
vehicles, occasional movers; end to end vs naive) and the detector's threads (1 vs every usable
core, detector-only and end to end); each end-to-end run reports its frames detected / carried
over and its snapshot coverage against the clip's ground truth, with gating on and off;
``main`` = c (main_worker batched vs one at a time); ``long`` = d (peak RSS 1-min vs 10-min
clip) + e (first SNAPSHOT_READY as a fraction of the processing time, 10-min clip);
``formats`` = the main-model formats' per-snapshot latency side by side (bench/main_formats.py);
``segments`` = one long video (10 min) through 1 and through 2 yolo_worker processes, its
segments spread over them (bench/segments.py).
Each benchmark starts its own local stack (moto_server + throwaway PostgreSQL) and stops it.
Clips are generated once and cached under artifacts/bench/clips.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..worker_utils.offline import ultralytics_offline
from .common import ISA_CAP_VAR, WORK, emit, log, machine

TARGETS = {  # figure -> (comparison, target), from the performance issues (5, 18)
    "a_end_to_end_vs_detector_only": (">=", 0.90),  # motion gating off: the detector on every frame
    # the same at detector_threads 1 (yolo_threads): a core left for decoding and tracking
    "overlap_threads_1": (">=", 0.90),
    "b_end_to_end_vs_naive": (">=", 2.0),  # continuous traffic, gating on (the default)
    "static_end_to_end_vs_naive": (">=", 3.0),  # the static-camera case (car park), gating on
    "coverage_gated_minus_ungated": (">=", 0.0),  # snapshot coverage unchanged (or better) with gating
    "c_batched_vs_one_at_a_time": (">=", 2.0),
    "d_peak_rss_growth_short_to_long": ("<=", 0.10),
    "e_first_snapshot_fraction_long": ("<=", 0.25),
    "two_vs_one": (">=", 1.8),  # one long video, 2 yolo_workers against 1 (issue 26)
}


def check_targets(results: dict[str, Any]) -> dict[str, Any]:
    """A verdict on each figure in :data:`TARGETS` found in a result group: ``{figure: {value,
    target, met}}``; a figure in several groups (yolo and yolo_640) is ``figure@group`` after
    the first."""
    out = {}
    for name, group in results.items():
        for key, (op, target) in TARGETS.items():
            if isinstance(group, dict) and key in group and group[key] is not None:
                v = group[key]
                out[key if key not in out else f"{key}@{name}"] = {
                    "value": v, "target": f"{op} {target}", "met": v >= target if op == ">=" else v <= target}
    return out


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, set[str]]:
    """The command line, and the set of benchmark groups it chose."""
    ap = argparse.ArgumentParser(prog="python -m video_analysis.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("groups", nargs="*", choices=["yolo", "main", "long", "formats", "segments", "all"], default="all",
                    help="which benchmarks (default: all)")
    ap.add_argument("--quick", action="store_true", help="short clips (smoke run; figures are noisier)")
    ap.add_argument("--stride", type=int, default=3, help="frame_stride for every yolo_worker run")
    ap.add_argument("--runtime", help="detector runtime for a/b (default: the configured one)")
    ap.add_argument("--imgsz", type=int, help="detector input size for a/b (default: the weights' own, and 640)")
    ap.add_argument("--detector", help="detector file for the yolo groups a/b and the car park (default: the demo "
                    "detector), e.g. a team's ONNX export; the naive loop loads the same file in ultralytics")
    ap.add_argument("--video", help="also run a+b on this video (e.g. real footage; no ground truth, so no coverage): "
                    "group yolo_video")
    ap.add_argument("--no-plate", action="store_true", help="c with plate OCR off only (by default c runs with it on and, side by side, off)")
    ap.add_argument("--isa", choices=["avx2"], help="run as on a CPU with AVX2 only (no AVX-512, VNNI or bfloat16): "
                    f"the benchmark re-runs itself with {ISA_CAP_VAR}=AVX2, which caps oneDNN's kernels; "
                    "the CPU line says so")
    ap.add_argument("--out", default=str(WORK / "results.json"), help="also write the JSON here")
    args = ap.parse_args(argv)
    chosen = [args.groups] if isinstance(args.groups, str) else args.groups  # the default is the string "all"
    return args, ({"yolo", "main", "long", "formats", "segments"} if "all" in chosen else set(chosen))


def isa_capped_env(isa: str | None, environ: dict[str, str]) -> dict[str, str] | None:
    """The environment to re-run the benchmark in for ``--isa`` (pure), or None when this process
    already runs under that cap (or none was asked for).  oneDNN reads the cap once, at load."""
    if not isa or environ.get(ISA_CAP_VAR, "").upper() == isa.upper():
        return None
    return {**environ, ISA_CAP_VAR: isa.upper()}


def main(argv: list[str] | None = None) -> int:
    args, groups = parse_args(argv)
    env = isa_capped_env(args.isa, dict(os.environ))
    if env is not None:
        argv = sys.argv[1:] if argv is None else argv
        os.execve(sys.executable, [sys.executable, "-m", "video_analysis.bench", *argv], env)
    ultralytics_offline()
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    log(f"CPU: {results['machine']['cpu_line']}")  # every figure below is this CPU's
    if "yolo" in groups:
        from .yolo_throughput import bench_threads, bench_yolo

        duration, rounds = (10.0, 2) if args.quick else (30.0, 3)
        log("a+b: yolo_worker end to end (motion gating on and off) vs detector-only vs naive track loop")
        results["yolo"] = bench_yolo(duration, args.stride, rounds=rounds, runtime=args.runtime, imgsz=args.imgsz,
                                     weights=args.detector)
        if args.video:
            log(f"a+b on {args.video}: end to end vs detector-only vs naive track loop")
            results["yolo_video"] = bench_yolo(duration, args.stride, rounds=rounds, runtime=args.runtime,
                                               imgsz=args.imgsz, weights=args.detector, video=args.video)
        log("static camera (car park): end to end vs detector-only vs naive track loop")
        results["yolo_static"] = bench_yolo(duration, args.stride, rounds=rounds, runtime=args.runtime,
                                            imgsz=args.imgsz, scene="carpark", weights=args.detector)
        log("threads: detector-only and end to end at detector_threads 1 vs every usable core")
        results["yolo_threads"] = bench_threads(duration, args.stride, rounds=rounds, runtime=args.runtime,
                                                imgsz=args.imgsz)
        if args.imgsz is None and not args.quick:
            # The demo detector is trained at 320 px, where fixed per-frame costs weigh more than
            # in a production yolov8n at 640: run the same weights at 640 too.
            log("a+b again with the detector at 640 px")
            results["yolo_640"] = bench_yolo(30.0, args.stride, rounds=2, runtime=args.runtime, imgsz=640)
    if "main" in groups:
        from .main_throughput import bench_main

        log("c: main_worker batched vs one at a time")
        results["main"] = bench_main(10.0 if args.quick else 30.0, args.stride, plate=not args.no_plate,
                                     rounds=1 if args.quick else 3)
    if "long" in groups:
        from .long_video import bench_long

        log("d+e: peak RSS and first SNAPSHOT_READY, short vs long clip")
        results["long"] = (bench_long(0.25, 1.0, args.stride) if args.quick else bench_long(1.0, 10.0, args.stride))
    if "segments" in groups:
        from .segments import bench_segments

        log("segments: one long video through 1 and through 2 yolo_workers (detector_threads 1)")
        results["segments"] = bench_segments(120.0, 1) if args.quick else bench_segments()
    if "formats" in groups:
        from .main_formats import bench_formats

        log("main-model formats: per-snapshot latency of each, side by side")
        results["formats"] = bench_formats(runs=5 if args.quick else 20)
    for group in results.values():  # each group's figures name their CPU, also when copied out alone
        if isinstance(group, dict) and group is not results["machine"]:
            group.setdefault("cpu", results["machine"]["cpu_line"])
    results["targets"] = check_targets(results)
    emit(results)
    WORK.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=1)
    log(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
