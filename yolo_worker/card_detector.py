"""A detector of any family run by the project's own runtime: a network file (ONNX, or an
OpenVINO IR ``.xml``) with its detector card beside it (detector_card.py), its pre- and
post-processing the card's family adapter (families.py), its network OpenVINO on CPU (ONNX
Runtime where OpenVINO is not installed or ``detector_runtime=onnx``).

The loaded model has the exported ultralytics detector's interface (detector_runtime.OnnxModel:
``input_for`` / ``infer`` / ``detections``, ``predict``), so the pipeline stages it (the network on
the detector thread, the Python around it beside the tracker) and gates it on motion exactly as an
exported ``.pt``.  Its thread count is measured once per host like theirs (choose_threads); a
card network has no INT8 export here (``detector_precision`` int8 runs its float model, with one
warning from the detector) and no PyTorch fallback: a file that does not load or does not fit its
card is a configuration error that names the fix.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from . import detector_card as dc
from . import detector_runtime as rt
from . import families as fm

def has_card(path: str | Path) -> bool:
    """True when a detector card lies beside ``path`` (detector_card.card_path)."""
    return dc.card_path(path).is_file()


def ultralytics_card(names: Sequence[str], size: Sequence[int]) -> dict:
    """The card an ultralytics detection export carries implicitly (pure): its letterbox, its
    ``[1, 4 + C, A]`` head, its class ``names`` in id order, its static input ``size`` (h, w)."""
    return {"format": dc.CARD_FORMAT, "family": "ultralytics",
            "input": {"size": [int(size[0]), int(size[1])], **dc.ULTRALYTICS_INPUT},
            "output": {"layout": "ultralytics", "scores": "sigmoid-applied"}, "labels": list(names)}


def _names_list(names: Any) -> Optional[list[str]]:
    """Class names ``{0: 'person', ...}`` (a dict, or its repr as ultralytics writes it into ONNX
    metadata) as a list in id order; None when they are not ids 0..n-1."""
    if isinstance(names, str):
        try:
            names = ast.literal_eval(names)
        except (ValueError, SyntaxError):
            return None
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    if not isinstance(names, dict) or sorted(names) != list(range(len(names))):
        return None
    return [str(names[i]) for i in range(len(names))]


def ultralytics_export(path: str | Path) -> Optional[tuple[Path, dict]]:
    """``(network file, card)`` for an ultralytics detection export that can run in the project's
    runtime without a card: an ``.onnx`` file with ultralytics' metadata (task ``detect``, its class
    names) and a static input, or an ``*_openvino_model/`` directory with its ``metadata.yaml`` and
    one ``.xml``.  None for anything else (a dynamic-shape export, a TensorRT engine): those run as
    ultralytics loads them."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".onnx":
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception:  # noqa: BLE001 - not a readable ONNX file: ultralytics says why
            return None
        meta = {q.key: q.value for q in model.metadata_props}
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in model.graph.input[0].type.tensor_type.shape.dim] if model.graph.input else []
        names = _names_list(meta.get("names"))
        if meta.get("task") != "detect" or names is None or len(dims) != 4 or None in dims or dims[:2] != [1, 3]:
            return None
        return path, ultralytics_card(names, dims[2:])
    if path.is_dir() and (path / "metadata.yaml").is_file():
        import yaml

        try:
            meta = yaml.safe_load((path / "metadata.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None
        xmls = sorted(path.glob("*.xml"))
        names, imgsz = _names_list(meta.get("names")), meta.get("imgsz")
        if meta.get("task") != "detect" or names is None or len(xmls) != 1 or meta.get("dynamic") \
                or not (isinstance(imgsz, list) and len(imgsz) == 2):
            return None
        return xmls[0], ultralytics_card(names, imgsz)
    return None


def card_runtime(requested: str, path: Path, openvino: bool, cuda: bool = False) -> str:
    """``"openvino"`` or ``"onnx"`` for a card network at ``path`` (pure): ``auto`` = ONNX Runtime
    on the GPU where ``cuda`` (the detector's device is a GPU and onnxruntime has its CUDA
    provider), else OpenVINO where installed; an OpenVINO IR only OpenVINO reads.  ``torch`` has
    no meaning for a bare network: ValueError says what to set."""
    if requested == "torch":
        raise ValueError(f"detector_runtime=torch cannot run {path.name}: a network with a detector card runs in "
                         "OpenVINO or ONNX Runtime; set detector_runtime to auto, openvino or onnx")
    if path.suffix.lower() == ".xml":
        if not openvino:
            raise ValueError(f"{path.name} is an OpenVINO IR and the openvino package is not installed "
                             "(pip install -r requirements.txt)")
        return "openvino"
    if requested == "auto":
        return "onnx" if cuda or not openvino else "openvino"
    return requested


class _CardSteps:
    """The exported model's steps with a family adapter's pre- and post-processing (mixed in
    before OnnxModel / OpenVinoModel, which load and run the network)."""

    def __init__(self, path: str | Path, size: Sequence[int], threads: Optional[int], hint: Optional[str],
                 card: dict, family: fm.Family, providers: Optional[list] = None):
        self.card, self.family = card, family
        if providers:
            self.providers = providers  # ONNX Runtime's (rt.onnx_providers); OpenVINO ignores them
        super().__init__(path, size, threads, hint)  # type: ignore[call-arg]  # OnnxModel's: load, check the input

    def input_for(self, frame: np.ndarray) -> np.ndarray:
        return self.family.preprocess(frame)[0]

    def detections(self, raw, input_hw: Sequence[int], frame_shape: Sequence[int], conf: float, iou: float,
                   classes: Optional[list[int]], max_det: int = 300) -> np.ndarray:
        inp = self.card["input"]
        where = fm.placement(frame_shape, self.size, inp["resize"], inp["padding"])
        return self.family.postprocess(raw, where, frame_shape, conf, iou, classes, max_det)

    @property
    def classes(self) -> int:
        return len(self.family.names)


class CardOnnx(_CardSteps, rt.OnnxModel):
    """A card network in ONNX Runtime (every output: a DETR may give boxes and scores apart)."""

    def _infer(self, x: np.ndarray):
        out = self.session.run(None, {self.input_name: x})
        return out[0] if len(out) == 1 else out

    def shapes(self) -> tuple[list, list]:
        return list(self.session.get_inputs()[0].shape), [list(o.shape) for o in self.session.get_outputs()]


class CardOpenVino(_CardSteps, rt.OpenVinoModel):
    """A card network compiled by OpenVINO for the CPU."""

    def _infer(self, x: np.ndarray):
        res = self.request.infer({0: x})
        n = len(self.request.model_outputs)
        return res[0] if n == 1 else [res[i] for i in range(n)]

    def shapes(self) -> tuple[list, list]:
        return _dims(self.request.model_inputs[0]), [_dims(o) for o in self.request.model_outputs]


CLASSES = {"onnx": CardOnnx, "openvino": CardOpenVino}


def load(runtime: str, path: Path, card: dict, threads: Optional[int], hint: Optional[str], cache_dir: Path,
         frame_size: Optional[Sequence[int]] = None, providers: Optional[list] = None) -> rt.OnnxModel:
    """The card network at ``path`` loaded for ``runtime``, checked against its card
    (DetectorCardError naming the key), on ``threads`` (None: measured once per host and recorded
    in ``cache_dir``, detector_runtime.choose_threads); ``providers``: ONNX Runtime's execution
    providers (rt.onnx_providers; None: the CPU)."""
    cls = CLASSES[runtime]
    size = tuple(int(v) for v in card["input"]["size"])
    family = fm.family_for(card)

    def make(n: int) -> rt.OnnxModel:
        try:
            model = cls(path, size, n, hint, card, family, providers)
        except rt.ExportFailed as exc:
            if "takes input" not in str(exc):
                raise
            inp, outs = _shapes_of(runtime, path)
            dc.check_model(card, path, inp, outs)  # the card's own words where it names the mismatch
            raise
        dc.check_model(card, path, *model.shapes())
        return model

    if threads:
        return make(threads)
    digest = rt.weights_digest(path)
    record = Path(cache_dir) / rt.cache_name(path.stem, digest, size, "threads")
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # a read-only cache: measured unlocked and again next time (choose_threads warns once)
    model = rt.choose_threads(runtime, path, size, hint, record, frame_size, factory=make)
    model.digest, model.thread_record = digest, record
    return model


def _shapes_of(runtime: str, path: Path) -> tuple[list, list]:
    """The network's input and output shapes, read without compiling it for inference."""
    if runtime == "openvino":
        m = rt.import_openvino().Core().read_model(str(path))
        return _dims(m.inputs[0]), [_dims(o) for o in m.outputs]
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=[rt.CPU_EP])
    return list(s.get_inputs()[0].shape), [list(o.shape) for o in s.get_outputs()]


def _dims(port) -> list:
    """An OpenVINO port's shape as a list, -1 for a dynamic dimension (detector_card's convention)."""
    return [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
