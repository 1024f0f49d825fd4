"""ONNX main models: OpenVINO on CPU when the ``openvino`` package is importable, ONNX Runtime
otherwise, and ONNX Runtime with CUDA where the host has it (the same choice the detector and
the plate OCR make, worker_utils/runtimes.py)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from ...worker_utils.runtimes import openvino_available
from .common import BundleError, one_line, run_batched

log = logging.getLogger(__name__)
ORT_PRECISION = {"tensor(float)": "f32", "tensor(float16)": "f16", "tensor(double)": "f64"}


def onnx_runtime_choice(openvino: bool, ort_providers: list[str]) -> str:
    """``"onnxruntime-cuda"``, ``"openvino"`` or ``"onnxruntime"`` (pure)."""
    if "CUDAExecutionProvider" in ort_providers:
        return "onnxruntime-cuda"
    return "openvino" if openvino else "onnxruntime"


def static_batch(dim: object) -> Optional[int]:
    """The input's batch size when the model fixes it (an int > 0), else None (dynamic)."""
    return dim if isinstance(dim, int) and dim > 0 else None


class OrtRunner:
    """An ONNX file in ONNX Runtime (CUDA when ``cuda``, else CPU)."""

    def __init__(self, path: Path, cuda: bool = False):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
            raise BundleError(f"{path}: ONNX Runtime cannot load it ({one_line(exc)}); "
                              "re-export it with torch.onnx.export") from None
        inp = self.session.get_inputs()[0]
        self.input_name, self.fixed_batch = inp.name, static_batch(inp.shape[0])
        self.dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.names = [o.name for o in self.session.get_outputs()]
        self.runtime = "onnxruntime (CUDA)" if cuda else "onnxruntime (CPU)"
        self.precision = ORT_PRECISION.get(inp.type, inp.type)

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x.astype(self.dtype, copy=False)})

    def run(self, x: np.ndarray) -> list[tuple[Optional[str], np.ndarray]]:
        return list(zip(self.names, run_batched(self._run, x, self.fixed_batch)))


def onnx_runner(path: Path, ov_config: Optional[dict[str, str]] = None):
    """The runner for an ONNX main model on this host (see the module docstring); ``ov_config``:
    OpenVINO's compile properties where it runs there (``main_precision``)."""
    import onnxruntime as ort

    choice = onnx_runtime_choice(openvino_available(), ort.get_available_providers())
    if choice == "openvino":
        from .openvino_ir import OpenVinoRunner

        try:
            return OpenVinoRunner(path, ov_config)
        except BundleError as exc:
            log.warning("OpenVINO cannot compile the main model; running ONNX Runtime instead",
                        extra={"path": str(path), "error": exc.reason})
    return OrtRunner(path, cuda=choice == "onnxruntime-cuda")


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ONNX file's metadata properties (ultralytics writes ``task`` and ``names`` there);
    parses the protobuf, runs nothing."""
    import onnx

    try:
        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001 - not a readable ONNX file: the runtime says why later
        return {}


def is_ultralytics_classify(meta: dict[str, str]) -> bool:
    """True for an ultralytics classify export (pure: ``meta`` from :func:`onnx_metadata`)."""
    return meta.get("task") == "classify" and "names" in meta and meta.get("author", "").startswith("Ultralytics")
