"""SIGTERM (systemctl stop) of the real yolo_worker: in the middle of a video and while idle in
a long poll.  It exits 0 within the stop timeout and the message in hand is visible again.
(The generic poller's cases, a handler that ignores the stop included, are in
tests/worker_utils/test_poller.py.)"""
from __future__ import annotations

import json
import signal
import time

from .conftest import MEDIUM, SHORT


def test_sigterm_mid_video_releases_the_message(rig):
    w = rig.start("yolo")
    vid = rig.submit(rig.clip(**MEDIUM))
    rig.wait(lambda: w.events("progress", video_id=vid), 60, "the worker in the middle of the video")
    rc, took = w.sigterm()
    assert rc == 0, w.text()[-3000:]
    assert took < rig.s.stop_timeout_s, took
    assert w.events("message released for another worker (stopping)") and w.events("stopped"), w.text()[-4000:]
    assert not w.events("video done") and not w.events("stop timeout reached: releasing messages in hand and exiting")
    # visible again at once (visibility 0), not after the visibility timeout; nothing was settled
    again = rig.client.sqs.receive(rig.s.video_queue, 1, wait_s=1, visibility_s=30)
    assert [(json.loads(m.body)["video_id"], m.receive_count) for m in again] == [(vid, 2)]
    assert rig.video_statuses()[vid] == "processing"  # neither done nor error: the next worker finishes it
    assert rig.dlq(rig.s.video_dlq) == []


def test_sigterm_during_long_poll_exits_promptly_and_loses_nothing(make_rig):
    rig = make_rig(receive_wait_s=3)
    w = rig.start("yolo")
    time.sleep(1.0)  # idle: in a long poll
    t0 = time.monotonic()
    w.proc.send_signal(signal.SIGTERM)
    w.expect_exit = True
    # a task arriving while the stopping worker's poll is still open is not taken on (released)
    vid = rig.submit(rig.clip(**SHORT, seed=12))
    rc = w.proc.wait(timeout=30)
    took = time.monotonic() - t0
    assert rc == 0, w.text()[-3000:]
    assert took < rig.s.stop_timeout_s, took
    assert w.events("stopped") and not w.events("video opened")
    again = rig.client.sqs.receive(rig.s.video_queue, 1, wait_s=2, visibility_s=30)
    assert [json.loads(m.body)["video_id"] for m in again] == [vid]
    assert rig.video_statuses()[vid] == "queued"
