"""INT8 where it pays: the detector's float ONNX export quantised by NNCF and run by OpenVINO.

``detector_precision`` (worker_config.py) decides what :func:`detector_runtime.load_exported`
runs on OpenVINO:

* ``f32`` / ``f16`` / ``bf16``: the float export with that INFERENCE_PRECISION_HINT (detector_runtime.py).
* ``int8``: the INT8 export made here, always (the float export when it cannot be made, with a warning).
* ``auto``: the INT8 export only where a short timing on this CPU showed it at least
  :data:`MIN_SPEEDUP` times faster than the float model at OpenVINO's default precision *and* its
  detections agree with the float model's on held-out frames (:data:`MIN_PARITY`, below); else the
  float model, exactly as without this module.  Measured once per host, weights and input size and
  recorded in the INT8 export's JSON sidecar, so only the first video of that size on a host waits.

**Quantisation.**  Post-training, ``nncf.quantize(..., preset=MIXED)`` (symmetric weights,
asymmetric activations: YOLO's SiLU activations are not centred on zero) of the cached ONNX export
read by OpenVINO, calibrated on frames letterboxed exactly as :meth:`OnnxModel.predict` letterboxes
(:func:`detector_runtime.to_input`): rendered scenes of the training seed range (never the EVAL
seeds the metrics use) at the video's frame size, or a team's own frames
(``detector_calibration_dir`` / ``--calibration DIR``).  The box-decoding tail of the YOLO head
(DFL, the anchor arithmetic, the class sigmoid) stays float, as ultralytics' own INT8 export does:
it computes pixel coordinates, which 8 bits cannot hold.

**How many frames.**  :data:`SUBSET_SIZE` = 128: on the demo detector's EVAL frames (640x360, 68
frames, 184 boxes) INT8's mAP50 fell 0.020 below float32 calibrated on 32 frames (its held-out parity
0.954: auto refuses it), 0.003-0.007 on 48-128 frames, and rose 0.002 on 256; NNCF's slower bias
correction (``fast_bias_correction=False``) changed nothing.

**Cache.**  Beside the float export: ``<stem>-<digest>-<h>x<w>-int8.xml`` + ``.bin`` + ``.json``
(how it was made, the sha256 of the ``.bin``, and the auto decision).  Made in a private temporary
directory and renamed into place (``.bin``, ``.xml``, then the ``.json`` that vouches for them), so
racing workers converge; a pair that does not match its ``.json`` (damaged, or half of another
worker's copy) or does not load is made again once.  The ``.json`` names its calibration source: a
worker configured with a different ``detector_calibration_dir`` makes the export again.

**Parity figure.**  mAP50 of the INT8 model's detections (down to conf 0.001, for a full ranking)
with the float model's detections at conf >= :data:`REFERENCE_CONF` as the reference boxes,
computed by ultralytics' own validator code (the mAP50 that ``eval/detector.py`` reports).  Its
ceiling, 0.995 (ultralytics' 101-point interpolation), means every box the float model would hand
the tracker is found by the INT8 model, with the right class, ranked above its spurious boxes; the
demo detector scores 0.995 on the 24 held-out frames (69 boxes).  :data:`MIN_PARITY` 0.97 allows
about one box in 30 to be missed or ranked below a spurious one: the test's criterion (mAP50 against
the ground truth within 0.01 of float32) held with far less disagreement than that.

**Offline.**  ``import nncf`` starts Google Analytics telemetry (openvino-telemetry; with no consent
file it counts as consent and writes a client id under ``~/intel``).  :func:`import_nncf` sets
NNCF's own switch ``NNCF_CI=1`` first, which replaces the telemetry with a stub.  The ONNX file is
read with ``Core.read_model`` (the same ONNX frontend as ``openvino.convert_model``, without
convert_model's telemetry session).

Command line: ``python -m video_analysis.yolo_worker.quantize --help``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import median
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..worker_utils import measured
from ..worker_utils.model_files import export_workdir, file_digest, move_into_place
from . import detector_runtime as rt

log = logging.getLogger("video_analysis.yolo_worker.quantize")  # also when run with -m

SUBSET_SIZE = 128        # calibration frames (NNCF's default is 300; see the module docstring)
HELD_OUT = 24            # frames never calibrated on: the parity check and the timing
MIN_FOLDER_FRAMES = 10   # a calibration folder with fewer images is refused
# auto: INT8 must be at least this much faster (median of measured.ROUNDS rounds).  Its gain seen
# on the demo detector: 0.75x on an Intel Xeon with AMX, 0.98-1.14x on an AMD EPYC with AVX-512
# BF16 (within noise: at 1.10 two measurements on that host chose differently, issue 23), 0.95x on
# an AVX2-only EPYC at two threads and 1.25x at one.  1.30 keeps every one of them clear of the
# margin; INT8 still wins where it pays by a lot (larger networks on VNNI / AMX-INT8 CPUs).
MIN_SPEEDUP = 1.30
MIN_PARITY = 0.97        # auto: INT8 vs float mAP50 (see the module docstring) at least this
REFERENCE_CONF = 0.25    # the float boxes taken as the reference: detector_conf's default
TIMING_S = 1.5           # per model, for the auto decision
# A worker makes the export or measures only where that holds its first video up for less than this
# (half the default stall_timeout_s, 90 s): a longer wait would be taken for a hung handler, the worker
# restarted, and the work begun again.  Larger models: the command line, once per host.
WORKER_BUDGET_S = 45.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
GENERATED = "generated"  # the calibration source when no folder is given
DEFAULT_FRAME_SIZE = (640, 360)


class CalibrationError(rt.ExportFailed):
    """The calibration frames cannot be had (folder missing, empty, unreadable images); the
    message says what to fix."""


# --- pure helpers ----------------------------------------------------------------------------
def int8_paths(cache_dir: str | Path, stem: str, digest: str, size: Sequence[int]) -> tuple[Path, Path, Path]:
    """``(xml, bin, json)`` of the INT8 export of these weights at input ``size`` (h, w)."""
    d = Path(cache_dir)
    return tuple(d / rt.cache_name(stem, digest, size, kind) for kind in ("int8", "int8-bin", "int8-json"))


def parse_frame_size(text: str) -> tuple[int, int]:
    """``"640x360"`` -> ``(640, 360)`` (width, height in pixels); ValueError says what is wrong."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"frame size {text!r} is not WIDTHxHEIGHT, e.g. 640x360") from None
    if w < 64 or h < 64:
        raise ValueError(f"frame size {text!r} is too small: at least 64x64")
    return w, h


