"""Detector adapter: ultralytics weights (.pt, .onnx, OpenVINO dir, TensorRT .engine) -> D x 6 arrays.

Output per frame: ``float32`` array ``D x 6`` = ``(x1, y1, x2, y2, conf, cls)`` in pixels of
the frame passed in, ``cls`` already mapped onto the 8-type taxonomy (index into
``worker_config.TAXONOMY``); classes with no mapping are dropped.  Boxes down to
``min(detector_conf, track_low_conf)`` are returned: the tracker starts tracks only from those
at ``detector_conf`` or above and uses the rest to keep existing tracks alive.

NMS is class-agnostic over the mapped classes: one box per vehicle, labelled with its
best-scoring class (unmapped classes are filtered out before NMS, so they suppress nothing).
With per-class NMS (ultralytics' default) a vehicle the detector hesitates about (LightTruck
vs Utility, Car vs SUV) comes out as two overlapping boxes; the tracker then follows two
tracks and the vehicle gets two snapshots with different types.  On generated clips about
40 % of the demo detector's boxes had such a twin.

Class mapping, in order: ``settings.detector_class_map`` when set; 1:1 when every class name
of the weights is a taxonomy name (the demo detector); else the COCO vehicle map
(car, truck, bus, motorcycle) with every other class ignored.

Runtime (``settings.detector_runtime``, or ``Detector(settings, runtime=...)``): ``.pt`` weights
run in PyTorch, or exported to ONNX and run by OpenVINO or ONNX Runtime (``auto`` on CPU: OpenVINO;
see ``detector_runtime.py``) at the
rectangular input size of the video's frames, exported once per weights and size, loaded lazily
on the first frame of a new size (or ahead by :meth:`Detector.prepare`).  When the export or its
loading fails the detector says why in one warning and stays on PyTorch.  A network with a
detector card beside it (YOLOX, DETR, ...), and an ultralytics ONNX export or OpenVINO directory
(its metadata is its card), run in the project's own runtime (card_detector.py) unless
``detector_runtime=torch``; other files (``.engine``, dynamic-shape exports) load through
ultralytics as they are.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..worker_config import COCO_TO_TAXONOMY, TAXONOMY, Settings
from ..worker_utils.errors import PermanentError
from ..worker_utils.offline import ultralytics_offline
from . import card_detector, detector_card
from . import detector_runtime as rt

log = logging.getLogger(__name__)


class DetectorConfigError(PermanentError):
    code = "detector_config"


@dataclass(frozen=True)
class DetectorStages:
    """An exported detector's three steps for one frame size, for a caller that runs them on
    different threads (pipeline.detected: the network on the detector thread, the Python around
    it beside the tracker): ``pre(frame)`` H x W x 3 BGR uint8 -> ``1 x 3 x h x w`` float32;
    ``infer(x)`` -> the raw head output (computed without the GIL); ``post(raw, x, frame)`` ->
    ``D x 6`` in frame pixels and taxonomy classes, as :meth:`Detector.detect` returns them."""

    pre: Callable[[np.ndarray], np.ndarray]
    infer: Callable[[np.ndarray], np.ndarray]
    post: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def class_lookup(names: Mapping[int, str] | Sequence[str], class_map: Mapping[str, str] | None) -> np.ndarray:
    """``lookup[model_class] = taxonomy index or -1`` for the weights' class names."""
    names = dict(enumerate(names)) if not isinstance(names, Mapping) else dict(names)
    if class_map is None:
        if set(names.values()) <= set(TAXONOMY):
            class_map = {n: n for n in names.values()}
        else:
            class_map = COCO_TO_TAXONOMY
    lookup = np.full(max(names) + 1 if names else 0, -1, dtype=np.int64)
    for idx, name in names.items():
        target = class_map.get(name)
        if target is not None:
            lookup[idx] = TAXONOMY.index(target)
    if names and (lookup < 0).all():
        raise DetectorConfigError(
            f"none of the detector's classes {sorted(names.values())[:12]} map onto the taxonomy {list(TAXONOMY)}; "
            "set detector_class_map (e.g. CVITX_DETECTOR_CLASS_MAP='{\"car\": \"Car\"}')")
    return lookup


