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


class DependencyDown(TransientError):
    """A dependency (``database``, ``s3``, ``sqs``) cannot be reached at all: an outage, not
    the message's fault.  The poller releases the message, stops receiving and probes the
    dependency until it answers; the message is dead-lettered only when the outage outlasts
    ``outage_budget_s``."""

    code = "dependency_down"

    def __init__(self, dependency: str, reason: str):
        super().__init__(reason)
        self.dependency = dependency


class InferenceFailed(PermanentError):
    """A model raised on this message's input (a shape the start-up check could not catch, a
    runtime error): redelivery would raise again, so it goes to the DLQ at once."""

    code = "inference_error"


def inference_error(model: str, where: str, exc: BaseException) -> WorkerError:
    """The typed error for a model runtime's exception: out of memory is transient (another
    try, or another worker, may have the memory); anything else is this input's, permanent."""
    text = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return TransientError(f"{model} ran out of memory on {where}: {text[:300]}")
    return InferenceFailed(f"{model} inference failed on {where}: {text[:500]}; the model cannot take this "
                           "input: check the model file and this input")


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
