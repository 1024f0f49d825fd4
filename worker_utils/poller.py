"""The one SQS poller loop both workers run; each hands it a batch handler.

Per receive (up to ``batch_size`` messages):

* a heartbeat thread extends the in-hand messages' visibility every ``heartbeat_s``;
* the handler returns one outcome per message: ``None`` = success -> delete (the successes
  of a batch in one DeleteMessageBatch call);
* :class:`PermanentError` -> copy to the DLQ with the reason as message attributes, then
  delete (at once: a permanent fault does not burn five receives);
* :class:`DependencyDown` (database, S3 or SQS unreachable) -> an outage, not the message's
  fault: the message is released (back after ``outage_release_s``), receiving stops and the
  dependency is probed with a capped backoff until it answers (one log line down, one back);
  a message is dead-lettered for an outage only once it outlasts ``outage_budget_s``;
* :class:`TransientError` or any other exception -> visibility set to a backoff so the
  message comes back later; on its ``max_receive_count``-th receive it goes to the DLQ with
  the reason instead (SQS's own redrive would move it without one);
* :class:`Cancelled` -> visibility 0: another worker may take it at once.

One terminal-state rule: whatever sends a message to the DLQ (any exception type, a stall,
an outage past its budget) first calls ``on_dead_letter(message, reason, code)``, which marks
the message's row ``error`` with the same reason; while the database is down nothing is
dead-lettered (the message is released instead), so a dead-lettered message never leaves its
row ``queued`` or ``processing``.

Progress is real work: the handler reports it (``ctx.progress(stage)``: frames detected, a
snapshot emitted, a batch step done); the heartbeat is not progress.  A handler that makes
none for ``stall_timeout_s`` is stalled: the poller logs it at ERROR with the stage, stops
extending its messages (they come back after a backoff, or go to the DLQ on their last
receive with ``handler stalled in <stage> for N s``), marks nothing done and sets
:attr:`Poller.fatal`.  The runner (``worker_utils/runner.py``) then exits non-zero so that
systemd restarts the process; this library never exits the process itself.

Lifetime: :meth:`Poller.run` serves until :meth:`Poller.stop` (safe from any thread and from
a signal handler: it only sets flags) or ``max_batches``; the handler sees
``ctx.stop_requested`` and may finish or raise Cancelled.  :meth:`Poller.release_in_hand` is
what the runner calls before a hard exit.  Under systemd (NOTIFY_SOCKET set) it sends
READY=1 once serving, WATCHDOG=1 while the loop or the handler makes progress, STOPPING=1 on
the way out.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional, Sequence

from ..worker_config import Settings, systemd_environment
from .errors import Cancelled, DependencyDown, PermanentError, TransientError, WorkerError
from .logs import log_context
from .sd_notify import Notifier
from .sqs_queue import ReceivedMessage, SqsQueues

log = logging.getLogger(__name__)

Outcome = Optional[BaseException]
_TICK_S = 0.25  # the monitor's period: stall checks, watchdog pings, stop() -> stop_event
DeadLetterHook = Callable[[ReceivedMessage, str, str], None]
# The attributes _to_dlq writes itself; any other cvitx_* attribute of the message (a redrive
# count, an outage requeue count) travels on with it.
_DLQ_ATTRS = ("cvitx_error_reason", "cvitx_error_code", "cvitx_source_queue", "cvitx_receive_count",
              "cvitx_failed_at", "cvitx_original_message_id")
OUTAGE_REQUEUES = "cvitx_outage_requeues"


class HandlerStalled(TransientError):
    """The handler made no progress for ``stall_timeout_s``."""

    code = "stalled"


@dataclass(frozen=True)
class Dependency:
    """Something a worker cannot work without.  ``probe`` is one cheap round trip (raises
    DependencyDown while unreachable); ``check`` is the start-up readiness check (raises
    PermanentError with what to fix: a missing table, queue or bucket), probe by default."""

    name: str
    probe: Callable[[], None]
    check: Optional[Callable[[], None]] = None


@dataclass
class HandlerContext:
    """What a handler may use besides its messages."""

    settings: Settings
    stop_event: threading.Event
    _progress: Callable[[Optional[str]], None] = field(default=lambda _stage=None: None)
    notes: dict[str, dict[str, object]] = field(default_factory=dict)  # message_id -> fields

    @property
    def stop_requested(self) -> bool:
        return self.stop_event.is_set()

    def check_cancelled(self) -> None:
        """Raise Cancelled when the worker is stopping (call at safe points)."""
        if self.stop_event.is_set():
            raise Cancelled("worker is stopping")

    def note(self, message_id: str, **fields: object) -> None:
        """Fields for the message's one success line (``message done``): what the handler made
        of it (a snapshot's type/make/model ...), so that a success is one INFO line, not two."""
        self.notes.setdefault(message_id, {}).update(fields)

    def progress(self, stage: Optional[str] = None) -> None:
        """Report real work (a frame detected, a snapshot emitted, a batch step done), and the
        stage now running when ``stage`` is given.  Cheap: call it per unit of work, and before
        every write that finishes something: it raises Cancelled once the poller has given the
        messages up (the handler stalled), so a late handler never marks them done."""
        self._progress(stage)


BatchHandler = Callable[[Sequence[ReceivedMessage], HandlerContext], Sequence[Outcome]]


def one_at_a_time(handle: Callable[[ReceivedMessage, HandlerContext], None]) -> BatchHandler:
    """A batch handler from a per-message one; each message's failure stays its own."""

    def batch(messages: Sequence[ReceivedMessage], ctx: HandlerContext) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for m in messages:
            ctx.progress("next message")
            try:
                with log_context(message_id=m.message_id):
                    handle(m, ctx)
                outcomes.append(None)
            except Exception as exc:  # noqa: BLE001 - every failure (Cancelled too) is that message's outcome
                outcomes.append(exc)
        return outcomes

    return batch


def backoff_s(receive_count: int, base_s: int, max_s: int) -> int:
    """Visibility after the ``receive_count``-th failed receive: base * 2^(n-1), capped."""
    return int(min(max_s, base_s * (2 ** max(0, receive_count - 1))))


def message_ids(body: str) -> dict[str, object]:
    """``video_id`` (and ``track_id``) named by a message body, for log lines about a message
    whose handler never ran or did not say; {} when the body names none."""
    try:
        obj = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(obj, dict):
        return {}
    out: dict[str, object] = {}
    vid, track = obj.get("video_id"), obj.get("track_id")
    if isinstance(vid, str) and 0 < len(vid) <= 64 and vid.replace("-", "").isalnum():
        out["video_id"] = vid
    if isinstance(track, int) and not isinstance(track, bool):
        out["track_id"] = track
    return out


def _carried_attributes(msg: ReceivedMessage) -> dict[str, str]:
    """The message's own ``cvitx_*`` attributes (a redrive count, an outage requeue count) that
    travel on with it to a requeued or dead-lettered copy; the DLQ's failure attributes are
    written anew each time."""
    return {k: v for k, v in msg.string_attributes.items() if k.startswith("cvitx_") and k not in _DLQ_ATTRS}


def _reason(outcome: BaseException) -> str:
    return outcome.reason if isinstance(outcome, WorkerError) else f"{type(outcome).__name__}: {outcome}"


class _Heartbeat(threading.Thread):
    """Extends the visibility of in-hand messages every ``interval`` seconds until stopped.
    Keeping a message hidden is not progress: a stalled handler is noticed all the same."""

    def __init__(self, sqs: SqsQueues, queue: str, handles: list[str], interval: float, visibility: int):
        super().__init__(name="sqs-heartbeat", daemon=True)
        self.sqs, self.queue, self.handles = sqs, queue, handles
        self.interval, self.visibility = interval, visibility
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                self.sqs.change_visibility(self.queue, self.handles, self.visibility)
                log.debug("heartbeat", extra={"messages": len(self.handles)})
            except WorkerError as exc:
                log.warning("heartbeat failed; trying again at the next beat", extra={"error": exc.reason})

    def stop(self, timeout_s: float = 5.0) -> None:
        self.done.set()
        if self.ident is not None and self is not threading.current_thread():
            self.join(timeout=timeout_s)


class _Outage:
    """A dependency this process found unreachable, since when (monotonic seconds)."""

    def __init__(self, dependency: str, reason: str):
        self.dependency, self.reason, self.since = dependency, reason, time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.since


class Poller:
    """Serve ``queue`` with ``handler`` until stopped; see the module docstring."""

    def __init__(self, settings: Settings, queue: str, dlq: str, handler: BatchHandler, *,
                 batch_size: int = 1, sqs: Optional[SqsQueues] = None, name: str = "worker",
                 on_dead_letter: Optional[DeadLetterHook] = None,
                 dependencies: Sequence[Dependency] = ()):
        self.settings, self.queue, self.dlq, self.handler = settings, queue, dlq, handler
        self.batch_size = max(1, min(10, batch_size))
        self.sqs = sqs or SqsQueues(settings)
        self.name = name
        self.on_dead_letter = on_dead_letter
        self.dependencies: dict[str, Dependency] = {d.name: d for d in dependencies}
        self.dependencies.setdefault("sqs", Dependency("sqs", lambda: self.sqs.probe(self.queue),
                                                       self._check_queues))
        self.stop_event = threading.Event()
        self._stop_flag = False
        notify_socket, self._watchdog_s = systemd_environment()
        self.notifier = Notifier(notify_socket)
        self.fatal: Optional[str] = None  # set when the process must exit non-zero (a stalled handler)
        self.fatal_event = threading.Event()
        self.processed = 0
        self._lock = threading.Lock()  # in-hand state; never held across I/O
        self._in_hand: list[ReceivedMessage] = []
        self._beat: Optional[_Heartbeat] = None
        self._batch = 0  # id of the batch in the handler; 0 = none
        self._abandoned: set[int] = set()  # batches the monitor or a release took away from the handler
        self._stage = "start-up"
        self._progress_at = time.monotonic()  # last real work of the handler in flight
        self._alive_at = time.monotonic()  # last sign of life of the loop or the handler
        self._outage: Optional[_Outage] = None
        self._finished = False  # run() has returned: the monitor ends

    # --- lifetime ---------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to stop: no new receive; the handler sees ``ctx.stop_requested``.

        Only assigns a flag: no lock, no I/O, no logging, so it is safe from any thread and
        from a signal handler (which may interrupt a thread holding any lock).  The loop reads
        the flag after every receive; the monitor thread turns it into ``stop_event`` within
        ``_TICK_S``, which wakes the loop's waits and the handler's ``ctx.stop_requested``."""
        self._stop_flag = True

    @property
    def stopping(self) -> bool:
        return self._stop_flag or self.stop_event.is_set()

    def release_in_hand(self, lock_timeout_s: float = 0.5, beat_timeout_s: float = 0.3) -> int:
        """Make the messages in hand visible again at once (visibility 0) and stop extending
        them; the handler's batch, if it ever returns, settles nothing.  What the runner calls
        before a hard exit.  Returns how many messages were released."""
        if not self._lock.acquire(timeout=lock_timeout_s):
            log.warning("could not release messages in hand: the poller is busy; they reappear after the "
                        "visibility timeout")
            return 0
        try:
            taken, beat = self._take_in_hand()
        finally:
            self._lock.release()
        if beat is not None:
            # Stop (and wait out) the heartbeat first: a beat landing after the release would
            # hide the message again for a whole visibility timeout.
            beat.stop(beat_timeout_s)
        if not taken:
            return 0
        try:
            self.sqs.change_visibility(self.queue, [m.receipt_handle for m in taken], 0)
            log.info("released messages", extra={"messages": len(taken)})
        except WorkerError as exc:
            log.warning("could not release messages; they reappear after the visibility timeout",
                        extra={"error": exc.reason})
            return 0
        return len(taken)

    def _take_in_hand(self) -> tuple[list[ReceivedMessage], Optional[_Heartbeat]]:
        """(with the lock held) The messages in hand and their heartbeat, taken away from the
        batch in flight, which will then settle nothing."""
        taken, beat = self._in_hand, self._beat
        self._in_hand, self._beat = [], None
        if self._batch:
            self._abandoned.add(self._batch)
        return taken, beat

    # --- progress, stall and watchdog --------------------------------------------------
    def _progress(self, stage: Optional[str] = None) -> None:
        now = time.monotonic()
        self._progress_at = self._alive_at = now
        if stage is not None:
            self._stage = stage

    def _alive(self, stage: str) -> None:
        self._alive_at = time.monotonic()
        if not self._batch:
            self._stage = stage

    def _monitor(self) -> None:
        """One thread: notices a stalled handler, and pings systemd's watchdog while the loop
        or the handler makes progress (a stalled one gets no more pings)."""
        period = max(0.05, min(_TICK_S, self.settings.stall_timeout_s / 4))
        watchdog = self._watchdog_s if self.notifier.enabled and self._watchdog_s else None
        last_ping = 0.0
        while not self.fatal_event.wait(period):
            if self._stop_flag and not self.stop_event.is_set():
                self.stop_event.set()  # stop() only set the flag (signal-safe): wake the waits now
            now = time.monotonic()
            batch, idle_for = self._batch, now - self._progress_at
            if batch and idle_for > self.settings.stall_timeout_s and self._on_stall(batch, self._stage, idle_for):
                return
            if watchdog and now - last_ping >= watchdog / 2 and now - self._alive_at < watchdog:
                self.notifier.watchdog()
                last_ping = now
            if self.stopping and not batch and self._finished:
                return

    def _on_stall(self, batch: int, stage: str, idle_for: float) -> bool:
        """Give up the stalled batch's messages and set :attr:`fatal`; False (nothing done)
        when the handler returned just now."""
        reason = f"handler stalled in {stage} for {idle_for:.0f} s"
        with self._lock:
            if self._batch != batch:  # it returned just now
                return False
            taken, beat = self._take_in_hand()
        log.error("handler stalled: no progress; its messages are given up and the process exits for a restart",
                  extra={"stage": stage, "stalled_for_s": round(idle_for, 1),
                         "stall_timeout_s": self.settings.stall_timeout_s, "messages": len(taken)})
        if beat is not None:
            beat.stop(1.0)  # no more extending: the messages come back after their backoff
        for msg in taken:
            with log_context(message_id=msg.message_id, **message_ids(msg.body)):
                self._settle(msg, HandlerStalled(reason, code="stalled"), 0.0)
        self.fatal = reason
        self._stop_flag = True
        self.stop_event.set()
        self.fatal_event.set()
        return True

    # --- start-up -------------------------------------------------------------------
    def _check_queues(self) -> None:
        self.sqs.url(self.queue)  # a PermanentError that says to run setup when missing
        self.sqs.url(self.dlq)

    def check_dependencies(self) -> None:
        """Every dependency's start-up check.  An unreachable one is waited for, up to
        ``startup_wait_s``, probing with a capped backoff; a misconfigured one (PermanentError:
        a missing table, queue or bucket) raises at once with what to fix."""
        deadline = time.monotonic() + self.settings.startup_wait_s
        for dep in self.dependencies.values():
            waited, delay = False, 1.0
            while True:
                self._alive(f"start-up check of {dep.name}")
                try:
                    (dep.check or dep.probe)()
                    break
                except DependencyDown as exc:
                    if time.monotonic() + delay > deadline or self.stopping:
                        raise PermanentError(f"{dep.name} unreachable at start-up for "
                                             f"{self.settings.startup_wait_s:.0f} s (startup_wait_s): {exc.reason}; "
                                             "check the endpoint/URL settings and that it is up",
                                             code="dependency_down") from exc
                    if not waited:
                        log.warning("waiting for a dependency before serving", extra={"dependency": dep.name,
                                                                                     "error": exc.reason})
                        waited = True
                    self.stop_event.wait(delay)
                    delay = min(self.settings.outage_probe_max_s, delay * 2)
            if waited:
                log.info("dependency reachable; continuing start-up", extra={"dependency": dep.name})

    # --- main loop ----------------------------------------------------------------
    def run(self, max_batches: Optional[int] = None) -> int:
        """Check the dependencies, then serve until :meth:`stop` (or ``max_batches`` receives
        that returned messages). Returns 0; start-up failures raise (PermanentError)."""
        monitor = threading.Thread(target=self._monitor, name="poller-monitor", daemon=True)
        monitor.start()
        try:
            self.check_dependencies()
            log.info("serving", extra={"queue": self.queue, "dlq": self.dlq, "batch_size": self.batch_size,
                                        "worker": self.name})
            self.notifier.ready(f"serving {self.queue}")
            self._loop(max_batches)
        finally:
            self._finished = True
        log.info("stopped", extra={"worker": self.name, "processed": self.processed})
        self.notifier.stopping()
        return 0

    def _loop(self, max_batches: Optional[int]) -> None:
        batches, failures_in_row = 0, 0
        while not self.stopping:
            if self._outage is not None:
                self._wait_out_outage()
                continue
            self._alive("receive")
            try:
                messages = self.sqs.receive(self.queue, self.batch_size)
                failures_in_row = 0
            except DependencyDown as exc:
                self._enter_outage(exc)
                continue
            except WorkerError as exc:  # throttling, a 5xx: SQS answers, just not now
                failures_in_row += 1
                wait = min(30.0, 0.5 * 2 ** min(failures_in_row, 6))
                log.warning("receive failed; retrying", extra={"error": exc.reason, "retry_in_s": wait})
                self.stop_event.wait(wait)
                continue
            if not messages:
                continue
            if self.stopping:  # the flag, set by a signal while the poll was open: not taken on
                self._release(messages, 0, "message released for another worker (stopping)")
                break
            self._serve(messages)
            batches += 1
            if max_batches is not None and batches >= max_batches:
                break

    # --- outages ------------------------------------------------------------------
    def _enter_outage(self, exc: DependencyDown) -> None:
        if self._outage is None:
            self._outage = _Outage(exc.dependency, exc.reason)
            log.warning("dependency down: receiving paused, probing until it answers",
                        extra={"dependency": exc.dependency, "error": exc.reason,
                               "outage_budget_s": self.settings.outage_budget_s})

    def _wait_out_outage(self) -> None:
        """Probe the dependency that is down, with a capped backoff, until it answers or the
        worker stops; no message is received meanwhile."""
        outage = self._outage
        assert outage is not None
        dep = self.dependencies.get(outage.dependency)
        delay = 1.0
        while not self.stopping:
            self._alive(f"probe {outage.dependency}")
            self.stop_event.wait(delay)
            if self.stopping:
                return
            try:
                if dep is not None:
                    dep.probe()
            except DependencyDown as exc:
                log.debug("dependency still down", extra={"dependency": outage.dependency, "error": exc.reason})
                delay = min(self.settings.outage_probe_max_s, delay * 2)
                continue
            except WorkerError as exc:  # it answers, with an error: reachable again
                log.debug("dependency answers with an error", extra={"error": exc.reason})
            log.warning("dependency back: receiving resumed",
                        extra={"dependency": outage.dependency, "down_s": round(outage.elapsed_s, 1)})
            self._outage = None
            return

    def _settle_outage(self, msg: ReceivedMessage, exc: DependencyDown, took_ms: float) -> None:
        """A message whose handling met an outage: released for later, unless the outage has
        outlasted its budget (DLQ).  On its last receive, a fresh copy replaces it, so SQS's
        redrive (maxReceiveCount) does not dead-letter it for the outage."""
        self._enter_outage(exc)
        outage = self._outage
        elapsed = outage.elapsed_s if outage is not None else 0.0
        if elapsed >= self.settings.outage_budget_s:
            self._to_dlq(msg, exc, f"gave up: {exc.dependency} unavailable for {elapsed:.0f} s "
                                   f"(outage_budget_s {self.settings.outage_budget_s:.0f}): {exc.reason}")
        elif msg.receive_count >= self.settings.max_receive_count:
            attrs = _carried_attributes(msg)
            attrs[OUTAGE_REQUEUES] = str(int(attrs.get(OUTAGE_REQUEUES, "0") or 0) + 1)
            self.sqs.send_raw(self.queue, msg.body, attrs)
            self.sqs.delete(self.queue, msg.receipt_handle)
            log.warning("message requeued: its last receive met an outage",
                        extra={"dependency": exc.dependency, "error": exc.reason, "receive_count": msg.receive_count,
                               OUTAGE_REQUEUES: attrs[OUTAGE_REQUEUES]})
        else:
            self.sqs.change_visibility(self.queue, [msg.receipt_handle], self.settings.outage_release_s)
            log.info("message released: a dependency is down",
                     extra={"dependency": exc.dependency, "error": exc.reason, "retry_in_s": self.settings.outage_release_s,
                            "receive_count": msg.receive_count, "duration_ms": took_ms})

    # --- one batch ----------------------------------------------------------------
    def _serve(self, messages: list[ReceivedMessage]) -> None:
        beat = _Heartbeat(self.sqs, self.queue, [m.receipt_handle for m in messages], self.settings.heartbeat_s,
                          self.settings.visibility_timeout_s)
        with self._lock:
            self._batch += 1
            batch = self._batch
            self._in_hand, self._beat = list(messages), beat
            self._progress("handler")
        def progress(stage: Optional[str] = None) -> None:
            # A handler that comes back to life after its messages were given up (a stall, a
            # hard stop) stops at its next report: it must not mark anything done.
            if batch in self._abandoned:
                raise Cancelled("the poller gave these messages up (stalled or stopping); nothing more is written")
            self._progress(stage)

        ctx = HandlerContext(self.settings, self.stop_event, progress)
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
        with self._lock:
            abandoned = batch in self._abandoned
            self._abandoned.discard(batch)
            self._in_hand, self._beat, self._batch = [], None, 0
            self._alive("settle")
        if abandoned:  # a stall or a hard stop settled (or released) these messages already
            log.warning("handler returned after its messages were given up; nothing settled",
                        extra={"messages": len(messages)})
            return
        took_ms = round((time.perf_counter() - t0) * 1e3, 1)
        done = [m for m, o in zip(messages, outcomes) if o is None]
        if len(done) > 1:  # one DeleteMessageBatch for the batch's successes, not a call each
            self._delete_done(done, took_ms, ctx.notes)
        for msg, outcome in zip(messages, outcomes):
            if outcome is None and len(done) > 1:
                continue
            with log_context(message_id=msg.message_id, **message_ids(msg.body)):
                self._settle(msg, outcome, took_ms, ctx.notes.get(msg.message_id))

    def _delete_done(self, done: list[ReceivedMessage], took_ms: float, notes: dict[str, dict[str, object]]) -> None:
        """Delete the messages handled successfully, batched; what cannot be deleted is
        redelivered later and changes nothing (every step is idempotent)."""
        try:
            failed = self.sqs.delete_many(self.queue, [m.receipt_handle for m in done])
        except WorkerError as exc:
            failed = {i: exc.reason for i in range(len(done))}
        for i, msg in enumerate(done):
            with log_context(message_id=msg.message_id, **message_ids(msg.body)):
                if i in failed:
                    log.warning("could not settle message; it will be redelivered",
                                extra={"error": failed[i], "handler_outcome": "ok"})
                else:
                    self.processed += 1
                    log.info("message done", extra={"duration_ms": took_ms, "receive_count": msg.receive_count,
                                                    **notes.get(msg.message_id, {})})

    def _release(self, messages: Sequence[ReceivedMessage], visibility_s: int, line: str) -> None:
        try:
            self.sqs.change_visibility(self.queue, [m.receipt_handle for m in messages], visibility_s)
            for m in messages:
                with log_context(message_id=m.message_id, **message_ids(m.body)):
                    log.info(line)
        except WorkerError as exc:
            log.warning("could not release messages; they reappear after the visibility timeout",
                        extra={"error": exc.reason})

    def _settle(self, msg: ReceivedMessage, outcome: Outcome, took_ms: float,
                note: Optional[dict[str, object]] = None) -> None:
        try:
            try:
                self._settle_once(msg, outcome, took_ms, note or {})
            except DependencyDown as exc:
                if exc.dependency == "sqs" or isinstance(outcome, DependencyDown):
                    raise
                # Marking the row failed (the database is down): dead-letter nothing now.
                self._settle_outage(msg, exc, took_ms)
        except WorkerError as exc:
            # Could not settle (SQS unreachable): the message reappears after its visibility
            # timeout and is handled again; every step is idempotent.  Say how the handler
            # ended too: when SQS and the handler fail together (one outage), this is the only
            # line that reports the handler's failure.
            if isinstance(exc, DependencyDown):
                self._enter_outage(exc)
            log.warning("could not settle message; it will be redelivered",
                        extra={"error": exc.reason, "handler_outcome": "ok" if outcome is None else _reason(outcome)})

    def _settle_once(self, msg: ReceivedMessage, outcome: Outcome, took_ms: float, note: dict[str, object]) -> None:
        if outcome is None:
            self.sqs.delete(self.queue, msg.receipt_handle)
            self.processed += 1
            log.info("message done", extra={"duration_ms": took_ms, "receive_count": msg.receive_count, **note})
        elif isinstance(outcome, Cancelled):
            self.sqs.change_visibility(self.queue, [msg.receipt_handle], 0)
            log.info("message released for another worker (stopping)")
        elif isinstance(outcome, DependencyDown):
            self._settle_outage(msg, outcome, took_ms)
        elif isinstance(outcome, PermanentError):
            self._to_dlq(msg, outcome, outcome.reason)
        elif msg.receive_count >= self.settings.max_receive_count:
            self._to_dlq(msg, outcome, f"gave up after {msg.receive_count} receives: {_reason(outcome)}")
        else:
            delay = backoff_s(msg.receive_count, self.settings.transient_backoff_base_s,
                              self.settings.transient_backoff_max_s)
            self.sqs.change_visibility(self.queue, [msg.receipt_handle], delay)
            log.warning("transient failure; message will be retried",
                        extra={"error": _reason(outcome), "retry_in_s": delay, "receive_count": msg.receive_count},
                        exc_info=not isinstance(outcome, WorkerError))

    def _to_dlq(self, msg: ReceivedMessage, exc: BaseException, reason: str) -> None:
        """The row first (``on_dead_letter``: ``error`` with this reason), then the DLQ copy with
        the reason as attributes, then the delete.  A database that is down raises
        DependencyDown here and the message is not dead-lettered."""
        code = exc.code if isinstance(exc, WorkerError) else "unexpected"
        if self.on_dead_letter is not None:
            try:
                self.on_dead_letter(msg, reason, code)
            except DependencyDown:
                raise
            except WorkerError as err:  # the row cannot take it (a data error): the DLQ still says why
                log.warning("could not record the error on the message's row", extra={"error": err.reason})
        attrs = _carried_attributes(msg)
        attrs.update({
            "cvitx_error_reason": reason,
            "cvitx_error_code": code,
            "cvitx_source_queue": self.queue,
            "cvitx_receive_count": str(msg.receive_count),
            "cvitx_failed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cvitx_original_message_id": msg.message_id,
        })
        self.sqs.send_raw(self.dlq, msg.body, attrs)
        self.sqs.delete(self.queue, msg.receipt_handle)
        log.error("message sent to the DLQ", extra={"dlq": self.dlq, "error": reason, "error_code": code,
                                                     "receive_count": msg.receive_count})


__all__ = ["BatchHandler", "Dependency", "HandlerContext", "HandlerStalled", "Outcome", "Poller", "backoff_s",
           "message_ids", "one_at_a_time"]
