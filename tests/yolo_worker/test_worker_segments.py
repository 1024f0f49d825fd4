"""Issue 26, segments through the real worker and poller on the real local stack: a video longer
than ``segment_s`` is planned into PROCESS_SEGMENT tasks on the video queue, any worker serves
them, each segment writes its own snapshots and row, the last one marks the video done, and a
redelivery changes nothing; a dead-lettered segment fails its video with the segment's reason; a
segment (or video) that would run past SQS's visibility cap fails at once with the cap named."""
from __future__ import annotations

import json
import threading

import pytest

from helpers import new_uuid, poll_until
from video_analysis.worker_utils.sqs_queue import ReceivedMessage
from video_analysis.worker_utils.validation import validate_video_task

from yolo_harness import Client, make_recording_worker, provision_private, serve

CLIP = dict(seed=7, duration_s=60.0, fps=12.5, parked=2, stop_probability=0.5)  # test_segments.py's
SEGMENTS = dict(segment_s=20.0, segment_warmup_s=5.0, segment_tail_s=20.0)


def _segments(client, vid):
    return client.db.fetchall("SELECT segment_index, segment_count, status, error, snapshots FROM video_segments"
                              " WHERE video_id = %s ORDER BY segment_index", (vid,))


@pytest.fixture(scope="module")
def seg_client(stack):
    return Client(provision_private(stack).replace(**SEGMENTS))


@pytest.fixture(scope="module")
def segmented(seg_client, clip_factory, demo_detector):
    """The clip sent as a PROCESS_VIDEO and served to the end: 1 plan + 3 segments (once per module;
    the tests that change rows come last)."""
    s = seg_client.s
    vid, _msg = seg_client.submit(clip_factory(**CLIP).video, frame_stride=3)
    worker = make_recording_worker(s, demo_detector, client=seg_client)
    serve(s, worker, messages=4, timeout_s=180)
    return s, vid, worker


@pytest.fixture
def client(seg_client):
    return seg_client


