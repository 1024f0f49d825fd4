"""Benchmark c: main_worker snapshots/s, batched (up to 10 per receive, one forward pass)
vs one message at a time, through the real poller and handler.

The snapshots are real: the yolo_worker processes the same generated clip twice (two video
ids), which leaves two equal sets of SNAPSHOT_READY messages (and queued rows) on the
snapshot queue.  One set is served with ``main_batch_size`` 10, the other with 1; each pass
includes the SQS receives and deletes, the S3 gets, the model and the Postgres writes.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from ..worker_utils.poller import HandlerContext, Poller
from ..worker_utils.sqs_queue import SqsQueues
from ..worker_utils.submit import submit_video
from .common import WORKSPACE, clip, local_stack, log, ratio


def _make_snapshots(settings, path, stride: int, videos: int) -> int:
    """Run the yolo_worker over ``path`` ``videos`` times; returns the snapshots per video."""
    from ..yolo_worker.worker import YoloWorker

    worker = YoloWorker(settings)
    per_video = []
    for _ in range(videos):
        submit_video(settings, path, workspace_id=WORKSPACE, workspace_code="CTX1005", camera_code="CAM1",
                     frame_stride=stride)
        msg = SqsQueues(settings).receive(settings.video_queue, 1, wait_s=5)[0]
        worker.handle(msg, HandlerContext(settings, threading.Event()))
        SqsQueues(settings).delete(settings.video_queue, msg.receipt_handle)
        per_video.append(worker.last_stats.tracks_emitted)
    return min(per_video)


def _serve(settings, worker, batch_size: int, count: int) -> tuple[float, int]:
    """Serve at least ``count`` messages with the real poller: (seconds, messages served)."""
    served = 0
    poller: Poller

    def handler(messages, ctx):
        nonlocal served
        out = worker.handle_batch(messages, ctx)
        served += len(messages)
        if served >= count:
            poller.stop_event.set()
        return out

    poller = Poller(settings, settings.snapshot_queue, settings.snapshot_dlq, handler, batch_size=batch_size,
                    install_signals=False, name=f"bench-batch{batch_size}")
    t0 = time.perf_counter()
    poller.run()
    return time.perf_counter() - t0, served


def bench_main(duration_s: float = 30.0, stride: int = 3, plate: bool = True, **clip_kw: Any) -> dict[str, Any]:
    path = clip(duration_s, **clip_kw)
    with local_stack(device="cpu", plate_enabled=plate, receive_wait_s=1) as (s, _):
        from ..main_worker.worker import MainWorker

        # two copies of the clip's snapshots per pass: enough messages for a stable figure
        n = 2 * _make_snapshots(s, path, stride, videos=4)
        log(f"{2 * n} snapshots queued")
        worker = MainWorker(s)
        out: dict[str, Any] = {"snapshots_per_pass": n, "plate_enabled": plate, "color_enabled": s.color_enabled,
                               "main_mode": s.main_mode}
        left = 2 * n
        for name, batch in (("batched", 10), ("one_at_a_time", 1)):
            wall, served = _serve(s, worker, batch, min(n, left))
            left -= served
            out[name] = {"batch_size": batch, "snapshots": served, "wall_s": round(wall, 2),
                         "snapshots_per_s": round(served / wall, 2)}
            log(f"{name}: {served} snapshots in {wall:.1f} s")
        out["c_batched_vs_one_at_a_time"] = ratio(out["batched"]["snapshots_per_s"],
                                                  out["one_at_a_time"]["snapshots_per_s"])
        return out
