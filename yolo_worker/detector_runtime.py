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
  atomically, so workers racing on one host converge on one complete file.
* **Running.**  Letterbox, NMS and box scaling are ultralytics' own functions with the arguments
  its predictor uses; only the network runs in OpenVINO (bfloat16 where the CPU has it, see
  :class:`OpenVinoModel`) or ONNX Runtime (own session: thread count set, spinning off, which on a
  shared 2-core host is 2x faster than the default).

Nothing here downloads anything: the export goes through :func:`ultralytics_offline`, whose
``YOLO_AUTOINSTALL=False`` makes a missing ``onnx``/``onnxslim`` an error, never a pip install.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..worker_utils.offline import ultralytics_offline
from ..worker_utils.runtimes import openvino_available, precision_name

log = logging.getLogger(__name__)

STRIDE = 32
EXPORTED = ("onnx", "openvino")  # runtimes that run an export of .pt weights (both load the ONNX file)
MAX_LOADED = 4  # input sizes kept loaded at once (one per distinct video resolution)


class ExportFailed(RuntimeError):
    """The weights could not be exported or the export could not be loaded; the message says why."""


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


def input_size(width: int, height: int, imgsz: int, stride: int = STRIDE) -> tuple[int, int]:
    """``(h, w)`` network input for ``width x height`` frames at ``imgsz`` (long side), padded to
    ``stride``: the rectangle ultralytics' letterbox gives a ``.pt`` model for one such frame."""
    if width < 1 or height < 1 or imgsz < 1:
        raise ValueError(f"bad frame size {width}x{height} or imgsz {imgsz}")
    size = -(-imgsz // stride) * stride  # ultralytics rounds imgsz up to the stride
    r = min(size / height, size / width)
    new_h, new_w = int(round(height * r)), int(round(width * r))
    return new_h + (size - new_h) % stride, new_w + (size - new_w) % stride


def weights_digest(path: str | Path, length: int = 12) -> str:
    """First ``length`` hex digits of the sha256 of the weights file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def cache_name(stem: str, digest: str, size: Sequence[int], runtime: str = "onnx") -> str:
    """``<stem>-<digest>-<h>x<w>.onnx``: the exported file for these weights and input size."""
    h, w = (int(v) for v in size)
    suffix = {"onnx": ".onnx"}[runtime]
    return f"{stem}-{digest}-{h}x{w}{suffix}"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a systemd CPUAffinity= or a container's
    cpuset), not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(cores: Optional[int] = None) -> int:
    """Every usable core, at most 8 (a single-image latency request scales no further).

    Not "all but one for the decoder" (ultralytics' choice for PyTorch): the decoder and the
    tracker mostly wait for the detector, and on 2 cores one detector thread left a third of the
    machine idle (27.3 vs 18.4 ms a frame for the demo detector on an AMD EPYC, AVX2)."""
    return min(8, max(1, cores if cores is not None else usable_cores()))


# --- export ----------------------------------------------------------------------------------
def export_onnx(weights: str | Path, size: Sequence[int], cache_dir: str | Path,
                digest: Optional[str] = None) -> Path:
    """The cached ONNX export of ``weights`` at input ``size`` (h, w), exporting it when missing."""
    weights, cache_dir = Path(weights), Path(cache_dir)
    target = cache_dir / cache_name(weights.stem, digest or weights_digest(weights), size)
    if target.is_file():
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=cache_dir))
    except OSError as exc:
        raise ExportFailed(f"cache directory {cache_dir} is not writable ({type(exc).__name__}: {exc}); "
                           "set detector_cache_dir (CVITX_DETECTOR_CACHE_DIR)") from exc
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
        os.replace(out, target)  # atomic: a racing worker sees no file or a complete one
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("detector exported", extra={"weights": str(weights), "export": str(target),
                                          "input_size": f"{size[0]}x{size[1]}"})
    return target


# --- run -----------------------------------------------------------------------------------
class OnnxModel:
    """One exported detector at one input size: ``predict(frame)`` -> ``D x 6`` in the weights'
    own class ids (the caller maps them onto the taxonomy)."""

    def __init__(self, path: str | Path, size: Sequence[int], threads: Optional[int] = None):
        import torch

        self.path, self.size = Path(path), (int(size[0]), int(size[1]))
        threads = threads or default_threads()
        # NMS stays in torch: give it the same thread count, as ultralytics does for a .pt on CPU
        # (torch's default, all cores, fights the session and the decoder: 8x slower NMS here).
        torch.set_num_threads(threads)
        shape = self._load(threads)
        if list(shape) != [1, 3, *self.size]:
            raise ExportFailed(f"{self.path.name} takes input {list(shape)}, expected [1, 3, {self.size[0]}, "
                               f"{self.size[1]}]")
        ultralytics_offline()
        from ultralytics.data.augment import LetterBox

        self.letterbox = LetterBox(self.size, auto=False, stride=STRIDE)

    def _load(self, threads: int) -> list:
        """Load the network from ``self.path``; returns its input shape."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
            raise ExportFailed(f"ONNX Runtime cannot load {self.path.name}: {type(exc).__name__}: {exc}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        return list(inp.shape)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        """The network: ``1 x 3 x h x w`` float32 RGB in [0, 1] -> ultralytics' raw head output."""
        return self.session.run(None, {self.input_name: x})[0]

    def predict(self, frame: np.ndarray, conf: float, iou: float, classes: Optional[list[int]],
                max_det: int = 300) -> np.ndarray:
        """Detections for one BGR frame, as ultralytics' predictor computes them for a ``.pt``."""
        import torch
        from ultralytics.utils import ops
        from ultralytics.utils.nms import non_max_suppression

        im = self.letterbox(image=frame)
        x = np.ascontiguousarray(im[None, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32)
        x /= 255.0
        pred = self._infer(x)
        det = non_max_suppression(torch.from_numpy(pred), conf, iou, classes, True, max_det=max_det)[0]
        if len(det):
            det[:, :4] = ops.scale_boxes(x.shape[2:], det[:, :4], frame.shape)
        return det[:, :6].numpy().astype(np.float32).reshape(-1, 6)


class OpenVinoModel(OnnxModel):
    """The same ONNX export, compiled by OpenVINO for the CPU (same pre- and post-processing).

    OpenVINO picks the CPU's fastest precision by itself: bfloat16 on CPUs with AVX-512 BF16 or
    AMX (3-4x faster than float32 there: 13 vs 37 ms for yolov8n at 384x640 on one core of this
    machine's Xeon), float32 elsewhere.  ``precision`` records which; the parity test holds
    either way."""

    def _load(self, threads: int) -> list:
        try:
            import openvino as ov

            core = ov.Core()
            compiled = core.compile_model(core.read_model(str(self.path)), "CPU",
                                          {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        except Exception as exc:  # noqa: BLE001 - missing package, corrupt or foreign file
            raise ExportFailed(f"OpenVINO cannot load {self.path.name}: {type(exc).__name__}: {exc}") from exc
        self.precision = precision_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = compiled.create_infer_request()
        return list(compiled.inputs[0].get_partial_shape().to_shape())

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer({0: x})[0]


RUNTIMES = {"onnx": OnnxModel, "openvino": OpenVinoModel}


def load_exported(runtime: str, weights: str | Path, size: Sequence[int], cache_dir: str | Path,
                  digest: Optional[str] = None, threads: Optional[int] = None) -> OnnxModel:
    """Export (once per host) and load ``weights`` for ``runtime`` at input ``size``.

    A cached file that does not load (damaged by hand, a foreign file under the same name) is
    exported again once; every other failure is :class:`ExportFailed` with the reason."""
    if runtime not in RUNTIMES:
        raise ExportFailed(f"no exporter for runtime {runtime!r}")
    if runtime == "openvino" and not openvino_available():
        raise ExportFailed("the openvino package is not installed (pip install -r requirements.txt)")
    cls = RUNTIMES[runtime]
    path = export_onnx(weights, size, cache_dir, digest)
    try:
        return cls(path, size, threads)
    except ExportFailed:
        path.unlink(missing_ok=True)
        return cls(export_onnx(weights, size, cache_dir, digest), size, threads)
