"""Which optional model runtimes this host has (both workers ask: the detector and the plate OCR)."""
from __future__ import annotations

import importlib.util


def openvino_available() -> bool:
    """True when the ``openvino`` package is importable (it is in requirements.txt; a slimmed
    install without it runs ONNX Runtime instead)."""
    return importlib.util.find_spec("openvino") is not None
