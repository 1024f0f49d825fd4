"""One table of messages through the JSON Schema files and the pydantic models: identical verdicts."""
import copy

import pytest
from pydantic import ValidationError

from video_analysis.worker_utils.messages import MODELS
from video_analysis.worker_utils.validation import schema_errors

from helpers import PROCESS_VIDEO, PROCESS_VIDEO_DB, SNAPSHOT_READY, WID, VID

BASE = {"process_video": PROCESS_VIDEO, "process_video_db": PROCESS_VIDEO_DB, "snapshot_ready": SNAPSHOT_READY}
DROP = object()


def _variant(schema, **changes):
    msg = copy.deepcopy(BASE[schema])
    for k, v in changes.items():
        if v is DROP:
            msg.pop(k, None)
        else:
            msg[k] = v
    return msg


VALID = [
    ("process_video", {}),
    ("process_video", {"frame_stride": 1}),
    ("process_video", {"frame_stride": 3.0}),  # JSON integer
    ("process_video", {"frame_stride": DROP, "recordedAt": DROP}),  # both optional
    ("process_video", {"frame_stride": None}),  # null = the configured default
    ("process_video", {"recordedAt": "2026-11-24T10:00:00Z"}),
    ("process_video", {"recordedAt": "2026-11-24T10:00:00.123+08:00"}),
    ("process_video", {"workspace_code": "CTX123456", "camera_code": "CAM12"}),
    ("process_video", {"s3_key_raw": f"demo_user/{WID}/{VID}/raw/sub/dir/clip 1.mp4"}),
    ("process_video_db", {}),
    ("snapshot_ready", {}),
    ("snapshot_ready", {"track_id": 0, "detectedIn": 0}),
    ("snapshot_ready", {"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"].replace("_002272", "_1234567")}),
    ("snapshot_ready", {"recordedAt": "2026-11-24T10:00:00Z", "detectedAt": "2026-11-24T10:00:02.272Z"}),
    ("snapshot_ready", {"yolo_type": "E-Jeepney"}),
]

INVALID = [
    ("process_video", {"event": "PROCESS_VIDEO_DB"}),
    ("process_video", {"event": DROP}),
    ("process_video", {"video_id": "not-a-uuid"}),
    ("process_video", {"video_id": VID.upper()}),
    ("process_video", {"workspace_id": DROP}),
    ("process_video", {"workspace_code": "CTX12"}),
    ("process_video", {"workspace_code": "ctx1005"}),
    ("process_video", {"camera_code": "CAMERA1"}),
    ("process_video", {"s3_key_raw": f"demo_user/{WID}/{VID}/raw/clip.mov"}),
    ("process_video", {"s3_key_raw": f"s3://cvitx-uploads-dev-jdfirme/demo_user/{WID}/{VID}/raw/a.mp4"}),
    ("process_video", {"s3_key_raw": 5}),
    ("process_video", {"frame_stride": 0}),
    ("process_video", {"frame_stride": -3}),
    ("process_video", {"frame_stride": 2.5}),
    ("process_video", {"frame_stride": "3"}),
    ("process_video", {"frame_stride": True}),
    ("process_video", {"recordedAt": "yesterday"}),
    ("process_video", {"recordedAt": 1732400000}),
    ("process_video", {"extra": 1}),
    ("process_video_db", {"video_id": DROP}),
    ("process_video_db", {"s3_key_raw": PROCESS_VIDEO["s3_key_raw"]}),
    ("process_video_db", {"workspace_id": "x"}),
    ("snapshot_ready", {"track_id": -1}),
    ("snapshot_ready", {"track_id": "305"}),
    ("snapshot_ready", {"track_id": 3.5}),
    ("snapshot_ready", {"track_id": False}),
    ("snapshot_ready", {"detectedIn": -5}),
    ("snapshot_ready", {"detectedIn": DROP}),
    ("snapshot_ready", {"detectedAt": DROP}),
    ("snapshot_ready", {"recordedAt": DROP}),
    ("snapshot_ready", {"yolo_type": "Truck"}),
    ("snapshot_ready", {"yolo_type": "suv"}),
    ("snapshot_ready", {"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"].replace(".jpg", ".png")}),
    ("snapshot_ready", {"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"].replace("_002272", "_2272")}),
    ("snapshot_ready", {"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"][5:]}),
    ("snapshot_ready", {"snapshot_s3_key": SNAPSHOT_READY["snapshot_s3_key"].replace("s3://", "https://")}),
    ("snapshot_ready", {"event": "SNAPSHOT"}),
]


def _model_accepts(schema, msg) -> bool:
    try:
        MODELS[schema].model_validate(msg)
        return True
    except ValidationError:
        return False


@pytest.mark.parametrize("schema,changes", VALID)
def test_valid_messages_pass_both(schema, changes):
    msg = _variant(schema, **changes)
    assert schema_errors(schema, msg) == []
    assert _model_accepts(schema, msg)


@pytest.mark.parametrize("schema,changes", INVALID)
def test_invalid_messages_fail_both(schema, changes):
    msg = _variant(schema, **changes)
    assert schema_errors(schema, msg) != []
    assert not _model_accepts(schema, msg)


def test_table_is_big_enough():
    assert len(INVALID) >= 20 and len(VALID) >= 10


def test_not_an_object():
    for schema in BASE:
        assert schema_errors(schema, []) and not _model_accepts(schema, [])
