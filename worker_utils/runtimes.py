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


# oneDNN ISA names (ONEDNN_MAX_CPU_ISA) that leave no bfloat16 / float16 kernels: under such a cap
# the CPU computes as an AVX2-only or AVX-512 (no BF16) one does, float32.
NO_HALF_ISAS = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"})


def capped_capabilities(capabilities: Sequence[str], isa_cap: Optional[str]) -> tuple[str, ...]:
    """OpenVINO's CPU ``capabilities`` as the kernels under oneDNN's ``isa_cap`` can serve them
    (pure): ``BF16`` and ``FP16`` gone under a cap in :data:`NO_HALF_ISAS`, as on such a CPU."""
    if isa_cap and isa_cap.upper() in NO_HALF_ISAS:
        return tuple(c for c in capabilities if c not in ("BF16", "FP16"))
    return tuple(capabilities)


@lru_cache(maxsize=1)
def raw_capabilities() -> tuple[str, ...]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU as it reports them (from CPUID; a oneDNN
    kernel cap does not change them); empty without the openvino package."""
    if not openvino_available():
        return ()
    from .offline import import_openvino

    return tuple(import_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def cpu_capabilities() -> tuple[str, ...]:
    """What OpenVINO can compute in on this CPU (``FP32``, ``BF16``, ``FP16``, ``INT8`` ...), under
    this process's oneDNN kernel cap (worker_config.onednn_isa_cap)."""
    from ..worker_config import onednn_isa_cap

    return capped_capabilities(raw_capabilities(), onednn_isa_cap())


def default_compile_config(config: Optional[dict]) -> dict:
    """``config`` (OpenVINO compile properties) with float32 asked for where no precision is and a
    oneDNN kernel cap hides the bfloat16 the CPU reports: OpenVINO would pick bfloat16 from CPUID
    and find no kernels ("Supported primitive descriptors list is empty").  On a real AVX2-only
    CPU its own default is float32 anyway, so this makes the cap behave like that CPU."""
    config = dict(config or {})
    if "INFERENCE_PRECISION_HINT" not in config and kernel_cap_hides_bf16():
        config["INFERENCE_PRECISION_HINT"] = "f32"
    return config


def kernel_cap_hides_bf16() -> bool:
    """True when this process's oneDNN kernel cap hides the bfloat16 this CPU reports (an AVX2-only
    CPU emulated on a bigger one: tests, ``bench --isa avx2``)."""
    return "BF16" in raw_capabilities() and "BF16" not in cpu_capabilities()


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
