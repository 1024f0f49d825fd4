"""Move dead letters back to their source queue once the cause is fixed, and end.

A run moves what was in the DLQ when it started, message by message (receive -> send to the
source queue -> delete from the DLQ), and ends when the DLQ has nothing left it has not
looked at, or after ``max_messages`` moves.  The guarantees, and where each comes from:

* **It ends.** A message the workers dead-letter again while the run goes on is a new DLQ
  message: it was sent after the run started, and its ``cvitx_original_message_id`` is one of
  the ids this run sent.  Either makes it stay where it is.
* **Permanent faults stay.** A message whose ``cvitx_error_code`` is not a retryable one
  (:data:`RETRYABLE_CODES`) stays unless its code is named (``--code``): a corrupt video moved
  back only fails again.
* **No endless cycling across runs.** Each move adds one to the message attribute
  :data:`REDRIVE_COUNT_ATTR` on the copy sent to the source queue (the poller carries it onto
  the DLQ copy when the message fails again); a message moved ``redrive_limit`` times stays.
* **Nothing duplicated, nothing lost.** One message at a time, send before delete; a stop
  request (Ctrl-C) is only honoured between messages.  Messages received but not moved are
  released (visibility 0) before the run returns.

The decisions are pure (:func:`dead_letter`, :func:`decide`); :func:`redrive` is the adapter.

``use_move_task`` hands the whole DLQ to SQS's StartMessageMoveTask instead (AWS only): it
moves every message, permanent ones included, cannot count or filter and keeps no redrive
count, so it is opt-in and refuses those options.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

from botocore.exceptions import ClientError

from .aws import translate_aws_error
from .errors import PermanentError, WorkerError
from .sqs_queue import ReceivedMessage, SqsQueues

log = logging.getLogger(__name__)

REDRIVE_COUNT_ATTR = "cvitx_redrive_count"
DEFAULT_REDRIVE_LIMIT = 3
# cvitx_error_code values that redelivery may cure: TransientError, an outage that outlasted its
# budget, a handler that hung, an unexpected exception in a handler, the base WorkerError.  A
# message without the attribute (SQS's own redrive policy moved it) counts as retryable too.
# Every other code is a permanent fault.
RETRYABLE_CODES = frozenset({"transient", "dependency_down", "stalled", "unexpected", "error"})
HOLD_S = 300  # a received message not moved stays hidden this long, so one run sees it once
_UNSUPPORTED = {"UnsupportedOperation", "InvalidAction", "NotImplemented", "UnknownOperationException",
                "InvalidParameterValue", "AWS.SimpleQueueService.UnsupportedOperation"}


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ message as the poller left it (its ``cvitx_*`` attributes)."""

    message_id: str
    body: str
    code: Optional[str]  # cvitx_error_code; None when SQS's own redrive policy moved it
    reason: Optional[str]  # cvitx_error_reason
    receive_count: Optional[int]  # cvitx_receive_count: receives by the workers before it was dead-lettered
    redrive_count: int  # cvitx_redrive_count: moves back by earlier redrives
    original_message_id: Optional[str]  # the source-queue message it was a copy of
    sent_ms: Optional[int]  # when it entered the DLQ (SentTimestamp, ms since the epoch)


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def dead_letter(message_id: str, body: str, attributes: Mapping[str, str],
                system_attributes: Mapping[str, str]) -> DeadLetter:
    """A :class:`DeadLetter` from a received message's string attributes and system attributes (pure)."""
    return DeadLetter(
        message_id=message_id, body=body, code=attributes.get("cvitx_error_code"),
        reason=attributes.get("cvitx_error_reason"), receive_count=_int(attributes.get("cvitx_receive_count")),
        redrive_count=_int(attributes.get(REDRIVE_COUNT_ATTR)) or 0,
        original_message_id=attributes.get("cvitx_original_message_id"),
        sent_ms=_int(system_attributes.get("SentTimestamp")))


@dataclass(frozen=True)
class RedrivePolicy:
    """Which dead letters a run moves.  ``codes``: only these (permanent ones included);
    ``exclude_codes``: never these; ``redrive_limit``: moves back per message, at most."""

    codes: frozenset[str] = frozenset()
    exclude_codes: frozenset[str] = frozenset()
    redrive_limit: int = DEFAULT_REDRIVE_LIMIT


def decide(letter: DeadLetter, policy: RedrivePolicy) -> Optional[str]:
    """None when ``letter`` should move, else why it stays (pure)."""
    code = letter.code or "-"
    if letter.redrive_count >= policy.redrive_limit:
        return (f"redriven {letter.redrive_count} times already (limit {policy.redrive_limit}); it keeps failing: "
                "fix the cause, or raise --redrive-limit")
    if code in policy.exclude_codes:
        return f"code {code} excluded (--exclude-code)"
    if policy.codes:
        return None if code in policy.codes else f"code {code} not named (--code {' --code '.join(sorted(policy.codes))})"
    if letter.code is not None and letter.code not in RETRYABLE_CODES:
        return f"permanent fault ({code}): it would fail again; name it with --code {code} once the cause is fixed"
    return None


