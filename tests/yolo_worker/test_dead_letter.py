"""One terminal-state rule, in the poller: whatever sends a video task to the DLQ (a permanent
error, the last receive of a transient or an unexpected failure, a stalled handler, an
inference error), the ``videos`` row is ``error`` with exactly the DLQ's reason.

The real YoloWorker served by its real poller (``YoloWorker.poller()``, what run_poller
serves) on the local stack; the faults are made by wrapping the detector or one step of the
worker, as a broken model or a bug would fail."""
from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from helpers import new_uuid, poll_until
from video_analysis.worker_utils.errors import TransientError

from yolo_harness import make_recording_worker

CLIP = dict(width=320, height=180, fps=10.0, duration_s=3.0, seed=12)


class FaultyDetector:
    """The real detector, except that its network (``detect``, or the staged ``infer``) fails the
    way ``mode`` says."""

    def __init__(self, real: Any, mode: str):
        self.real, self.mode = real, mode
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:  # prepare(), names ... of the real one
        return getattr(self.real, name)

    def _fail(self) -> None:
        if self.mode == "stall":
            self.release.wait(60)  # never returns while the test watches
        if self.mode == "inference":
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x512 and 256x8)")

    def detect(self, frame):
        self._fail()
        return self.real.detect(frame)

    def stages(self, width, height):
        """The real exported runtime's steps, its network failing: the path the pipeline takes."""
        real = self.real.stages(width, height)
        if real is None:  # PyTorch (no export here): the pipeline calls detect() instead
            return None

        def infer(x):
            self._fail()
            return real.infer(x)
        return dataclasses.replace(real, infer=infer)


def _failing_process(exc: BaseException):
    def process(self, job, ctx, *args):
        raise exc
    return process


# (case, settings changes, how the worker fails, DLQ code, start of the reason, receive count)
CASES = [
    ("permanent", {}, "missing", "missing_object", "S3 get s3://", 1),
    ("transient at the last receive", {"max_receive_count": 1},
     TransientError("S3 get: AWS is unavailable or throttling (SlowDown: reduce your request rate)"),
     "transient", "gave up after 1 receives: S3 get: AWS is unavailable or throttling (SlowDown", 1),
    ("unexpected at the last receive", {"max_receive_count": 1}, KeyError("track 7"),
     "unexpected", "gave up after 1 receives: KeyError: 'track 7'", 1),
    ("stall at the last receive", {"max_receive_count": 1, "stall_timeout_s": 1.5}, "stall",
     "stalled", "gave up after 1 receives: handler stalled in detect and track for ", 1),
    ("inference error", {}, "inference", "inference_error",
     "detector inference failed on frame 0: RuntimeError: mat1 and mat2 shapes cannot be multiplied", 1),
]


@pytest.mark.parametrize("case,changes,fault,code,reason,receives", CASES, ids=[c[0] for c in CASES])
def test_a_dead_lettered_video_task_leaves_its_row_in_error_with_the_same_reason(
        yw_settings, client, demo_detector, clip_factory, case, changes, fault, code, reason, receives):
    s = yw_settings.replace(**changes)
    vid = new_uuid()
    if fault != "missing":
        client.upload(clip_factory(**CLIP).video, vid)
    client.register(vid, frame_stride=1)
    client.send(client.message(vid, frame_stride=1))
    detector = FaultyDetector(demo_detector, fault if fault in ("stall", "inference") else "none")
    worker = make_recording_worker(s, detector, client=client)
    if isinstance(fault, BaseException):
        worker._process = _failing_process(fault).__get__(worker)
    poller = worker.poller(name="yolo_worker-test")
    serving = threading.Thread(target=poller.run, daemon=True)
    serving.start()
    try:
        dead = poll_until(lambda: client.drain(s.video_dlq, wait_s=1), 60,
                          lambda: f"{case}: a dead letter; video {client.video(vid)}")
        if fault == "stall":  # the monitor sets fatal once it has settled the stalled messages
            assert poller.fatal_event.wait(10)
    finally:
        poller.stop()
        detector.release.set()
        serving.join(30)
    assert len(dead) == 1
    attrs = dead[0].string_attributes
    assert attrs["cvitx_error_code"] == code, attrs
    assert attrs["cvitx_error_reason"].startswith(reason), attrs["cvitx_error_reason"]
    assert attrs["cvitx_receive_count"] == str(receives)
    row = client.video(vid)
    assert (row["status"], row["error"]) == ("error", attrs["cvitx_error_reason"])
    assert client.snapshot_messages() == [] and client.analyses(vid) == []
    if fault == "stall":
        assert poller.fatal and poller.fatal.startswith("handler stalled in detect and track")
    else:
        assert poller.fatal is None


def test_a_dead_lettered_task_never_touches_another_workspaces_video(yw_settings, client, demo_detector):
    """A message naming a video of another workspace dead-letters without marking that video."""
    vid = new_uuid()
    other = "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"
    client.register(vid, workspace_id=other)
    client.send(client.message(vid))  # this workspace's id, another workspace's video: no object either
    worker = make_recording_worker(yw_settings, demo_detector, client=client)
    poller = worker.poller(name="yolo_worker-test")
    poller.run(max_batches=1)
    dead = client.drain(yw_settings.video_dlq, wait_s=1)
    assert len(dead) == 1 and dead[0].string_attributes["cvitx_error_code"] in ("invalid_message", "missing_object")
    row = client.video(vid)
    assert (row["status"], row["error"]) == ("queued", None)
