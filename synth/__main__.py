"""``python -m video_analysis.synth``: render a synthetic traffic clip with ground truth.

Example::

    python -m video_analysis.synth --seed 7 --out out/clips --name cam1 --fps 29.97 --duration 30 --lighting dusk
    python -m video_analysis.synth --scene carpark --seed 4245 --fps 25   # parked vehicles, occasional movers

``--scene`` picks the preset whose values the other options default to (``road``: a street
with continuous traffic; ``carpark``: ``synth.scene.carpark_config``); an option given on the
command line overrides the preset's value.
"""
from __future__ import annotations

import argparse
import sys

from .clip import write_clip
from .scene import SCENES, SceneConfig, scene_config


def build_parser(d: SceneConfig = SceneConfig(), scene: str = "road") -> argparse.ArgumentParser:
    """The command line, its defaults taken from ``d`` (the chosen preset's config)."""
    ap = argparse.ArgumentParser(
        prog="python -m video_analysis.synth",
        description="Render a deterministic synthetic traffic-camera clip (H.264 MP4) plus ground truth: "
                    "NAME.gt.txt (MOTChallenge boxes per frame) and NAME.json (type, make, model, colour and "
                    "plate of every vehicle). The same seed and options give the same clip.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--scene", choices=tuple(SCENES), default=scene,
                    help="preset the other options default to: road (continuous traffic) or carpark "
                         "(parked vehicles, occasional movers)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--out", default="out/clips", help="output directory")
    ap.add_argument("--name", default=None, help="file stem (default: clip_<seed>, carpark_<seed> for the carpark scene)")
    ap.add_argument("--width", type=int, default=d.width)
    ap.add_argument("--height", type=int, default=d.height)
    ap.add_argument("--fps", type=float, default=d.fps, help="frames per second, e.g. 12.5 or 29.97")
    ap.add_argument("--duration", type=float, default=d.duration_s, help="seconds")
    ap.add_argument("--camera-height", type=float, default=d.camera_height_m, help="metres above the road")
    ap.add_argument("--tilt", type=float, default=d.camera_tilt_deg, help="camera tilt below horizontal, degrees")
    ap.add_argument("--hfov", type=float, default=d.hfov_deg, help="horizontal field of view, degrees")
    ap.add_argument("--lanes", type=int, default=d.lanes)
    ap.add_argument("--traffic", type=float, default=d.vehicles_per_min, help="arrivals per lane per minute")
    ap.add_argument("--lighting", choices=("day", "dusk", "night"), default=d.lighting)
    ap.add_argument("--rain", action="store_true")
    ap.add_argument("--noise", type=float, default=d.noise_sigma, help="sensor noise sigma (grey levels)")
    ap.add_argument("--crf", type=int, default=d.crf, help="H.264 quality: 18 near lossless .. 35 blocky")
    ap.add_argument("--stop-probability", type=float, default=d.stop_probability,
                    help="chance a vehicle stops at the stop line for a while")
    ap.add_argument("--parked", type=int, default=d.parked,
                    help="vehicles parked at the near kerb, still for the whole clip")
    ap.add_argument("--empty-start", action=argparse.BooleanOptionalAction, default=not d.start_filled,
                    help="start with an empty road (--no-empty-start: vehicles already in view)")
    return ap


def main(argv=None) -> int:
    # Two passes: the preset (and its seed) first, then every option with the preset's defaults.
    pre = argparse.ArgumentParser(prog="python -m video_analysis.synth", add_help=False)
    pre.add_argument("--scene", choices=tuple(SCENES), default="road")
    pre.add_argument("--seed", type=int, default=0)
    known, _rest = pre.parse_known_args(argv)
    args = build_parser(scene_config(known.scene, known.seed), known.scene).parse_args(argv)
    try:
        cfg = SceneConfig(width=args.width, height=args.height, fps=args.fps, duration_s=args.duration, seed=args.seed,
                          camera_height_m=args.camera_height, camera_tilt_deg=args.tilt, hfov_deg=args.hfov,
                          lanes=args.lanes, vehicles_per_min=args.traffic, lighting=args.lighting, rain=args.rain,
                          noise_sigma=args.noise, crf=args.crf, start_filled=not args.empty_start,
                          stop_probability=args.stop_probability, parked=args.parked)
        stem = "clip" if args.scene == "road" else args.scene
        info = write_clip(cfg, args.out, args.name or f"{stem}_{args.seed}")
    except ValueError as exc:  # a config that does not validate, or parked vehicles that do not fit
        print(f"synth: {exc}", file=sys.stderr)
        return 2
    print(f"{info.video}: {info.frames} frames, {info.vehicles} vehicles; ground truth {info.gt}, {info.meta}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