def moved_during_run(letter: DeadLetter, started_ms: int, sent_ids: set[str]) -> bool:
    """True for a dead letter that was not in the DLQ when the run started: one this run moved
    that failed again, or any message dead-lettered since (pure)."""
    return (letter.original_message_id in sent_ids) or (letter.sent_ms is not None and letter.sent_ms >= started_ms)


@dataclass(frozen=True)
class RedriveItem:
    """What a run did with one dead letter: ``action`` is moved, would move (dry run) or kept."""

    letter: DeadLetter
    action: str
    why: str = ""


@dataclass
class RedriveResult:
    method: str  # "copy" or "move-task"
    moved: int  # messages moved (dry run: that would move); the move task reports asynchronously
    task_handle: Optional[str] = None
    items: list[RedriveItem] = field(default_factory=list)
    stopped: bool = False  # a stop request ended the run early

    @property
    def kept(self) -> list[RedriveItem]:
        return [i for i in self.items if i.action == "kept"]


def _letter(m: ReceivedMessage) -> DeadLetter:
    return dead_letter(m.message_id, m.body, m.string_attributes, m.attributes)


def redrive(sqs: SqsQueues, dlq: str, source: str, max_messages: Optional[int] = None,
            use_move_task: bool = False, *, policy: RedrivePolicy = RedrivePolicy(), dry_run: bool = False,
            stop: Optional[threading.Event] = None,
            on_item: Callable[[RedriveItem], None] = lambda item: None) -> RedriveResult:
    """Move ``dlq``'s messages back to ``source`` as the module docstring says; ``on_item`` sees
    each decision as it is made.  ``stop`` set: finish the message in hand, release the rest, return."""
    if use_move_task:
        try:
            src_arn = sqs.attributes(dlq)["QueueArn"]
            dst_arn = sqs.attributes(source)["QueueArn"]
            r = sqs.client.start_message_move_task(SourceArn=src_arn, DestinationArn=dst_arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # A non-AWS endpoint (moto, a local emulator) answers an unimplemented action with a 500.
            if code in _UNSUPPORTED or status in (400, 404, 501) or sqs.settings.sqs_endpoint_url is not None:
                raise PermanentError(f"SQS StartMessageMoveTask is not available at this endpoint ({code or status}); "
                                     "run redrive without --move-task (message by message)",
                                     code="unsupported") from exc
            raise translate_aws_error(exc, f"SQS StartMessageMoveTask {dlq} -> {source}") from exc
        log.info("message move task started", extra={"dlq": dlq, "queue": source})
        return RedriveResult("move-task", 0, r.get("TaskHandle"))

    stop = stop or threading.Event()
    started_ms = int(time.time() * 1000)
    result = RedriveResult("copy", 0)
    held: dict[str, str] = {}  # DLQ message id -> receipt handle: received, not moved, released at the end
    seen: set[str] = set()
    sent_ids: set[str] = set()

    def full() -> bool:
        return max_messages is not None and result.moved >= max_messages

    def record(item: RedriveItem) -> None:
        result.items.append(item)
        on_item(item)

    try:
        while not stop.is_set() and not full():
            batch = sqs.receive(dlq, 10, wait_s=1, visibility_s=HOLD_S)
            if not batch:
                break
            for m in batch:
                if stop.is_set() or full() or m.message_id in seen:
                    held[m.message_id] = m.receipt_handle  # a message seen before came back: hold it again
                    continue
                seen.add(m.message_id)
                letter = _letter(m)
                why = ("dead-lettered again during this run" if moved_during_run(letter, started_ms, sent_ids)
                       else decide(letter, policy))
                if why is not None or dry_run:
                    held[m.message_id] = m.receipt_handle
                    if why is None:
                        result.moved += 1
                    record(RedriveItem(letter, "kept" if why else "would move", why or ""))
                    continue
                sent_ids.add(sqs.send_raw(source, m.body, {REDRIVE_COUNT_ATTR: str(letter.redrive_count + 1)}))
                try:
                    sqs.delete(dlq, m.receipt_handle)
                except WorkerError as exc:
                    raise WorkerError(f"message {m.message_id} was sent back to {source} but could not be deleted "
                                      f"from {dlq} ({exc.reason}): it is in both queues now (the workers are "
                                      "idempotent, so the copy in the DLQ may be deleted)", code=exc.code) from exc
                result.moved += 1
                record(RedriveItem(letter, "moved"))
        result.stopped = stop.is_set()
    finally:
        if held:
            try:
                sqs.change_visibility(dlq, list(held.values()), 0)
            except WorkerError as exc:
                log.warning("could not release the dead letters this run kept; they reappear in the DLQ after "
                            f"{HOLD_S} s", extra={"error": exc.reason, "messages": len(held)})
    return result
