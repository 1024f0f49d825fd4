"""What both ``run_poller.py`` entry points share: arguments, logging, start-up errors, and the
process lifetime (signals, the stop deadline, the hard exit).

The poller library never exits the process; this runner does:

* the poller loop runs on its own thread, so the main thread is always free to take signals
  (a handler stuck in native code would otherwise never see SIGTERM);
* SIGTERM/SIGINT: the signal handler only counts; the main thread then asks the poller to
  stop (the handler finishes or releases its message) and gives it ``stop_timeout_s``; past
  that the messages in hand are released (visibility 0) and the process exits 0;
* a second signal: the messages in hand are released and the process exits 0 within a second;
* a stalled handler (:attr:`Poller.fatal`): exit ``EXIT_STALLED`` so that systemd restarts it.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional, Sequence

from ..worker_config import ConfigError, Settings, get_settings, ignored_env_overrides, ignored_env_overrides_message
from .errors import WorkerError
from .logs import setup_logging
from .poller import Poller

log = logging.getLogger(__name__)

EXIT_CONFIG = 2  # bad configuration or a failed start-up check: fix it, systemd retries after RestartSec
EXIT_STALLED = 75  # EX_TEMPFAIL: a handler stalled; a restart gets a fresh process
HARD_RELEASE_S = 0.6  # a second signal: time allowed to release the messages in hand


def run_worker(prog: str, description: str, build: Callable[[Settings], Poller],
               argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``--help``-able arguments, build the poller from the settings and serve until stopped.

    Start-up failures (bad config, missing weights, missing queues, tables or bucket) print one
    line that says what to fix and exit 2, so systemd's journal shows the reason at the top.
    """
    p = argparse.ArgumentParser(prog=prog, description=description,
                                epilog="Settings come from worker_config.py; with CVITX_ENV_OVERRIDES=1 every field "
                                       "can be overridden as CVITX_<FIELD> (e.g. `source .stack/env` for the local "
                                       "stack). Stop with SIGTERM/SIGINT: the message in hand is finished or released; "
                                       "a second signal releases it and exits at once. Exit status: 0 stopped, "
                                       f"{EXIT_CONFIG} configuration or start-up check failed, {EXIT_STALLED} a handler "
                                       "stalled (restart me).")
    p.add_argument("--max-batches", type=int, default=None,
                   help="exit after this many non-empty receives (default: serve forever)")
    args = p.parse_args(argv)
    try:
        settings = get_settings()
        setup_logging(settings.log_level)
        _warn_ignored_overrides()
        poller = build(settings)
        return serve(poller, settings, max_batches=args.max_batches)
    except ConfigError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except WorkerError as exc:
        log.error("cannot start", extra={"error": exc.reason})
        print(f"{prog}: cannot start: {exc.reason}", file=sys.stderr)
        return EXIT_CONFIG


def _warn_ignored_overrides() -> None:
    """CVITX_* variables that are set while the override switch is off are ignored: say so (a
    systemd EnvironmentFile without the switch would otherwise run on the defaults silently)."""
    names = ignored_env_overrides()
    if names:
        log.warning("environment overrides ignored: CVITX_ENV_OVERRIDES is not set",
                    extra={"ignored": names, "fix": ignored_env_overrides_message(names)})


class _Signals:
    """Counts SIGTERM/SIGINT and tells the poller to stop.  The handler only assigns (a
    counter, and the poller's stop flag through ``Poller.stop``): no lock, no I/O, no logging
    (the main thread may hold any of those when the signal lands).  The main loop does the
    rest: the log line, STOPPING=1, the deadline."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self.count = 0
        self.last: Optional[int] = None

    def __call__(self, signum: int, _frame: object) -> None:
        self.count += 1
        self.last = signum
        self.poller.stop()  # at once: a task arriving in the open long poll is not taken on

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)


def serve(poller: Poller, settings: Settings, *, max_batches: Optional[int] = None,
          hard_exit: Optional[Callable[[int], None]] = None) -> int:
    """Run ``poller`` on its own thread and own the process lifetime (module docstring).
    Returns the poller's exit status; the hard paths end the process with ``hard_exit``
    (default: flush the logs and ``os._exit``)."""
    hard_exit = hard_exit or _hard_exit
    signals = _Signals(poller)
    signals.install()
    outcome: dict[str, object] = {}

    def body() -> None:
        try:
            outcome["rc"] = poller.run(max_batches=max_batches)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=body, name="poller", daemon=True)
    thread.start()
    deadline: Optional[float] = None
    while thread.is_alive():
        thread.join(0.1)  # interruptible: the signal handler runs here
        if poller.fatal is not None:
            log.error("exiting for a restart", extra={"reason": poller.fatal, "exit_status": EXIT_STALLED})
            hard_exit(EXIT_STALLED)
            return EXIT_STALLED
        if signals.count and deadline is None:
            log.info("stop requested: finishing or releasing the message in hand",
                     extra={"signal": signal.Signals(signals.last or signal.SIGTERM).name,
                            "stop_timeout_s": settings.stop_timeout_s})
            poller.notifier.stopping()
            deadline = time.monotonic() + settings.stop_timeout_s
        if signals.count >= 2:
            log.warning("second stop signal: releasing messages in hand and exiting now")
            _release_within(poller, HARD_RELEASE_S, signals, allow_more_signals=False)
            hard_exit(0)
            return 0
        if deadline is not None and time.monotonic() > deadline and thread.is_alive():
            log.warning("stop timeout reached: releasing messages in hand and exiting",
                        extra={"stop_timeout_s": settings.stop_timeout_s})
            _release_within(poller, 10.0, signals, allow_more_signals=True)
            hard_exit(0)
            return 0
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    if poller.fatal is not None:  # stalled, and the loop still came to an end: a restart all the same
        log.error("exiting for a restart", extra={"reason": poller.fatal, "exit_status": EXIT_STALLED})
        return EXIT_STALLED
    return int(outcome.get("rc", 0))  # type: ignore[arg-type]


def _release_within(poller: Poller, limit_s: float, signals: _Signals, *, allow_more_signals: bool) -> None:
    """``poller.release_in_hand()`` on a helper thread, waited for at most ``limit_s`` (cut to
    the hard-release time by a further signal): SQS unreachable must not hold the exit."""
    seen = signals.count
    t = threading.Thread(target=poller.release_in_hand, name="release", daemon=True)
    t.start()
    end = time.monotonic() + limit_s
    while t.is_alive() and time.monotonic() < end:
        t.join(0.05)
        if allow_more_signals and signals.count > seen:
            end = min(end, time.monotonic() + HARD_RELEASE_S)
            seen = signals.count


def _hard_exit(status: int) -> None:
    """Flush the logs and end the process now (threads stuck in a handler cannot be joined)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
