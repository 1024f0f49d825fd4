"""``setup``: bucket, queues + DLQs with the spec's attributes and redrive, DB migrations.

Idempotent and the same against AWS and the local stack: a second run changes nothing and
says so.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from ..worker_config import Settings
from .aws import translate_aws_error
from .db import Database, apply_migrations
from .s3_store import S3Store
from .sqs_queue import SqsQueues

log = logging.getLogger(__name__)


@dataclass
class SetupReport:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def note(self, what: str, changed: bool) -> None:
        (self.changed if changed else self.unchanged).append(what)


def queue_attributes(settings: Settings, dlq_arn: str | None) -> dict[str, str]:
    """Spec §6 attributes; the DLQ (``dlq_arn`` None) keeps messages as long as its source queue."""
    attrs = {
        "VisibilityTimeout": str(settings.visibility_timeout_s),
        "MessageRetentionPeriod": str(settings.message_retention_s),
        "ReceiveMessageWaitTimeSeconds": str(settings.receive_wait_s),
    }
    if dlq_arn:
        attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn,
                                             "maxReceiveCount": str(settings.max_receive_count)})
    return attrs


def ensure_bucket(s3: S3Store) -> bool:
    c = s3.client
    try:
        c.head_bucket(Bucket=s3.bucket)
        return False
    except Exception as exc:  # noqa: BLE001 - 404 means create; anything else is reported
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise translate_aws_error(exc, f"S3 head bucket {s3.bucket}") from exc
    try:
        kwargs = {"Bucket": s3.bucket}
        if s3.settings.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": s3.settings.region}
        c.create_bucket(**kwargs)
    except Exception as exc:
        raise translate_aws_error(exc, f"S3 create bucket {s3.bucket}") from exc
    return True


def run_setup(settings: Settings, *, s3: S3Store | None = None, sqs: SqsQueues | None = None,
              db: Database | None = None, skip_db: bool = False) -> SetupReport:
    s3 = s3 or S3Store(settings)
    sqs = sqs or SqsQueues(settings)
    report = SetupReport()
    report.note(f"bucket {settings.bucket}", ensure_bucket(s3))
    for queue, dlq in ((settings.video_queue, settings.video_dlq), (settings.snapshot_queue, settings.snapshot_dlq)):
        dlq_url, changed = sqs.ensure_queue(dlq, queue_attributes(settings, None))
        report.note(f"queue {dlq}", changed)
        arn = sqs.attributes(dlq)["QueueArn"]
        _, changed = sqs.ensure_queue(queue, queue_attributes(settings, arn))
        report.note(f"queue {queue}", changed)
    if not skip_db:
        db = db or Database(settings)
        applied = apply_migrations(db)
        report.note("database migrations" + (f" {', '.join(applied)}" if applied else ""), bool(applied))
    return report