def class_mapping(names: Mapping[int, str], lookup: np.ndarray) -> tuple[list[str], list[str]]:
    """(``"name -> Type"`` for each class that maps onto the taxonomy, names of the ignored
    ones), in class order: what check-model prints and the start-up log line says (pure)."""
    mapped = [f"{n} -> {TAXONOMY[lookup[i]]}" for i, n in sorted(names.items()) if lookup[i] >= 0]
    ignored = [n for i, n in sorted(names.items()) if lookup[i] < 0]
    return mapped, ignored


def _refuse_unsafe_checkpoint(path: Path) -> None:
    """A ``.pt`` that ultralytics would unpickle is first checked to be an ultralytics checkpoint
    naming nothing but tensors and network classes (worker_utils/model_files.py): loading a
    model file never runs code from it.  Exports (ONNX, OpenVINO, TensorRT) hold no pickle."""
    from ..worker_utils.model_files import check_ultralytics_checkpoint, sniff

    if path.is_file():
        try:
            found = sniff(path)
        except Exception as exc:  # noqa: BLE001 - a damaged archive or pickle
            raise DetectorConfigError(f"cannot load detector {path}: {type(exc).__name__}: {exc}") from None
        if found.kind == "torch_pickle":
            check_ultralytics_checkpoint(path, found, DetectorConfigError)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


