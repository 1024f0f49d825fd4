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
