"""Which optional model runtimes this host has, and which OpenVINO precisions its CPU offers
(both workers ask: the detector, the main model and the plate OCR)."""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from typing import Optional, Sequence

# OpenVINO's CPU OPTIMIZATION_CAPABILITIES entry each float INFERENCE_PRECISION_HINT needs.
FLOAT_CAPABILITY = {"f32": "FP32", "f16": "FP16", "bf16": "BF16"}


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


@lru_cache(maxsize=1)
def cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU (``FP32``, ``BF16``, ``FP16``, ``INT8`` ...);
    empty without the openvino package."""
    if not openvino_available():
        return ()
    from .offline import import_openvino

    return tuple(import_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def float_hint(requested: str, capabilities: Sequence[str], setting: str) -> tuple[Optional[str], Optional[str]]:
    """``(INFERENCE_PRECISION_HINT to set or None, warning or None)`` for the float precision
    ``requested`` by ``setting`` (``auto``, ``f32``, ``f16``, ``bf16``) on a CPU with OpenVINO's
    ``capabilities`` (e.g. ``["FP32", "BF16", "INT8"]``).  ``auto`` sets none: OpenVINO's own
    choice (bfloat16 with AMX / AVX-512 BF16, float32 elsewhere).  ``f16``/``bf16`` on a CPU
    without them set none either and say so once: OpenVINO would otherwise emulate or refuse them."""
    if requested == "auto":
        return None, None
    if requested not in FLOAT_CAPABILITY:
        raise ValueError(f"unknown {setting} {requested!r}; use one of auto, {', '.join(FLOAT_CAPABILITY)}")
    if FLOAT_CAPABILITY[requested] not in capabilities:
        offered = ", ".join(c for c in capabilities if c in FLOAT_CAPABILITY.values()) or "none"
        return None, (f"{setting}={requested} is not supported by this CPU (OpenVINO offers {offered}); "
                      "running OpenVINO's default precision instead")
    return requested, None
