"""Entry point: ``python -m video_analysis.main_worker.run_poller`` serves cvitx-snapshot-tasks."""
from __future__ import annotations

import sys

from ..worker_config import Settings
from ..worker_utils.poller import Poller
from ..worker_utils.runner import run_worker


def build(settings: Settings) -> Poller:
    from .worker import MainWorker

    return MainWorker(settings).poller()


def main(argv=None) -> int:
    return run_worker("python -m video_analysis.main_worker.run_poller",
                      "main_worker: SNAPSHOT_READY -> Type/Make/Model (+Color, Plate; Baseline vs CMT) -> Postgres.",
                      build, argv)


if __name__ == "__main__":
    sys.exit(main())
