"""A handler that hangs (the detector or the main model never returns, as a wedged decoder or
native call would) in a real worker process: the poller notices that no progress is made for
``stall_timeout_s`` although the heartbeat keeps running, logs it at ERROR with the stage,
stops extending the message, marks nothing done and the process exits 75 for systemd to
restart it.  Under systemd (a NOTIFY_SOCKET this test listens on) WATCHDOG=1 stops before the
stall is declared; without systemd the process exits the same way.  On the message's last
receive it goes to the DLQ as ``handler stalled in <stage> for N s`` and its row is ``error``
with the same reason.

The hang is a test-only fault (tests/netguard/cvitx_block_stage.py, switched on by
TESTS_BLOCK_STAGE in the environment of a process the tests start); no product code knows it.
"""
from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from helpers import Publisher, snapshots_from_clip

from .conftest import MEDIUM, SHORT

# Run alone, after the parallel part of `make test`: it times a stall and the watchdog pings.
pytestmark = pytest.mark.serial

EXIT_STALLED = 75
STALL = dict(stall_timeout_s=3.0, heartbeat_s=0.5, visibility_timeout_s=4, max_receive_count=2,
             transient_backoff_base_s=1, transient_backoff_max_s=1)


class NotifyListener:
    """systemd's side of sd_notify: a unix datagram socket; every datagram with its arrival time."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.received.append((time.time(), data.decode()))

    def times(self, state: str) -> list[float]:
        return [t for t, text in self.received if state in text.split("\n")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def _ts(record: dict) -> float:
    """A log record's time (UTC, ms) as a Unix timestamp."""
    return datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def _one_message(rig, kind: str) -> tuple[str, callable]:
    """Queue one task for ``kind``; returns (a description, a function giving its row's (status, error))."""
    if kind == "yolo":
        vid = rig.submit(rig.clip(**MEDIUM))
        return vid, lambda: tuple(rig.db.fetchone("SELECT status, error FROM videos WHERE id = %s", (vid,)).values())
    snap = snapshots_from_clip(rig.clip_info(**SHORT, seed=12), np.random.default_rng(3), track_base=1)[0]
    msg = Publisher(rig.s).publish_snap(snap)
    uri = msg["snapshot_s3_key"]
    return uri, lambda: tuple(rig.db.fetchone("SELECT status, error FROM image_analyses WHERE snapshot_s3_key = %s",
                                              (uri,)).values())


# Each worker once: the yolo_worker under systemd (its first receive: back after the backoff),
# the main_worker without it (its last receive: the DLQ).  Both paths for both workers, in
# process, are tests/*/test_dead_letter.py's "stall at the last receive" and the poller's.
@pytest.mark.parametrize("kind,fault,stage,systemd,last_receive", [
    ("yolo", "detector:4", "detect and track", True, False),
    ("main", "main_model:0", "inference", False, True),
])
def test_a_stalled_handler_is_noticed_and_the_process_exits_for_a_restart(make_rig, tmp_path, kind, fault, stage,
                                                                          systemd, last_receive):
    rig = make_rig(**{**STALL, "max_receive_count": 1 if last_receive else 2})
    _, row = _one_message(rig, kind)
    queue, dlq = ((rig.s.video_queue, rig.s.video_dlq) if kind == "yolo" else (rig.s.snapshot_queue, rig.s.snapshot_dlq))
    mark = tmp_path / "blocked.txt"
    notify = NotifyListener(tmp_path / "notify.sock")
    try:
        env = {"TESTS_BLOCK_STAGE": fault, "TESTS_BLOCK_MARK": str(mark)}
        if systemd:
            env.update(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="2000000")
        w = rig.start(kind, env=env)
        w.expect_exit = True
        rc = w.proc.wait(timeout=90)
        assert rc == EXIT_STALLED, w.text()[-3000:]
        assert mark.read_text().count("blocked") == 1  # the hang happened
        stalled = w.events("handler stalled: no progress; its messages are given up and the process exits "
                           "for a restart")
        assert len(stalled) == 1 and stalled[0]["level"] == "ERROR", w.text()[-3000:]
        assert stalled[0]["stage"] == stage
        # the heartbeat beat every 0.5 s all along: keeping a message hidden is not progress
        assert STALL["stall_timeout_s"] <= stalled[0]["stalled_for_s"] < STALL["stall_timeout_s"] + 3
        assert w.events("exiting for a restart")
        assert not w.events("message done") and not w.events("video done")
        if systemd:
            assert notify.times("READY=1"), notify.received
            pings = notify.times("WATCHDOG=1")
            assert pings, "no watchdog ping while the worker was healthy"
            assert max(pings) <= _ts(stalled[0]) + 0.3, "WATCHDOG=1 went on after the handler stalled"
        if not last_receive:
            # back after its backoff (1 s), not after the 4 s visibility timeout; nothing marked done or error
            status, error = row()
            assert status == "processing" and error is None, (status, error)
            rig.wait(lambda: rig.client.sqs.attributes(queue)["ApproximateNumberOfMessages"] == "1", 3,
                     "the stalled message visible again after its 1 s backoff")
            assert rig.queue_depth(dlq) == 0
        else:
            # the message's last receive: the DLQ, and the row says the same
            dead = rig.client.drain(dlq, wait_s=2)
            assert len(dead) == 1
            attrs = dead[0].string_attributes
            assert f"handler stalled in {stage} for " in attrs["cvitx_error_reason"], attrs
            assert attrs["cvitx_error_code"] == "stalled" and attrs["cvitx_receive_count"] == "1"
            status, error = row()
            assert (status, error) == ("error", attrs["cvitx_error_reason"])
            assert rig.queue_depth(queue) == 0
        # the stalled process's AWS calls were recorded (make_rig checks them against its policy):
        # the DLQ send on the last receive, none otherwise
        assert w.aws_calls() and (dlq in w.sent_to()) is last_receive
    finally:
        notify.close()
