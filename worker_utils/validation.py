"""Message validation: JSON parse -> JSON Schema -> pydantic model -> semantic checks.

The schema files decide the shape; :func:`check_process_video` and
:func:`check_snapshot_ready` hold the rules a schema cannot express (the key's ids equal the
message's, the URI's bucket and prefix are the configured ones, timestamps parse).
Every failure raises :class:`ValidationFailed` with a one-line reason that says what to fix.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ..worker_config import PACKAGE_DIR, Settings
from .errors import ValidationFailed
from .keys import parse_raw_key, parse_snapshot_uri
from .messages import MODELS, ProcessSegment, ProcessVideo, ProcessVideoDb, SnapshotReady
from .timeutil import detected_at, parse_iso8601

SCHEMA_DIR: Path = PACKAGE_DIR / "schemas"
EVENT_SCHEMAS = {"PROCESS_VIDEO": "process_video", "PROCESS_VIDEO_DB": "process_video_db",
                 "SNAPSHOT_READY": "snapshot_ready", "PROCESS_SEGMENT": "process_segment"}
EVENT_TITLE = {v: k for k, v in EVENT_SCHEMAS.items()}


@lru_cache(maxsize=None)
def schema_validator(name: str) -> Draft202012Validator:
    """A compiled validator for ``schemas/<name>.json`` (the schema itself is checked first)."""
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def parse_body(body: str | bytes) -> dict[str, Any]:
    """The message body as a JSON object, or ValidationFailed saying why not."""
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"message body is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(obj, dict):
        raise ValidationFailed(f"message body must be a JSON object, got {type(obj).__name__}")
    return obj


def schema_errors(name: str, obj: Any) -> list[str]:
    """Human-readable schema violations of ``obj`` against ``schemas/<name>.json`` (empty = valid)."""
    v = schema_validator(name)
    out = []
    for err in sorted(v.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(message)"
        out.append(f"{where}: {err.message}")
    return out


def validate_schema(name: str, obj: Any) -> None:
    """Raise ValidationFailed with the most relevant schema violation."""
    errors = list(schema_validator(name).iter_errors(obj))
    if errors:
        err = best_match(errors)
        where = "/".join(str(p) for p in err.absolute_path) or "(message)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValidationFailed(f"{EVENT_TITLE.get(name, name)} schema violation at {where}: {err.message}{more}; "
                               f"see schemas/{name}.json")


def check_process_video(msg: ProcessVideo | ProcessSegment, settings: Settings) -> None:
    """Semantic rules of PROCESS_VIDEO: the raw key lives under the message's own workspace/video."""
    try:
        raw = parse_raw_key(msg.s3_key_raw, settings.user_prefix)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    if raw.workspace_id != msg.workspace_id or raw.video_id != msg.video_id:
        raise ValidationFailed(
            f"s3_key_raw {msg.s3_key_raw!r} belongs to workspace {raw.workspace_id} / video {raw.video_id}, "
            f"but the message is for workspace {msg.workspace_id} / video {msg.video_id}; keys must stay inside "
            "their own workspace/video"
        )
    _check_datetime("recordedAt", msg.recordedAt)


def check_snapshot_ready(msg: SnapshotReady, settings: Settings) -> None:
    """Semantic rules of SNAPSHOT_READY: configured bucket/prefix, ids and name agree with the body."""
    try:
        ref = parse_snapshot_uri(msg.snapshot_s3_key, settings.bucket, settings.user_prefix)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    mismatches = [
        f"{field} {body!r} != {name!r} in the key"
        for field, body, name in (
            ("workspace_id", msg.workspace_id, ref.workspace_id),
            ("video_id", msg.video_id, ref.video_id),
            ("workspace_code", msg.workspace_code, ref.workspace_code),
            ("camera_code", msg.camera_code, ref.camera_code),
            ("track_id", msg.track_id, ref.track_id),
            ("detectedIn", msg.detectedIn, ref.offset_ms),
        )
        if body != name
    ]
    if mismatches:
        raise ValidationFailed("snapshot_s3_key disagrees with the message: " + "; ".join(mismatches))
    _check_datetime("recordedAt", msg.recordedAt)
    _check_datetime("detectedAt", msg.detectedAt)
    expected = detected_at(msg.recordedAt, msg.detectedIn)
    if (msg.detectedAt is None) != (expected is None) or (
        expected is not None and parse_iso8601(msg.detectedAt) != parse_iso8601(expected)
    ):
        raise ValidationFailed(f"detectedAt {msg.detectedAt!r} must equal recordedAt + detectedIn ({expected!r})")


