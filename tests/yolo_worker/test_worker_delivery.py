"""Issue 5 acceptance: PROCESS_VIDEO_DB, redelivery (at-least-once SQS) and the real
``python -m video_analysis.yolo_worker.run_poller`` process, against the real local stack.

One clean run of a short generated clip is the reference: the pipeline is deterministic, so
any later run of the same file at the same stride must announce the same
``(track_id, detectedIn, yolo_type)`` set - which is what makes redelivery converge on the
same snapshot keys.
"""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from helpers import WID, worker_env
from video_analysis.worker_utils.keys import build_snapshot_uri, parse_snapshot_uri
from video_analysis.worker_utils.submit import submit_video
from video_analysis.worker_utils.timeutil import detected_at
from yolo_harness import (Client, Crash, context, make_recording_worker, provision_private, receive_one,
                          serve)

CLIP = dict(seed=500303, duration_s=12.0, width=640, height=360, fps=12.5)
STRIDE = 2


def announced(messages: list[dict]) -> list[tuple[int, int, str]]:
    return sorted((m["track_id"], m["detectedIn"], m["yolo_type"]) for m in messages)


def snapshot_objects(client: Client, video_id: str) -> set[str]:
    keys = client.s3.list_keys(f"{client.s.user_prefix}/{WID}/{video_id}/snapshots/")
    return {build_snapshot_uri(client.s.bucket, k) for k in keys}


@pytest.fixture(scope="module")
def clean(stack, clip_factory, demo_detector):
    """One complete, undisturbed run (module-scoped; the tests below only read it or send
    the same message again)."""
    s = provision_private(stack)
    client = Client(s)
    clip = clip_factory(**CLIP)
    vid, msg = client.submit(clip.video, frame_stride=STRIDE)
    serve(s, make_recording_worker(s, demo_detector, client=client), messages=1)
    messages = client.snapshot_messages()
    assert client.video(vid)["status"] == "done"
    assert len(messages) >= 3, "the reference clip must yield a few snapshots for a mid-video crash"
    return SimpleNamespace(s=s, client=client, clip=clip, vid=vid, msg=msg, messages=messages,
                           rows=client.analyses(vid))


def test_process_video_db_is_resolved_from_the_videos_row(clean, yw_settings, client, demo_detector):
    recorded = "2026-03-02T08:00:00.000Z"
    vid = submit_video(yw_settings, clean.clip.video, workspace_id=WID, workspace_code="CTX2001",
                       camera_code="CAM7", frame_stride=STRIDE, recorded_at=recorded, db_fallback=True)
    sent = client.drain(yw_settings.video_queue)
    assert [json.loads(m.body) for m in sent] == [{"event": "PROCESS_VIDEO_DB", "video_id": vid, "workspace_id": WID}]
    client.send(sent[0].body)
    worker = make_recording_worker(yw_settings, demo_detector, client=client)
    serve(yw_settings, worker, messages=1)

    assert client.video(vid)["status"] == "done"
    messages = client.snapshot_messages()
    # codes, stride and recordedAt all came from the row: same tracks as the reference run
    assert announced(messages) == announced(clean.messages)
    assert all(e.frame_index % STRIDE == 0 for e in worker.emitted)
    for m in messages:
        ref = parse_snapshot_uri(m["snapshot_s3_key"], yw_settings.bucket)
        assert (m["video_id"], m["workspace_code"], m["camera_code"]) == (vid, "CTX2001", "CAM7")
        assert (ref.video_id, ref.workspace_code, ref.camera_code) == (vid, "CTX2001", "CAM7")
        assert m["recordedAt"] == recorded and m["detectedAt"] == detected_at(recorded, m["detectedIn"])
    assert snapshot_objects(client, vid) == {m["snapshot_s3_key"] for m in messages}