def calibration_source(calibration_dir: Optional[str | Path]) -> str:
    """What the INT8 export is calibrated on, as recorded in its sidecar: ``"generated"`` or the
    folder's absolute path."""
    return GENERATED if not calibration_dir else str(Path(calibration_dir).expanduser().resolve())


def needs_remake(recorded: Optional[str], requested: str) -> bool:
    """Whether a cached INT8 export calibrated on ``recorded`` must be made again for a request to
    calibrate on ``requested`` (:func:`calibration_source` values).  Asking for nothing in
    particular (generated frames) accepts any cached export, so one made by the command line from a
    team's frames is kept; asking for a folder accepts only an export made from that folder."""
    if recorded is None:
        return True
    return requested != GENERATED and recorded != requested


def host_key(cpu: str, threads: int, openvino_version: str) -> dict:
    """What an auto decision depends on beyond the model: the CPU, the thread count, OpenVINO."""
    return {"cpu": cpu, "threads": int(threads), "openvino": openvino_version}


def decision_applies(decision: Optional[Mapping[str, Any]], host: Mapping[str, Any]) -> bool:
    """True when a recorded auto ``decision`` was measured on this ``host`` (:func:`host_key`)."""
    return measured.applies(decision, host) and decision.get("choice") in ("int8", "float")


def work_needed(meta: Optional[Mapping[str, Any]], precision: str, requested_source: str,
                host: Mapping[str, Any]) -> str:
    """What serving ``precision`` (``int8``/``auto``) takes, given the cached export's sidecar
    ``meta`` (None: no usable export): ``"quantize"`` (make the export, and for auto measure it),
    ``"measure"`` (auto: time and check a cached export on this host) or ``"none"``."""
    if meta is None or needs_remake(meta.get("calibration"), requested_source):
        return "quantize"
    if precision == "auto" and not decision_applies(meta.get("auto"), host):
        return "measure"
    return "none"


def estimate_s(inference_ms: float, work: str, subset_size: int = SUBSET_SIZE, held_out: int = HELD_OUT) -> float:
    """Seconds ``work`` (:func:`work_needed`) takes for a model whose float inference takes
    ``inference_ms``: NNCF runs the calibration frames about 1.5 times (statistics, bias
    correction), the auto check runs the held-out frames through both models and ~20 timings.
    Rendering and saving (a few seconds) are left out."""
    runs = {"quantize": 1.5 * subset_size + 2 * held_out + 20, "measure": 2 * held_out + 20, "none": 0}[work]
    return inference_ms * runs / 1000.0


def auto_choice(float_ms: Sequence[float], int8_ms: Sequence[float], parity: float,
                min_speedup: float = MIN_SPEEDUP, min_parity: float = MIN_PARITY) -> tuple[str, str]:
    """``("int8" | "float", reason)`` from per-round timings (ms a frame, network only, one
    median per round: worker_utils/measured.py) and the parity figure (mAP50 of INT8 against the
    float model's boxes, 0..1).  INT8 only on a clear gain (measured.clear_gain): a speed-up within
    noise gives float on every measurement, so two measurements on one host agree."""
    if parity < min_parity:
        return "float", f"INT8 detections disagree with float's: parity {parity:.4f} < {min_parity}"
    take, gain = measured.clear_gain(measured.speedups(float_ms, int8_ms), min_speedup)
    f, i = median(float_ms), median(int8_ms)
    rounds = f"median of {len(float_ms)} rounds"
    if not take:
        return "float", (f"INT8 gains too little on this CPU: {i:.2f} vs {f:.2f} ms ({gain:.2f}x, {rounds}; "
                         f"needs >= {min_speedup}x)")
    return "int8", f"INT8 {gain:.2f}x faster ({i:.2f} vs {f:.2f} ms, {rounds}), parity {parity:.4f}"


