"""Issue 5 acceptance: bad inputs to the yolo_worker, each its own case, through the real
poller loop and the real handler against the real local stack (nothing mocked).

For every case: a clear log line (the poller's "message sent to the DLQ" with the reason),
``videos.status = error`` with the reason where the video has a row, the message in the video
DLQ with its ``cvitx_error_reason`` attribute after a single receive, nothing announced on the
snapshot queue for it - and the worker goes on to serve the next (good) message.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import pytest

from helpers import WID, new_uuid
from yolo_harness import Client, make_recording_worker, provision_private, serve

# A short, cheap clip for the good message that follows each bad one.
GOOD_CLIP = dict(seed=500404, duration_s=4.0, width=320, height=180, fps=12.5)
OTHER_WID = "bbbbbbbb-cccc-dddd-eeee-ffffffffffff"


def _zero_frame_mp4(tmp_path) -> bytes:
    p = tmp_path / "zero.mp4"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 12.5, (320, 180))
    w.release()  # a complete MP4 container holding no frames
    return p.read_bytes()


def _jpeg() -> bytes:
    img = (np.random.default_rng(1).random((180, 320, 3)) * 255).astype(np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


@dataclass
class Case:
    """``body(client, video_id, tmp_path, clip)`` prepares S3/DB and returns the message body."""

    body: Callable[..., str]
    reason: str  # must appear in the DLQ reason, the log line and the videos row
    code: str  # cvitx_error_code
    registered: bool = True  # the API registered the video (a videos row exists)
    marks_row: bool = True  # the failure is recorded on that row (where there is one)


def _msg(c: Client, vid: str, **over) -> str:
    return json.dumps(c.message(vid, **over))


def _with_object(data: Callable[..., bytes]) -> Callable[..., str]:
    def body(c: Client, vid: str, tmp_path, clip) -> str:
        c.upload(None, vid, data=data(tmp_path, clip))
        return _msg(c, vid)

    return body


def _missing_field(c, vid, tmp_path, clip):
    m = c.message(vid)
    del m["camera_code"]
    return json.dumps(m)


def _key_of_other_video(c, vid, tmp_path, clip):
    other = new_uuid()
    c.upload(clip.video, other)  # the object exists: only the key's ownership is wrong
    return _msg(c, vid, s3_key_raw=c.raw_key(other))


def _key_of_other_workspace(c, vid, tmp_path, clip):
    key = f"{c.s.user_prefix}/{OTHER_WID}/{vid}/raw/clip.mp4"
    c.s3.upload_file(clip.video, key, "video/mp4")
    return _msg(c, vid, s3_key_raw=key)


def _video_of_other_workspace(c, vid, tmp_path, clip):
    c.register(vid, workspace_id=OTHER_WID)  # the video is OTHER_WID's ...
    c.upload(clip.video, vid)  # ... and the task, with a consistent key and object, claims it for WID
    return _msg(c, vid)


CASES = {
    "invalid_json": Case(lambda c, vid, *_: '{"event": "PROCESS_VIDEO", "video_id": ', "not valid JSON",
                         "invalid_message", registered=False),
    "not_a_json_object": Case(lambda c, vid, *_: json.dumps([c.message(vid)]), "must be a JSON object",
                              "invalid_message", registered=False),
    # a misrouted message of another kind says nothing about the video it names: row untouched
    "wrong_event": Case(lambda c, vid, *_: _msg(c, vid, event="SNAPSHOT_READY"), "not handled by yolo_worker",
                        "invalid_message", marks_row=False),
    "schema_missing_field": Case(_missing_field, "schema violation", "invalid_message"),
    "schema_extra_field": Case(lambda c, vid, *_: _msg(c, vid, priority=1), "schema violation", "invalid_message"),
    "frame_stride_0": Case(lambda c, vid, *_: _msg(c, vid, frame_stride=0), "frame_stride", "invalid_message"),
    "raw_key_of_another_video": Case(_key_of_other_video, "keys must stay inside their own workspace/video",
                                     "invalid_message"),
    "raw_key_of_another_workspace": Case(_key_of_other_workspace, "keys must stay inside their own workspace/video",
                                         "invalid_message"),
    "raw_key_path_trick": Case(lambda c, vid, *_: _msg(c, vid, s3_key_raw=c.raw_key(vid).replace("/raw/",
                                                                                                 "/raw/../raw/")),
                               "'..' path segment", "invalid_message"),
    "missing_object": Case(lambda c, vid, *_: _msg(c, vid), "object does not exist", "missing_object"),
    # sent by hand, never registered: the worker creates the row, then records the error on it
    "missing_object_unregistered_video": Case(lambda c, vid, *_: _msg(c, vid), "object does not exist",
                                              "missing_object", registered=False),
    "truncated_mp4": Case(_with_object(lambda tmp, clip: clip.video.read_bytes()[: clip.video.stat().st_size // 2]),
                          "the MP4 is truncated", "bad_media"),
    "zero_frame_mp4": Case(_with_object(lambda tmp, clip: _zero_frame_mp4(tmp)), "contains no video frames",
                           "bad_media"),
    "empty_file": Case(_with_object(lambda tmp, clip: b""), "the file is empty", "bad_media"),
    "jpeg_named_mp4": Case(_with_object(lambda tmp, clip: _jpeg()), "not an MP4 file", "bad_media"),
    "text_named_mp4": Case(_with_object(lambda tmp, clip: b"<html>403 Forbidden</html>\n" * 40), "not an MP4 file",
                           "bad_media"),
    "process_video_db_unknown_video": Case(
        lambda c, vid, *_: json.dumps({"event": "PROCESS_VIDEO_DB", "video_id": vid, "workspace_id": WID}),
        "not in the videos table", "invalid_message", registered=False),
    # a task naming another workspace's video is refused, and that video's row is left alone
    "process_video_db_other_workspace": Case(
        lambda c, vid, *_: json.dumps({"event": "PROCESS_VIDEO_DB", "video_id": vid, "workspace_id": OTHER_WID}),
        f"belongs to workspace {WID}", "invalid_message", marks_row=False),
    "process_video_for_a_video_of_another_workspace": Case(
        _video_of_other_workspace, f"belongs to workspace {OTHER_WID}", "invalid_message", registered=False,
        marks_row=False),
}


@pytest.fixture(scope="module")
def shared(stack):
    """One database and bucket for the module (video ids are fresh per test)."""
    return provision_private(stack)


@pytest.fixture
def yw(shared, unique):
    """``shared`` with this test's own queues: each test sees only its own messages."""
    from video_analysis.worker_utils.provision import run_setup

    s = shared.replace(video_queue=f"{unique}-video", video_dlq=f"{unique}-video-dlq",
                       snapshot_queue=f"{unique}-snap", snapshot_dlq=f"{unique}-snap-dlq")
    client = Client(s)
    run_setup(s, s3=client.s3, sqs=client.sqs, skip_db=True)
    return s, client


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_goes_to_the_dlq_with_its_reason_and_serving_goes_on(name, yw, demo_detector, clip_factory,
                                                                       tmp_path, caplog):
    case = CASES[name]
    yw_settings, client = yw
    clip = clip_factory(**GOOD_CLIP)
    bad_vid = new_uuid()
    if case.registered:
        client.register(bad_vid)
    bad_body = case.body(client, bad_vid, tmp_path, clip)
    client.send(bad_body)
    good_vid, _ = client.submit(clip.video, frame_stride=3)

    worker = make_recording_worker(yw_settings, demo_detector, client=client)
    with caplog.at_level(logging.INFO):
        poller = serve(yw_settings, worker, messages=2, timeout_s=90)

    # the DLQ holds the bad message, unchanged, with the reason; it was received once
    dlq = client.drain(yw_settings.video_dlq)
    assert [m.body for m in dlq] == [bad_body]
    attrs = {k: v["StringValue"] for k, v in dlq[0].message_attributes.items()}
    assert case.reason in attrs["cvitx_error_reason"], attrs
    assert attrs["cvitx_error_code"] == case.code and attrs["cvitx_receive_count"] == "1"
    assert client.drain(yw_settings.video_queue) == []

    # one clear ERROR line naming the reason
    lines = [r for r in caplog.records if r.getMessage() == "message sent to the DLQ"]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR and case.reason in lines[0].error

    # the videos row, where there is one, says error and why
    row = client.video(bad_vid)
    if not case.marks_row:
        assert row["status"] == "queued" and row["error"] is None, row  # registered, never touched
    elif case.registered or case.code in ("missing_object", "bad_media"):
        assert row is not None and row["status"] == "error", row
        assert case.reason in row["error"], row["error"]
    else:
        assert row is None
    assert client.analyses(bad_vid) == []

    # ... and the worker served the next message normally
    assert poller.processed == 1
    assert client.video(good_vid)["status"] == "done"
    announced = {json.loads(b)["video_id"] for b in (m.body for m in client.drain(yw_settings.snapshot_queue))}
    assert announced <= {good_vid}
