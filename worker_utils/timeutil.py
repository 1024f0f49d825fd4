"""Time helpers: ISO-8601 parsing and the detectedAt rule (spec §3.2)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional


def parse_iso8601(value: str) -> datetime:
    """Parse an ISO-8601 timestamp; a naive one is taken as UTC. ``Z`` is accepted."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def format_iso8601(dt: datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: ``2026-11-24T10:00:02.272Z``."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def detected_at(recorded_at: Optional[str], detected_in_ms: int) -> Optional[str]:
    """``recordedAt + detectedIn`` as ISO-8601 when recordedAt is known, else None."""
    if recorded_at is None:
        return None
    return format_iso8601(parse_iso8601(recorded_at) + timedelta(milliseconds=int(detected_in_ms)))
