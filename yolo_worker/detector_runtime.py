"""The detector's CPU fast path: PyTorch ``.pt`` weights exported once to ONNX and run by OpenVINO
(default on CPU) or ONNX Runtime.

Pure helpers first (which runtime, the network input size for a video, the cache file name), then
the adapters (export, load, run).

* **Input size.**  The export has a static input shape, rectangular like the video: the long
  side is ``imgsz``, the short side scaled by the same factor and padded up to a multiple of the
  stride (640x360 at imgsz 320 -> 192x320).  That is exactly the letterbox ultralytics gives a
  ``.pt`` model for a single frame, so both runtimes see the same pixels.
* **Cache.**  ``<cache_dir>/<stem>-<sha256[:12] of the weights' bytes>-<h>x<w>.onnx``: new weights
  or a new size give a new file, unchanged ones are exported once per host.  The export runs in
  a private temporary directory inside the cache directory (ultralytics writes its output beside
  the weights, which under systemd's ProtectSystem=strict is read-only) and is renamed into place
  atomically, so workers racing on one host converge on one complete file.  The INT8 export
  (``detector_precision`` int8/auto, quantize.py) sits beside it as ``...-<h>x<w>-int8.xml/.bin/.json``.
* **Threads.**  ``detector_threads`` unset: one thread or every usable core (at most 8), whichever
  :func:`choose_threads` measured for this model and size on this host (more threads only where
  the detector alone runs clearly faster on them), once, recorded beside the export as
  ``...-<h>x<w>-threads.json`` and followed by every later load.
* **Precision.**  OpenVINO only: ``f32``/``f16``/``bf16`` set its INFERENCE_PRECISION_HINT (where the
  CPU has it, :func:`float_precision_hint`), ``auto`` leaves its own choice unless the INT8 export pays.
* **Running.**  Letterbox, NMS and box scaling are ultralytics' own functions with the arguments
  its predictor uses; only the network runs in OpenVINO (bfloat16 where the CPU has it, see
  :class:`OpenVinoModel`) or ONNX Runtime (own session: thread count set, spinning off, which on a
  shared 2-core host is 2x faster than the default).

Nothing here downloads anything: the export goes through :func:`ultralytics_offline`, whose
``YOLO_AUTOINSTALL=False`` makes a missing ``onnx``/``onnxslim`` an error, never a pip install.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from ..worker_utils import measured, model_files
from ..worker_utils.model_files import export_workdir, file_digest
from ..worker_utils.offline import import_openvino, ultralytics_offline
from ..worker_utils.runtimes import (cpu_capabilities, default_compile_config, float_hint, openvino_available,
                                     precision_name)

log = logging.getLogger(__name__)

STRIDE = 32
EXPORTED = ("onnx", "openvino")  # runtimes that run an export of .pt weights (both load the ONNX file)
MAX_LOADED = 4  # input sizes kept loaded at once (one per distinct video resolution)


ExportFailed = model_files.ExportFailed  # the weights could not be exported, or the export not loaded


# --- pure helpers --------------------------------------------------------------------------
def choose_runtime(requested: str, weights: str | Path, device: str, openvino: bool = True) -> str:
    """``"torch"``, ``"onnx"``, ``"openvino"`` or ``"native"`` (a non-``.pt`` file ultralytics loads
    as it is: ``.onnx``, ``.engine``, an OpenVINO directory).  ``auto`` = OpenVINO for ``.pt``
    weights on CPU (ONNX Runtime when the ``openvino`` package is not installed), PyTorch on CUDA."""
    if Path(weights).suffix.lower() != ".pt":
        return "native"
    if requested == "auto":
        return "torch" if device.startswith("cuda") else "openvino" if openvino else "onnx"
    return requested


CUDA_EP, CPU_EP = "CUDAExecutionProvider", "CPUExecutionProvider"


def onnx_providers(device: str, available: Sequence[str]) -> list:
    """ONNX Runtime's execution providers for ``device`` (pure): ``cuda[:N]`` with a CUDA build of
    onnxruntime (``onnxruntime-gpu``, whose ``available`` providers name CUDA) = CUDA on GPU ``N``,
    then the CPU for what CUDA lacks; anything else = the CPU alone."""
    if device.startswith("cuda") and CUDA_EP in available:
        index = device.partition(":")[2]
        return [(CUDA_EP, {"device_id": int(index) if index.isdigit() else 0}), CPU_EP]
    return [CPU_EP]


def input_size(width: int, height: int, imgsz: int, stride: int = STRIDE) -> tuple[int, int]:
    """``(h, w)`` network input for ``width x height`` frames at ``imgsz`` (long side), padded to
    ``stride``: the rectangle ultralytics' letterbox gives a ``.pt`` model for one such frame."""
    if width < 1 or height < 1 or imgsz < 1:
        raise ValueError(f"bad frame size {width}x{height} or imgsz {imgsz}")
    size = -(-imgsz // stride) * stride  # ultralytics rounds imgsz up to the stride
    r = min(size / height, size / width)
    new_h, new_w = int(round(height * r)), int(round(width * r))
    return new_h + (size - new_h) % stride, new_w + (size - new_w) % stride


weights_digest = file_digest  # the weights file's sha256[:12]: the cache key

CACHE_SUFFIXES = {
    "onnx": ".onnx",            # the float export every runtime starts from
    "int8": "-int8.xml",        # the NNCF INT8 model (OpenVINO IR; its weights in the .bin beside it)
    "int8-bin": "-int8.bin",
    "int8-json": "-int8.json",  # how it was made, and the auto precision decision (quantize.py)
    "threads": "-threads.json",  # the measured thread count (choose_threads)
}


def cache_name(stem: str, digest: str, size: Sequence[int], runtime: str = "onnx") -> str:
    """``<stem>-<digest>-<h>x<w><suffix>``: the cached file of kind ``runtime`` (a key of
    :data:`CACHE_SUFFIXES`: ``onnx`` -> ``.onnx``, ``int8`` -> ``-int8.xml`` ...) for these weights
    (``digest``: :func:`weights_digest`) and input ``size`` (h, w)."""
    h, w = (int(v) for v in size)
    suffix = CACHE_SUFFIXES[runtime]
    return f"{stem}-{digest}-{h}x{w}{suffix}"


PRECISIONS = ("auto", "f32", "f16", "bf16", "int8")


def float_precision_hint(requested: str, capabilities: Sequence[str]) -> tuple[Optional[str], Optional[str]]:
    """``(INFERENCE_PRECISION_HINT to set or None, warning or None)`` for ``detector_precision`` on
    a CPU with OpenVINO's ``capabilities`` (worker_utils/runtimes.py's ``float_hint``); ``int8``
    sets none: its unquantised layers run OpenVINO's own choice."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown detector precision {requested!r}; use one of {', '.join(PRECISIONS)}")
    return float_hint("auto" if requested == "int8" else requested, capabilities, "detector_precision")


def runtime_hint(runtime: str, precision: str) -> Optional[str]:
    """The INFERENCE_PRECISION_HINT a float model of ``runtime`` is compiled with for
    ``detector_precision=precision`` on this CPU (OpenVINO only; None = the runtime's own)."""
    return float_precision_hint(precision, cpu_capabilities())[0] if runtime == "openvino" else None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a systemd CPUAffinity= or a container's
    cpuset), not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(cores: Optional[int] = None) -> int:
    """Every usable core, at most 8 (a single-image latency request scales no further): the
    thread count :func:`choose_threads` weighs against one thread, and the PyTorch runtime's."""
    return min(8, max(1, cores if cores is not None else usable_cores()))


def thread_candidates(cores: int) -> tuple[int, ...]:
    """The thread counts :func:`choose_threads` times on a host with ``cores`` usable cores: one,
    and every core (at most 8); just one on a single core."""
    many = default_threads(cores)
    return (1,) if many == 1 else (1, many)


# More threads only where the detector alone runs at least this much faster on them.  Below it the
# rest of the pipeline (decoding, tracking, NMS, letterbox: 1-1.5 ms of CPU a frame) loses more
# than the detector gains: on 2 cores, 2 threads against 1 ran the detector alone 1.17x faster and
# end to end 0.97x on an Intel Xeon with AMX; 1.69x and 1.39x on an AVX2-only AMD EPYC; 0.87x
# alone on an AMD EPYC with AVX-512 BF16.  So end to end gains only above about 1.2x alone.
MIN_THREAD_SPEEDUP = 1.25
THREAD_TIMING_S = 1.0     # seconds of timing per candidate (over measured.ROUNDS rounds)
THREAD_BUDGET_S = 30.0    # a model slower than this to time is run on every core, unmeasured


def thread_choice(ms: Mapping[int, Sequence[float]], min_speedup: float = MIN_THREAD_SPEEDUP) -> tuple[int, str]:
    """``(threads, reason)`` from per-round timings ``ms[threads] = [ms a frame per round]`` of
    one and of more threads (pure; the rule of worker_utils/measured.py): the most threads only
    on a clear gain, else one."""
    counts = sorted(ms)
    if len(counts) == 1:
        return counts[0], "one usable core"
    one, many = counts[0], counts[-1]
    take, gain = measured.clear_gain(measured.speedups(ms[one], ms[many]), min_speedup)
    if take:
        return many, f"{many} threads {gain:.2f}x faster than {one} (>= {min_speedup}x)"
    return one, f"{many} threads gain too little on this CPU: {gain:.2f}x {one} thread's (< {min_speedup}x)"


def runtime_version(runtime: str) -> str:
    """The installed version of an exported ``runtime``'s package (OpenVINO / ONNX Runtime)."""
    if runtime == "openvino":
        return import_openvino().get_version().split("-")[0]
    import onnxruntime

    return onnxruntime.__version__


def thread_key(runtime: str, hint: Optional[str], cores: int) -> dict:
    """What a thread decision depends on beyond the model and its input size."""
    return {"cpu": cpu_name(), "cores": int(cores), "runtime": runtime, "runtime_version": runtime_version(runtime),
            "precision_hint": hint or "auto"}


# --- export ----------------------------------------------------------------------------------
def export_onnx(weights: str | Path, size: Sequence[int], cache_dir: str | Path,
                digest: Optional[str] = None) -> Path:
    """The cached ONNX export of ``weights`` at input ``size`` (h, w), exporting it when missing."""
    weights, cache_dir = Path(weights), Path(cache_dir)
    target = cache_dir / cache_name(weights.stem, digest or weights_digest(weights), size)
    if target.is_file():
        return target
    tmp = export_workdir(cache_dir)
    try:
        src = tmp / weights.name
        shutil.copyfile(weights, src)  # ultralytics writes the export beside the file it exports
        ultralytics_offline()
        from ultralytics import YOLO

        try:
            with warnings.catch_warnings():  # torch.onnx's tracer/deprecation chatter, not ours to act on
                warnings.simplefilter("ignore")
                out = YOLO(str(src), task="detect").export(
                    format="onnx", imgsz=[int(size[0]), int(size[1])], device="cpu", batch=1, dynamic=False,
                    simplify=True, nms=False, verbose=False)  # fp32: no `quantize`
        except Exception as exc:  # noqa: BLE001 - any exporter failure is reported the same way
            raise ExportFailed(f"ONNX export of {weights.name} failed: {type(exc).__name__}: {exc}") from exc
        if not out or not Path(out).is_file():
            raise ExportFailed(f"ONNX export of {weights.name} produced no file")
        model_files.move_into_place(Path(out), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("detector exported", extra={"weights": str(weights), "export": str(target),
                                          "input_size": f"{size[0]}x{size[1]}"})
    return target


# --- run -----------------------------------------------------------------------------------
def letterboxer(size: Sequence[int]):
    """ultralytics' ``LetterBox`` to the static input ``size`` (h, w), as its predictor builds it."""
    ultralytics_offline()
    from ultralytics.data.augment import LetterBox

    return LetterBox((int(size[0]), int(size[1])), auto=False, stride=STRIDE)


def to_input(letterbox, frame: np.ndarray) -> np.ndarray:
    """One BGR ``H x W x 3`` uint8 frame -> the network's ``1 x 3 x h x w`` float32 RGB in [0, 1],
    letterboxed by ``letterbox`` (:func:`letterboxer`): what every exported model is fed, and
    what the INT8 export is calibrated on."""
    im = letterbox(image=frame)
    x = np.ascontiguousarray(im[None, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32)
    x /= 255.0
    return x


class OnnxModel:
    """One exported detector at one input size: ``predict(frame)`` -> ``D x 6`` in the weights'
    own class ids (the caller maps them onto the taxonomy)."""

    precision = "f32"  # what the runtime computes in (OpenVINO may run bfloat16, INT8): log lines, bench
    digest: Optional[str] = None  # the weights' digest, where load_float loaded it
    thread_record: Optional[Path] = None  # the measured thread count's record it follows (threads unset)
    int8_sidecar: Optional[Path] = None   # the INT8 export's sidecar (detector_precision int8 / auto)
    providers: list = [CPU_EP]  # ONNX Runtime's execution providers (onnx_providers); OpenVINO: the CPU

    def __init__(self, path: str | Path, size: Sequence[int], threads: Optional[int] = None,
                 hint: Optional[str] = None):
        """``hint``: OpenVINO's INFERENCE_PRECISION_HINT (``f32``/``f16``/``bf16``), None = its default;
        ONNX Runtime ignores it (it runs float32)."""
        import torch

        self.path, self.size, self.hint = Path(path), (int(size[0]), int(size[1])), hint
        threads = threads or default_threads()
        self.threads = threads
        shape = self._load(threads)
        # NMS stays in torch, on one thread: a few hundred boxes take 0.2 ms.  With more, torch's
        # OpenMP workers spin after each NMS and take the cores from the runtime's own threads and
        # the decoder (torch's default, all cores: NMS 8x slower; at 2 threads beside OpenVINO's 2,
        # detection on 2 cores ran at half speed).  Set once the model loaded: a runtime that
        # failed to load falls back to PyTorch, which keeps torch's threads.
        torch.set_num_threads(1)
        if list(shape) != [1, 3, *self.size]:
            raise ExportFailed(f"{self.path.name} takes input {list(shape)}, expected [1, 3, {self.size[0]}, "
                               f"{self.size[1]}]")
        self.letterbox = letterboxer(self.size)

    def _load(self, threads: int) -> list:
        """Load the network from ``self.path``; returns its input shape."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
            raise ExportFailed(f"ONNX Runtime cannot load {self.path.name}: {type(exc).__name__}: {exc}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_shape = list(self.session.get_outputs()[0].shape)
        return list(inp.shape)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        """The network: ``1 x 3 x h x w`` float32 RGB in [0, 1] -> ultralytics' raw head output."""
        return self.session.run(None, {self.input_name: x})[0]

    def predict(self, frame: np.ndarray, conf: float, iou: float, classes: Optional[list[int]],
                max_det: int = 300) -> np.ndarray:
        """Detections for one BGR frame, as ultralytics' predictor computes them for a ``.pt``:
        :meth:`input_for`, :meth:`infer`, :meth:`detections` in turn."""
        x = self.input_for(frame)
        return self.detections(self.infer(x), x.shape[2:], frame.shape, conf, iou, classes, max_det)

    def input_for(self, frame: np.ndarray) -> np.ndarray:
        """One BGR ``H x W x 3`` uint8 frame -> this network's ``1 x 3 x h x w`` float32 input."""
        return to_input(self.letterbox, frame)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The network alone (the runtime computes without the GIL): ``1 x 3 x h x w`` -> raw head
        output, ``1 x (4 + classes) x anchors``."""
        return self._infer(x)

    def detections(self, raw: np.ndarray, input_hw: Sequence[int], frame_shape: Sequence[int], conf: float,
                   iou: float, classes: Optional[list[int]], max_det: int = 300) -> np.ndarray:
        """Raw head output -> ``D x 6`` (x1, y1, x2, y2 in frame pixels, conf, the weights' class
        id): NMS, then boxes scaled from the ``input_hw`` letterbox back onto ``frame_shape``."""
        from ultralytics.utils import ops

        det = self._nms(raw, conf, iou, classes, max_det)
        if len(det):
            det[:, :4] = ops.scale_boxes(tuple(input_hw), det[:, :4], tuple(frame_shape))
        return det[:, :6].numpy().astype(np.float32).reshape(-1, 6)

    def detect_input(self, x: np.ndarray, conf: float, iou: float, classes: Optional[list[int]] = None,
                     max_det: int = 300) -> np.ndarray:
        """``D x 6`` detections for one network input (:func:`to_input`), boxes in input pixels:
        what the INT8 parity check compares."""
        return self._nms(self._infer(x), conf, iou, classes, max_det)[:, :6].numpy().astype(np.float32).reshape(-1, 6)

    @staticmethod
    def _nms(pred: np.ndarray, conf: float, iou: float, classes: Optional[list[int]], max_det: int):
        """ultralytics' NMS as the detector runs it (class-agnostic; see detector.py)."""
        import torch
        from ultralytics.utils.nms import non_max_suppression

        return non_max_suppression(torch.from_numpy(pred), conf, iou, classes, True, max_det=max_det)[0]

    @property
    def classes(self) -> int:
        """The network's class count (its head outputs 4 box values + one score per class)."""
        return int(self.output_shape[1]) - 4


class OpenVinoModel(OnnxModel):
    """The same ONNX export, compiled by OpenVINO for the CPU (same pre- and post-processing).

    Without a ``hint`` OpenVINO picks the CPU's fastest precision by itself: bfloat16 on CPUs with
    AVX-512 BF16 or AMX (3-4x faster than float32 there: 13 vs 37 ms for yolov8n at 384x640 on one
    core of this machine's Xeon), float32 elsewhere; ``hint`` forces one (``detector_precision``).
    ``precision`` records what the compiled model runs; the parity test holds either way.  The
    same class runs the INT8 export (an OpenVINO ``.xml``; quantize.py sets ``precision`` to int8)."""

    def _load(self, threads: int) -> list:
        # Threads not pinned to cores: the decoder and the pipeline's thread share the cores with them,
        # and a pinned thread that one of those pre-empts stalls the whole inference where an
        # unpinned one moves (2 threads on 2 cores, end to end: 4.9 -> 4.4 ms a frame at 320 px,
        # 9.7 -> 8.9-9.5 at 640 on the Intel Xeon; the detector alone and 1 thread unchanged).
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
        if self.hint:
            config["INFERENCE_PRECISION_HINT"] = self.hint
        try:
            ov = import_openvino()
            core = ov.Core()
            compiled = core.compile_model(core.read_model(str(self.path)), "CPU", default_compile_config(config))
        except Exception as exc:  # noqa: BLE001 - missing package, corrupt or foreign file
            raise ExportFailed(f"OpenVINO cannot load {self.path.name}: {type(exc).__name__}: {exc}") from exc
        self.precision = precision_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = compiled.create_infer_request()
        self.output_shape = list(compiled.outputs[0].get_partial_shape().to_shape())
        return list(compiled.inputs[0].get_partial_shape().to_shape())

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer({0: x})[0]


RUNTIMES = {"onnx": OnnxModel, "openvino": OpenVinoModel}


def choose_threads(runtime: str, path: Path, size: Sequence[int], hint: Optional[str], record: Path,
                   frame_size: Optional[Sequence[int]] = None, cores: Optional[int] = None,
                   seconds: float = THREAD_TIMING_S, remeasure: bool = False,
                   factory: Optional[Callable[[int], OnnxModel]] = None) -> OnnxModel:
    """The export at ``path`` loaded for ``runtime`` on the thread count measured for it on this
    host (``detector_threads`` unset): :func:`thread_choice` over :func:`thread_candidates`, timed
    once (worker_utils/measured.py: rounds, median, margin, under a lock) and recorded in
    ``record`` (``...-<h>x<w>-threads.json``), which every later load on this host follows.

    What is timed is the detector alone as the benchmark's detector-only loop runs it: letterbox,
    network and NMS of one ``frame_size`` (W, H) frame on a thread of its own.  The network alone
    is the wrong figure: on a 2-core AMD EPYC with AVX-512 BF16 it ran 1.4-1.7x faster on 2
    threads while the whole detection, with the Python around the network between inferences,
    ran 0.97-1.0x.  ``factory(threads)`` loads the model (default: ``RUNTIMES[runtime]`` on ``path``;
    card_detector.py passes its own)."""
    make = factory or (lambda n: RUNTIMES[runtime](path, size, n, hint))
    cores = usable_cores() if cores is None else cores
    candidates = thread_candidates(cores)
    if len(candidates) == 1:
        return make(candidates[0])
    key = thread_key(runtime, hint, cores)
    with measured.exclusive(record):
        found = measured.read_json(record)
        if not remeasure and measured.applies(found, key) and found.get("threads") in candidates:
            return make(found["threads"])
        models = {n: make(n) for n in candidates}
        w, h = (int(v) for v in (frame_size or (size[1], size[0])))
        frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)  # texture, not a flat field

        def detect(m: OnnxModel):
            return lambda: m.predict(frame, 0.25, 0.5, None)
        t0 = time.perf_counter()
        measured.on_own_thread(detect(models[candidates[-1]]))
        first_ms = (time.perf_counter() - t0) * 1000.0
        runs = len(candidates) * (measured.WARMUP_RUNS + 2 * measured.ROUNDS)
        if first_ms * runs / 1000.0 > THREAD_BUDGET_S:
            threads, reason, ms = candidates[-1], (f"not measured: {first_ms:.0f} ms a frame, about "
                                                  f"{first_ms * runs / 1000.0:.0f} s to time"), {}
        else:
            timed = measured.on_own_thread(lambda: measured.time_rounds([detect(models[n]) for n in candidates],
                                                                        seconds))
            ms = dict(zip(candidates, timed))
            threads, reason = thread_choice(ms)
        decision = {**key, "threads": threads, "reason": reason, "candidates": list(candidates),
                    "ms_per_round": {str(n): v for n, v in ms.items()}, "min_speedup": MIN_THREAD_SPEEDUP,
                    "frame_size": f"{w}x{h}", "precision": models[threads].precision,
                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            measured.write_json_atomic(record, decision)
        except OSError as exc:  # a read-only cache: measured again next time, still correct
            log.warning(f"could not record the detector thread decision: {exc}", extra={"record": str(record)})
        log.info("detector threads decided", extra={"threads": threads, "reason": reason, "cpu": key["cpu"],
                                                     "cores": cores, "input_size": f"{size[0]}x{size[1]}",
                                                     "record": str(record)})
        return models[threads]


def load_exported(runtime: str, weights: str | Path, size: Sequence[int], cache_dir: str | Path,
                  digest: Optional[str] = None, threads: Optional[int] = None, precision: str = "auto",
                  calibration_dir: Optional[str | Path] = None,
                  frame_size: Optional[Sequence[int]] = None) -> OnnxModel:
    """Export (once per host) and load ``weights`` for ``runtime`` at input ``size``.

    A cached file that does not load (damaged by hand, a foreign file under the same name) is
    exported again once; every other failure is :class:`ExportFailed` with the reason.
    ``threads`` None: the count measured once on this host (:func:`choose_threads`).
    ``precision`` (``detector_precision``) applies to OpenVINO only: a float hint, or the INT8
    export (``int8``, or ``auto`` where it pays; quantize.py) calibrated on ``calibration_dir`` or
    on generated frames of ``frame_size`` (W, H), run on the float model's threads."""
    if runtime not in RUNTIMES:
        raise ExportFailed(f"no exporter for runtime {runtime!r}")
    if runtime == "openvino" and not openvino_available():
        raise ExportFailed("the openvino package is not installed (pip install -r requirements.txt)")
    model = load_float(runtime, weights, size, cache_dir, digest, threads, precision, frame_size=frame_size)
    if runtime == "openvino" and precision in ("int8", "auto"):
        from . import quantize

        float_model = model
        model = quantize.select(model, precision, Path(weights), float_model.digest, size, Path(cache_dir),
                                calibration_dir, frame_size)
        model.digest, model.thread_record = float_model.digest, float_model.thread_record
        model.int8_sidecar = quantize.int8_paths(cache_dir, Path(weights).stem, float_model.digest, size)[2]
    return model


def load_float(runtime: str, weights: str | Path, size: Sequence[int], cache_dir: str | Path,
               digest: Optional[str] = None, threads: Optional[int] = None, precision: str = "auto",
               remeasure_threads: bool = False, frame_size: Optional[Sequence[int]] = None) -> OnnxModel:
    """The float export of ``weights`` loaded for ``runtime`` (``threads`` None: measured on
    ``frame_size`` (W, H) frames), with the float precision ``precision`` asks OpenVINO for;
    ``model.digest`` is the weights' digest."""
    cls = RUNTIMES[runtime]
    hint = runtime_hint(runtime, precision)
    digest = digest or weights_digest(weights)
    weights, cache_dir = Path(weights), Path(cache_dir)
    record = cache_dir / cache_name(weights.stem, digest, size, "threads")

    def load(path: Path) -> OnnxModel:
        if threads:
            return cls(path, size, threads, hint)
        return choose_threads(runtime, path, size, hint, record, frame_size, remeasure=remeasure_threads)

    path = export_onnx(weights, size, cache_dir, digest)
    try:
        model = load(path)
    except ExportFailed:
        path.unlink(missing_ok=True)
        model = load(export_onnx(weights, size, cache_dir, digest))
    model.digest, model.thread_record = digest, None if threads else record
    return model


def recorded_reasons(model: OnnxModel) -> dict[str, str]:
    """Why ``model`` runs on its threads and precision, as the records it was loaded by say
    (``threads`` / ``precision`` -> the decision's reason); a setting that fixed one, or a record of
    another host, leaves its key out.  What check-model prints."""
    out: dict[str, str] = {}
    threads = measured.read_json(model.thread_record) if model.thread_record else None
    if threads and threads.get("threads") == model.threads and threads.get("cpu") == cpu_name():
        out["threads"] = f"measured on this host: {threads.get('reason')}"
    auto = ((measured.read_json(model.int8_sidecar) if model.int8_sidecar else None) or {}).get("auto") or {}
    if auto.get("cpu") == cpu_name() and auto.get("threads") == model.threads:
        out["precision"] = f"auto, measured on this host: {auto.get('reason')}"
    return out


# --- the CPU ---------------------------------------------------------------------------------------
def precision_warning(requested: str, runtime: str) -> Optional[str]:
    """The one warning a detector gives for ``detector_precision=requested`` on ``runtime``
    (``openvino``, ``onnx``, ``torch``, ``native``), or None: the precision applies to OpenVINO only,
    and f16/bf16 only where the CPU has them."""
    if requested in ("auto", "f32"):
        return None
    if runtime != "openvino":
        return (f"detector_precision={requested} applies to the OpenVINO runtime only; the {runtime} runtime "
                "runs its own precision (float32 on CPU): set detector_runtime=openvino (or auto) to use it")
    return float_precision_hint(requested, cpu_capabilities())[1]


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; OpenVINO's name for it elsewhere): every figure names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if openvino_available():
        ov = import_openvino()
        return str(ov.Core().get_property("CPU", "FULL_DEVICE_NAME"))
    import platform

    return platform.processor() or "unknown CPU"