def head_ignored_names(ops: Sequence[tuple[str, str]]) -> list[str]:
    """Names of the ops NNCF must leave float, from the model's ``(type, friendly name)`` ops in
    order: the YOLO head's decoding tail (DFL, anchor Add/Sub/Mul/Div, Concat) and every Sigmoid.

    The head's scope is the last Sigmoid's name up to its last ``/`` (``/model.22`` for YOLOv8,
    ``/model.23`` for YOLO11); ops named directly in it or under ``<scope>/dfl/`` are the tail, its
    sub-modules' convolutions (``<scope>/cv2.0/...``) are quantised.  No Sigmoid: nothing ignored."""
    sigmoids = [name for kind, name in ops if kind == "Sigmoid"]
    if not sigmoids or "/" not in sigmoids[-1]:
        return sorted(set(sigmoids))
    scope = sigmoids[-1].rsplit("/", 1)[0] + "/"
    tail = [name for kind, name in ops if kind != "Constant" and name.startswith(scope)
            and ("/" not in name[len(scope):] or name.startswith(scope + "dfl/"))]
    return sorted(set(sigmoids) | set(tail))


def evenly_spaced(items: Sequence, n: int) -> list:
    """At most ``n`` of ``items``, spread over the whole sequence (first one first)."""
    if n >= len(items):
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def map50(predictions: Sequence[np.ndarray], references: Sequence[np.ndarray], classes: int) -> float:
    """mAP at IoU 0.5 of ``predictions`` (per image ``D x 6``: x1, y1, x2, y2, conf, cls) against
    ``references`` (per image ``R x 5`` or more: x1, y1, x2, y2, then cls in column 5 when it has 6
    columns, else in column 4), pixel boxes; ``classes``: the detector's class count.

    ultralytics' own validator arithmetic (``DetectionValidator._process_batch`` matching and
    ``DetMetrics``/``ap_per_class``), the mAP50 ``eval/detector.py`` reports; classes without a
    reference box are left out of the mean, as there."""
    import torch

    from ..worker_utils.offline import ultralytics_offline

    ultralytics_offline()
    from ultralytics.models.yolo.detect.val import DetectionValidator
    from ultralytics.utils.metrics import DetMetrics

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} images")
    with tempfile.TemporaryDirectory(prefix="cvitx-map-") as tmp:
        validator = DetectionValidator(save_dir=Path(tmp))  # for its matching code only; writes nothing
        metrics = DetMetrics(names={i: str(i) for i in range(classes)})
        for i, (pred, ref) in enumerate(zip(predictions, references)):
            pred = np.asarray(pred, np.float32).reshape(-1, 6)
            pred = pred[np.argsort(-pred[:, 4], kind="stable")]  # matching expects descending confidence
            ref = np.asarray(ref, np.float32)
            ref = ref.reshape(-1, ref.shape[-1] if ref.ndim == 2 and ref.shape[-1] >= 5 else 5)
            ref_cls = np.ascontiguousarray(ref[:, 5] if ref.shape[1] >= 6 else ref[:, 4])
            ref_boxes = np.ascontiguousarray(ref[:, :4])
            tp = validator._process_batch(
                {"bboxes": torch.from_numpy(pred[:, :4]), "cls": torch.from_numpy(pred[:, 5])},
                {"bboxes": torch.from_numpy(ref_boxes), "cls": torch.from_numpy(ref_cls)})["tp"]
            metrics.update_stats({"tp": tp, "conf": pred[:, 4], "pred_cls": pred[:, 5],
                                  "target_cls": ref_cls, "target_img": np.unique(ref_cls), "im_name": str(i)})
        metrics.process()
        return float(metrics.box.map50)


# --- calibration frames ------------------------------------------------------------------------
@dataclass
class Calibration:
    """Frames as network inputs (``1 x 3 x h x w`` float32, :func:`detector_runtime.to_input`):
    ``calibrate`` for NNCF, ``held_out`` (never calibrated on) for the parity check and the timing."""

    source: str
    calibrate: list = field(default_factory=list)
    held_out: list = field(default_factory=list)
    describe: str = ""


