"""Issue 8: the yolo_worker enforces max_video_bytes, max_video_pixels and max_video_duration_s
before it decodes anything, with a reason that names the setting, on the videos row; a video
exactly at the limits is served.  Real handler, real local stack, the project's detector."""
from __future__ import annotations

import json

import pytest

from helpers import new_uuid
from video_analysis.worker_utils.errors import BadMedia
from video_analysis.worker_utils.sqs_queue import ReceivedMessage
from yolo_harness import context, make_recording_worker, serve

CLIP = dict(seed=500404, duration_s=4.0, width=320, height=180, fps=12.5)  # 50 frames, 57,600 pixels


@pytest.mark.parametrize("limits,needle", [
    (dict(max_video_bytes=1000), "over the 1000-byte limit (max_video_bytes)"),
    (dict(max_video_pixels=320 * 180 - 1), "video is 320x180, over the max_video_pixels limit (57599)"),
    (dict(max_video_duration_s=3.5), "video lasts 4 s, over the max_video_duration_s limit"),
])
def test_videos_over_a_limit_are_refused_with_the_setting_named(yw_settings, client, demo_detector, clip_factory,
                                                               limits, needle):
    s = yw_settings.replace(**limits)
    clip = clip_factory(**CLIP)
    vid = new_uuid()
    client.upload(clip.video, vid)
    client.register(vid)
    worker = make_recording_worker(s, demo_detector, client=client)
    with pytest.raises(BadMedia) as e:
        worker.handle(ReceivedMessage("m-1", "h-1", json.dumps(client.message(vid))), context(s))
    assert needle in e.value.reason and e.value.code == "bad_media"
    assert client.video(vid)["status"] == "processing"  # the handler marks nothing terminal itself
    # through the poller, as run_poller serves it: DLQ at once, the row error with the same reason
    client.send(client.message(vid))
    serve(s, worker, 1)
    dead = client.drain(s.video_dlq, wait_s=1)
    assert len(dead) == 1 and needle in dead[0].string_attributes["cvitx_error_reason"]
    row = client.video(vid)
    assert row["status"] == "error" and row["error"] == dead[0].string_attributes["cvitx_error_reason"]
    assert worker.emitted == [] and worker.stats == {} and client.snapshot_messages() == []


def test_a_video_exactly_at_the_limits_is_served(yw_settings, client, demo_detector, clip_factory):
    clip = clip_factory(**CLIP)
    s = yw_settings.replace(max_video_bytes=clip.video.stat().st_size, max_video_pixels=320 * 180,
                            max_video_duration_s=4.0)
    vid = new_uuid()
    client.upload(clip.video, vid)
    client.register(vid)
    make_recording_worker(s, demo_detector, client=client).handle(
        ReceivedMessage("m-1", "h-1", json.dumps(client.message(vid))), context(s))
    assert client.video(vid)["status"] == "done"
