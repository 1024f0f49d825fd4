"""The detector's exported CPU runtime (ONNX Runtime): pure helpers as tables, then the real
export of the demo detector on a generated clip, checked against PyTorch on the same frames."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from conftest import DETECTOR
from video_analysis.eval.metrics import iou_matrix
from video_analysis.worker_config import TAXONOMY, Settings
from video_analysis.yolo_worker import detector_runtime as rt

CLIP = dict(width=640, height=360, fps=12.5, duration_s=6.0, seed=733101, vehicles_per_min=40.0)


# --- pure helpers ------------------------------------------------------------------------------
@pytest.mark.parametrize("width,height,imgsz,size", [
    (640, 360, 320, (192, 320)),    # the brief's example: 16:9 at the demo detector's size
    (768, 432, 320, (192, 320)),
    (1920, 1080, 640, (384, 640)),
    (1280, 720, 640, (384, 640)),
    (640, 480, 320, (256, 320)),    # 4:3
    (360, 640, 320, (320, 192)),    # portrait
    (320, 320, 320, (320, 320)),
    (100, 60, 320, (192, 320)),     # small frames are scaled up, as ultralytics does
    (640, 360, 300, (192, 320)),    # imgsz rounded up to the stride first
    (2000, 200, 640, (64, 640)),
])
def test_input_size_is_the_videos_rectangle_padded_to_the_stride(width, height, imgsz, size):
    assert rt.input_size(width, height, imgsz) == size
    h, w = size
    assert h % 32 == 0 and w % 32 == 0


def test_input_size_matches_what_ultralytics_letterbox_gives_a_pt_model():
    from video_analysis.worker_utils.offline import ultralytics_offline

    ultralytics_offline()
    from ultralytics.data.augment import LetterBox

    for w, h, imgsz in [(640, 360, 320), (1280, 720, 640), (360, 640, 320), (1000, 333, 416)]:
        out = LetterBox((imgsz, imgsz), auto=True, stride=32)(image=np.zeros((h, w, 3), np.uint8))
        assert out.shape[:2] == rt.input_size(w, h, imgsz)


def test_cache_key_changes_with_the_weights_bytes_and_the_size(tmp_path):
    a, b, a2 = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "copy.pt"
    a.write_bytes(b"weights-1")
    b.write_bytes(b"weights-2")
    a2.write_bytes(b"weights-1")
    da, db = rt.weights_digest(a), rt.weights_digest(b)
    assert len(da) == 12 and da != db and rt.weights_digest(a2) == da
    names = {rt.cache_name("detector", d, s) for d in (da, db) for s in ((192, 320), (320, 192), (384, 640))}
    assert len(names) == 6
    assert rt.cache_name("detector", da, (192, 320)) == f"detector-{da}-192x320.onnx"


@pytest.mark.parametrize("requested,weights,device,chosen", [
    ("auto", "d.pt", "cpu", "onnx"),
    ("auto", "d.pt", "cuda:0", "torch"),
    ("torch", "d.pt", "cpu", "torch"),
    ("onnx", "d.pt", "cpu", "onnx"),
    ("auto", "d.onnx", "cpu", "native"),
    ("onnx", "d.engine", "cuda:0", "native"),
    ("torch", "d_openvino_model", "cpu", "native"),
])
def test_runtime_choice(requested, weights, device, chosen):
    assert rt.choose_runtime(requested, weights, device) == chosen


# --- the real export ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("detector-cache")


@pytest.fixture(scope="module")
def pair(cache_dir):
    """(PyTorch, ONNX Runtime) detectors over the demo weights."""
    from video_analysis.yolo_worker.detector import Detector

    s = Settings(device="cpu", detector_path=str(DETECTOR), detector_cache_dir=str(cache_dir))
    return Detector(s, runtime="torch"), Detector(s)


@pytest.fixture(scope="module")
def clip_frames(clip_factory):
    from video_analysis.synth.clip import load_ground_truth
    from video_analysis.yolo_worker.video import FrameReader

    clip = clip_factory(**CLIP)
    frames = [(f.index, f.image) for f in FrameReader(clip.video, 2)]
    return frames, load_ground_truth(clip.video)


def _match(a: np.ndarray, b: np.ndarray, min_iou: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of boxes by IoU, best pairs first."""
    ious = iou_matrix(a[:, :4], b[:, :4])
    pairs = []
    while ious.size and ious.max() >= min_iou:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        pairs.append((int(i), int(j), float(ious[i, j])))
        ious[i, :] = -1
        ious[:, j] = -1
    return pairs


def _map50(dets: list[np.ndarray], gts: list[list[tuple[tuple, int]]]) -> float:
    """mAP@0.5 over the frames, through ultralytics' ``ap_per_class`` (the validator's own)."""
    from ultralytics.utils.metrics import ap_per_class

    tp, conf, pred_cls, target_cls = [], [], [], []
    for d, g in zip(dets, gts):
        target_cls += [c for _, c in g]
        matched = np.zeros(len(d), bool)
        if len(d) and g:
            ious = iou_matrix(d[:, :4], np.array([b for b, _ in g]))
            same = d[:, 5:6].astype(int) == np.array([c for _, c in g])[None, :]
            ious = np.where(same, ious, 0.0)
            for i in np.argsort(-d[:, 4]):  # highest confidence claims its ground truth first
                j = int(np.argmax(ious[i]))
                if ious[i, j] >= 0.5:
                    matched[i] = True
                    ious[:, j] = 0.0
        tp.append(matched)
        conf.append(d[:, 4])
        pred_cls.append(d[:, 5])
    out = ap_per_class(np.concatenate(tp)[:, None], np.concatenate(conf), np.concatenate(pred_cls),
                       np.array(target_cls))
    return float(out[5][:, 0].mean())