def test_redelivered_process_video_of_a_done_video_changes_nothing(clean, demo_detector, caplog):
    c = clean.client
    for body in (clean.msg, {"event": "PROCESS_VIDEO_DB", "video_id": clean.vid, "workspace_id": WID}):
        c.send(body)  # SQS delivers the video again (at-least-once), full or minimal form
        worker = make_recording_worker(clean.s, demo_detector, client=c)
        with caplog.at_level(logging.INFO):
            poller = serve(clean.s, worker, messages=1)
        assert poller.processed == 1 and worker.emitted == [] and worker.stats == {}
        assert c.snapshot_messages() == []  # nothing announced twice
        assert c.analyses(clean.vid) == clean.rows  # same rows (ids, keys, status), no duplicates
        assert c.video(clean.vid)["status"] == "done"
        assert snapshot_objects(c, clean.vid) == {m["snapshot_s3_key"] for m in clean.messages}
        assert c.drain(clean.s.video_dlq) == []
    assert sum(r.getMessage().startswith("video already done") for r in caplog.records) == 2


def test_redelivery_after_a_crash_mid_video_re_emits_the_same_keys(clean, yw_settings, client, demo_detector,
                                                                   caplog):
    vid, _msg = client.submit(clean.clip.video, frame_stride=STRIDE)
    in_hand = receive_one(client, visibility_s=2)
    dying = make_recording_worker(yw_settings, demo_detector, crash_after=1, client=client)
    with pytest.raises(Crash):
        dying.handle(in_hand, context(yw_settings))  # the process dies: the message is never settled
    assert client.video(vid)["status"] == "processing"
    before_crash = client.snapshot_messages()
    assert len(before_crash) == 1 and len(client.analyses(vid)) == 1

    # SQS hands the message out again once its visibility timeout lapses; a new worker takes it
    worker = make_recording_worker(yw_settings, demo_detector, client=client)
    with caplog.at_level(logging.INFO):
        serve(yw_settings, worker, messages=1, timeout_s=60)
    done = [r for r in caplog.records if r.getMessage() == "message done"]
    assert [r.receive_count for r in done] == [2]

    after = client.snapshot_messages()
    assert announced(after) == announced(clean.messages)  # what an undisturbed run announces
    assert set(announced(before_crash)) <= set(announced(after))
    keys = {m["snapshot_s3_key"] for m in after}
    assert keys >= {m["snapshot_s3_key"] for m in before_crash}  # the same key for the same snapshot
    rows = client.analyses(vid)
    assert len(rows) == len(keys) == len(after) and {r["snapshot_s3_key"] for r in rows} == keys
    assert all(r["status"] == "queued" for r in rows)
    assert snapshot_objects(client, vid) == keys  # overwritten in place, nothing stray
    assert client.video(vid)["status"] == "done"


def test_run_poller_process_serves_videos_and_dead_letters_bad_ones(stack, clean, yw_settings, client):
    """The systemd entry point, for real: a separate process, JSON log lines, SIGTERM exits 0."""
    client.send("{definitely not json")
    vid, _ = client.submit(clean.clip.video, frame_stride=STRIDE)
    proc = subprocess.Popen([sys.executable, "-m", "video_analysis.yolo_worker.run_poller"],
                            env=worker_env(stack, yw_settings), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while (client.video(vid) or {}).get("status") not in ("done", "error"):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the worker process did not finish the video in time"
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=yw_settings.stop_timeout_s + 15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    logs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    by_msg = {}
    for rec in logs:
        by_msg.setdefault(rec["msg"], []).append(rec)
    assert client.video(vid)["status"] == "done", out[-3000:]
    assert by_msg["video done"][0]["video_id"] == vid
    assert "not valid JSON" in by_msg["message sent to the DLQ"][0]["error"]
    assert "stopped" in by_msg
    dlq = client.drain(yw_settings.video_dlq)
    assert [m.body for m in dlq] == ["{definitely not json"]
    assert announced(client.snapshot_messages()) == announced(clean.messages)
