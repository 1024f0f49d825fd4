"""Bad SNAPSHOT_READY inputs, each through the real poller loop: the message lands in the DLQ
with its reason (attribute cvitx_error_reason) after one receive, the analysis row (where one
exists) is `error` with the reason, and the worker keeps serving: a good message sent after
the bad one is done."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from video_analysis.worker_utils.imaging import encode_jpeg, letterbox

from .conftest import Publisher, make_worker, serve_until

GOOD_TRACK, BAD_TRACK = 1, 2


def jpeg_of(img: np.ndarray) -> bytes:
    return encode_jpeg(img, 90)


def snapshot_image() -> np.ndarray:
    body = np.full((200, 420, 3), (40, 40, 200), np.uint8)
    cv2.rectangle(body, (0, 150), (420, 200), (50, 50, 50), -1)
    return letterbox(body, 640)[0]


def bad_size(pub: Publisher) -> tuple[dict, str]:
    img = cv2.resize(snapshot_image(), (639, 640))  # width 639, height 640
    return pub.publish(BAD_TRACK, 2000, jpeg_of(img)), "is 639x640, expected exactly 640x640"


def png_named_jpg(pub: Publisher) -> tuple[dict, str]:
    png = cv2.imencode(".png", snapshot_image())[1].tobytes()
    return pub.publish(BAD_TRACK, 2000, png, content_type="image/jpeg"), "PNG"


def wrong_content_type(pub: Publisher) -> tuple[dict, str]:
    return (pub.publish(BAD_TRACK, 2000, jpeg_of(snapshot_image()), content_type="application/octet-stream"),
            "Content-Type 'application/octet-stream', expected 'image/jpeg'")


def missing_object(pub: Publisher) -> tuple[dict, str]:
    return pub.publish(BAD_TRACK, 2000, None), "does not exist"


def other_bucket(pub: Publisher) -> tuple[dict, str]:
    # The object exists under the same key in the configured bucket: only the URI's bucket is wrong.
    pub.publish(BAD_TRACK, 2000, jpeg_of(snapshot_image()), send=False)
    msg = pub.message(BAD_TRACK, 2000, bucket="someone-elses-bucket")
    pub.send(msg)
    return msg, "expected the configured bucket"


def schema_mismatch(pub: Publisher) -> tuple[dict, str]:
    msg = pub.publish(BAD_TRACK, 2000, jpeg_of(snapshot_image()), send=False)
    bad = {**msg, "track_id": "2"}  # a string where the schema says integer
    pub.send(bad)
    return bad, "schema violation at track_id"


def corrupt_jpeg(pub: Publisher) -> tuple[dict, str]:
    data = jpeg_of(snapshot_image())
    return pub.publish(BAD_TRACK, 2000, data[:200]), "do not decode"


CASES = {"639x640": bad_size, "png_named_jpg": png_named_jpg, "wrong_content_type": wrong_content_type,
         "missing_object": missing_object, "other_bucket": other_bucket, "schema_mismatch": schema_mismatch,
         "truncated_jpeg": corrupt_jpeg}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_goes_to_dlq_and_worker_keeps_serving(mw_settings, variants, case):
    s = mw_settings
    pub = Publisher(s)
    bad, reason_part = CASES[case](pub)
    good = pub.publish(GOOD_TRACK, 5000, jpeg_of(snapshot_image()))  # sent after the bad one
    poller = serve_until(s, make_worker(s, variants),
                         lambda: pub.status_counts().get("done") == 1 and pub.sqs.attributes(s.snapshot_dlq)
                         ["ApproximateNumberOfMessages"] == "1")

    dlq = pub.drain(s.snapshot_dlq)
    assert len(dlq) == 1 and json.loads(dlq[0].body) == bad
    attrs = {k: v["StringValue"] for k, v in dlq[0].message_attributes.items()}
    assert reason_part in attrs["cvitx_error_reason"], attrs
    assert attrs["cvitx_receive_count"] == "1"  # permanent: DLQ at once, no five receives
    assert attrs["cvitx_source_queue"] == s.snapshot_queue
    assert pub.drain(s.snapshot_queue) == []
    assert poller.processed == 1

    rows = {a["snapshot_s3_key"]: a for a in pub.analyses()}
    assert rows[good["snapshot_s3_key"]]["status"] == "done"
    # the yolo_worker's queued row for the bad snapshot (every case but other_bucket names it)
    own_uri = pub.message(BAD_TRACK, 2000)["snapshot_s3_key"]
    if case == "other_bucket":
        assert rows[own_uri]["status"] == "queued"  # a message for another bucket touches nothing of ours
        assert bad["snapshot_s3_key"] not in rows
    else:
        assert rows[own_uri]["status"] == "error" and reason_part in rows[own_uri]["error"], rows[own_uri]
    assert len(rows) == 2
    assert len(pub.results()) == 1  # only the good snapshot has results


def test_bad_message_without_a_row_creates_none(mw_settings, variants):
    """A missing object for a snapshot the yolo_worker never registered: DLQ, and no row appears."""
    s = mw_settings
    pub = Publisher(s)
    bad = pub.publish(BAD_TRACK, 2000, None, row=False)
    pub.publish(GOOD_TRACK, 5000, jpeg_of(snapshot_image()))
    serve_until(s, make_worker(s, variants),
                lambda: pub.status_counts().get("done") == 1 and pub.sqs.attributes(s.snapshot_dlq)
                ["ApproximateNumberOfMessages"] == "1")
    assert [a["snapshot_s3_key"] for a in pub.analyses()] == [pub.message(GOOD_TRACK, 5000)["snapshot_s3_key"]]
    (d,) = pub.drain(s.snapshot_dlq)
    assert json.loads(d.body) == bad


def test_not_json_and_wrong_event_go_to_dlq(mw_settings, variants):
    s = mw_settings
    pub = Publisher(s)
    pub.send("{not json")
    pub.send(json.dumps({"event": "PROCESS_VIDEO", "video_id": pub.video_id}))
    pub.publish(GOOD_TRACK, 5000, jpeg_of(snapshot_image()))
    serve_until(s, make_worker(s, variants),
                lambda: pub.status_counts().get("done") == 1 and pub.sqs.attributes(s.snapshot_dlq)
                ["ApproximateNumberOfMessages"] == "2")
    reasons = sorted(m.message_attributes["cvitx_error_reason"]["StringValue"] for m in pub.drain(s.snapshot_dlq))
    assert "not valid JSON" in reasons[1] and "not handled by main_worker" in reasons[0], reasons