def test_exported_runtime_matches_pytorch_on_a_generated_clip(pair, clip_frames, cache_dir):
    torch_det, onnx_det = pair
    frames, gt = clip_frames
    a = [torch_det.detect(img) for _, img in frames]
    b = [onnx_det.detect(img) for _, img in frames]
    assert onnx_det.runtime == "onnx" and torch_det.runtime == "torch"
    assert list(onnx_det._exported) == [(192, 320)]  # the video's rectangle, not 320x320
    assert [p.name for p in cache_dir.glob("*.onnx")] == [
        f"detector-{rt.weights_digest(DETECTOR)}-192x320.onnx"]

    total = sum(len(x) for x in a)
    matched, worst = 0, 1.0
    for x, y in zip(a, b):
        assert x.shape[1] == y.shape[1] == 6
        pairs = _match(x, y)
        matched += len(pairs)
        for i, j, iou in pairs:
            worst = min(worst, iou)
            assert x[i, 5] == y[j, 5], "same box, other class"
            assert abs(x[i, 4] - y[j, 4]) < 0.02
    print(f"{len(frames)} frames, {total} boxes, {matched} matched, worst IoU {worst:.4f}")
    assert total >= 40, "the clip should give the detector something to find"
    assert worst >= 0.9
    assert matched >= 0.98 * total and abs(total - sum(len(y) for y in b)) <= 0.02 * total

    gts = [[(box, TAXONOMY.index(gt.vehicles[vid]["type"])) for vid, box, vis in gt.boxes.get(i, []) if vis >= 0.3]
           for i, _ in frames]
    map_torch, map_onnx = _map50(a, gts), _map50(b, gts)
    assert map_torch > 0.3, map_torch  # a detector that finds the vehicles, so the comparison means something
    print(f"map50 torch {map_torch:.4f} onnx {map_onnx:.4f}")
    assert abs(map_torch - map_onnx) <= 0.01, (map_torch, map_onnx)


def test_the_export_is_cached_and_a_damaged_cache_file_is_replaced(pair, cache_dir, caplog):
    from video_analysis.yolo_worker.detector import Detector

    target = next(cache_dir.glob("*-192x320.onnx"))
    s = Settings(device="cpu", detector_path=str(DETECTOR), detector_cache_dir=str(cache_dir))
    frame = np.full((360, 640, 3), 114, np.uint8)
    with caplog.at_level(logging.INFO, logger="video_analysis.yolo_worker"):
        again = Detector(s)
        again.prepare(640, 360)
        assert not [r for r in caplog.records if r.getMessage() == "detector exported"]  # reused, not re-exported
        target.write_bytes(b"not an onnx model")
        damaged = Detector(s)
        damaged.prepare(640, 360)
    assert damaged.runtime == "onnx" and target.stat().st_size > 1_000_000
    assert [r.getMessage() for r in caplog.records].count("detector exported") == 1
    assert not list(cache_dir.glob(".export-*"))  # no temp dirs left behind
    assert damaged.detect(frame).shape[1] == 6


def test_a_failed_export_falls_back_to_pytorch_with_one_warning(tmp_path, pair, caplog):
    from video_analysis.yolo_worker.detector import Detector

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")  # unwritable even for root
    s = Settings(device="cpu", detector_path=str(DETECTOR), detector_cache_dir=str(blocker / "cache"))
    frame = np.zeros((360, 640, 3), np.uint8)
    with caplog.at_level(logging.WARNING, logger="video_analysis.yolo_worker"):
        det = Detector(s)
        assert det.runtime == "onnx"
        out = [det.detect(frame) for _ in range(3)]
        det.prepare(1280, 720)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    msg = warnings[0].getMessage()
    assert "running PyTorch" in msg and "not writable" in msg and str(blocker) in msg
    assert det.runtime == "torch" and all(o.shape[1] == 6 for o in out)


def test_the_pipeline_prepares_the_detector_for_the_videos_size(clip_factory):
    from video_analysis.yolo_worker.pipeline import run_pipeline
    from video_analysis.yolo_worker.video import probe

    clip = clip_factory(**CLIP)
    seen = []

    class Fake:
        def prepare(self, width, height):
            seen.append(("prepare", width, height))

        def detect(self, frame):
            seen.append(("detect",) + frame.shape[1::-1])
            return np.zeros((0, 6), np.float32)

    class NoTracks:
        def update(self, dets, frame):
            return np.zeros((0, 8))

    run_pipeline(clip.video, probe(clip.video), 25, Settings(device="cpu"), Fake(), NoTracks(), emit=lambda ft: None)
    assert seen[0] == ("prepare", 640, 360) and seen[1] == ("detect", 640, 360) and len(seen) == 1 + 3
