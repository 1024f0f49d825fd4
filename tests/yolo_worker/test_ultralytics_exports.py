"""A team's ultralytics export (ONNX file or OpenVINO directory) runs in the project's own runtime
without a card (issue 24): its metadata gives the card (card_detector.ultralytics_export), and the
detector runs it in OpenVINO, staged and motion-gated like an exported ``.pt``, giving what
ultralytics' own loading of the same file gives.  ``detector_runtime=torch`` keeps it in
ultralytics' loader."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import DETECTOR
from video_analysis.eval.metrics import iou_matrix
from video_analysis.worker_config import Settings
from video_analysis.yolo_worker import card_detector


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """The demo detector exported by ultralytics itself at 320 px, as a team would hand it over."""
    from video_analysis.worker_utils.offline import ultralytics_offline

    ultralytics_offline()
    from ultralytics import YOLO

    d = tmp_path_factory.mktemp("exports")
    pt = shutil.copy(DETECTOR, d / "team.pt")
    return {"onnx": Path(YOLO(str(pt)).export(format="onnx", imgsz=320, simplify=False, verbose=False)),
            "openvino": Path(YOLO(str(pt)).export(format="openvino", imgsz=320, verbose=False))}


@pytest.fixture(scope="module")
def frames(clip_factory) -> list[np.ndarray]:
    from video_analysis.yolo_worker.video import FrameReader

    clip = clip_factory(width=640, height=360, fps=12.5, duration_s=4.0, seed=733101, vehicles_per_min=40.0)
    return [f.image for f in FrameReader(clip.video, 4)]


@pytest.mark.parametrize("form", ["onnx", "openvino"])
def test_the_export_carries_its_card(exports, form):
    network, card = card_detector.ultralytics_export(exports[form])
    assert network.suffix == (".onnx" if form == "onnx" else ".xml")
    assert card["family"] == "ultralytics" and card["input"]["size"] == [320, 320]
    assert card["labels"][:2] == ["Car", "SUV"] and len(card["labels"]) == 8
    from video_analysis.yolo_worker.detector_card import card_problems

    assert card_problems(card) == []


def test_files_that_are_not_ultralytics_detection_exports_carry_none(tmp_path):
    assert card_detector.ultralytics_export(DETECTOR) is None  # a .pt: exported by detector_runtime instead
    (tmp_path / "x.onnx").write_bytes(b"not onnx")
    assert card_detector.ultralytics_export(tmp_path / "x.onnx") is None
    assert card_detector.ultralytics_export(tmp_path) is None


@pytest.mark.parametrize("form", ["onnx", "openvino"])
def test_an_export_runs_in_the_projects_runtime_and_gives_what_ultralytics_gives(exports, frames, form, tmp_path):
    from video_analysis.worker_utils.runtimes import kernel_cap_hides_bf16
    from video_analysis.yolo_worker.detector import Detector

    s = Settings(device="cpu", detector_path=str(exports[form]), detector_cache_dir=str(tmp_path),
                 detector_threads=1, detector_precision="f32")
    ours = Detector(s)
    assert ours.runtime == "openvino" and ours.card["family"] == "ultralytics" and ours.card_file is None
    if form == "openvino" and kernel_cap_hides_bf16():
        pytest.skip("ultralytics compiles an OpenVINO directory at bfloat16, which has no kernels under the cap")
    theirs = Detector(s, runtime="torch")  # ultralytics' own loading of the same file
    assert theirs.runtime == "native"
    total = matched = 0
    for img in frames:
        a, b = ours.detect(img), theirs.detect(img)
        stages = ours.stages(img.shape[1], img.shape[0])
        x = stages.pre(img)
        np.testing.assert_array_equal(stages.post(stages.infer(x), x, img), a)  # staged = detect
        total += len(b)
        if len(a) and len(b):
            iou = iou_matrix(a[:, :4], b[:, :4])
            matched += int((iou.max(0) >= 0.9).sum())
    print(f"{form}: {total} boxes from ultralytics, {matched} matched by the project's runtime")
    assert total >= 20 and matched >= 0.95 * total