def test_a_long_video_is_processed_as_segments_and_done_when_all_are(segmented, client):
    s, vid, worker = segmented
    assert client.video(vid)["status"] == "done"
    rows = _segments(client, vid)
    assert [(r["segment_index"], r["segment_count"], r["status"]) for r in rows] == [(i, 3, "done") for i in range(3)]
    messages = client.snapshot_messages()
    analyses = client.analyses(vid)
    assert len(messages) == len(analyses) == len(worker.emitted) == sum(r["snapshots"] for r in rows) > 20
    ids = [a["track_id"] for a in analyses]
    assert len(set(ids)) == len(ids) and {i // 100000 for i in ids} == {0, 1, 2}  # each segment in its id block
    keys = {a["snapshot_s3_key"] for a in analyses}
    assert len(keys) == len(analyses) and all(s.bucket in k for k in keys)
    assert client.drain(s.video_queue) == [] and client.drain(s.video_dlq) == []


def test_a_redelivered_video_or_segment_changes_nothing(segmented, client):
    s, vid, worker = segmented
    before = client.analyses(vid)
    client.snapshot_messages()
    client.send(client.message(vid, frame_stride=3))  # the API's message again
    segment = {**client.message(vid, frame_stride=3), "event": "PROCESS_SEGMENT",
               "segment": {"index": 1, "count": 3, "start_frame": 249, "end_frame": 498, "warm_frame": 156,
                           "tail_frame": 750, "first_track_id": 100001}}
    client.send(segment)
    serve(s, worker, messages=2)
    assert client.analyses(vid) == before and client.snapshot_messages() == []
    assert client.video(vid)["status"] == "done"


@pytest.mark.parametrize("segment", [
    {"index": 3, "count": 3, "start_frame": 0, "end_frame": 249, "warm_frame": 0, "tail_frame": 500,
     "first_track_id": 1},
    {"index": 0, "count": 3, "start_frame": 100, "end_frame": 249, "warm_frame": 150, "tail_frame": 500,
     "first_track_id": 1},
    {"index": 0, "count": 3, "start_frame": 0, "end_frame": None, "warm_frame": 0, "tail_frame": None,
     "first_track_id": 1},
])
def test_an_inconsistent_segment_is_refused_naming_the_rule(client, segment):
    body = {**client.message(new_uuid(), frame_stride=3), "event": "PROCESS_SEGMENT", "segment": segment}
    body["s3_key_raw"] = client.raw_key(body["video_id"])
    with pytest.raises(Exception, match="PROCESS_SEGMENT's segment is inconsistent"):
        validate_video_task(body, client.s)


def test_work_that_would_outlast_the_visibility_cap_fails_at_once_naming_it(client, clip_factory, demo_detector):
    """The cap scaled down (moto does not enforce SQS's 12 h): a 30 s clip whose ETA, at the first
    progress line, is past 0.9 of a 1 s cap is dead-lettered on its first receive with the cap and
    the segment_s that would fit named, and the video is error; it never loops."""
    s = client.s.replace(visibility_cap_s=1.0, progress_interval_s=0.2, segment_s=0.0)
    vid, _msg = client.submit(clip_factory(seed=500202, duration_s=30.0, fps=12.5).video, frame_stride=1)
    worker = make_recording_worker(s, demo_detector, client=client)
    poller = worker.poller(name="yolo_worker-test")
    serving = threading.Thread(target=poller.run, daemon=True)
    serving.start()
    try:
        dead = poll_until(lambda: client.drain(s.video_dlq, wait_s=1), 60, lambda: f"a dead letter; {client.video(vid)}")
    finally:
        poller.stop()
        serving.join(30)
    reason = dead[0].string_attributes["cvitx_error_reason"]
    assert "past SQS's visibility cap of 0.00 h (1 s)" in reason and "visibility_cap_s" in reason, reason
    assert "set segment_s to" in reason, reason
    assert dead[0].string_attributes["cvitx_receive_count"] == "1"
    assert client.video(vid)["status"] == "error"


def test_status_shows_segments_done_of_total(segmented, client, stack):
    import subprocess
    import sys

    from helpers import worker_env

    s, vid, _worker = segmented
    env = worker_env(stack, s)
    r = subprocess.run([sys.executable, "-m", "video_analysis", "status", vid], capture_output=True, text=True,
                       env=env, timeout=60)
    assert f"video {vid}: done; segments 3 of 3 done" in r.stdout, (r.stdout, r.stderr)
    client.db.execute("UPDATE video_segments SET status = 'processing' WHERE video_id = %s AND segment_index = 2",
                      (vid,))
    r = subprocess.run([sys.executable, "-m", "video_analysis", "status", vid, "--json"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert json.loads(r.stdout)["segments"] == {"done": 2, "total": 3}


def test_a_dead_lettered_segment_fails_its_video_with_the_segments_reason(segmented, client, demo_detector):
    s, vid, _worker = segmented
    client.db.execute("UPDATE videos SET status = 'processing' WHERE id = %s", (vid,))
    client.db.execute("UPDATE video_segments SET status = 'processing' WHERE video_id = %s AND segment_index = 1",
                      (vid,))
    body = {**client.message(vid, frame_stride=3), "event": "PROCESS_SEGMENT",
            "segment": {"index": 1, "count": 3, "start_frame": 249, "end_frame": 498, "warm_frame": 156,
                        "tail_frame": 750, "first_track_id": 100001}}
    worker = make_recording_worker(s, demo_detector, client=client)
    worker.dead_letter(ReceivedMessage("m1", "r1", json.dumps(body)), "video decoding failed: boom", "bad_media")
    row = client.video(vid)
    assert (row["status"], row["error"]) == ("error", "segment 2 of 3: video decoding failed: boom")
    assert _segments(client, vid)[1]["status"] == "error"


def test_segments_shorter_than_the_trackers_memory_are_refused_with_the_fix(client, clip_factory, demo_detector):
    """At 5 fps and stride 3 the tracker remembers a lost vehicle 18.6 s (31 processed frames):
    10 s segments cannot warm up on that, a permanent error that says to raise segment_s."""
    s = client.s.replace(segment_s=10.0, segment_warmup_s=2.0)
    vid, _msg = client.submit(clip_factory(seed=5, duration_s=30.0, fps=5.0).video, frame_stride=3)
    serve(s, make_recording_worker(s, demo_detector, client=client), messages=1)
    dead = client.drain(s.video_dlq, wait_s=1)
    reason = dead[0].string_attributes["cvitx_error_reason"]
    assert "cannot cut this 5 fps video into segments" in reason and "raise segment_s" in reason, reason
    assert client.video(vid)["status"] == "error"


def test_reconcile_resends_a_stuck_segmented_video_and_its_segments_finish(client, clip_factory, demo_detector):
    """The segment tasks were lost (a purged queue): the video stays processing with its plan
    recorded.  reconcile re-sends its PROCESS_VIDEO; the planner re-announces the recorded plan's
    unfinished segments and the video finishes with every segment done."""
    from video_analysis.worker_utils.reconcile import reconcile

    s = client.s
    vid, _msg = client.submit(clip_factory(**CLIP).video, frame_stride=3)
    worker = make_recording_worker(s, demo_detector, client=client)
    serve(s, worker, messages=1)  # the plan only
    lost = client.drain(s.video_queue)
    assert len(lost) == 3 and {json.loads(m.body)["event"] for m in lost} == {"PROCESS_SEGMENT"}
    for m in lost:
        client.sqs.delete(s.video_queue, m.receipt_handle)
    assert client.video(vid)["status"] == "processing"
    report = reconcile(s, video_id=vid, apply=True, db=client.db, s3=client.s3, sqs=client.sqs)
    assert [a.kind for a, _ in report.applied] == ["resend"], report.applied
    serve(s, worker, messages=4)  # the plan again, then its three segments
    assert client.video(vid)["status"] == "done"
    assert [r["status"] for r in _segments(client, vid)] == ["done"] * 3
