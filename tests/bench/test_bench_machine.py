"""The CPU line every bench figure carries: model and ISA flags parsed from /proc/cpuinfo (pure),
and the precision each detector runtime reports."""
from __future__ import annotations

import types

import pytest

from video_analysis.bench.common import cpu_line, isa_class, parse_cpuinfo

XEON_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
stepping\t: 8
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: something else
flags\t\t: fpu
"""
EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC 7B12
stepping\t: 0
flags\t\t: fpu sse2 avx avx2 fma sha_ni
"""
ICELAKE = "model name\t: Intel(R) Xeon(R) Platinum 8375C CPU\nflags\t\t: avx2 avx512f avx512_vnni\n"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n"


@pytest.mark.parametrize("text,cpu,cpu_id,isa,klass", [
    (XEON_AMX, "Intel(R) Xeon(R) Platinum 8480+", "GenuineIntel family 6 model 143 stepping 8",
     ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"], "amx"),
    (EPYC_AVX2, "AMD EPYC 7B12", "AuthenticAMD family 23 model 49 stepping 0", ["avx2"], "avx2"),
    (ICELAKE, "Intel(R) Xeon(R) Platinum 8375C CPU", None, ["avx2", "avx512f", "avx512_vnni"], "avx512_vnni"),
    (ARM, None, None, [], "older"),
    ("", None, None, [], "older"),
])
def test_parse_cpuinfo(text, cpu, cpu_id, isa, klass):
    assert parse_cpuinfo(text) == {"cpu": cpu, "cpu_id": cpu_id, "isa": isa, "isa_class": klass}


@pytest.mark.parametrize("isa,klass", [
    (["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"], "amx"),
    (["avx2", "avx512f", "avx512_vnni", "avx512_bf16"], "avx512_bf16"),
    (["avx2", "avx512f"], "avx512"),
    (["avx2", "avx_vnni"], "avx2_vnni"),
    (["avx2"], "avx2"),
])
def test_isa_class(isa, klass):
    assert isa_class(isa) == klass


def test_cpu_line_names_model_cores_and_flags():
    info = {**parse_cpuinfo(EPYC_AVX2), "usable_cores": 2}
    assert cpu_line(info) == "AMD EPYC 7B12 | 2 usable cores | avx2: avx2"


@pytest.mark.parametrize("detector,precision", [
    (types.SimpleNamespace(runtime="openvino", _exported={(1, 1): types.SimpleNamespace(precision="bf16")}), "bf16"),
    (types.SimpleNamespace(runtime="openvino", _exported={(1, 1): types.SimpleNamespace(precision="int8"),
                                                          (2, 2): types.SimpleNamespace(precision="f32")}), "f32/int8"),
    (types.SimpleNamespace(runtime="onnx", _exported={(1, 1): object()}), "f32"),  # ONNX Runtime: float32
    (types.SimpleNamespace(runtime="torch", _exported={}, half=False), "f32"),
    (types.SimpleNamespace(runtime="torch", _exported={}, half=True), "f16"),
    (types.SimpleNamespace(runtime="openvino", _exported={}), None),  # nothing loaded yet
    # the requested setting is not what ran: the loaded model says that
    (types.SimpleNamespace(runtime="openvino", precision="auto", _exported={(1, 1): types.SimpleNamespace(precision="bf16")}), "bf16"),
])
def test_detector_precision(detector, precision):
    from video_analysis.bench.yolo_throughput import detector_precision

    assert detector_precision(detector) == precision
