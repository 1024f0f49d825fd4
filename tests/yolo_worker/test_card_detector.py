"""A detector with a detector card runs in the project's own runtime (card_detector.py): the
shipped YOLOX-Nano (COCO, Apache-2.0) through the worker's Detector in OpenVINO and ONNX Runtime
on the real MIT clip, staged as the pipeline runs it, its thread count measured and recorded like
an exported ``.pt``'s; a card that does not fit, or a runtime it cannot run in, is refused in
one line that names the fix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from video_analysis.worker_config import TAXONOMY, Settings
from video_analysis.yolo_worker import card_detector
from video_analysis.yolo_worker.detector import Detector, DetectorConfigError
from video_analysis.yolo_worker.detector_card import DetectorCardError

YOLOX = Path(__file__).resolve().parents[2] / "yolo_worker" / "bundle" / "coco" / "yolox_nano.onnx"
CLIP = Path(__file__).resolve().parents[1] / "data" / "real" / "abhishek_highway.mp4"


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """Frame 170 of the MIT clip: seven cars in view, both carriageways (looked at)."""
    cap = cv2.VideoCapture(str(CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 170)
    ok, img = cap.read()
    cap.release()
    assert ok
    return img


def settings(tmp_path, **changes) -> Settings:
    return Settings(device="cpu", detector_path=str(YOLOX), detector_cache_dir=str(tmp_path / "cache"), **changes)


@pytest.mark.parametrize("requested,path,openvino,cuda,chosen", [
    ("auto", "m.onnx", True, False, "openvino"),
    ("auto", "m.onnx", False, False, "onnx"),
    ("onnx", "m.onnx", True, False, "onnx"),
    ("openvino", "m.onnx", True, False, "openvino"),
    ("auto", "m.xml", True, False, "openvino"),
    ("onnx", "m.xml", True, False, "openvino"),  # ONNX Runtime cannot read an IR
    ("auto", "m.onnx", True, True, "onnx"),  # a GPU and onnxruntime-gpu: ONNX Runtime on CUDA
    ("openvino", "m.onnx", True, True, "openvino"),  # asked for: OpenVINO on the CPU
    ("auto", "m.xml", True, True, "openvino"),
])
def test_card_runtime(requested, path, openvino, cuda, chosen):
    assert card_detector.card_runtime(requested, Path(path), openvino, cuda) == chosen


@pytest.mark.parametrize("device,available,providers", [
    ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ("cuda:0", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),  # onnxruntime without CUDA
    ("cuda:0", ["CUDAExecutionProvider", "CPUExecutionProvider"],
     [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]),
    ("cuda:2", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
     [("CUDAExecutionProvider", {"device_id": 2}), "CPUExecutionProvider"]),
    ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"],
     [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]),
])
def test_onnx_providers(device, available, providers):
    from video_analysis.yolo_worker.detector_runtime import onnx_providers

    assert onnx_providers(device, available) == providers


def test_a_gpu_without_the_cuda_provider_runs_the_card_network_on_the_cpu_and_says_how(tmp_path, caplog):
    """device cuda:0 on a host whose onnxruntime has no CUDA provider (this one): one warning that
    names the package to install, and the detector computes on the CPU."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with caplog.at_level("WARNING"):
        det = Detector(settings(tmp_path).replace(device="cuda:0"))
    assert det.device == "cpu" and det.providers == ["CPUExecutionProvider"]
    assert any("pip install onnxruntime-gpu" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("requested,path,openvino,needle", [
    ("torch", "m.onnx", True, "set detector_runtime to auto, openvino or onnx"),
    ("auto", "m.xml", False, "openvino package is not installed"),
])
def test_card_runtime_refusals_say_what_to_set(requested, path, openvino, needle):
    with pytest.raises(ValueError, match=needle):
        card_detector.card_runtime(requested, Path(path), openvino)


@pytest.mark.parametrize("runtime", ["openvino", "onnx"])
def test_yolox_runs_in_the_projects_runtime_and_finds_the_cars(tmp_path, frame, runtime):
    det = Detector(settings(tmp_path, detector_threads=1), runtime=runtime)
    assert det.card["family"] == "yolox" and det.model is None  # never through ultralytics
    assert len(det.names) == 80 and det.names[2] == "car" and det.runtime == runtime
    boxes = det.detect(frame)
    cars = boxes[boxes[:, 5] == TAXONOMY.index("Car")]
    print(f"{runtime}: {len(boxes)} boxes, {len(cars)} cars at frame 170")
    assert len(cars) >= 5 and (boxes[:, 4] >= det.conf).all()
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 640).all() and (boxes[:, 3] <= 360).all()
    # the pipeline's staged steps give what detect gives
    stages = det.stages(640, 360)
    x = stages.pre(frame)
    assert x.shape == (1, 3, 416, 416)
    np.testing.assert_array_equal(stages.post(stages.infer(x), x, frame), boxes)


