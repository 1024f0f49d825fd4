"""The tracker adapter (ultralytics BoT-SORT / ByteTrack) on hand-made detections: boxes buffered
before association, ids from 1 per video, and the second association on unsure detections."""
import numpy as np
import pytest

from video_analysis.worker_config import Settings
from video_analysis.yolo_worker.tracking import Tracker, buffer_boxes

from conftest import DETECTOR

FRAME = np.zeros((360, 640, 3), np.uint8)


@pytest.mark.parametrize("box,buffer,expected", [
    ((100, 100, 200, 150), 0.0, (100, 100, 200, 150)),
    ((100, 100, 200, 150), 0.3, (70, 85, 230, 165)),
    ((0, 0, 10, 40), 0.5, (-5, -20, 15, 60)),
])
def test_buffer_boxes_grows_each_side_by_a_fraction_of_the_box(box, buffer, expected):
    dets = np.array([[*box, 0.9, 2]], np.float32)
    out = buffer_boxes(dets, buffer)
    assert out[0, :4].tolist() == pytest.approx(expected)
    assert out[0, 4:].tolist() == pytest.approx([0.9, 2])  # score and class untouched
    assert buffer_boxes(np.zeros((0, 6), np.float32), buffer).shape == (0, 6)


def _run(settings, scores, step_px=6.0):
    """One car driving right, detected with ``scores`` frame by frame (None: not detected): the ids
    output per frame."""
    tracker = Tracker(settings, FRAME.shape[:2])
    ids = []
    for i, score in enumerate(scores):
        x = 100 + step_px * i
        dets = np.array([[x, 150, x + 80, 190, score, 0]] if score else [], np.float32).reshape(-1, 6)
        out = tracker.update(dets, FRAME)
        ids.append([int(t[4]) for t in out])
    return ids


@pytest.mark.parametrize("tracker", ["botsort", "bytetrack"])
def test_unsure_detections_keep_a_running_track_alive(tracker):
    """ByteTrack's second association: detections between track_low_conf and detector_conf extend
    the track they overlap (the vehicle half hidden behind a bus), with the same id."""
    scores = [0.9, 0.9, 0.9, 0.15, 0.15, 0.15, 0.9, 0.9]
    on = _run(Settings(tracker=tracker, detector_conf=0.25, track_low_conf=0.1), scores)
    assert on[2:] == [[1]] * 6  # ids start at 1; confirmed on the 2nd frame, kept through the unsure ones
    off = _run(Settings(tracker=tracker, detector_conf=0.25, track_low_conf=0.25), scores)
    assert off[3:6] == [[], [], []] and off[6:] == [[1], [1]]  # lost meanwhile, found again by motion


@pytest.mark.parametrize("tracker", ["botsort", "bytetrack"])
def test_a_fast_small_vehicle_is_confirmed(tracker):
    """A box 80 px wide moving 65 px a processed frame (a motorcycle crossing the frame in a
    second at 12.5 fps): its buffered boxes overlap at IoU 0.33, enough for a tentative track on IoU
    alone (cost 0.67 < 0.7); fused with the score (1 - 0.33 x 0.9 = 0.71) it never was."""
    ids = _run(Settings(tracker=tracker), [None] * 2 + [0.9] * 6, step_px=65)  # it enters after frame 1
    assert ids[3:] == [[1]] * 5, ids  # (the tracker confirms any track of its very first frame at once)


def test_unsure_detections_never_start_a_track():
    assert _run(Settings(detector_conf=0.25, track_low_conf=0.1), [0.2] * 6) == [[]] * 6


def test_detector_returns_boxes_down_to_the_lower_threshold():
    from video_analysis.yolo_worker.detector import Detector

    demo_detector_path = str(DETECTOR)

    assert Detector(Settings(device="cpu", detector_path=demo_detector_path, detector_conf=0.3,
                             track_low_conf=0.1)).conf == pytest.approx(0.1)
    assert Detector(Settings(device="cpu", detector_path=demo_detector_path, detector_conf=0.3,
                             track_low_conf=0.5)).conf == pytest.approx(0.3)


# --- appearance (re-ID) ----------------------------------------------------------------------------
REID = DETECTOR.parent / "reid.onnx"


@pytest.mark.parametrize("tracker,path,use,why", [
    ("bytetrack", str(REID), False, "motion-only"),
    ("botsort", "yolo_worker/bundle/no-such-reid.onnx", False, "no re-ID weights"),
    ("botsort", "yolo_worker/bundle/demo/reid.onnx", True, "appearance from reid.onnx"),
])
def test_reid_status_says_what_the_tracker_uses(tracker, path, use, why):
    from video_analysis.yolo_worker.tracking import reid_status

    got, reason = reid_status(Settings(tracker=tracker, tracker_reid_path=path))
    assert got is use and why in reason


def test_a_tensorrt_engine_without_a_gpu_falls_back_to_motion_only(tmp_path):
    import torch

    from video_analysis.yolo_worker.tracking import reid_status

    engine = tmp_path / "deepsort.engine"
    engine.write_bytes(b"not really an engine")
    got, reason = reid_status(Settings(tracker_reid_path=str(engine)))
    if torch.cuda.is_available():
        pytest.skip("this check is for machines without CUDA")
    assert got is False and "needs a GPU" in reason


def test_unloadable_reid_weights_fall_back_to_motion_only(tmp_path):
    bad = tmp_path / "reid.onnx"
    bad.write_bytes(b"this is not an ONNX model")
    tracker = Tracker(Settings(tracker_reid_path=str(bad)), FRAME.shape[:2])
    assert tracker.appearance is False
    assert _run(Settings(tracker_reid_path=str(bad)), [0.9] * 4)[1:] == [[1]] * 3  # still tracks, by motion


def test_the_demo_reid_encoder_tells_vehicles_apart_on_unseen_scenes():
    """The committed encoder, on crops cut as BoT-SORT cuts them from scenes it never saw: the same
    vehicle half a second later passes BoT-SORT's appearance gate, another vehicle mostly not."""
    import onnxruntime as ort

    from video_analysis.synth.datasets import EVAL_SEEDS
    from video_analysis.synth.train_reid import pair_metrics, reid_crops

    crops, ids, scenes, times = reid_crops(EVAL_SEEDS[300:304])
    sess = ort.InferenceSession(str(REID), providers=["CPUExecutionProvider"])
    x = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    emb = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    m = pair_metrics(emb, ids, scenes, times)
    assert m["same_pairs"] >= 30 and m["different_pairs"] >= 100, m
    assert m["same_pass_gate"] >= 0.85 and m["different_pass_gate"] <= 0.05, m  # 0.92 and 0.002 at training


def test_botsort_with_the_demo_reid_tracks_a_generated_clip(clip_factory):
    """Appearance on: ultralytics' own ReID encoder runs the committed ONNX file inside BoT-SORT,
    and the worker's pipeline still covers the clip's vehicles."""
    from video_analysis.eval.tracking import evaluate_tracking

    settings = Settings(device="cpu", detector_path=str(DETECTOR), tracker_reid_path=str(REID))
    tracker = Tracker(settings, (360, 640))
    assert tracker.appearance is True
    clip = clip_factory(seed=500301, duration_s=8.0, vehicles_per_min=10.0, width=640, height=360, fps=12.5)
    out = evaluate_tracking(clip.video, settings, stride=1)
    assert out["coverage"]["vehicles"] >= 5 and out["coverage"]["recall_exactly_one"] >= 0.7, out["coverage"]
