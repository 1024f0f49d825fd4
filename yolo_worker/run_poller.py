"""Entry point: ``python -m video_analysis.yolo_worker.run_poller`` serves cvitx-video-tasks."""
from __future__ import annotations

import sys

from ..worker_config import Settings
from ..worker_utils.poller import Poller, one_at_a_time
from ..worker_utils.runner import run_worker


def build(settings: Settings) -> Poller:
    from .worker import YoloWorker

    worker = YoloWorker(settings)
    return Poller(settings, settings.video_queue, settings.video_dlq, one_at_a_time(worker.handle),
                  batch_size=1, name="yolo_worker")


def main(argv=None) -> int:
    return run_worker("python -m video_analysis.yolo_worker.run_poller",
                      "yolo_worker: PROCESS_VIDEO -> tracked best snapshots in S3 -> SNAPSHOT_READY.", build, argv)


if __name__ == "__main__":
    sys.exit(main())