class Detector:
    """One loaded detector; ``detect(frame)`` is safe to call for every processed frame."""

    def __init__(self, settings: Settings, weights: str | Path | None = None, *, runtime: str | None = None):
        ultralytics_offline()
        from ultralytics import YOLO

        path = settings.resolve_path(str(weights or settings.detector_path))
        if not path.exists():
            raise DetectorConfigError(f"detector weights {path} do not exist; set detector_path "
                                      "(CVITX_DETECTOR_PATH) to a .pt/.onnx/.engine file or OpenVINO directory")
        self.path = path
        self.device = resolve_device(settings.device)
        requested = runtime or settings.detector_runtime
        # A network with a detector card (YOLOX, DETR, ...; card_detector.py) runs in the project's
        # own runtime, never through ultralytics: its names and input come from the card.
        # An ultralytics ONNX export or OpenVINO directory needs no card: its metadata gives one, and it
        # runs in the project's runtime too (detector_runtime=torch keeps it in ultralytics' own).
        self.card: Optional[dict] = None
        self.card_file: Optional[Path] = None  # None: the card came from an ultralytics export's metadata
        self.network_path = path  # the file the runtime loads (an OpenVINO directory's .xml)
        if card_detector.has_card(path):
            self.card = detector_card.load_card(path)  # DetectorCardError: one line naming the key
            self.card_file = detector_card.card_path(path)
        elif requested != "torch" and (export := card_detector.ultralytics_export(path)) is not None:
            self.network_path, self.card = export
        if self.card is not None:
            self.model: Any = None
            self.names = dict(enumerate(detector_card.labels_of(self.card)))
        else:
            _refuse_unsafe_checkpoint(path)
            try:
                self.model = YOLO(str(path), task="detect")
            except Exception as exc:  # noqa: BLE001 - any loader failure is a configuration problem
                raise DetectorConfigError(f"cannot load detector {path}: {type(exc).__name__}: {exc}") from exc
            self.names = dict(self.model.names)
        self.lookup = class_lookup(self.names, settings.detector_class_map)
        # Only the mapped classes take part in NMS: with agnostic NMS an unmapped class (COCO's
        # "person" riding a motorcycle) must not suppress the vehicle's box.
        self.classes = [int(i) for i in np.flatnonzero(self.lookup >= 0)]
        self.imgsz = (max(self.card["input"]["size"]) if self.card else
                      settings.detector_imgsz or self._trained_imgsz() or 640)
        # Down to track_low_conf: the tracker's second association uses the unsure ones (and only it).
        self.conf, self.iou = min(settings.detector_conf, settings.track_low_conf), settings.detector_iou
        self.half = self.device.startswith("cuda")
        if requested not in ("auto", "torch", *rt.EXPORTED):
            raise DetectorConfigError(f"unknown detector runtime {requested!r}; use auto, torch or "
                                      + ", ".join(rt.EXPORTED))
        # "torch", "native" (a non-.pt file, through ultralytics as it is) or an exported runtime.
        self.providers: list = [rt.CPU_EP]  # ONNX Runtime's, for a card network (rt.onnx_providers)
        if self.card is not None:
            import onnxruntime as ort

            self.providers = rt.onnx_providers(self.device, ort.get_available_providers())
            on_gpu = self.providers[0] != rt.CPU_EP
            try:
                self.runtime = card_detector.card_runtime(requested, self.network_path, rt.openvino_available(), on_gpu)
            except ValueError as exc:
                raise DetectorConfigError(str(exc)) from None
            if self.device.startswith("cuda") and not (on_gpu and self.runtime == "onnx"):
                log.warning(f"device {self.device}: the card network {path.name} runs on the CPU in {self.runtime}"
                            + ("" if on_gpu else "; onnxruntime here has no CUDA provider (pip install "
                               "onnxruntime-gpu, of the same version, in place of onnxruntime)"),
                            extra={"weights": str(path)})
                self.device = "cpu"  # where it computes: sizes the decoder's threads
        else:
            self.runtime = rt.choose_runtime(requested, path, self.device, openvino=rt.openvino_available())
        self.cache_dir = settings.detector_cache_path()
        # detector_threads; unset: an exported runtime's count is measured once per host, model and
        # size (detector_runtime.choose_threads), PyTorch's is every usable core (at most 8).
        self.threads_setting = settings.detector_threads
        self.threads = settings.detector_threads or rt.default_threads()
        # detector_precision: OpenVINO's float precision, or its INT8 export (int8; auto where it pays).
        self.precision = settings.detector_precision
        self.calibration_dir = (settings.resolve_path(settings.detector_calibration_dir)
                                if settings.detector_calibration_dir else None)
        precision_warning = rt.precision_warning(self.precision, self.runtime)
        if self.card is not None and self.precision == "int8":
            precision_warning = ("detector_precision=int8: a network with a detector card has no INT8 export here; "
                                 "running its float model (quantise it yourself and point detector_path at the result)")
        if precision_warning:  # once per detector, not per input size
            log.warning(precision_warning, extra={"weights": str(path), "runtime": self.runtime})
        self._digest: str | None = None
        self._exported: OrderedDict[tuple[int, int], rt.OnnxModel] = OrderedDict()
        mapped, ignored = class_mapping(self.names, self.lookup)
        log.info("detector loaded", extra={"weights": str(path), "device": self.device, "imgsz": self.imgsz,
                                            "classes": len(self.names), "runtime": self.runtime,
                                            "family": self.card["family"] if self.card else "ultralytics",
                                            "class_map": mapped, "ignored_classes": len(ignored)})

    def _trained_imgsz(self) -> int | None:
        args = getattr(getattr(self.model, "model", None), "args", None) or getattr(self.model, "overrides", {})
        size = args.get("imgsz") if isinstance(args, dict) else getattr(args, "imgsz", None)
        return int(size) if isinstance(size, (int, float)) else None

    def prepare(self, width: int, height: int) -> None:
        """Export / load the runtime for ``width x height`` frames now (before the video is read)
        rather than on its first frame; does nothing for PyTorch and native weights."""
        self._exported_model(width, height)

    def stages(self, width: int, height: int) -> Optional[DetectorStages]:
        """:class:`DetectorStages` of the exported runtime for ``width x height`` frames (exported
        and loaded now if need be); None when this detector runs PyTorch or native weights."""
        model = self._exported_model(width, height)
        if model is None:
            return None

        def post(raw: np.ndarray, x: np.ndarray, frame: np.ndarray) -> np.ndarray:
            return self._to_taxonomy(model.detections(raw, x.shape[2:], frame.shape, self.conf, self.iou,
                                                      self.classes))
        return DetectorStages(model.input_for, model.infer, post)

    def _exported_model(self, width: int, height: int) -> rt.OnnxModel | None:
        """The exported runtime for frames of this size, exported and loaded on first use; None
        when this detector runs PyTorch (chosen, or fallen back to after a failure)."""
        if self.runtime not in rt.EXPORTED:
            return None
        if self.card is not None:
            return self._card_model(width, height)
        size = rt.input_size(width, height, self.imgsz)
        model = self._exported.get(size)
        if model is not None:
            self._exported.move_to_end(size)
            return model
        try:
            if self._digest is None:
                self._digest = rt.weights_digest(self.path)
            model = rt.load_exported(self.runtime, self.path, size, self.cache_dir, self._digest,
                                     self.threads_setting, self.precision, self.calibration_dir, (width, height))
        except Exception as exc:  # noqa: BLE001 - any export/load failure: PyTorch still works
            reason = str(exc) if isinstance(exc, rt.ExportFailed) else f"{type(exc).__name__}: {exc}"
            log.warning(f"detector runtime {self.runtime} unavailable, running PyTorch instead: {reason}",
                        extra={"weights": str(self.path), "input_size": f"{size[0]}x{size[1]}",
                               "cache_dir": str(self.cache_dir)})
            self.runtime = "torch"
            self._exported.clear()
            return None
        self._exported[size] = model
        self.threads = model.threads  # what the runtime runs on (measured where the setting is unset)
        while len(self._exported) > rt.MAX_LOADED:
            self._exported.popitem(last=False)
        log.info("detector runtime ready", extra={"runtime": self.runtime, "model": str(model.path),
                                                   "input_size": f"{size[0]}x{size[1]}",
                                                   "precision": getattr(model, "precision", "f32"),
                                                   "threads": model.threads})
        return model

    def _card_model(self, width: int, height: int) -> rt.OnnxModel:
        """The card network (one input size whatever the frames'), loaded on first use; a file that
        does not load or fit its card is a DetectorConfigError (no PyTorch to fall back to)."""
        assert self.card is not None
        size = tuple(int(v) for v in self.card["input"]["size"])
        model = self._exported.get(size)
        if model is not None:
            return model
        try:
            model = card_detector.load(self.runtime, self.network_path, self.card, self.threads_setting,
                                       rt.runtime_hint(self.runtime, self.precision), self.cache_dir, (width, height),
                                       self.providers if self.runtime == "onnx" else None)
        except detector_card.DetectorCardError:
            raise
        except Exception as exc:  # noqa: BLE001 - a file the runtime cannot read, a cache it cannot write
            reason = str(exc) if isinstance(exc, rt.ExportFailed) else f"{type(exc).__name__}: {exc}"
            raise DetectorConfigError(f"cannot run detector {self.path} in {self.runtime}: {reason}") from exc
        self._exported[size] = model
        self.threads = model.threads
        log.info("detector runtime ready", extra={"runtime": self.runtime, "model": str(model.path),
                                                   "family": self.card["family"], "device": self.device,
                                                   "input_size": f"{size[0]}x{size[1]}",
                                                   "precision": model.precision, "threads": model.threads})
        return model

    def _to_taxonomy(self, data: np.ndarray) -> np.ndarray:
        data = data[:, :6].astype(np.float32)
        if len(data):
            cls = self.lookup[data[:, 5].astype(np.int64)]
            data = data[cls >= 0]
            data[:, 5] = cls[cls >= 0]
        return data.reshape(-1, 6)

    def detect_batch(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Detections for each BGR frame (H x W x 3 uint8) of ``frames``; see the module docstring."""
        if not frames:
            return []
        if self.runtime in rt.EXPORTED:
            out = []
            for frame in frames:
                model = self._exported_model(frame.shape[1], frame.shape[0])
                if model is None:  # fell back to PyTorch just now
                    return self.detect_batch(frames)
                out.append(self._to_taxonomy(model.predict(frame, self.conf, self.iou, self.classes)))
            return out
        results = self.model.predict(frames, imgsz=self.imgsz, conf=self.conf, iou=self.iou, device=self.device,
                                     quantize=16 if self.half else None,  # ultralytics 8.4: `half` is deprecated
                                     agnostic_nms=True, classes=self.classes, verbose=False, save=False)
        return [self._to_taxonomy(r.boxes.data.cpu().numpy() if r.boxes is not None else np.zeros((0, 6), np.float32))
                for r in results]

    def detect(self, frame: np.ndarray) -> np.ndarray:
        return self.detect_batch([frame])[0]
