"""The pipeline's background emitter: order, error hand-over, abort, log context (pure threads,
no I/O); and that a slow ``emit`` (S3/SQS/DB latency) no longer holds up detection."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from video_analysis.worker_utils.errors import PermanentError, TransientError
from video_analysis.worker_utils.logs import _CONTEXT, log_context
from video_analysis.yolo_worker.pipeline import Emitter


def test_tracks_are_emitted_in_order_then_counted():
    emitted, counted = [], []
    e = Emitter(emitted.append, counted.append, maxsize=2)  # a small queue: put() blocks, never drops
    for i in range(20):
        e.put(i)
    e.close()
    assert emitted == list(range(20)) and counted == list(range(20))


@pytest.mark.parametrize("error", [TransientError("S3 put: endpoint unreachable; will retry"),
                                   PermanentError("refused")])
def test_the_first_emit_error_reaches_the_caller_with_its_type_and_later_tracks_are_skipped(error):
    emitted = []
    failed = threading.Event()

    def emit(i):
        if i == 3:
            failed.set()
            raise error
        emitted.append(i)

    e = Emitter(emit, lambda _i: None)
    for i in range(5):
        e.put(i)
    assert failed.wait(5)
    deadline = time.monotonic() + 5
    with pytest.raises(type(error)) as got:  # put() raises once the emitter has failed ...
        while time.monotonic() < deadline:
            e.put(99)
            time.sleep(0.01)
    assert got.value is error
    with pytest.raises(type(error)):  # ... and so does close()
        e.close()
    assert emitted == [0, 1, 2]  # nothing after the failure, not even the queued 4 and 99s


def test_abort_skips_what_is_queued_and_lets_the_one_in_flight_finish():
    started, release, emitted = threading.Event(), threading.Event(), []

    def emit(i):
        if i == 0:
            started.set()
            release.wait(5)
        emitted.append(i)

    e = Emitter(emit, lambda _i: None)
    for i in range(4):
        e.put(i)
    assert started.wait(5)
    threading.Timer(0.2, release.set).start()
    e.abort()  # waits for track 0, skips 1-3
    assert emitted == [0]


def test_the_emitter_thread_logs_with_the_callers_context():
    seen = []
    with log_context(message_id="m-1", video_id="v-1"):
        e = Emitter(lambda _i: seen.append(dict(_CONTEXT.get())), lambda _i: None)
    e.put(1)
    e.close()
    assert seen == [{"message_id": "m-1", "video_id": "v-1"}]


def test_a_slow_emit_does_not_hold_up_the_frame_loop(clip_factory):
    """An emit that takes 30 ms (I/O latency against AWS) runs while the loop goes on detecting:
    most detections happen while an emit is in flight (with emit on the loop's own thread, none
    could), and no snapshot is lost."""
    from video_analysis.worker_config import Settings
    from video_analysis.yolo_worker.pipeline import run_pipeline
    from video_analysis.yolo_worker.video import probe

    clip = clip_factory(width=320, height=180, fps=25.0, duration_s=4.0, seed=733102, vehicles_per_min=30.0)
    info = probe(clip.video)
    in_flight = threading.Event()
    overlapped = []
    n = 0

    class OneBoxPerFrame:  # (alternating between two lanes: never a fragment of the last track to stitch)
        def detect(self, frame):
            overlapped.append(in_flight.is_set())
            time.sleep(0.005)
            y = 10 + 60 * (len(overlapped) % 2)
            return np.array([[10, y, 60, y + 50, 0.9, 0]], np.float32)

    class NewIdEachFrame:  # a new track every frame, ending at once: one snapshot per frame
        def update(self, dets, frame):
            nonlocal n
            n += 1
            return np.array([[*dets[0, :4], n, 0.9, 0, 0]], np.float32)

    emitted = []

    def emit(ft):
        in_flight.set()
        time.sleep(0.03)
        emitted.append(ft.track_id)
        in_flight.clear()

    s = Settings(device="cpu", min_track_hits=1, track_max_age=1, progress_interval_s=1e9)
    stats = run_pipeline(clip.video, info, 1, s, OneBoxPerFrame(), NewIdEachFrame(), emit)
    assert stats.tracks_emitted == info.frame_count and emitted == sorted(emitted)  # in order, none lost
    assert sum(overlapped) >= 0.5 * len(overlapped), sum(overlapped)
    assert stats.first_emit_s is not None and stats.first_emit_s < stats.wall_s


@pytest.mark.parametrize("device, requested", [("cpu", 1), ("cuda:0", 0), ("cuda:1", 0), ("mps", 1)])
def test_the_decoder_runs_one_thread_beside_a_cpu_detector(clip_factory, monkeypatch, device, requested):
    """decode_threads unset: one FFmpeg thread where the detector computes on the CPU (the cores
    are the limit), OpenCV's choice (0: the usable cores) beside a GPU; the video's stats say how
    many threads decoded."""
    from video_analysis.worker_config import Settings
    from video_analysis.yolo_worker import pipeline
    from video_analysis.yolo_worker.pipeline import run_pipeline
    from video_analysis.yolo_worker.video import FrameReader, probe

    clip = clip_factory(width=320, height=180, fps=25.0, duration_s=1.0, seed=733103, vehicles_per_min=30.0)
    asked = []

    class Recording(FrameReader):
        def __init__(self, *args, threads: int = 0, **kw):
            asked.append(threads)
            super().__init__(*args, threads=threads, **kw)

    monkeypatch.setattr(pipeline, "FrameReader", Recording)

    class Nothing:
        def __init__(self):
            self.device = device

        def detect(self, frame):
            return np.zeros((0, 6), np.float32)

    class NoTracks:
        def update(self, dets, frame):
            return np.zeros((0, 8), np.float32)

    s = Settings(device="cpu", progress_interval_s=1e9)
    stats = run_pipeline(clip.video, probe(clip.video), 1, s, Nothing(), NoTracks(), emit=lambda ft: None)
    assert stats.frames_processed == 25 and asked == [requested]
    assert stats.decode_threads == 1 if requested == 1 else stats.decode_threads >= 1
    forced = run_pipeline(clip.video, probe(clip.video), 1, s.model_copy(update={"decode_threads": 2}), Nothing(),
                          NoTracks(), emit=lambda ft: None)
    assert asked[-1] == 2 and forced.decode_threads == 2
