"""One terminal-state rule, in the poller: whatever sends a snapshot task to the DLQ (a
permanent error, the last receive of a transient or an unexpected failure, a stalled handler,
an inference error), its ``image_analyses`` row is ``error`` with exactly the DLQ's reason,
and the rest of the batch is analysed as usual.

The real MainWorker served by its real poller (``MainWorker.poller()``, what run_poller
serves) on the local stack; the faults are made by wrapping the model or one step of the
worker, as a broken model or a bug would fail."""
from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np
import pytest

from helpers import poll_until
from video_analysis.worker_utils.errors import TransientError

from .conftest import make_worker


class FaultyModel:
    """The real bundle, except that ``predict`` fails for a batch holding the snapshot ``bad``
    (a decoded image), the way ``mode`` says."""

    def __init__(self, real: Any, mode: str, bad):
        self.real, self.mode, self.bad = real, mode, bad
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:  # labels, hierarchy, model_name ... of the real one
        return getattr(self.real, name)

    def predict(self, batch):
        if any(np.array_equal(img, self.bad) for img in batch):
            if self.mode == "stall":
                self.release.wait(60)
            elif self.mode == "inference":
                raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (10x512 and 256x8)")
            elif self.mode == "transient":
                raise TransientError("GPU busy: CUDA error: all CUDA-capable devices are busy or unavailable")
        return self.real.predict(batch)


CASES = [
    # (case, settings changes, fault, DLQ code, start of the reason)
    ("permanent", {}, "missing", "missing_object", "S3 get s3://"),
    ("transient at the last receive", {"max_receive_count": 1}, "transient", "transient",
     "gave up after 1 receives: GPU busy: CUDA error"),
    ("unexpected at the last receive", {"max_receive_count": 1}, "unexpected", "unexpected",
     "gave up after 1 receives: KeyError: 'make'"),
    ("stall at the last receive", {"max_receive_count": 1, "stall_timeout_s": 1.5}, "stall", "stalled",
     "gave up after 1 receives: handler stalled in inference for "),
    ("inference error", {}, "inference", "inference_error",
     "main model inference failed on s3://"),
]


@pytest.mark.parametrize("case,changes,fault,code,reason", CASES, ids=[c[0] for c in CASES])
def test_a_dead_lettered_snapshot_task_leaves_its_row_in_error_with_the_same_reason(
        mw_settings, variants, gt_snaps, publisher, case, changes, fault, code, reason):
    s = mw_settings.replace(**changes)
    # A stall gives up the whole batch in hand: there the bad message comes alone.
    good = [] if fault == "stall" else [publisher.publish_snap(snap) for snap in gt_snaps[:3]]
    bad_snap = gt_snaps[3]
    bad = publisher.publish(bad_snap.track_id, bad_snap.offset_ms, None if fault == "missing" else bad_snap.jpeg,
                            yolo_type=bad_snap.vehicle["type"])
    model = FaultyModel(variants["baseline"], fault, cv2.imdecode(np.frombuffer(bad_snap.jpeg, np.uint8),
                                                                  cv2.IMREAD_COLOR))
    worker = make_worker(s, {"baseline": model})
    if fault == "unexpected":
        rows = worker._rows

        def broken_rows(it, *a, **kw):
            if it.msg.snapshot_s3_key == bad["snapshot_s3_key"]:
                raise KeyError("make")
            return rows(it, *a, **kw)

        worker._rows = broken_rows
    poller = worker.poller(name="main_worker-test")
    serving = threading.Thread(target=poller.run, daemon=True)
    serving.start()
    try:
        dead = poll_until(lambda: publisher.sqs.receive(s.snapshot_dlq, 10, wait_s=1), 60,
                          lambda: f"{case}: a dead letter; analyses {publisher.analyses()}")
        if good:  # the rest of the batch is analysed
            poll_until(lambda: sum(a["status"] == "done" for a in publisher.analyses()) == len(good), 60,
                       lambda: f"the rest of the batch done: {publisher.analyses()}")
        if fault == "stall":  # the monitor sets fatal once it has settled the stalled messages
            assert poller.fatal_event.wait(10)
    finally:
        poller.stop()
        model.release.set()
        serving.join(30)
    assert len(dead) == 1 and dead[0].body and bad["snapshot_s3_key"] in dead[0].body
    attrs = dead[0].string_attributes
    assert attrs["cvitx_error_code"] == code, attrs
    assert attrs["cvitx_error_reason"].startswith(reason), attrs["cvitx_error_reason"]
    assert attrs["cvitx_receive_count"] == "1"
    rows = {a["snapshot_s3_key"]: a for a in publisher.analyses()}
    assert (rows[bad["snapshot_s3_key"]]["status"], rows[bad["snapshot_s3_key"]]["error"]) == (
        "error", attrs["cvitx_error_reason"])
    if fault == "stall":
        assert poller.fatal and poller.fatal.startswith("handler stalled in inference")
    else:
        assert poller.fatal is None
        assert {m["snapshot_s3_key"]: rows[m["snapshot_s3_key"]]["status"] for m in good} == {
            m["snapshot_s3_key"]: "done" for m in good}
