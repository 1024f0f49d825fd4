"""Which optional model runtimes this host has (both workers ask: the detector and the plate OCR)."""
from __future__ import annotations

import importlib.util


def openvino_available() -> bool:
    """True when the ``openvino`` package is importable (it is in requirements.txt; a slimmed
    install without it runs ONNX Runtime instead)."""
    return importlib.util.find_spec("openvino") is not None


def precision_name(value: object) -> str:
    """An OpenVINO element type as its short name (``f32``, ``bf16``, ``f16``), not the object's
    repr (``<Type: 'float32'>``), for log lines and bench figures."""
    to_string = getattr(value, "to_string", None)
    text = str(to_string() if callable(to_string) else value)
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(text, text)