def _check_datetime(field: str, value: str | None) -> None:
    if value is None:
        return
    try:
        parse_iso8601(value)
    except ValueError as exc:
        raise ValidationFailed(f"{field} {value!r} is not a valid ISO-8601 date-time ({exc})") from None


def validate_video_task(body: str | bytes | dict, settings: Settings) -> ProcessVideo | ProcessVideoDb | ProcessSegment:
    """A PROCESS_VIDEO or PROCESS_VIDEO_DB message, or the worker's own PROCESS_SEGMENT, fully validated."""
    obj = body if isinstance(body, dict) else parse_body(body)
    event = obj.get("event")
    if event not in ("PROCESS_VIDEO", "PROCESS_VIDEO_DB", "PROCESS_SEGMENT"):
        raise ValidationFailed(
            f"event {event!r} is not handled by yolo_worker; expected PROCESS_VIDEO or PROCESS_VIDEO_DB"
        )
    name = EVENT_SCHEMAS[event]
    validate_schema(name, obj)
    msg = MODELS[name].model_validate(obj)
    if isinstance(msg, (ProcessVideo, ProcessSegment)):
        check_process_video(msg, settings)  # the same key rules: a segment names its video's own raw key
    if isinstance(msg, ProcessSegment):
        check_segment(msg)
    return msg  # type: ignore[return-value]


def check_segment(msg: ProcessSegment) -> None:
    """Semantic rules of PROCESS_SEGMENT's frames: warm-up <= start < end <= tail, an index inside
    the count, and ids that fit the spec's 6-digit snapshot names."""
    g = msg.segment
    problems = []
    if g.index >= g.count:
        problems.append(f"index {g.index} is not below count {g.count}")
    if g.warm_frame > g.start_frame:
        problems.append(f"warm_frame {g.warm_frame} is after start_frame {g.start_frame}")
    if g.end_frame is not None and g.end_frame <= g.start_frame:
        problems.append(f"end_frame {g.end_frame} is not after start_frame {g.start_frame}")
    if (g.end_frame is None) != (g.tail_frame is None) or (g.end_frame is not None and g.tail_frame is not None
                                                            and g.tail_frame < g.end_frame):
        problems.append(f"tail_frame {g.tail_frame} does not follow end_frame {g.end_frame}")
    if (g.end_frame is None) != (g.index == g.count - 1):
        problems.append("only the last segment runs to the end of the video (end_frame null)")
    if problems:
        raise ValidationFailed("PROCESS_SEGMENT's segment is inconsistent: " + "; ".join(problems)
                               + "; segments are planned by the worker itself, do not hand-edit them")


def validate_snapshot_ready(body: str | bytes | dict, settings: Settings) -> SnapshotReady:
    """A SNAPSHOT_READY message, fully validated (used on send and on receive)."""
    obj = body if isinstance(body, dict) else parse_body(body)
    if obj.get("event") != "SNAPSHOT_READY":
        raise ValidationFailed(f"event {obj.get('event')!r} is not handled by main_worker; expected SNAPSHOT_READY")
    validate_schema("snapshot_ready", obj)
    msg = SnapshotReady.model_validate(obj)
    check_snapshot_ready(msg, settings)
    return msg
