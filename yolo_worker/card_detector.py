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

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import detector_card as dc
from . import detector_runtime as rt
from . import families as fm

RUNTIMES = ("openvino", "onnx")


def has_card(path: str | Path) -> bool:
    """True when a detector card lies beside ``path`` (detector_card.card_path)."""
    return dc.card_path(path).is_file()


def card_runtime(requested: str, path: Path, openvino: bool) -> str:
    """``"openvino"`` or ``"onnx"`` for a card network at ``path`` (pure): ``auto`` = OpenVINO where
    installed; an OpenVINO IR only OpenVINO reads.  ``torch`` has no meaning for a bare network:
    ValueError says what to set."""
    if requested == "torch":
        raise ValueError(f"detector_runtime=torch cannot run {path.name}: a network with a detector card runs in "
                         "OpenVINO or ONNX Runtime; set detector_runtime to auto, openvino or onnx")
    if path.suffix.lower() == ".xml":
        if not openvino:
            raise ValueError(f"{path.name} is an OpenVINO IR and the openvino package is not installed "
                             "(pip install -r requirements.txt)")
        return "openvino"
    if requested == "auto":
        return "openvino" if openvino else "onnx"
    return requested


class _CardSteps:
    """The exported model's steps with a family adapter's pre- and post-processing (mixed in
    before OnnxModel / OpenVinoModel, which load and run the network)."""

    def __init__(self, path: str | Path, size: Sequence[int], threads: Optional[int], hint: Optional[str],
                 card: dict, family: fm.Family):
        self.card, self.family = card, family
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
        def dims(port) -> list:
            return [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
        return dims(self.request.model_inputs[0]), [dims(o) for o in self.request.model_outputs]


CLASSES = {"onnx": CardOnnx, "openvino": CardOpenVino}


def load(runtime: str, path: Path, card: dict, threads: Optional[int], hint: Optional[str], cache_dir: Path,
         frame_size: Optional[Sequence[int]] = None) -> rt.OnnxModel:
    """The card network at ``path`` loaded for ``runtime``, checked against its card
    (DetectorCardError naming the key), on ``threads`` (None: measured once per host and recorded
    in ``cache_dir``, detector_runtime.choose_threads)."""
    cls = CLASSES[runtime]
    size = tuple(int(v) for v in card["input"]["size"])
    family = fm.family_for(card)

    def make(n: int) -> rt.OnnxModel:
        try:
            model = cls(path, size, n, hint, card, family)
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
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    model = rt.choose_threads(runtime, path, size, hint, record, frame_size, factory=make)
    model.digest = digest
    return model


def _shapes_of(runtime: str, path: Path) -> tuple[list, list]:
    """The network's input and output shapes, read without compiling it for inference."""
    if runtime == "openvino":
        core = rt.import_openvino().Core()
        m = core.read_model(str(path))

        def dims(port) -> list:
            return [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
        return dims(m.inputs[0]), [dims(o) for o in m.outputs]
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(s.get_inputs()[0].shape), [list(o.shape) for o in s.get_outputs()]
