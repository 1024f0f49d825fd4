"""Runtime facts are logged as plain values: an OpenVINO element type as f32/bf16/f16."""
import pytest

from video_analysis.worker_utils.runtimes import openvino_available, precision_name


@pytest.mark.parametrize("value,name", [("float32", "f32"), ("bfloat16", "bf16"), ("float16", "f16"), ("f32", "f32"),
                                        ("i8", "i8")])
def test_precision_name_of_strings(value, name):
    assert precision_name(value) == name


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed")
@pytest.mark.parametrize("attr,name", [("f32", "f32"), ("bf16", "bf16"), ("f16", "f16")])
def test_precision_name_of_openvino_types(attr, name):
    import openvino as ov

    value = getattr(ov.Type, attr)
    assert str(value).startswith("<Type")  # what was logged before
    assert precision_name(value) == name


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed")
def test_a_compiled_models_precision_hint_reads_plainly():
    import openvino as ov

    hint = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    assert precision_name(hint) in ("f32", "bf16", "f16")


# --- a oneDNN kernel cap (ONEDNN_MAX_CPU_ISA) stands in for a smaller CPU -------------------------
from video_analysis.worker_utils import runtimes  # noqa: E402


@pytest.mark.parametrize("caps,cap,left", [
    (("FP32", "BF16", "FP16", "INT8"), None, ("FP32", "BF16", "FP16", "INT8")),
    (("FP32", "BF16", "INT8"), "AVX2", ("FP32", "INT8")),            # an AVX2-only CPU: float32 and INT8
    (("FP32", "BF16", "INT8"), "avx512_core_vnni", ("FP32", "INT8")),  # AVX-512 without BF16
    (("FP32", "BF16", "INT8"), "AVX512_CORE_BF16", ("FP32", "BF16", "INT8")),
    (("FP32", "BF16", "INT8"), "AVX512_CORE_AMX", ("FP32", "BF16", "INT8")),
    (("FP32", "INT8"), "AVX2", ("FP32", "INT8")),
])
def test_capabilities_under_a_kernel_cap(caps, cap, left):
    assert runtimes.capped_capabilities(caps, cap) == left


@pytest.mark.parametrize("raw,cap,config,expected", [
    (("FP32", "BF16"), "AVX2", {}, {"INFERENCE_PRECISION_HINT": "f32"}),   # OpenVINO would pick bf16 and fail
    (("FP32", "BF16"), "AVX2", {"INFERENCE_PRECISION_HINT": "f32", "X": 1}, {"INFERENCE_PRECISION_HINT": "f32", "X": 1}),
    (("FP32", "BF16"), None, {"PERFORMANCE_HINT": "LATENCY"}, {"PERFORMANCE_HINT": "LATENCY"}),  # its own choice
    (("FP32", "INT8"), "AVX2", {}, {}),   # a real AVX2 CPU: OpenVINO's default is float32 already
])
def test_a_kernel_cap_asks_for_float32_where_openvino_would_pick_bfloat16(raw, cap, config, expected, monkeypatch):
    monkeypatch.setattr(runtimes, "raw_capabilities", lambda: raw)
    if cap:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    else:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert runtimes.default_compile_config(config) == expected