def generated_frames(count: int, frame_size: Sequence[int], seeds: Sequence[int],
                     per_scene: int = 8) -> list[np.ndarray]:
    """``count`` BGR frames (``H x W x 3`` uint8, ``frame_size`` = (W, H)) of generated scenes with
    twice their drawn traffic, one second apart, ``per_scene`` from each seed in turn,
    JPEG-compressed as a decoded video is."""
    import cv2

    from ..synth.datasets import random_config
    from ..synth.scene import Scene

    w, h = (max(64, int(v) - int(v) % 2) for v in frame_size)  # the generator wants even sizes
    frames: list[np.ndarray] = []
    for seed in seeds:
        if len(frames) >= count:
            break
        take = min(per_scene, count - len(frames))
        cfg = random_config(int(seed), width=w, height=h, fps=1.0, duration_s=float(take + 1))
        # Twice the traffic: more vehicles (and overlaps) per frame to calibrate and check parity on.
        cfg = replace(cfg, vehicles_per_min=cfg.vehicles_per_min * 2.0)
        for i, img, _objs in Scene(cfg).frames():
            if i == 0:
                continue  # the first frame of a scene is its prefill, no motion yet
            ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), 80])
            frames.append(cv2.imdecode(buf, cv2.IMREAD_COLOR))
            if len(frames) >= count or i >= take:
                break
    return frames


