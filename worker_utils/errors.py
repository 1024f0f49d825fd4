"""Typed errors: the poller decides retry vs DLQ from the type alone.

Adapters translate library exceptions (botocore, psycopg2, OpenCV ...) into these two
families at the edge, so worker code never has to know which library failed.
"""
from __future__ import annotations


class WorkerError(Exception):
    """Base of the project's errors. ``reason`` is one line for logs, the DLQ and the DB."""

    code = "error"

    def __init__(self, reason: str, *, code: str | None = None):
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.reason


class PermanentError(WorkerError):
    """Redelivery cannot help (bad payload, missing object, corrupt video ...): DLQ at once."""

    code = "permanent"


class TransientError(WorkerError):
    """Might work later (network, throttling, DB restart): leave the message for redelivery."""

    code = "transient"


class ValidationFailed(PermanentError):
    """The message does not satisfy its contract."""

    code = "invalid_message"


class MissingObject(PermanentError):
    """The S3 object a message names does not exist."""

    code = "missing_object"


class BadMedia(PermanentError):
    """The object exists but is not a usable video or snapshot."""

    code = "bad_media"


class Cancelled(Exception):
    """The handler stopped early because the worker is shutting down; release the message."""
