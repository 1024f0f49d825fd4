import cv2
import numpy as np
import pytest

from video_analysis.main_worker.color import estimate_fbl, fbl_from_heads
from video_analysis.main_worker.plate import PlateReader, best_plate, normalised_blob, plate_runtime
from video_analysis.worker_utils.runtimes import kernel_cap_hides_bf16
from video_analysis.worker_utils.imaging import letterbox
from video_analysis.worker_utils.vocab import COLOR_BASES, COLOR_BGR, is_valid_plate, normalize_plate


@pytest.mark.parametrize("raw,norm,valid", [
    ("ABC 1234", "ABC 1234", True), ("abc1234", "ABC 1234", True), ("ABC-123", "ABC 123", True),
    ("123 ABC", "123 ABC", True), ("AB 12345", "AB 12345", True), ("A1B2", "A1B2", False),
    ("ABCD 1234", "ABCD 1234", False), ("", "", False),
])
def test_plate_rules(raw, norm, valid):
    assert normalize_plate(raw) == norm and is_valid_plate(norm) is valid


def test_best_plate_joins_split_lines_and_ignores_junk():
    lines = [([[10, 10], [60, 10], [60, 40], [10, 40]], "NAB", 0.95),
             ([[70, 12], [140, 12], [140, 40], [70, 40]], "4521", 0.9),
             ([[10, 100], [200, 100], [200, 130], [10, 130]], "TOYOTA", 0.99)]
    assert best_plate(lines) == ("NAB 4521", 0.9)
    assert best_plate([]) == (None, None)


UNDER_CAP = ("under a oneDNN kernel cap (ONEDNN_MAX_CPU_ISA=AVX2) OpenVINO's OCR recogniser segfaults on this "
             "AVX-512 CPU; plate_runtime auto runs ONNX Runtime there (main_worker/plate.py)")
openvino_ocr = pytest.mark.skipif(kernel_cap_hides_bf16(), reason=UNDER_CAP)


def _rendered_plate(text="NDA 4821", y=400):
    img = np.full((640, 640, 3), 90, np.uint8)
    cv2.rectangle(img, (170, y), (470, y + 70), (255, 255, 255), -1)
    cv2.putText(img, text, (185, y + 52), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 4)
    return img


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_ocr_reads_a_rendered_plate(runtime):
    if runtime == "openvino" and kernel_cap_hides_bf16():
        pytest.skip(UNDER_CAP)
    reader = PlateReader(runtime=runtime)
    text, conf = reader.read(_rendered_plate())
    assert reader.runtime == runtime  # OpenVINO is a requirement: it must not have fallen back
    assert text == "NDA 4821" and 0.5 < conf <= 1.0


@openvino_ocr
def test_openvino_reads_a_batch_like_onnxruntime():
    """The batched detector runs (several in flight) give what ONNX Runtime gives, image by image."""
    imgs = [_rendered_plate("NDA 4821", 400), np.full((640, 640, 3), 90, np.uint8), _rendered_plate("ABC 1234", 150),
            _rendered_plate("123 XYZ", 300)]
    ov = PlateReader(runtime="openvino").read_batch(imgs)
    ort = PlateReader(runtime="onnxruntime").read_batch(imgs)
    assert [p for p, _ in ov] == [p for p, _ in ort] == ["NDA 4821", None, "ABC 1234", "123 XYZ"]
    assert all(a is None or abs(a - b) < 0.05 for (_, a), (_, b) in zip(ov, ort))


def _reference_blob(x, mean, std):
    """RapidOCR's own detector normalisation, written out: (x / 255 - mean) / std, channels first."""
    return ((x.astype(np.float64) / 255.0 - np.array(mean)) / np.array(std)).transpose(2, 0, 1)[None]


