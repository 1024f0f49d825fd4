"""`check-model PATH [--kind detector|main]`: load a model file as a worker would, say what it
is and how fast it runs here, and exit 0 when a worker could run it, 2 with the reason when not.

Nothing in the file runs while it is inspected: the kind is guessed from what the file is
(worker_utils/model_files.py), and a ``.pt`` is loaded as the worker loads it, which checks its
pickle's references before anything unpickles it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from .helptext import HelpFormatter

EXIT_OK, EXIT_REFUSED = 0, 2


def cpu_name() -> str:
    """The CPU's model name, for latency figures (the benchmarks' own reading of it)."""
    from ..bench.common import _cpu_name

    return _cpu_name()


def guess_kind(path: Path) -> str:
    """``"detector"`` or ``"main"`` from what the file is: an ultralytics detection checkpoint
    or export, an OpenVINO directory or a TensorRT engine is a detector; the rest is a main model."""
    from ..main_worker.formats.card import card_path
    from ..worker_utils.model_files import sniff

    from ..yolo_worker.card_detector import has_card

    if path.is_dir() or path.suffix.lower() == ".engine" or has_card(path):
        return "detector"  # a detector card beside it (<stem>.card.json) says so too
    found = sniff(path)
    if found.kind == "torch_pickle":
        return "detector" if ("ultralytics.nn.tasks", "DetectionModel") in found.globals else "main"
    if found.kind == "onnx" and not card_path(path).is_file():
        from ..main_worker.formats.onnx import onnx_metadata

        return "detector" if onnx_metadata(path).get("task") == "detect" else "main"
    return "main"


def main_model_lines(path: Path, runs: int) -> list[str]:
    from ..main_worker.model import load_bundle, summary
    from ..main_worker.variants import bundle_runtime, openvino_config
    from ..worker_config import get_settings

    settings = get_settings()
    # the runtime and precision the main_worker would run it in (a CVITX bundle: OpenVINO on CPU,
    # main_runtime, main_precision)
    model = load_bundle(path, runtime=bundle_runtime(settings), cache_dir=settings.detector_cache_path(),
                        ov_config=openvino_config(settings))
    s = summary(model, latency_runs=runs)  # load_bundle runs the worker's start-up check
    heads = ", ".join(f"{h} {n}" for h, n in s["heads"].items())
    return [f"kind        main model ({s['model_name']} {s['version']})",
            f"format      {s['format']}",
            f"runtime     {s['runtime']}, precision {s['precision']}",
            f"input       {s['input_size']} x {s['input_size']} (from 640 x 640 snapshots)",
            f"heads       {heads} (labels per head)",
            f"hierarchy   {s['hierarchy_paths']} type/make/model paths",
            f"latency     {s['median_ms']:.1f} ms median per snapshot ({runs} runs, batch 1) on {cpu_name()}"]


def detector_lines(path: Path, runs: int) -> list[str]:
    from ..main_worker.model import median_ms
    from ..worker_config import get_settings
    from ..yolo_worker import detector_runtime as rt
    from ..yolo_worker.detector import Detector, class_mapping
    from ..yolo_worker.tracking import reid_status

    settings = get_settings()
    det = Detector(settings, weights=path)
    frame = np.full((det.imgsz, det.imgsz, 3), 114, np.uint8)
    ms = median_ms(lambda: det.detect(frame), runs)
    exported = next(iter(det._exported.values()), None)
    mapped, ignored = class_mapping(det.names, det.lookup)
    reasons = rt.recorded_reasons(exported) if exported is not None else {}
    family = (f"{det.card['family']} ({det.card['output']['layout']}), card {det.card_file.name}" if det.card_file
              else "ultralytics (its export's metadata; no card needed)")
    return [f"kind        detector ({len(det.names)} classes)",
            f"format      {path.suffix.lstrip('.') or 'directory'}",
            f"family      {family}",
            f"runtime     {det.runtime} on {det.device}, precision {getattr(exported, 'precision', 'f32')}"
            f"{' (' + reasons['precision'] + ')' if 'precision' in reasons else ''}",
            f"threads     {det.threads}{' (' + reasons['threads'] + ')' if 'threads' in reasons else ''}",
            f"input       {'x'.join(map(str, det.card['input']['size'])) + ' (the card)' if det.card else str(det.imgsz) + ' (longest side)'}",
            f"classes     {', '.join(mapped) or 'none'}",
            f"ignored     {len(ignored)} classes{': ' + ', '.join(ignored[:12]) if ignored else ''}"
            f"{' ...' if len(ignored) > 12 else ''}",
            f"latency     {ms:.1f} ms median per {det.imgsz}x{det.imgsz} frame ({runs} runs) on {cpu_name()}",
            f"tracker     {settings.tracker}, re-ID: {reid_status(settings)[1]}"]


def _cmd_check_model(args: argparse.Namespace) -> int:
    from ..worker_utils.errors import WorkerError

    path = Path(args.path)
    if not path.exists():
        print(f"check-model: {path} does not exist", file=sys.stderr)
        return EXIT_REFUSED
    kind: Optional[str] = args.kind
    try:
        kind = kind or guess_kind(path)
        lines = (detector_lines if kind == "detector" else main_model_lines)(path, args.runs)
    except WorkerError as exc:
        print(f"check-model: a worker cannot run {path} as a {kind or 'model'}: {exc.reason}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"check-model {path}")
    for line in lines:
        print(f"  {line}")
    print(f"ok: the {'yolo_worker' if kind == 'detector' else 'main_worker'} can run it")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("check-model", help="check a detector or main model before deploying it",
                       description="Load PATH as the worker would (nothing in the file runs while it is inspected) "
                                   "and print its format, runtime, precision, input size, heads and label counts (or "
                                   "a detector's classes, how each maps onto the taxonomy and which are ignored), the "
                                   "hierarchy size and the median latency per image on this machine. Exit 0 when a "
                                   "worker could run it, 2 with the reason when it could not.",
                       formatter_class=HelpFormatter)
    s.add_argument("path", help="model file: .pt, .onnx, .xml, .pt2, TorchScript .pt, OpenVINO directory, .engine")
    s.add_argument("--kind", choices=("detector", "main"), help="what the model is for (default: guessed from the file)")
    s.add_argument("--runs", type=int, default=10, help="timed forward passes for the median latency (default 10)")
    s.set_defaults(func=_cmd_check_model, failure_exit=EXIT_REFUSED)
