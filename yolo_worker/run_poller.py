"""Entry point: ``python -m video_analysis.yolo_worker.run_poller`` serves cvitx-video-tasks."""
from __future__ import annotations

import sys

from ..worker_config import Settings
from ..worker_utils.poller import Poller
from ..worker_utils.runner import run_worker


def build(settings: Settings) -> Poller:
    from .worker import YoloWorker

    return YoloWorker(settings).poller()


def main(argv=None) -> int:
    return run_worker("python -m video_analysis.yolo_worker.run_poller",
                      "yolo_worker: PROCESS_VIDEO -> tracked best snapshots in S3 -> SNAPSHOT_READY.", build, argv)


if __name__ == "__main__":
    sys.exit(main())
