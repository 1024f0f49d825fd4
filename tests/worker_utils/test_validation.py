"""Semantic checks the schema cannot express, and the one-line reasons they give."""
import json

import pytest

from video_analysis.worker_config import Settings
from video_analysis.worker_utils.errors import ValidationFailed
from video_analysis.worker_utils.messages import ProcessVideo, ProcessVideoDb, SnapshotReady
from video_analysis.worker_utils.validation import validate_snapshot_ready, validate_video_task

from helpers import PROCESS_VIDEO, SNAPSHOT_READY, WID, VID

S = Settings()
OTHER = "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"


def test_spec_examples_validate_fully():
    assert isinstance(validate_video_task(json.dumps(PROCESS_VIDEO), S), ProcessVideo)
    assert isinstance(validate_video_task({"event": "PROCESS_VIDEO_DB", "video_id": VID, "workspace_id": WID}, S),
                      ProcessVideoDb)
    assert isinstance(validate_snapshot_ready(json.dumps(SNAPSHOT_READY), S), SnapshotReady)


@pytest.mark.parametrize("changes,needle", [
    ({"s3_key_raw": f"demo_user/{OTHER}/{VID}/raw/a.mp4"}, "keys must stay inside their own workspace/video"),
    ({"video_id": OTHER}, "keys must stay inside"),
    ({"s3_key_raw": f"other_user/{WID}/{VID}/raw/a.mp4"}, "does not match demo_user/"),
    ({"s3_key_raw": f"demo_user/{WID}/{VID}/raw/../x.mp4"}, "'..'"),
    ({"s3_key_raw": f"demo_user/{WID}/{VID}/raw/a%2e.mp4"}, "percent-encoding"),
    ({"recordedAt": "2026-13-45T10:00:00Z"}, "not a valid ISO-8601"),
    ({"frame_stride": 0}, "frame_stride"),
    ({"event": "SNAPSHOT_READY"}, "not handled by yolo_worker"),
])
def test_process_video_semantic_failures(changes, needle):
    with pytest.raises(ValidationFailed) as e:
        validate_video_task({**PROCESS_VIDEO, **changes}, S)
    assert needle in e.value.reason


@pytest.mark.parametrize("changes,needle", [
    ({"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"].replace("cvitx-uploads-dev-jdfirme", "evil-bucket")},
     "expected the configured bucket"),
    ({"workspace_id": OTHER}, "workspace_id"),
    ({"track_id": 306}, "track_id 306 != 305"),
    ({"detectedIn": 2273}, "detectedIn"),
    ({"camera_code": "CAM2"}, "camera_code"),
    ({"recordedAt": "2026-11-24T10:00:00Z"}, "detectedAt None must equal recordedAt + detectedIn"),
    ({"recordedAt": "2026-11-24T10:00:00Z", "detectedAt": "2026-11-24T10:00:02Z"}, "must equal"),
])
def test_snapshot_ready_semantic_failures(changes, needle):
    with pytest.raises(ValidationFailed) as e:
        validate_snapshot_ready({**SNAPSHOT_READY, **changes}, S)
    assert needle in e.value.reason


def test_detected_at_consistent_is_accepted():
    msg = {**SNAPSHOT_READY, "recordedAt": "2026-11-24T10:00:00Z", "detectedAt": "2026-11-24T10:00:02.272Z"}
    assert validate_snapshot_ready(msg, S).detectedAt == "2026-11-24T10:00:02.272Z"


def test_configured_bucket_is_the_one_checked():
    s = S.replace(bucket="evil-bucket")
    uri = SNAPSHOT_READY["snapshot_s3_key"].replace("cvitx-uploads-dev-jdfirme", "evil-bucket")
    assert validate_snapshot_ready({**SNAPSHOT_READY, "snapshot_s3_key": uri}, s)


@pytest.mark.parametrize("body,needle", [
    ("{nope", "not valid JSON"), ("[1, 2]", "must be a JSON object"), (b"\xff\xfe", "not valid JSON"),
])
def test_bodies_that_are_not_objects(body, needle):
    with pytest.raises(ValidationFailed, match=needle):
        validate_video_task(body, S)