def test_openvino_and_onnx_runtime_agree(tmp_path, frame):
    a = Detector(settings(tmp_path, detector_threads=1, detector_precision="f32"), runtime="openvino").detect(frame)
    b = Detector(settings(tmp_path, detector_threads=1), runtime="onnx").detect(frame)
    assert a.shape == b.shape and len(a) >= 5
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=0.5)  # float32 both: float noise
    np.testing.assert_allclose(a[:, 4], b[:, 4], atol=0.01)


def test_the_thread_count_is_measured_once_and_recorded(tmp_path, frame):
    from video_analysis.yolo_worker.detector_runtime import usable_cores

    if usable_cores() < 2:
        pytest.skip("one usable core: one thread, nothing to measure")
    det = Detector(settings(tmp_path))
    det.prepare(640, 360)
    record = next((tmp_path / "cache").glob("yolox_nano-*-416x416-threads.json"))
    r = json.loads(record.read_text())
    assert det.threads == r["threads"] in (1, 2) and r["frame_size"] == "640x360"
    record.write_text(json.dumps({**r, "threads": 3 - r["threads"]}))
    again = Detector(settings(tmp_path))
    again.prepare(640, 360)
    assert again.threads == 3 - r["threads"]  # the record, not a new timing


def test_a_card_that_does_not_fit_the_network_is_refused_naming_the_key(tmp_path, frame):
    model = tmp_path / "yolox_nano.onnx"
    shutil.copy(YOLOX, model)
    card = json.loads(YOLOX.with_name("yolox_nano.card.json").read_text())
    card["input"]["size"] = [640, 640]  # the network takes 416x416
    model.with_name("yolox_nano.card.json").write_text(json.dumps(card))
    det = Detector(Settings(device="cpu", detector_path=str(model), detector_cache_dir=str(tmp_path / "c"),
                            detector_threads=1))
    with pytest.raises(DetectorCardError) as err:
        det.detect(frame)
    assert "input.size" in str(err.value) and "\n" not in str(err.value)


def test_a_card_with_a_typo_is_refused_when_the_detector_loads(tmp_path):
    model = tmp_path / "yolox_nano.onnx"
    shutil.copy(YOLOX, model)
    card = json.loads(YOLOX.with_name("yolox_nano.card.json").read_text())
    card["output"]["stride"] = card["output"].pop("strides")
    model.with_name("yolox_nano.card.json").write_text(json.dumps(card))
    with pytest.raises(DetectorCardError) as err:
        Detector(Settings(device="cpu", detector_path=str(model)))
    assert "stride" in str(err.value) and "\n" not in str(err.value)


def test_pytorch_cannot_run_a_card_network():
    with pytest.raises(DetectorConfigError, match="auto, openvino or onnx"):
        Detector(Settings(device="cpu", detector_path=str(YOLOX), detector_runtime="torch"))


def test_an_unwritable_cache_only_costs_the_record(tmp_path, frame, caplog):
    """A card network needs the cache for its thread record alone: where it cannot be written
    the detector still runs (measured, one warning), it does not refuse to start."""
    import logging

    from video_analysis.yolo_worker.detector_runtime import usable_cores

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    det = Detector(Settings(device="cpu", detector_path=str(YOLOX), detector_cache_dir=str(blocker / "cache")))
    with caplog.at_level(logging.WARNING, logger="video_analysis.yolo_worker"):
        assert len(det.detect(frame)) >= 5
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == (1 if usable_cores() > 1 else 0), warned
    assert all("could not record the detector thread decision" in w for w in warned)