@pytest.mark.parametrize("mean,std", [
    ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),              # RapidOCR's: one OpenCV pass
    ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),  # per-channel std: the numpy path
])
def test_normalised_blob_is_rapidocrs_normalisation(mean, std):
    x = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    blob = normalised_blob(x, mean, std)
    assert blob.shape == (1, 3, 64, 96) and blob.dtype == np.float32
    np.testing.assert_allclose(blob, _reference_blob(x, mean, std), atol=1e-5)


@openvino_ocr
def test_openvino_detector_with_compiled_normalisation_matches_the_float_model():
    """The detector taking uint8 NHWC (normalisation compiled in) gives the probability map the
    ONNX model gives on RapidOCR's own float input; both in float32 so the comparison is tight."""
    import openvino as ov

    from video_analysis.main_worker.plate import _with_uint8_input, rapidocr_model_paths

    det_path = rapidocr_model_paths()[0]
    core, f32 = ov.Core(), {"INFERENCE_PRECISION_HINT": "f32"}
    mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    x = cv2.resize(_rendered_plate(), (320, 320))
    plain = core.compile_model(core.read_model(det_path), "CPU", f32)
    fused = core.compile_model(_with_uint8_input(core.read_model(det_path), mean, std), "CPU", f32)
    want = plain({0: _reference_blob(x, mean, std).astype(np.float32)})[0]
    got = fused({0: x[None]})[0]
    assert got.shape == want.shape == (1, 1, 320, 320)
    assert want.max() > 0.9  # the plate's text is there to be found
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_plate_runtime_falls_back_to_onnxruntime_with_a_warning(monkeypatch, caplog):
    import video_analysis.main_worker.plate as plate

    def broken(*_a, **_k):
        raise RuntimeError("no CPU plugin here")

    monkeypatch.setattr(plate, "OpenVinoOcr", broken)
    reader = PlateReader(runtime="openvino")
    with caplog.at_level("WARNING", logger=plate.__name__):
        text, _conf = reader.read(_rendered_plate())
    assert reader.runtime == "onnxruntime" and text == "NDA 4821"
    assert "openvino unavailable" in caplog.text and "no CPU plugin here" in caplog.text


def test_plate_runtime_auto_prefers_openvino(monkeypatch):
    import video_analysis.main_worker.plate as plate

    assert plate_runtime("onnxruntime") == "onnxruntime"
    monkeypatch.setattr(plate, "kernel_cap_hides_bf16", lambda: False)
    assert plate_runtime("auto") == "openvino"  # in requirements.txt
    monkeypatch.setattr(plate, "kernel_cap_hides_bf16", lambda: True)  # an AVX2 CPU emulated by ONEDNN_MAX_CPU_ISA
    assert plate_runtime("auto") == "onnxruntime" and plate_runtime("openvino") == "openvino"


@pytest.mark.parametrize("base", ["Red", "Blue", "White", "Black", "Yellow", "Green"])
def test_classical_colour_on_a_flat_body(base):
    body = np.zeros((200, 400, 3), np.uint8)
    body[:] = COLOR_BGR[base]
    cv2.rectangle(body, (0, 150), (400, 200), (60, 60, 60), -1)  # tyres / road strip
    snap, _ = letterbox(body, 640)
    fbl = estimate_fbl(snap)
    assert 1 <= len(fbl) <= 3 and fbl[0]["base"] == base and fbl[0]["conf"] > 0.5
    assert set(fbl[0]) == {"finish", "base", "lightness", "conf"}


def test_fbl_from_heads():
    pb = np.zeros(len(COLOR_BASES)); pb[COLOR_BASES.index("Silver")] = 0.7; pb[COLOR_BASES.index("Gray")] = 0.3
    fbl = fbl_from_heads(pb, np.array([0.1, 0.1, 0.8]), np.array([0.9, 0.1]), [None, "Matte", "Metallic"], [None, "Light"])
    assert fbl == [{"finish": "Metallic", "base": "Silver", "lightness": None, "conf": 0.7},
                   {"finish": None, "base": "Gray", "lightness": None, "conf": 0.3}]
