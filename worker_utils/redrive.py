"""Move messages from a DLQ back to its source queue once the root cause is fixed.

On AWS this starts an SQS message-move task (StartMessageMoveTask), which SQS runs
server-side.  Where that API is missing (moto, older endpoints) it falls back to
receive -> send -> delete, one message at a time, so a crash mid-way can duplicate a message
but never lose one (the workers are idempotent).  The DLQ's ``cvitx_*`` failure attributes are
dropped: a redriven message starts fresh.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from botocore.exceptions import ClientError

from .aws import translate_aws_error
from .sqs_queue import SqsQueues

log = logging.getLogger(__name__)
_UNSUPPORTED = {"UnsupportedOperation", "InvalidAction", "NotImplemented", "UnknownOperationException",
                "InvalidParameterValue", "AWS.SimpleQueueService.UnsupportedOperation"}


@dataclass
class RedriveResult:
    method: str  # "move-task" or "copy"
    moved: int  # messages moved by the copy fallback; the move task reports asynchronously
    task_handle: Optional[str] = None


def redrive(sqs: SqsQueues, dlq: str, source: str, max_messages: Optional[int] = None,
            use_move_task: bool = True) -> RedriveResult:
    if use_move_task:
        try:
            src_arn = sqs.attributes(dlq)["QueueArn"]
            dst_arn = sqs.attributes(source)["QueueArn"]
            kwargs = {"SourceArn": src_arn, "DestinationArn": dst_arn}
            if max_messages:
                kwargs["MaxNumberOfMessagesPerSecond"] = min(500, max_messages)
            r = sqs.client.start_message_move_task(**kwargs)
            log.info("message move task started", extra={"dlq": dlq, "queue": source})
            return RedriveResult("move-task", 0, r.get("TaskHandle"))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # A non-AWS endpoint (moto, a local emulator) answers an unimplemented action with
            # a 500; on AWS itself only "unsupported" codes fall back, a 500 stays an error.
            emulator = sqs.settings.sqs_endpoint_url is not None
            if code not in _UNSUPPORTED and status not in (400, 404, 501) and not emulator:
                raise translate_aws_error(exc, f"SQS StartMessageMoveTask {dlq} -> {source}") from exc
            log.info("StartMessageMoveTask unavailable here; copying messages", extra={"sqs_error": code})
        except (AttributeError, NotImplementedError):
            pass
    moved = 0
    while max_messages is None or moved < max_messages:
        batch = sqs.receive(dlq, min(10, (max_messages - moved) if max_messages else 10), wait_s=1, visibility_s=60)
        if not batch:
            break
        for m in batch:
            sqs.send_raw(source, m.body)
            sqs.delete(dlq, m.receipt_handle)
            moved += 1
    return RedriveResult("copy", moved)
