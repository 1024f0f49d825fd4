"""What both ``run_poller.py`` entry points share: arguments, logging, start-up errors."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Optional, Sequence

from ..worker_config import ConfigError, Settings, get_settings
from .errors import WorkerError
from .logs import setup_logging
from .poller import Poller

log = logging.getLogger(__name__)


def run_worker(prog: str, description: str, build: Callable[[Settings], Poller],
               argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``--help``-able arguments, build the poller from the settings and serve until stopped.

    Start-up failures (bad config, missing weights, missing queues) print one line that says
    what to fix and exit 2, so systemd's journal shows the reason at the top.
    """
    p = argparse.ArgumentParser(prog=prog, description=description,
                                epilog="Settings come from worker_config.py; with CVITX_ENV_OVERRIDES=1 every field "
                                       "can be overridden as CVITX_<FIELD> (e.g. `source .stack/env` for the local "
                                       "stack). Stop with SIGTERM/SIGINT: the message in hand is finished or released.")
    p.add_argument("--max-batches", type=int, default=None,
                   help="exit after this many non-empty receives (default: serve forever)")
    args = p.parse_args(argv)
    try:
        settings = get_settings()
        setup_logging(settings.log_level)
        poller = build(settings)
        return poller.run(max_batches=args.max_batches)
    except ConfigError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        return 2
    except WorkerError as exc:
        log.error("cannot start", extra={"error": exc.reason})
        print(f"{prog}: cannot start: {exc.reason}", file=sys.stderr)
        return 2
