"""OpenVINO main models: an IR (``main.xml`` + ``main.bin``) or an ONNX file, compiled for the
CPU.  OpenVINO picks the CPU's fastest precision itself (bfloat16 with AMX, else float32) unless
``main_precision`` asks for one (main_worker/variants.py's ``openvino_config``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ...worker_utils.offline import import_openvino
from ...worker_utils.runtimes import default_compile_config, precision_name
from .common import BundleError, one_line, run_batched
from .onnx import static_batch


def _name(port: object, i: int) -> Optional[str]:
    try:
        return port.get_any_name()  # type: ignore[attr-defined]
    except RuntimeError:  # an output without a tensor name
        return None


class OpenVinoRunner:
    """An IR or ONNX file compiled for the CPU; ``run(x)`` takes ``N x 3 x S x S`` float32 and
    returns ``[(output name or None, N x C array)]``.  ``config`` adds compile properties to the
    latency hint (e.g. ``{"INFERENCE_PRECISION_HINT": "f32"}`` to refuse bfloat16)."""

    runtime = "openvino (CPU)"

    def __init__(self, path: Path, config: Optional[dict[str, str]] = None):
        try:
            ov = import_openvino()  # its telemetry declined (worker_utils/offline.py)

            if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
                raise BundleError(f"{path}: its weights {path.with_suffix('.bin').name} are missing beside it; "
                                  "copy the .bin that ov.save_model wrote with the .xml")
            core = ov.Core()
            compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                          default_compile_config({"PERFORMANCE_HINT": "LATENCY", **(config or {})}))
        except BundleError:
            raise
        except Exception as exc:  # noqa: BLE001 - missing package, corrupt or foreign file
            raise BundleError(f"{path}: OpenVINO cannot load it ({one_line(exc)}); "
                              "re-export it (ov.convert_model + ov.save_model)") from None
        self.request = compiled.create_infer_request()
        self.names = [_name(o, i) for i, o in enumerate(compiled.outputs)]
        batch = compiled.inputs[0].get_partial_shape()[0]
        self.fixed_batch = static_batch(batch.get_length()) if batch.is_static else None
        self.precision = precision_name(compiled.get_property("INFERENCE_PRECISION_HINT"))

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        res = self.request.infer({0: x})
        return [res[i].copy() for i in range(len(self.names))]

    def run(self, x: np.ndarray) -> list[tuple[Optional[str], np.ndarray]]:
        return list(zip(self.names, run_batched(self._run, x, self.fixed_batch)))
