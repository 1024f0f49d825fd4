"""Pydantic models of the three messages (spec §3) and the internal PROCESS_SEGMENT, mirroring schemas/*.json.

The JSON Schema files are the published contract; these models give the workers typed
access.  tests/worker_utils/test_contract_drift.py runs one table of valid and invalid
messages through both and requires identical verdicts, so the two cannot drift apart.
Regexes run on Python's ``re`` engine (as jsonschema does) so pattern semantics agree.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..worker_config import TAXONOMY

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
DATETIME_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                    r"(Z|z|[+-][0-9]{2}:?[0-9]{2})?$")
_U = UUID_PATTERN[1:-1]
RAW_KEY_PATTERN = rf"^[A-Za-z0-9_.-]+/{_U}/{_U}/raw/.+\.mp4$"
SNAPSHOT_URI_PATTERN = (rf"^s3://[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9]/[A-Za-z0-9_.-]+/{_U}/{_U}/snapshots/"
                        r"CTX[0-9]{4,}_CAM[0-9]+_[0-9]{6,}_[0-9]{6,}\.jpg$")


def _json_integer(value: Any) -> Any:
    """JSON Schema's "integer": 3 and 3.0 are integers; True, "3" and 3.5 are not."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
Uuid = Annotated[str, Field(pattern=UUID_PATTERN)]
WorkspaceCode = Annotated[str, Field(pattern=r"^CTX[0-9]{4,}$")]
CameraCode = Annotated[str, Field(pattern=r"^CAM[0-9]+$")]
DateTimeOrNull = Annotated[Optional[str], Field(pattern=DATETIME_PATTERN, max_length=40)]
YoloType = Literal["Car", "SUV", "Van", "LightTruck", "Utility", "Motorcycle", "CarouselBus", "E-Jeepney"]
assert YoloType.__args__ == TAXONOMY, "YoloType must list the taxonomy in order"  # type: ignore[attr-defined]


class _Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, regex_engine="python-re")


class ProcessVideo(_Message):
    event: Literal["PROCESS_VIDEO"]
    video_id: Uuid
    workspace_id: Uuid
    workspace_code: WorkspaceCode
    camera_code: CameraCode
    s3_key_raw: Annotated[str, Field(pattern=RAW_KEY_PATTERN, max_length=1024)]
    frame_stride: Optional[Annotated[JsonInt, Field(ge=1, le=1000)]] = None
    recordedAt: DateTimeOrNull = None


class ProcessVideoDb(_Message):
    event: Literal["PROCESS_VIDEO_DB"]
    video_id: Uuid
    workspace_id: Uuid


class SnapshotReady(_Message):
    event: Literal["SNAPSHOT_READY"]
    video_id: Uuid
    workspace_id: Uuid
    workspace_code: WorkspaceCode
    camera_code: CameraCode
    track_id: Annotated[JsonInt, Field(ge=0)]
    snapshot_s3_key: Annotated[str, Field(pattern=SNAPSHOT_URI_PATTERN, max_length=1100)]
    recordedAt: DateTimeOrNull
    detectedIn: Annotated[JsonInt, Field(ge=0)]
    detectedAt: DateTimeOrNull
    yolo_type: YoloType


class SegmentSpec(_Message):
    """PROCESS_SEGMENT's ``segment``: yolo_worker.segments.Segment's fields (frame indices)."""

    index: Annotated[JsonInt, Field(ge=0, le=99998)]
    count: Annotated[JsonInt, Field(ge=2, le=99999)]
    start_frame: Annotated[JsonInt, Field(ge=0)]
    end_frame: Optional[Annotated[JsonInt, Field(ge=1)]]
    warm_frame: Annotated[JsonInt, Field(ge=0)]
    tail_frame: Optional[Annotated[JsonInt, Field(ge=1)]]
    first_track_id: Annotated[JsonInt, Field(ge=1, le=999999)]


class ProcessSegment(_Message):
    """Internal to yolo_worker: one segment of a long video (schemas/process_segment.json)."""

    event: Literal["PROCESS_SEGMENT"]
    video_id: Uuid
    workspace_id: Uuid
    workspace_code: WorkspaceCode
    camera_code: CameraCode
    s3_key_raw: Annotated[str, Field(pattern=RAW_KEY_PATTERN, max_length=1024)]
    frame_stride: Annotated[JsonInt, Field(ge=1, le=1000)]
    recordedAt: DateTimeOrNull
    segment: SegmentSpec


MODELS: dict[str, type[_Message]] = {
    "process_video": ProcessVideo,
    "process_video_db": ProcessVideoDb,
    "process_segment": ProcessSegment,
    "snapshot_ready": SnapshotReady,
}
VideoTask = Union[ProcessVideo, ProcessVideoDb, ProcessSegment]
