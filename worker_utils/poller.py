"""The one SQS poller loop both workers run; each hands it a batch handler.

Per receive (up to ``batch_size`` messages):

* a heartbeat thread extends the in-hand messages' visibility every ``heartbeat_s``;
* the handler returns one outcome per message: ``None`` = success -> delete (the successes
  of a batch in one DeleteMessageBatch call);
* :class:`PermanentError` -> copy to the DLQ with the reason as message attributes, then
  delete (at once: a permanent fault does not burn five receives);
* :class:`TransientError` or any other exception -> visibility set to a backoff so the
  message comes back later; on its ``max_receive_count``-th receive it goes to the DLQ with
  the reason instead (SQS's own redrive would move it without one);
* :class:`Cancelled` -> visibility 0: another worker may take it at once.

SIGTERM/SIGINT: stop receiving; the handler sees ``ctx.stop_requested`` and may finish or
raise Cancelled; after ``stop_timeout_s`` the messages in hand are released (visibility 0)
and the process exits 0 regardless.  A second signal releases and exits at once.

Under systemd (NOTIFY_SOCKET set) it sends READY=1 once serving, WATCHDOG=1 while the loop
or the handler makes progress, and STOPPING=1 on the way out.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional, Sequence

from ..worker_config import Settings, systemd_environment
from .errors import Cancelled, PermanentError, WorkerError
from .logs import log_context
from .sd_notify import Notifier
from .sqs_queue import ReceivedMessage, SqsQueues

log = logging.getLogger(__name__)

Outcome = Optional[BaseException]


@dataclass
class HandlerContext:
    """What a handler may use besides its messages."""

    settings: Settings
    stop_event: threading.Event
    _progress: Callable[[], None] = field(default=lambda: None)

    @property
    def stop_requested(self) -> bool:
        return self.stop_event.is_set()

    def check_cancelled(self) -> None:
        """Raise Cancelled when the worker is stopping (call at safe points)."""
        if self.stop_event.is_set():
            raise Cancelled("worker is stopping")

    def progress(self) -> None:
        """Tell the poller the handler is alive (feeds the systemd watchdog)."""
        self._progress()


BatchHandler = Callable[[Sequence[ReceivedMessage], HandlerContext], Sequence[Outcome]]


def one_at_a_time(handle: Callable[[ReceivedMessage, HandlerContext], None]) -> BatchHandler:
    """A batch handler from a per-message one; each message's failure stays its own."""

    def batch(messages: Sequence[ReceivedMessage], ctx: HandlerContext) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for m in messages:
            try:
                with log_context(message_id=m.message_id):
                    handle(m, ctx)
                outcomes.append(None)
            except Cancelled as exc:
                outcomes.append(exc)
            except Exception as exc:  # noqa: BLE001 - every failure becomes that message's outcome
                outcomes.append(exc)
        return outcomes

    return batch


def backoff_s(receive_count: int, base_s: int, max_s: int) -> int:
    """Visibility after the ``receive_count``-th failed receive: base * 2^(n-1), capped."""
    return int(min(max_s, base_s * (2 ** max(0, receive_count - 1))))


class _Heartbeat(threading.Thread):
    """Extends the visibility of in-hand messages every ``interval`` seconds until stopped."""

    def __init__(self, sqs: SqsQueues, queue: str, handles: list[str], interval: float, visibility: int,
                 on_beat: Callable[[], None]):
        super().__init__(name="sqs-heartbeat", daemon=True)
        self.sqs, self.queue, self.handles = sqs, queue, handles
        self.interval, self.visibility, self.on_beat = interval, visibility, on_beat
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                self.sqs.change_visibility(self.queue, self.handles, self.visibility)
                log.debug("heartbeat", extra={"messages": len(self.handles)})
            except WorkerError as exc:
                log.warning("heartbeat failed; will try again", extra={"error": exc.reason})
            self.on_beat()

    def stop(self) -> None:
        self.done.set()
        if self.ident is not None and self is not threading.current_thread():
            self.join(timeout=5)


