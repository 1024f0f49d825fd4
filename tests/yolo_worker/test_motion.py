"""Motion gating (yolo_worker/motion.py and its use in pipeline.detected / run_pipeline).

Pure tables first, then the gate inside the detect stream with a counting detector, then the
real pipeline on a generated clip where traffic stops for long at the stop line: the same
snapshots per vehicle with the gate on as off, with fewer detector runs.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from video_analysis.worker_config import Settings
from video_analysis.yolo_worker.motion import MotionGate, moved_fraction, small_grey
from video_analysis.yolo_worker.pipeline import PipelineStats, _progress, detected
from video_analysis.yolo_worker.video import Frame, VideoInfo

from conftest import DETECTOR


def _scene(h: int = 180, w: int = 320, box: tuple[int, int, int, int] | None = None, value: int = 200) -> np.ndarray:
    """A flat grey BGR frame (``h x w x 3`` uint8), with a filled rectangle ``(x, y, bw, bh)``."""
    img = np.full((h, w, 3), 90, np.uint8)
    if box is not None:
        x, y, bw, bh = box
        img[y:y + bh, x:x + bw] = value
    return img


@pytest.mark.parametrize("shape,width,expected", [
    ((360, 640, 3), 320, (180, 320)),
    ((1080, 1920, 3), 320, (180, 320)),
    ((432, 768, 3), 320, (180, 320)),
    ((100, 200, 3), 320, (100, 200)),   # already small: kept as it is
    ((360, 640), 160, (90, 160)),       # grey input
    ((3, 4000, 3), 320, (1, 320)),      # a sliver keeps at least one row
    ((2160, 3840, 3), 320, (180, 320)),  # thinned by 6 first, then averaged
    ((1080, 1920), 320, (180, 320)),     # grey and big
])
def test_small_grey_keeps_the_aspect(shape, width, expected):
    out = small_grey(np.zeros(shape, np.uint8), width)
    assert out.shape == expected and out.dtype == np.uint8


def full_area_grey(frame: np.ndarray, width: int) -> np.ndarray:
    """The reference: every pixel converted and averaged (what small_grey did before thinning)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    return cv2.resize(grey, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("shape, k", [((1080, 1920, 3), 3), ((2160, 3840, 3), 6), ((720, 1280, 3), 2),
                                      ((360, 640, 3), 1)])
def test_big_frames_are_thinned_before_the_grey_average(shape, k):
    """Every k-th pixel (k = W // 640 for a 320 px test image), then the grey area average: a
    640x360 frame is averaged whole, as before."""
    frame = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    h, w = shape[:2]
    thinned = frame if k == 1 else cv2.resize(frame, (w // k, h // k), interpolation=cv2.INTER_NEAREST)
    expected = cv2.resize(cv2.cvtColor(thinned, cv2.COLOR_BGR2GRAY), (320, round(h * 320 / w)),
                          interpolation=cv2.INTER_AREA)
    assert np.array_equal(small_grey(frame, 320), expected)


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160)])
@pytest.mark.parametrize("change, moved", [
    ("sensor noise", False),        # grain of sd 4 grey levels on both frames: nothing moved
    ("far vehicle", True),          # a vehicle of 0.1 % of the frame appears (80 x 28 px at 1080p)
    ("vehicle", True),
])
def test_thinning_big_frames_keeps_the_gates_decision(size, change, moved):
    """On big frames the thinned grey image (small_grey) decides as the fully averaged one does:
    noise stays below the threshold, a far vehicle still counts as motion."""
    w, h = size
    rng = np.random.default_rng(7)
    scene = cv2.resize(rng.integers(60, 200, (h // 40, w // 40, 3), dtype=np.uint8), (w, h),
                       interpolation=cv2.INTER_LINEAR)  # a smooth, textured street
    first = np.clip(scene + rng.normal(0, 4, scene.shape), 0, 255).astype(np.uint8)
    second = np.clip(scene + rng.normal(0, 4, scene.shape), 0, 255).astype(np.uint8)
    if change != "sensor noise":
        vw, vh = (w * 80 // 1920, h * 28 // 1080) if change == "far vehicle" else (w // 8, h // 10)
        second[h // 2:h // 2 + vh, w // 3:w // 3 + vw] = (20, 20, 230)
    gate = MotionGate()
    thinned = moved_fraction(small_grey(first, 320), small_grey(second, 320), gate.pixel_threshold)
    reference = moved_fraction(full_area_grey(first, 320), full_area_grey(second, 320), gate.pixel_threshold)
    assert (thinned > gate.min_area) == (reference > gate.min_area) == moved, (thinned, reference)


@pytest.mark.parametrize("delta,threshold,pixels,expected", [
    (0, 15, 100, 0.0),
    (15, 15, 100, 0.0),      # "more than" the threshold
    (16, 15, 100, 0.01),
    (16, 15, 10000, 1.0),
    (100, 15, 1, 0.0001),
    (-40, 15, 50, 0.005),    # darker counts the same as brighter
])
def test_moved_fraction_counts_pixels_over_the_threshold(delta, threshold, pixels, expected):
    a = np.full((100, 100), 100, np.uint8)
    b = a.copy()
    b.reshape(-1)[:pixels] = 100 + delta
    assert moved_fraction(a, b, threshold) == pytest.approx(expected)


def test_moved_fraction_refuses_images_of_different_shapes():
    with pytest.raises(ValueError, match="shape"):
        moved_fraction(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), 15)


def _decisions(gate: MotionGate, frames: list[np.ndarray]) -> list[bool]:
    return [gate.should_detect(f) for f in frames]


@pytest.mark.parametrize("frames,kw,expected", [
    # the first frame is always detected; a still picture is carried from then on
    ([_scene()] * 4, {}, [True, False, False, False]),
    # a vehicle (20x10 px at 320 wide) enters: detected; it stands still: carried
    ([_scene(), _scene(box=(100, 80, 20, 10)), _scene(box=(100, 80, 20, 10))], {}, [True, True, False]),
    # one pixel creeping each frame: against the last *detected* frame the motion adds up
    ([_scene(box=(100 + i, 80, 20, 10)) for i in range(6)], {"min_area": 0.0005}, [True, False, True, False, True, False]),
    # small brightness flicker under the pixel threshold: carried
    ([_scene(), _scene() + 10, _scene() + 5], {}, [True, False, False]),
    # max_carry: a detection anyway after 2 carried frames in a row
    ([_scene()] * 7, {"max_carry": 2}, [True, False, False, True, False, False, True]),
    # max_carry 0: no limit
    ([_scene()] * 5, {"max_carry": 0}, [True, False, False, False, False]),
    # a new video size: detected
    ([_scene(), _scene(h=90, w=160)], {}, [True, True]),
    # min_area 0: any single changed pixel counts
    ([_scene(), _scene(box=(10, 10, 2, 2))], {"min_area": 0.0}, [True, True]),
])
def test_the_gate_detects_when_the_picture_changed_since_the_last_detection(frames, kw, expected):
    gate = MotionGate(**kw)
    assert _decisions(gate, frames) == expected
    assert (gate.detected, gate.carried) == (sum(expected), len(expected) - sum(expected))


def test_the_gate_follows_the_settings_and_is_on_by_default():
    assert Settings().motion_gating is True
    assert MotionGate.from_settings(Settings(motion_gating=False)) is None
    gate = MotionGate.from_settings(Settings(motion_width=160, motion_pixel_threshold=9, motion_min_area=0.01,
                                             motion_max_carry=7))
    assert (gate.width, gate.pixel_threshold, gate.min_area, gate.max_carry) == (160, 9, 0.01, 7)


class _Counting:
    """A detector whose one box encodes the frame it was computed on (pixel [0, 0, 0])."""

    def __init__(self):
        self.seen: list[int] = []

    def detect(self, frame):
        self.seen.append(int(frame[0, 0, 0]))
        return np.array([[frame[0, 0, 0], 0, 1, 1, 0.9, 0]], np.float32)

    def detect_batch(self, frames):
        return [self.detect(f) for f in frames]


def _tagged(img: np.ndarray, tag: int) -> np.ndarray:
    out = img.copy()
    out[0, 0] = tag  # one pixel: far under min_area, so the tag itself never counts as motion
    return out


class _StagedCounting(_Counting):
    """The same, as an exported runtime's three steps (the network alone on the detector thread)."""

    def stages(self, width, height):
        from video_analysis.yolo_worker.detector import DetectorStages

        return DetectorStages(pre=lambda frame: frame, infer=lambda x: self.detect(x), post=lambda raw, x, frame: raw)


@pytest.mark.parametrize("batch,ahead,staged", [(1, True, False), (1, False, False), (3, True, False),
                                                (1, True, True), (1, False, True)])
def test_still_frames_get_the_last_detections_again(batch, ahead, staged):
    """Frames 0-2 still, a vehicle appears in 3 and stands there in 4-5, moves on in 6: the
    detector runs on 0, 3 and 6; the others get a copy of the last detected frame's boxes."""
    pictures = [_scene()] * 3 + [_scene(box=(100, 80, 30, 15))] * 3 + [_scene(box=(140, 80, 30, 15))]
    frames = [Frame(i, 40 * i, _tagged(p, i)) for i, p in enumerate(pictures)]
    det, gate = (_StagedCounting() if staged else _Counting()), MotionGate()
    out = list(detected(iter(frames), det, batch, ahead=ahead, gate=gate))
    assert [f.index for f, _ in out] == list(range(7))
    assert det.seen == [0, 3, 6]
    assert [int(d[0, 0]) for _, d in out] == [0, 0, 0, 3, 3, 3, 6]
    assert (gate.detected, gate.carried) == (3, 4)
    assert out[1][1] is not out[0][1]  # a copy: the tracker may keep or change what it is given


def test_progress_figures_report_detected_and_carried_frames():
    stats = PipelineStats(frames_processed=100, frames_detected=40, frames_carried=60)
    p = _progress(stats, 300, VideoInfo(640, 360, 25.0, 600), 3, 10.0)
    assert (p["frames_detected"], p["frames_carried"]) == (40, 60)


def test_a_long_stop_at_the_stop_line_gives_the_same_snapshots_with_fewer_detections(clip_factory, demo_detector):
    """Real detector and tracker on a clip where most vehicles stop for long at the stop line and
    traffic is light: with the gate, fewer frames are detected and every countable vehicle gets
    the same snapshots as without it (none twice for standing still)."""
    from video_analysis.eval.metrics import snapshot_coverage
    from video_analysis.eval.tracking import countable_vehicles
    from video_analysis.synth.clip import load_ground_truth
    from video_analysis.yolo_worker.pipeline import run_pipeline
    from video_analysis.yolo_worker.tracking import Tracker
    from video_analysis.yolo_worker.video import probe

    clip = clip_factory(seed=500204, duration_s=20.0, vehicles_per_min=4.0, width=640, height=360, fps=12.5,
                        stop_probability=0.7)
    info, gt = probe(clip.video), load_ground_truth(clip.video)
    runs = {}
    for gating in (False, True):
        s = Settings(device="cpu", detector_path=str(DETECTOR), motion_gating=gating)
        finished, hyp = [], {}
        stats = run_pipeline(clip.video, info, 1, s, demo_detector, Tracker(s, (info.height, info.width)),
                             finished.append, on_tracks=lambda i, rows: hyp.setdefault(i, rows))
        vehicles = countable_vehicles(gt, sorted(hyp))
        cov = snapshot_coverage(gt.per_frame(0.0), [(ft.best.frame_index, ft.best.box) for ft in finished], vehicles)
        runs[gating] = (stats, cov)
    (off, cov_off), (on, cov_on) = runs[False], runs[True]
    print(f"\n[motion] off {cov_off} | on {cov_on}; detected {on.frames_detected}, carried {on.frames_carried}")
    assert off.frames_detected == off.frames_processed and off.frames_carried == 0
    assert on.frames_processed == off.frames_processed
    assert on.frames_detected + on.frames_carried == on.frames_processed
    assert on.frames_carried >= 0.2 * on.frames_processed  # most of this clip is still
    assert cov_on["vehicles"] >= 4
    assert cov_on["exactly_one"] >= cov_off["exactly_one"]
    assert cov_on["more_than_one"] <= cov_off["more_than_one"]
    assert cov_on["unmatched_snapshots"] <= cov_off["unmatched_snapshots"]
