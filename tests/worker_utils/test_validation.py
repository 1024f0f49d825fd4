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


# Issue 8: through the whole validator (schema + semantic checks), every key outside the
# message's own demo_user/<wid>/<vid>/raw/ and every path trick is refused with a reason.
RAW = f"demo_user/{WID}/{VID}/raw/"


@pytest.mark.parametrize("key,needle", [
    (f"demo_user/{OTHER}/{VID}/raw/a.mp4", "keys must stay inside"),  # another workspace
    (f"demo_user/{WID}/{OTHER}/raw/a.mp4", "keys must stay inside"),  # another video
    (f"demo_user/{OTHER}/{OTHER}/raw/a.mp4", "keys must stay inside"),
    (f"demo_user/{WID}/{VID}/snapshots/a.mp4", "schema violation"),  # outside raw/
    (f"demo_user/{WID}/{VID}/a.mp4", "schema violation"),
    (f"other_user/{WID}/{VID}/raw/a.mp4", "does not match demo_user/"),
    (f"s3://cvitx-uploads-dev-jdfirme/{RAW}a.mp4", "schema violation"),  # a URI, not a key
    (f"{RAW}../../{OTHER}/{VID}/raw/a.mp4", "'..'"),
    (f"demo_user/{WID}/{VID}/raw/./a.mp4", "'.'"),
    (f"demo_user/{WID}/{VID}//raw/a.mp4", "schema violation"),
    (f"{RAW}/a.mp4", "empty path segment"),
    (f"{RAW}%2e%2e/a.mp4", "percent-encoding"),
    (f"{RAW}..%2f..%2fa.mp4", "percent-encoding"),
    (f"{RAW}..\\..\\a.mp4", "backslash"),
    (f"{RAW}\uff0e\uff0e\uff0fa.mp4", "look-alike"),
    (f"{RAW}..\u2215a.mp4", "look-alike"),
    (f"{RAW}a\u202egpj.mp4", "invisible"),
    (f"demo_user/{WID.replace('a', 'а', 1)}/{VID}/raw/a.mp4", "schema violation"),  # Cyrillic 'а'
])
def test_raw_keys_outside_their_own_folder_or_with_tricks_are_refused(key, needle):
    with pytest.raises(ValidationFailed) as e:
        validate_video_task({**PROCESS_VIDEO, "s3_key_raw": key}, S)
    assert needle in e.value.reason, e.value.reason


@pytest.mark.parametrize("changes,needle", [
    ({"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"].replace(VID, OTHER)}, "video_id"),
    ({"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"].replace(WID, OTHER)}, "workspace_id"),
    ({"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"].replace("/snapshots/", "/snapshots/../snapshots/")},
     "schema violation"),
    ({"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"].replace("/snapshots/", "/raw/")}, "schema violation"),
    ({"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"].replace("CTX1005_CAM1", "CTX1005_CAM2")}, "camera_code"),
])
def test_snapshot_keys_must_be_the_messages_own(changes, needle):
    with pytest.raises(ValidationFailed) as e:
        validate_snapshot_ready({**SNAPSHOT_READY, **changes}, S)
    assert needle in e.value.reason, e.value.reason
