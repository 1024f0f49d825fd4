"""JSON-lines logging with per-message context and secret redaction.

Every record is one JSON object on stderr (journald keeps it as one line)::

    {"ts": "...", "level": "INFO", "logger": "...", "msg": "...", "message_id": "...",
     "video_id": "...", "stage": "detect", "duration_ms": 12.3, ...}

``message_id``/``video_id`` come from :func:`log_context` (the poller and handlers set
them); other fields from ``extra={...}``.  Values that look like credentials or presigned
URLs are redacted before they are written.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from typing import Any, Iterator

_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("cvitx_log_context", default={})

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}

# Presigned-URL query parameters and AWS secrets never reach a log line.
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a presigned URL keeps its path (which object) and loses its whole query (who, when, signature)
    (re.compile(r"(?i)(\bhttps?://[^\s\"'?]+)\?[^\s\"']*"
                r"(?:X-Amz-(?:Signature|Credential|Algorithm)|AWSAccessKeyId=|Signature=)[^\s\"']*"), r"\1?[REDACTED]"),
    # an Authorization header / botocore's signing debug lines
    (re.compile(r"AWS4-HMAC-SHA256[ \t]+Credential=[^\"'\n]*"), "[REDACTED]"),
    (re.compile(r"(?i)(\bSignature:(?:\s|\\n)*)[0-9a-f]{64}\b"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s\"']+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)((?:Signature|AWSAccessKeyId|x-amz-security-token)=)[^&\s\"']+"), r"\1[REDACTED]"),
    # a session token in a header dict (b'...'), a signing string ("token:value") or a query
    (re.compile(r"(?i)(x-amz-security-token\\?['\"]?\s*[:=]\s*b?\\?['\"]?)[^&\s\"'\\,]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(aws_secret_access_key|secret_access_key|aws_session_token|password)(\s*[=:]\s*)[^\s,;\"']+"),
     r"\1\2[REDACTED]"),
    (re.compile(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@"), r"\1[REDACTED]@"),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), r"\1[REDACTED]"),
)


def redact(text: str) -> str:
    """``text`` with credentials, DB passwords and presigned-URL signatures replaced."""
    for pattern, repl in _REDACTIONS:
        text = pattern.sub(repl, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_CONTEXT.get())
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(out, default=str, ensure_ascii=False))


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    """Route the root logger to JSON lines on ``stream`` (stderr); idempotent."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_cvitx", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._cvitx = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries chat at INFO/DEBUG about every HTTP request; keep their warnings only.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "ultralytics", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (message_id, video_id ...) to every record logged inside the block."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


@contextlib.contextmanager
def log_stage(logger: logging.Logger, stage: str, **fields: Any) -> Iterator[None]:
    """Log ``stage`` done with its duration in ms (or failed, with the duration so far)."""
    t0 = time.perf_counter()
    try:
        yield
    except BaseException:
        logger.info("stage failed", extra={"stage": stage, "duration_ms": round((time.perf_counter() - t0) * 1e3, 1), **fields})
        raise
    logger.info("stage done", extra={"stage": stage, "duration_ms": round((time.perf_counter() - t0) * 1e3, 1), **fields})