def folder_images(folder: str | Path) -> list[Path]:
    """The image files of a calibration folder, sorted; :class:`CalibrationError` says what to fix."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise CalibrationError(f"calibration folder {folder} does not exist; point --calibration "
                               "(detector_calibration_dir) at a folder of your cameras' frames")
    if not folder.is_dir():
        raise CalibrationError(f"calibration path {folder} is a file, not a folder of frames")
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as exc:
        raise CalibrationError(f"cannot list calibration folder {folder}: {exc.strerror or exc}") from exc
    if len(files) < MIN_FOLDER_FRAMES:
        raise CalibrationError(
            f"calibration folder {folder} holds {len(files)} images ({'/'.join(IMAGE_SUFFIXES)}); at least "
            f"{MIN_FOLDER_FRAMES} are needed, {SUBSET_SIZE + HELD_OUT} or more is better: save frames of your "
            "cameras there (e.g. ffmpeg -i clip.mp4 -vf fps=1 frame%04d.jpg)")
    return files


def split_files(files: Sequence[Path], subset_size: int, held_out: int) -> tuple[list[Path], list[Path]]:
    """``(calibration files, held-out files)`` of a folder's sorted ``files``: ``held_out`` spread
    over the folder (from its third, every fifth), up to ``subset_size`` of the rest spread likewise."""
    held = evenly_spaced(list(files[2::5]), held_out)
    rest = [f for f in files if f not in set(held)]
    return evenly_spaced(rest, subset_size), held


def read_images(files: Sequence[Path]) -> list[np.ndarray]:
    """The BGR frames of ``files``; :class:`CalibrationError` names the ones that cannot be read."""
    import cv2

    frames, bad = [], []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        (bad.append(f.name) if img is None or img.size == 0 else frames.append(img))
    if bad:
        raise CalibrationError(f"{len(bad)} of {len(files)} calibration images cannot be read as images "
                               f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}) in {files[0].parent}: "
                               "remove or re-save them as JPEG/PNG")
    return frames


def load_calibration(size: Sequence[int], frame_size: Sequence[int], calibration_dir: Optional[str | Path] = None,
                     subset_size: int = SUBSET_SIZE, held_out: int = HELD_OUT) -> Calibration:
    """The calibration and held-out inputs for input ``size`` (h, w).

    From ``calibration_dir``: ``held_out`` images spread over the folder (from its third, every
    fifth) and up to ``subset_size`` of the rest, spread likewise.  Else rendered training scenes at
    ``frame_size`` (W, H): held out the last 4 training seeds, calibrated on the 8-frame scenes
    before them (never the EVAL seeds).  The held-out frames do not depend on ``subset_size``, so
    a decision re-measured later uses the same ones."""
    from ..synth.datasets import TRAIN_SEEDS

    letterbox = rt.letterboxer(size)
    source = calibration_source(calibration_dir)
    if source == GENERATED:
        per_scene, held_seeds = 8, TRAIN_SEEDS[-4:]
        cal_seeds = TRAIN_SEEDS[-4 - max(1, -(-subset_size // per_scene)):-4]
        cal = generated_frames(subset_size, frame_size, cal_seeds, per_scene)
        held = generated_frames(held_out, frame_size, held_seeds, max(1, -(-held_out // len(held_seeds))))
        describe = (f"{len(cal)} frames of generated scenes (training seeds {cal_seeds[0]}..{cal_seeds[-1]}) and "
                    f"{len(held)} held out ({held_seeds[0]}..{held_seeds[-1]}), {frame_size[0]}x{frame_size[1]}")
    else:
        files = folder_images(calibration_dir)
        cal_files, held_files = split_files(files, subset_size, held_out)
        cal, held = read_images(cal_files) if cal_files else [], read_images(held_files)
        describe = f"{len(cal)} of the {len(files)} images in {source}, {len(held)} others held out"
    return Calibration(source, [rt.to_input(letterbox, f) for f in cal],
                       [rt.to_input(letterbox, f) for f in held], describe)


# --- quantisation and the cache ------------------------------------------------------------------
def import_nncf():
    """``import nncf`` with its telemetry off (NNCF's ``NNCF_CI`` switch: a stub instead of Google
    Analytics) and its own stdout log handler quiet below warnings (the worker logs JSON lines)."""
    os.environ["NNCF_CI"] = "1"  # written, never read, here: before nncf's first import reads it
    try:
        import nncf
    except ImportError as exc:
        raise rt.ExportFailed("the nncf package is not installed (pip install -r requirements.txt)") from exc
    # Its logger's level, not nncf.set_log_level(), which also sets the level of every handler
    # on that logger (under pytest, the log capture's own).
    logging.getLogger("nncf").setLevel(logging.WARNING)
    return nncf


def read_sidecar(xml: Path, bin_: Path, sidecar: Path) -> Optional[dict]:
    """The sidecar of a complete, matching INT8 export (its ``.bin`` hashes as recorded), else None."""
    try:
        meta = json.loads(sidecar.read_text())
        if xml.is_file() and meta.get("bin_sha256") == file_digest(bin_, 16):
            return meta
    except (OSError, ValueError, AttributeError):
        pass
    return None


def quantize_onnx(onnx_path: str | Path, inputs: Sequence[np.ndarray]):
    """The NNCF INT8 ``openvino.Model`` of the ONNX file, calibrated on ``inputs`` (all of them)."""
    ov = rt.import_openvino()

    nncf = import_nncf()
    model = ov.Core().read_model(str(onnx_path))
    ignored = head_ignored_names([(op.get_type_name(), op.get_friendly_name()) for op in model.get_ordered_ops()])
    try:
        # NNCF draws rich progress bars on stdout, with no switch: the worker's stdout is its journal.
        with contextlib.redirect_stdout(io.StringIO()):
            return nncf.quantize(model, nncf.Dataset(list(inputs)), preset=nncf.QuantizationPreset.MIXED,
                                 subset_size=len(inputs), target_device=nncf.TargetDevice.CPU,
                                 ignored_scope=nncf.IgnoredScope(names=ignored, validate=False) if ignored else None)
    except Exception as exc:  # noqa: BLE001 - any NNCF failure: the float model still runs
        raise rt.ExportFailed(f"NNCF quantisation of {Path(onnx_path).name} failed: {type(exc).__name__}: {exc}") from exc


def export_int8(onnx_path: str | Path, stem: str, digest: str, size: Sequence[int], cache_dir: str | Path,
                calibration_dir: Optional[str | Path] = None, frame_size: Sequence[int] = DEFAULT_FRAME_SIZE,
                subset_size: int = SUBSET_SIZE, force: bool = False) -> tuple[Path, dict, Optional[Calibration]]:
    """The cached INT8 export ``(xml, sidecar, calibration or None when it was cached)``, made
    from the float ``onnx_path`` when missing, damaged, calibrated on another folder, or ``force``."""
    ov = rt.import_openvino()

    cache_dir = Path(cache_dir)
    xml, bin_, sidecar = int8_paths(cache_dir, stem, digest, size)
    requested = calibration_source(calibration_dir)
    meta = read_sidecar(xml, bin_, sidecar)
    if meta is not None and not force and not needs_remake(meta.get("calibration"), requested):
        return xml, meta, None
    cal = load_calibration(size, frame_size, calibration_dir, subset_size)
    if not cal.calibrate:
        raise CalibrationError(f"no calibration frames from {cal.source}")
    t0 = time.monotonic()
    model = quantize_onnx(onnx_path, cal.calibrate)
    tmp = export_workdir(cache_dir, ".int8-")
    try:
        ov.save_model(model, str(tmp / xml.name), compress_to_fp16=False)
        nncf = import_nncf()
        meta = {"weights": stem, "digest": digest, "input_size": f"{size[0]}x{size[1]}", "calibration": cal.source,
                "calibration_frames": cal.describe, "subset_size": len(cal.calibrate),
                "preset": "mixed", "nncf": nncf.__version__, "openvino": ov.get_version().split("-")[0],
                "made_s": round(time.monotonic() - t0, 1), "bin_sha256": file_digest(tmp / bin_.name, 16)}
        measured.write_json_atomic(tmp / sidecar.name, meta)
        # The .json vouches for the pair, so it goes last; a reader between the renames sees a
        # .bin that does not match the old .json and makes the export again (at worst).
        for name in (bin_.name, xml.name, sidecar.name):
            move_into_place(tmp / name, cache_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("detector INT8 export made", extra={"export": str(xml), "calibration": cal.describe,
                                                  "seconds": meta["made_s"]})
    return xml, meta, cal


def load_int8(xml: Path, size: Sequence[int], threads: Optional[int]) -> rt.OpenVinoModel:
    """The INT8 export compiled by OpenVINO; its ``precision`` is ``int8``."""
    model = rt.OpenVinoModel(xml, size, threads)
    model.float_precision = model.precision  # what its unquantised layers run (bf16 with AMX)
    model.precision = "int8"
    return model


def ensure_int8(onnx_path: Path, stem: str, digest: str, size: Sequence[int], cache_dir: Path, threads: Optional[int],
                calibration_dir=None, frame_size: Sequence[int] = DEFAULT_FRAME_SIZE, subset_size: int = SUBSET_SIZE,
                force: bool = False) -> tuple[rt.OpenVinoModel, dict, Optional[Calibration]]:
    """:func:`export_int8` loaded; an export that does not load is made again, once."""
    xml, meta, cal = export_int8(onnx_path, stem, digest, size, cache_dir, calibration_dir, frame_size,
                                 subset_size, force)
    try:
        return load_int8(xml, size, threads), meta, cal
    except rt.ExportFailed:
        for p in int8_paths(cache_dir, stem, digest, size):
            p.unlink(missing_ok=True)
        xml, meta, cal = export_int8(onnx_path, stem, digest, size, cache_dir, calibration_dir, frame_size,
                                     subset_size, True)
        return load_int8(xml, size, threads), meta, cal


# --- the auto decision ---------------------------------------------------------------------------
def parity(float_model: rt.OnnxModel, int8_model: rt.OnnxModel, inputs: Sequence[np.ndarray],
           reference_conf: float = REFERENCE_CONF) -> tuple[float, int]:
    """``(mAP50 of int8 against float's boxes at conf >= reference_conf, reference box count)`` on
    ``inputs`` (network inputs; boxes in input pixels, NMS as the worker runs it)."""
    refs = [float_model.detect_input(x, reference_conf, 0.5) for x in inputs]
    preds = [int8_model.detect_input(x, 0.001, 0.5) for x in inputs]
    n = sum(len(r) for r in refs)
    return (round(map50(preds, refs, float_model.classes), 4) if n else 1.0), n


def measure(float_model: rt.OnnxModel, int8_model: rt.OnnxModel, held_out: Sequence[np.ndarray],
            host: Mapping[str, Any], seconds: float = TIMING_S) -> dict:
    """The auto decision for these two loaded models on this host, with its figures."""
    x = held_out[0]
    float_rounds, int8_rounds = measured.time_rounds([lambda: float_model._infer(x), lambda: int8_model._infer(x)],
                                                     seconds)
    figure, boxes = parity(float_model, int8_model, held_out)
    choice, reason = auto_choice(float_rounds, int8_rounds, figure)
    return {**host, "float_precision": float_model.precision, "float_ms": round(median(float_rounds), 3),
            "int8_ms": round(median(int8_rounds), 3), "float_ms_per_round": float_rounds,
            "int8_ms_per_round": int8_rounds, "parity_map50": figure, "parity_boxes": boxes,
            "held_out_frames": len(held_out),
            "min_speedup": MIN_SPEEDUP, "min_parity": MIN_PARITY, "choice": choice, "reason": reason,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def this_host(threads: int) -> dict:
    """:func:`host_key` for this machine."""
    ov = rt.import_openvino()

    return host_key(rt.cpu_name(), threads, ov.get_version().split("-")[0])


def decide(float_model: rt.OpenVinoModel, stem: str, digest: str, size: Sequence[int], cache_dir: Path,
           calibration_dir=None, frame_size: Sequence[int] = DEFAULT_FRAME_SIZE, subset_size: int = SUBSET_SIZE,
           force: bool = False, remeasure: bool = False, seconds: float = TIMING_S) -> tuple[rt.OnnxModel, dict]:
    """``(model to run, sidecar)`` for ``detector_precision=auto``: the INT8 export when the recorded
    (or, on a new host, newly measured: ``seconds`` of timing per model) decision says so, else
    ``float_model``.  ``remeasure`` measures even when a decision for this host is recorded.
    Measuring holds the sidecar's lock (worker_utils/measured.py): a second process waits and
    follows the first one's decision."""
    xml, _bin, sidecar = int8_paths(cache_dir, stem, digest, size)
    if not (force or remeasure):
        got = _recorded(float_model, stem, digest, size, cache_dir, calibration_dir)
        if got is not None:
            return got
    with measured.exclusive(sidecar):
        if not (force or remeasure):  # another process may have measured while this one waited
            got = _recorded(float_model, stem, digest, size, cache_dir, calibration_dir)
            if got is not None:
                return got
        threads, host = float_model.threads, this_host(float_model.threads)
        int8_model, meta, cal = ensure_int8(float_model.path, stem, digest, size, cache_dir, threads, calibration_dir,
                                            frame_size, subset_size, force)
        if cal is None:  # the export was cached, its held-out frames were not
            cal = load_calibration(size, frame_size,
                                   meta["calibration"] if meta["calibration"] != GENERATED else None, subset_size=0)
        meta = {**meta, "auto": measure(float_model, int8_model, cal.held_out, host, seconds)}
        try:
            measured.write_json_atomic(sidecar, meta)
        except OSError as exc:  # read-only cache: measured again next time, still correct
            log.warning(f"could not record the detector precision decision: {exc}", extra={"sidecar": str(sidecar)})
    a = meta["auto"]
    log.info("detector precision decided", extra={
        "choice": a["choice"], "reason": a["reason"], "float_ms": a["float_ms"], "int8_ms": a["int8_ms"],
        "float_precision": a["float_precision"], "parity_map50": a["parity_map50"], "cpu": a["cpu"],
        "threads": a["threads"], "sidecar": str(sidecar)})
    return (int8_model if a["choice"] == "int8" else float_model), meta


def _recorded(float_model: rt.OpenVinoModel, stem: str, digest: str, size: Sequence[int], cache_dir: Path,
              calibration_dir) -> Optional[tuple[rt.OnnxModel, dict]]:
    """``(model, sidecar)`` as the decision recorded for this host says, or None when there is
    none (or its INT8 export no longer loads)."""
    xml, bin_, sidecar = int8_paths(cache_dir, stem, digest, size)
    meta = read_sidecar(xml, bin_, sidecar)
    if (meta is None or not decision_applies(meta.get("auto"), this_host(float_model.threads))
            or needs_remake(meta.get("calibration"), calibration_source(calibration_dir))):
        return None
    if meta["auto"]["choice"] == "float":
        return float_model, meta
    try:
        return load_int8(xml, size, float_model.threads), meta
    except rt.ExportFailed:
        return None  # damaged since: made again


def select(float_model: rt.OpenVinoModel, precision: str, weights: Path, digest: str, size: Sequence[int],
           cache_dir: Path, calibration_dir=None, frame_size: Optional[Sequence[int]] = None,
           budget_s: Optional[float] = WORKER_BUDGET_S) -> rt.OnnxModel:
    """The model ``detector_precision`` asks for, given the loaded float export: the INT8 export
    for ``int8``, :func:`decide`'s for ``auto``, ``float_model`` otherwise.

    Work that would take longer than ``budget_s`` (:func:`estimate_s` from one timed inference) is
    not started: the command line does it once per host.  Any failure on the INT8 side is one
    warning and the float model (which is correct, only slower)."""
    if precision not in ("int8", "auto"):
        return float_model
    frame_size = tuple(frame_size or DEFAULT_FRAME_SIZE)
    try:
        if budget_s is not None:
            xml, bin_, sidecar = int8_paths(cache_dir, weights.stem, digest, size)
            work = work_needed(read_sidecar(xml, bin_, sidecar), precision, calibration_source(calibration_dir),
                               this_host(float_model.threads))
            if work != "none":
                x = np.zeros((1, 3, *size), np.float32)
                float_ms = measured.time_rounds([lambda: float_model._infer(x)], 0.0, rounds=1, min_runs=1)[0][0]
                need = estimate_s(float_ms, work)
                if need > budget_s:
                    raise rt.ExportFailed(
                        f"the INT8 export is not {'made' if work == 'quantize' else 'measured'} by a worker when that "
                        f"holds its first video up about {need:.0f} s ({float_ms:.0f} ms an inference; budget "
                        f"{budget_s:.0f} s): run `python -m video_analysis.yolo_worker.quantize {weights} "
                        f"--frame-size {frame_size[0]}x{frame_size[1]}` once on this host")
        if precision == "int8":
            return ensure_int8(float_model.path, weights.stem, digest, size, Path(cache_dir), float_model.threads,
                               calibration_dir, frame_size)[0]
        return decide(float_model, weights.stem, digest, size, Path(cache_dir), calibration_dir, frame_size)[0]
    except Exception as exc:  # noqa: BLE001 - INT8 is an optimisation: never worse than float
        reason = str(exc) if isinstance(exc, rt.ExportFailed) else f"{type(exc).__name__}: {exc}"
        log.warning(f"detector precision {precision}: INT8 unavailable, running OpenVINO {float_model.precision} "
                    f"instead: {reason}", extra={"weights": str(weights), "input_size": f"{size[0]}x{size[1]}"})
        return float_model


# --- command line --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m video_analysis.yolo_worker.quantize",
        description="Make the detector's INT8 export (NNCF post-training quantisation, OpenVINO) in the worker's "
                    "cache, time it against the float model on this CPU, check that its detections agree, and "
                    "record the decision detector_precision=auto will follow.  Run it once per host, weights and "
                    "frame size (e.g. at deployment) so that no worker waits for it on its first video.",
        epilog="Calibration: without --calibration, rendered training scenes at --frame-size; with it, up to "
               f"{SUBSET_SIZE + HELD_OUT} images spread over DIR ({', '.join(IMAGE_SUFFIXES)}), every fifth held "
               "out for the parity check.  Frames of the cameras the workers will see calibrate best.  Prints the "
               "sidecar as JSON.  Exit status: 0 done, 2 bad arguments or calibration folder, 1 export failed.")
    p.add_argument("weights", nargs="?", default=None,
                   help="detector .pt weights (default: detector_path from the settings)")
    p.add_argument("--imgsz", type=int, default=None,
                   help="long side of the network input (default: detector_imgsz, else the size the weights were "
                        "trained at)")
    p.add_argument("--frame-size", default=None, metavar="WxH",
                   help="the videos' frame size, which sets the input rectangle (default: 640x360, or the "
                        "first calibration image's size)")
    p.add_argument("--calibration", default=None, metavar="DIR",
                   help="folder of your cameras' frames to calibrate on (default: detector_calibration_dir, "
                        "else generated scenes)")
    p.add_argument("--cache-dir", default=None, help="export cache (default: the workers' detector cache)")
    p.add_argument("--threads", type=int, default=None,
                   help="inference threads for the timing (default: detector_threads, as the workers run; unset, "
                        "the count measured once on this host, as the workers run it)")
    p.add_argument("--subset-size", type=int, default=SUBSET_SIZE,
                   help=f"calibration frames (default {SUBSET_SIZE})")
    p.add_argument("--force", action="store_true", help="make the INT8 export again even if it is cached")
    p.add_argument("--remeasure", action="store_true",
                   help="time INT8 against float again (and the thread count, where measured) even where this "
                        "host's decision is recorded; without it the recorded decision is reported, as the workers "
                        "follow it")
    return p


