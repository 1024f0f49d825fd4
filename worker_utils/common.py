"""The spec's "one shared module": logging, validators, S3/SQS/DB clients, imaging, key builder,
time utils.  Each lives in a focused module beside this one; this facade re-exports them so
``from video_analysis.worker_utils.common import ...`` keeps working as the spec describes.
"""
from __future__ import annotations

from .db import Database, apply_migrations
from .errors import BadMedia, Cancelled, MissingObject, PermanentError, TransientError, ValidationFailed, WorkerError
from .imaging import (clamp_box, crop_with_margin, decode_jpeg, encode_jpeg, letterbox, sharpness,
                      snapshot_from_frame)
from .keys import (build_raw_key, build_snapshot_key, build_snapshot_uri, parse_raw_key, parse_snapshot_uri,
                   raw_key_regex, snapshot_uri_regex)
from .logs import log_context, log_stage, redact, setup_logging
from .poller import HandlerContext, Poller, one_at_a_time
from .s3_store import S3Store
from .sqs_queue import ReceivedMessage, SqsQueues
from .timeutil import detected_at, format_iso8601, parse_iso8601
from .validation import validate_snapshot_ready, validate_video_task

__all__ = [
    "Database", "apply_migrations",
    "BadMedia", "Cancelled", "MissingObject", "PermanentError", "TransientError", "ValidationFailed", "WorkerError",
    "clamp_box", "crop_with_margin", "decode_jpeg", "encode_jpeg", "letterbox", "sharpness", "snapshot_from_frame",
    "build_raw_key", "build_snapshot_key", "build_snapshot_uri", "parse_raw_key", "parse_snapshot_uri",
    "raw_key_regex", "snapshot_uri_regex",
    "log_context", "log_stage", "redact", "setup_logging",
    "HandlerContext", "Poller", "one_at_a_time",
    "S3Store", "ReceivedMessage", "SqsQueues",
    "detected_at", "format_iso8601", "parse_iso8601",
    "validate_snapshot_ready", "validate_video_task",
]
