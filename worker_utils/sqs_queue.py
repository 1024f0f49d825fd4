"""SQS adapter: long poll, delete, visibility, validated sends, queue set-up. Errors come out typed."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ..worker_config import Settings
from .aws import make_client, translate_aws_error
from .errors import PermanentError
from .validation import validate_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedMessage:
    """One received SQS message. ``receive_count`` is ApproximateReceiveCount (1 = first delivery).

    ``attributes`` are SQS's system attributes (ApproximateReceiveCount, SentTimestamp);
    ``message_attributes`` the sender's, as SQS returns them (``{name: {"DataType": ..,
    "StringValue": ..}}``); :attr:`string_attributes` the same as plain ``{name: value}``."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1
    attributes: Mapping[str, str] = field(default_factory=dict)
    message_attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def string_attributes(self) -> dict[str, str]:
        """The message attributes as ``{name: string value}`` (every one this project sends is a String)."""
        return {k: str(v.get("StringValue", "")) for k, v in self.message_attributes.items() if isinstance(v, Mapping)}


class SqsQueues:
    """Queue URLs are looked up once by name and cached."""

    def __init__(self, settings: Settings, client: Any = None):
        self.settings = settings
        self.client = client or make_client("sqs", settings)
        self._urls: dict[str, str] = {}

    def url(self, name: str) -> str:
        if name not in self._urls:
            try:
                self._urls[name] = self.client.get_queue_url(QueueName=name)["QueueUrl"]
            except Exception as exc:
                err = translate_aws_error(exc, f"SQS get_queue_url {name}")
                if "NonExistentQueue" in str(exc) or "QueueDoesNotExist" in str(exc):
                    raise PermanentError(f"SQS queue {name!r} does not exist; run "
                                         "`python -m video_analysis setup` first", code="no_queue") from exc
                raise err from exc
        return self._urls[name]

    def receive(self, queue: str, max_messages: int = 1, wait_s: Optional[int] = None,
                visibility_s: Optional[int] = None) -> list[ReceivedMessage]:
        kwargs: dict[str, Any] = dict(
            QueueUrl=self.url(queue),
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=self.settings.receive_wait_s if wait_s is None else wait_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            MessageAttributeNames=["All"],
        )
        if visibility_s is not None:
            kwargs["VisibilityTimeout"] = visibility_s
        try:
            r = self.client.receive_message(**kwargs)
        except Exception as exc:
            raise translate_aws_error(exc, f"SQS receive {queue}") from exc
        return [
            ReceivedMessage(
                message_id=m["MessageId"], receipt_handle=m["ReceiptHandle"], body=m.get("Body", ""),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                attributes=m.get("Attributes", {}), message_attributes=m.get("MessageAttributes", {}),
            )
            for m in r.get("Messages", [])
        ]

    def delete(self, queue: str, receipt_handle: str) -> None:
        try:
            self.client.delete_message(QueueUrl=self.url(queue), ReceiptHandle=receipt_handle)
        except Exception as exc:
            raise translate_aws_error(exc, f"SQS delete on {queue}") from exc

    def delete_many(self, queue: str, receipt_handles: list[str]) -> dict[int, str]:
        """Delete messages 10 per DeleteMessageBatch call (IAM: ``sqs:DeleteMessage``).

        Returns ``{index in receipt_handles: SQS error code}`` for the entries SQS refused (they
        reappear after their visibility timeout); raises when a call fails as a whole."""
        failed: dict[int, str] = {}
        for i in range(0, len(receipt_handles), 10):
            entries = [{"Id": str(i + j), "ReceiptHandle": h} for j, h in enumerate(receipt_handles[i:i + 10])]
            try:
                r = self.client.delete_message_batch(QueueUrl=self.url(queue), Entries=entries)
            except Exception as exc:
                raise translate_aws_error(exc, f"SQS delete on {queue}") from exc
            failed.update({int(f["Id"]): str(f.get("Code", "unknown")) for f in r.get("Failed", [])})
        return failed

    def change_visibility(self, queue: str, receipt_handles: list[str], timeout_s: int) -> None:
        """Set the visibility of in-hand messages (heartbeat: extend; release: 0)."""
        for i in range(0, len(receipt_handles), 10):
            entries = [{"Id": str(j), "ReceiptHandle": h, "VisibilityTimeout": int(timeout_s)}
                       for j, h in enumerate(receipt_handles[i:i + 10])]
            try:
                r = self.client.change_message_visibility_batch(QueueUrl=self.url(queue), Entries=entries)
            except Exception as exc:
                raise translate_aws_error(exc, f"SQS change visibility on {queue}") from exc
            for f in r.get("Failed", []):
                log.warning("change visibility failed for one message", extra={"queue": queue, "sqs_error": f.get("Code")})

    def send_raw(self, queue: str, body: str, attributes: Optional[Mapping[str, str]] = None) -> str:
        kwargs: dict[str, Any] = {"QueueUrl": self.url(queue), "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": (str(v) or "-")[:4096]} for k, v in attributes.items()
            }
        try:
            return self.client.send_message(**kwargs)["MessageId"]
        except Exception as exc:
            raise translate_aws_error(exc, f"SQS send to {queue}") from exc

    def send_json(self, queue: str, message: Mapping[str, Any], schema: str) -> str:
        """Validate ``message`` against ``schemas/<schema>.json``, then send it. Returns the MessageId."""
        validate_schema(schema, dict(message))
        return self.send_raw(queue, json.dumps(message, separators=(",", ":")))

    # --- set-up ------------------------------------------------------------------
    def ensure_queue(self, name: str, attributes: Mapping[str, str]) -> tuple[str, bool]:
        """Create ``name`` or bring its attributes to ``attributes``. Returns (url, changed)."""
        try:
            try:
                url = self.client.get_queue_url(QueueName=name)["QueueUrl"]
            except self.client.exceptions.QueueDoesNotExist:
                url = self.client.create_queue(QueueName=name, Attributes=dict(attributes))["QueueUrl"]
                self._urls[name] = url
                return url, True
            current = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            diff = {k: v for k, v in attributes.items() if not _same_attr(current.get(k), v)}
            if diff:
                self.client.set_queue_attributes(QueueUrl=url, Attributes=diff)
            self._urls[name] = url
            return url, bool(diff)
        except Exception as exc:
            raise translate_aws_error(exc, f"SQS ensure queue {name}") from exc

    def probe(self, name: str) -> None:
        """One GetQueueAttributes round trip on a queue the worker consumes (its IAM policy
        allows it): raises DependencyDown while SQS is unreachable."""
        try:
            self.client.get_queue_attributes(QueueUrl=self.url(name), AttributeNames=["QueueArn"])
        except Exception as exc:
            raise translate_aws_error(exc, f"SQS probe {name}") from exc

    def attributes(self, name: str) -> dict[str, str]:
        try:
            return self.client.get_queue_attributes(QueueUrl=self.url(name), AttributeNames=["All"])["Attributes"]
        except Exception as exc:
            raise translate_aws_error(exc, f"SQS attributes of {name}") from exc


def _same_attr(current: Optional[str], wanted: str) -> bool:
    if current is None:
        return False
    if wanted.startswith("{"):
        try:
            return json.loads(current) == json.loads(wanted) or {k: str(v) for k, v in json.loads(current).items()} == {
                k: str(v) for k, v in json.loads(wanted).items()}
        except json.JSONDecodeError:
            return False
    return current == wanted