def main(argv: Optional[Sequence[str]] = None, out: Callable[[str], None] = print) -> int:
    args = build_parser().parse_args(argv)
    from ..worker_config import ConfigError, build_settings

    def fail(code: int, message: str) -> int:
        print(f"quantize: error: {message}", file=sys.stderr)
        return code

    try:
        settings = build_settings()
    except ConfigError as exc:
        return fail(2, str(exc))
    weights = settings.resolve_path(args.weights or settings.detector_path)
    if weights.suffix.lower() != ".pt" or not weights.is_file():
        return fail(2, f"{weights} is not a .pt weights file (only .pt weights are exported and quantised)")
    if args.subset_size < 1:
        return fail(2, "--subset-size must be at least 1")
    calibration = args.calibration or (settings.resolve_path(settings.detector_calibration_dir)
                                       if settings.detector_calibration_dir else None)
    try:
        if calibration:  # fail fast, before the export: every image that will be used must read
            cal_files, held_files = split_files(folder_images(calibration), args.subset_size, HELD_OUT)
            first = read_images(cal_files + held_files)[0]
        if args.frame_size:
            frame_size = parse_frame_size(args.frame_size)
        elif calibration:
            frame_size = (first.shape[1], first.shape[0])
        else:
            frame_size = DEFAULT_FRAME_SIZE
    except ValueError as exc:
        return fail(2, str(exc))
    except CalibrationError as exc:
        return fail(2, str(exc))
    from .detector import Detector

    settings = settings.replace(device="cpu", detector_path=str(weights), **(
        {"detector_cache_dir": str(Path(args.cache_dir).resolve())} if args.cache_dir else {}),
        **({"detector_threads": args.threads} if args.threads else {}))
    try:
        det = Detector(settings, runtime="torch")  # the checkpoint checks and the trained size; no export
    except Exception as exc:  # noqa: BLE001 - DetectorConfigError and friends say why
        return fail(2, str(exc))
    imgsz = args.imgsz or det.imgsz
    size = rt.input_size(frame_size[0], frame_size[1], imgsz)
    digest = rt.weights_digest(weights)
    try:
        # The float model as the workers load it (detector_threads, else the measured count), so the
        # decision recorded here is the one they follow.
        float_model = rt.load_float("openvino", weights, size, det.cache_dir, digest, settings.detector_threads,
                                    remeasure_threads=args.remeasure, frame_size=frame_size)
        _model, meta = decide(float_model, weights.stem, digest, size, det.cache_dir, calibration, frame_size,
                              args.subset_size, force=args.force, remeasure=args.remeasure)
    except CalibrationError as exc:
        return fail(2, str(exc))
    except rt.ExportFailed as exc:
        return fail(1, str(exc))
    xml = int8_paths(det.cache_dir, weights.stem, digest, size)[0]
    out(json.dumps({"int8_export": str(xml), "input_size": f"{size[0]}x{size[1]}",
                    "frame_size": f"{frame_size[0]}x{frame_size[1]}", **meta}, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through main() in the tests
    from ..worker_utils.logs import setup_logging

    setup_logging("INFO", sys.stderr)  # the workers' JSON lines on stderr; the result on stdout
    sys.exit(main())