class Poller:
    """Serve ``queue`` with ``handler`` until stopped; see the module docstring."""

    def __init__(self, settings: Settings, queue: str, dlq: str, handler: BatchHandler, *,
                 batch_size: int = 1, sqs: Optional[SqsQueues] = None, name: str = "worker",
                 install_signals: bool = True):
        self.settings, self.queue, self.dlq, self.handler = settings, queue, dlq, handler
        self.batch_size = max(1, min(10, batch_size))
        self.sqs = sqs or SqsQueues(settings)
        self.name = name
        self.stop_event = threading.Event()
        self.install_signals = install_signals
        notify_socket, self._watchdog_s = systemd_environment()
        self.notifier = Notifier(notify_socket)
        self._last_progress = time.monotonic()
        self._in_hand: list[ReceivedMessage] = []
        self._beat: Optional[_Heartbeat] = None
        self._in_hand_lock = threading.Lock()
        self._signals = 0
        self.processed = 0

    # --- signals and shutdown ---------------------------------------------------
    def request_stop(self, signum: int = signal.SIGTERM, _frame: object = None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second stop signal: releasing messages in hand and exiting now")
            self._release_in_hand()
            os._exit(0)
        log.info("stop requested: finishing or releasing the message in hand",
                 extra={"signal": signal.Signals(signum).name, "stop_timeout_s": self.settings.stop_timeout_s})
        self.stop_event.set()
        self.notifier.stopping()
        threading.Thread(target=self._stop_deadline, name="stop-deadline", daemon=True).start()

    def _stop_deadline(self) -> None:
        time.sleep(self.settings.stop_timeout_s)
        log.warning("stop timeout reached: releasing messages in hand and exiting",
                    extra={"stop_timeout_s": self.settings.stop_timeout_s})
        self._release_in_hand()
        logging.shutdown()
        os._exit(0)

    def _release_in_hand(self) -> None:
        with self._in_hand_lock:
            handles = [m.receipt_handle for m in self._in_hand]
            self._in_hand = []
            beat, self._beat = self._beat, None
        if beat is not None:
            # Stop (and wait out) the heartbeat first: a beat landing after the release
            # would hide the message again for a whole visibility timeout.
            beat.stop()
        if handles:
            try:
                self.sqs.change_visibility(self.queue, handles, 0)
                log.info("released messages", extra={"messages": len(handles)})
            except WorkerError as exc:
                log.warning("could not release messages; they reappear after the visibility timeout",
                            extra={"error": exc.reason})

    # --- watchdog ---------------------------------------------------------------
    def _mark_progress(self) -> None:
        self._last_progress = time.monotonic()

    def _watchdog_loop(self) -> None:
        interval = self._watchdog_s / 2  # type: ignore[operator]
        while not self.stop_event.wait(interval):
            # A handler that stops reporting progress for a whole watchdog period is stuck:
            # stop pinging so systemd restarts the worker (the message then reappears).
            if time.monotonic() - self._last_progress < self._watchdog_s:  # type: ignore[operator]
                self.notifier.watchdog()

    # --- main loop ----------------------------------------------------------------
    def run(self, max_batches: Optional[int] = None) -> int:
        """Serve until a stop signal (or ``max_batches`` receives that returned messages). Returns 0."""
        if self.install_signals:
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        self.sqs.url(self.queue)  # fail fast with a clear message when setup was not run
        self.sqs.url(self.dlq)
        log.info("serving", extra={"queue": self.queue, "dlq": self.dlq, "batch_size": self.batch_size,
                                    "worker": self.name})
        self.notifier.ready(f"serving {self.queue}")
        if self._watchdog_s and self.notifier.enabled:
            threading.Thread(target=self._watchdog_loop, name="watchdog", daemon=True).start()
        batches, failures_in_row = 0, 0
        while not self.stop_event.is_set():
            self._mark_progress()
            try:
                messages = self.sqs.receive(self.queue, self.batch_size)
                failures_in_row = 0
            except WorkerError as exc:
                failures_in_row += 1
                wait = min(30.0, 0.5 * 2 ** min(failures_in_row, 6))
                log.warning("receive failed; retrying", extra={"error": exc.reason, "retry_in_s": wait})
                self.stop_event.wait(wait)
                continue
            if not messages:
                continue
            if self.stop_event.is_set():
                with self._in_hand_lock:
                    self._in_hand = list(messages)
                self._release_in_hand()
                break
            self._serve(messages)
            batches += 1
            if max_batches is not None and batches >= max_batches:
                break
        log.info("stopped", extra={"worker": self.name, "processed": self.processed})
        self.notifier.stopping()
        return 0

    def _serve(self, messages: list[ReceivedMessage]) -> None:
        ctx = HandlerContext(self.settings, self.stop_event, self._mark_progress)
        beat = _Heartbeat(self.sqs, self.queue, [m.receipt_handle for m in messages], self.settings.heartbeat_s,
                          self.settings.visibility_timeout_s, self._mark_progress)
        with self._in_hand_lock:
            self._in_hand = list(messages)
            self._beat = beat
        beat.start()
        t0 = time.perf_counter()
        try:
            outcomes = list(self.handler(messages, ctx))
            if len(outcomes) != len(messages):
                raise RuntimeError(f"handler returned {len(outcomes)} outcomes for {len(messages)} messages")
        except BaseException as exc:  # noqa: BLE001 - a crashed batch is every message's outcome
            outcomes = [exc] * len(messages)
        finally:
            beat.stop()
        took_ms = round((time.perf_counter() - t0) * 1e3, 1)
        done = [m for m, o in zip(messages, outcomes) if o is None]
        if len(done) > 1:  # one DeleteMessageBatch for the batch's successes, not a call each
            self._delete_done(done, took_ms)
        for msg, outcome in zip(messages, outcomes):
            if outcome is None and len(done) > 1:
                continue
            with log_context(message_id=msg.message_id):
                self._settle(msg, outcome, took_ms)
        with self._in_hand_lock:
            self._in_hand = []
            self._beat = None

    def _delete_done(self, done: list[ReceivedMessage], took_ms: float) -> None:
        """Delete the messages handled successfully, batched; what cannot be deleted is
        redelivered later and changes nothing (every step is idempotent)."""
        try:
            failed = self.sqs.delete_many(self.queue, [m.receipt_handle for m in done])
        except WorkerError as exc:
            failed = {i: exc.reason for i in range(len(done))}
        for i, msg in enumerate(done):
            with log_context(message_id=msg.message_id):
                if i in failed:
                    log.warning("could not settle message; it will be redelivered",
                                extra={"error": failed[i], "handler_outcome": "ok"})
                else:
                    self.processed += 1
                    log.info("message done", extra={"duration_ms": took_ms, "receive_count": msg.receive_count})

    def _settle(self, msg: ReceivedMessage, outcome: Outcome, took_ms: float) -> None:
        try:
            if outcome is None:
                self.sqs.delete(self.queue, msg.receipt_handle)
                self.processed += 1
                log.info("message done", extra={"duration_ms": took_ms, "receive_count": msg.receive_count})
            elif isinstance(outcome, Cancelled):
                self.sqs.change_visibility(self.queue, [msg.receipt_handle], 0)
                log.info("message released for another worker (stopping)")
            elif isinstance(outcome, PermanentError):
                self._to_dlq(msg, outcome, outcome.reason)
            else:
                reason = outcome.reason if isinstance(outcome, WorkerError) else f"{type(outcome).__name__}: {outcome}"
                if msg.receive_count >= self.settings.max_receive_count:
                    self._to_dlq(msg, outcome, f"gave up after {msg.receive_count} receives: {reason}")
                else:
                    delay = backoff_s(msg.receive_count, self.settings.transient_backoff_base_s,
                                      self.settings.transient_backoff_max_s)
                    self.sqs.change_visibility(self.queue, [msg.receipt_handle], delay)
                    log.warning("transient failure; message will be retried",
                                extra={"error": reason, "retry_in_s": delay, "receive_count": msg.receive_count},
                                exc_info=not isinstance(outcome, WorkerError))
        except WorkerError as exc:
            # Could not settle (SQS unreachable): the message reappears after its visibility
            # timeout and is handled again; every step is idempotent.  Say how the handler
            # ended too: when SQS and the handler fail together (one outage), this is the only
            # line that reports the handler's failure.
            handled = ("ok" if outcome is None else outcome.reason if isinstance(outcome, WorkerError)
                       else f"{type(outcome).__name__}: {outcome}")
            log.warning("could not settle message; it will be redelivered",
                        extra={"error": exc.reason, "handler_outcome": handled})

    def _to_dlq(self, msg: ReceivedMessage, exc: BaseException, reason: str) -> None:
        code = exc.code if isinstance(exc, WorkerError) else "unexpected"
        attrs = {
            "cvitx_error_reason": reason,
            "cvitx_error_code": code,
            "cvitx_source_queue": self.queue,
            "cvitx_receive_count": str(msg.receive_count),
            "cvitx_failed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cvitx_original_message_id": msg.message_id,
        }
        self.sqs.send_raw(self.dlq, msg.body, attrs)
        self.sqs.delete(self.queue, msg.receipt_handle)
        log.error("message sent to the DLQ", extra={"dlq": self.dlq, "error": reason, "error_code": code})
