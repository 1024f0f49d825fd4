"""boto3 clients from the settings, and translation of botocore failures into typed errors."""
from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from ..worker_config import Settings
from .errors import DependencyDown, MissingObject, PermanentError, TransientError, WorkerError

_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
_TRANSIENT = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "SlowDown",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure", "ServiceUnavailable",
    "503", "500", "RequestLimitExceeded", "KMS.ThrottlingException",
    "AWS.SimpleQueueService.ServiceUnavailable",
}


def make_client(service: str, settings: Settings) -> Any:
    """A boto3 client for ``s3`` or ``sqs`` in the configured region and endpoint.

    Retries use botocore's standard mode (3 attempts, jittered backoff) for throttling and
    5xx; what still fails is translated by :func:`translate_aws_error`.  The read timeout is
    longer than the SQS long poll so an idle poll never times out.
    """
    endpoint = settings.s3_endpoint_url if service == "s3" else settings.sqs_endpoint_url
    cfg = Config(
        region_name=settings.region,
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=max(30, settings.receive_wait_s + 15),
        s3={"addressing_style": "path"} if endpoint else None,
    )
    return boto3.session.Session().client(service, endpoint_url=endpoint, config=cfg)


def translate_aws_error(exc: BaseException, what: str) -> WorkerError:
    """The typed error for a botocore failure of ``what`` (e.g. "S3 get s3://b/k")."""
    if isinstance(exc, WorkerError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        msg = err.get("Message") or code
        if code in _MISSING:
            return MissingObject(f"{what}: object does not exist ({code}); check the key and that the upload finished")
        if code in _TRANSIENT or status >= 500 or status == 429:
            return TransientError(f"{what}: AWS is unavailable or throttling ({code}: {msg})")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return PermanentError(
                f"{what}: access denied ({code}); the worker's IAM policy does not allow this key or the "
                "credentials are wrong (see deploy/iam/)", code="access_denied")
        return PermanentError(f"{what}: {code}: {msg}", code="aws_client_error")
    if isinstance(exc, (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)):
        # No answer at all: an outage of the service (``what`` starts with "S3 " or "SQS ").
        service = "sqs" if what.startswith("SQS") else "s3"
        return DependencyDown(service, f"{what}: endpoint unreachable ({type(exc).__name__})")
    if isinstance(exc, NoCredentialsError):
        return TransientError(f"{what}: no AWS credentials found; set them (env, profile or instance role)")
    if isinstance(exc, (BotoCoreError, OSError)):
        return TransientError(f"{what}: {type(exc).__name__}: {exc}")
    return TransientError(f"{what}: unexpected {type(exc).__name__}: {exc}")
