"""Benchmark c: main_worker snapshots/s, batched (up to 10 per receive, one forward pass)
vs one message at a time, through the real poller and handler.

The snapshots are real: the yolo_worker processes the same generated clip several times (one
video id each), which leaves equal sets of SNAPSHOT_READY messages (and queued rows) on the
snapshot queue.  Each pass serves one set with ``main_batch_size`` 10 or 1; a pass includes
the SQS receives and deletes, the S3 gets, the model, plate OCR and the Postgres writes.

The queue is kept at the same shallow depth in every pass: the messages are taken off the
queue once the yolo_worker has made them all, and put back ``QUEUE_DEPTH`` at first, then as
many as each receive took, after it was handled; that topping up is not counted.  moto's
ReceiveMessage deep-copies every message it returns and walks the queue to find it, so its time
grows with the depth times the number asked for (measured here: 37 ms for 10 of 70 queued, 9 ms
for 10 of 10, 7 ms for 1 of 70), which SQS's does not; a deep local queue would measure moto.
The two modes alternate over ``rounds`` and each keeps its fastest pass (this machine is
shared).  The same passes run with plate OCR off too (a second worker on the same stack), and
every pass reports how much of its time the OCR took: OCR is per-image work that batching
cannot share on a CPU, so it bounds what batching can gain (see the README).
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Optional, Sequence

import numpy as np

from ..main_worker.plate import PlateReader
from ..worker_utils.poller import HandlerContext, Poller
from ..worker_utils.sqs_queue import SqsQueues
from ..worker_utils.submit import submit_video
from .common import WORKSPACE, clip, local_stack, log, ratio

MODES = (("batched", 10), ("one_at_a_time", 1))
QUEUE_DEPTH = 10  # messages waiting on the snapshot queue during a pass (see the module docstring)


class TimedPlateReader(PlateReader):
    """The real plate reader, keeping the seconds spent in it (benchmark instrument)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.seconds = 0.0

    def read_batch(self, snapshots: Sequence[np.ndarray]) -> list[tuple[Optional[str], Optional[float]]]:
        t0 = time.perf_counter()
        try:
            return super().read_batch(snapshots)
        finally:
            self.seconds += time.perf_counter() - t0


def _make_snapshots(settings, path, stride: int, videos: int) -> None:
    """Run the yolo_worker over ``path`` ``videos`` times (its messages stay on the snapshot queue)."""
    from ..yolo_worker.worker import YoloWorker

    worker = YoloWorker(settings)
    for _ in range(videos):
        submit_video(settings, path, workspace_id=WORKSPACE, workspace_code="CTX1005", camera_code="CAM1",
                     frame_stride=stride)
        msg = SqsQueues(settings).receive(settings.video_queue, 1, wait_s=5)[0]
        worker.handle(msg, HandlerContext(settings, threading.Event()))
        SqsQueues(settings).delete(settings.video_queue, msg.receipt_handle)


def _take_all(settings) -> list[list[str]]:
    """Every message on the snapshot queue, taken off it: the bodies, grouped by video in the
    order the videos were made."""
    sqs, by_video = SqsQueues(settings), {}
    while True:
        got = sqs.receive(settings.snapshot_queue, 10, wait_s=0)
        if not got:
            return list(by_video.values())
        for m in got:
            by_video.setdefault(json.loads(m.body)["video_id"], []).append(m.body)
        sqs.delete_many(settings.snapshot_queue, [m.receipt_handle for m in got])


class _Feeder:
    """Puts a pass's messages on the snapshot queue: ``depth`` at first, then ``top_up(k)``."""

    def __init__(self, settings, bodies: list[str], depth: int = QUEUE_DEPTH) -> None:
        self.sqs, self.queue, self.left = SqsQueues(settings), settings.snapshot_queue, list(bodies)
        self.top_up(depth)

    def top_up(self, k: int) -> float:
        """Send the next ``k`` messages; returns the seconds that took."""
        t0 = time.perf_counter()
        for body in self.left[:k]:
            self.sqs.send_raw(self.queue, body)
        del self.left[:k]
        return time.perf_counter() - t0


def _serve(settings, worker, batch_size: int, bodies: list[str]) -> tuple[float, int]:
    """Serve ``bodies`` with the real poller, the queue kept topped up: (seconds, messages
    served), the seconds without the topping up."""
    served, feeding = 0, 0.0
    feeder = _Feeder(settings, bodies)
    poller: Poller

    def handler(messages, ctx):
        nonlocal served, feeding
        out = worker.handle_batch(messages, ctx)
        served += len(messages)
        feeding += feeder.top_up(len(messages))
        if served >= len(bodies):
            poller.stop()
        return out

    poller = Poller(settings, settings.snapshot_queue, settings.snapshot_dlq, handler, batch_size=batch_size,
                    name=f"bench-batch{batch_size}")
    t0 = time.perf_counter()
    poller.run()
    return time.perf_counter() - t0 - feeding, served


def _pass(settings, worker, batch: int, bodies: list[str]) -> dict[str, Any]:
    """One pass over ``bodies``; the OCR's share when the worker reads plates."""
    reader = worker.plates
    ocr0 = reader.seconds if isinstance(reader, TimedPlateReader) else 0.0
    wall, served = _serve(settings, worker, batch, bodies)
    ocr = (reader.seconds - ocr0) if isinstance(reader, TimedPlateReader) else 0.0
    return {"batch_size": batch, "snapshots": served, "wall_s": round(wall, 2),
            "snapshots_per_s": round(served / wall, 2), "ms_per_snapshot": round(wall / served * 1e3, 1),
            "ocr_ms_per_snapshot": round(ocr / served * 1e3, 1),
            "other_ms_per_snapshot": round((wall - ocr) / served * 1e3, 1)}


def runtimes_used(worker: Any) -> dict[str, Any]:
    """What each model of the main_worker ran on, read after the passes: every variant's format,
    runtime and precision (OpenVINO reports bf16 on AMX CPUs), and the plate OCR's."""
    out: dict[str, Any] = {name: {"format": getattr(m, "format_name", type(m).__name__),
                                  "runtime": getattr(m, "runtime", None), "precision": getattr(m, "precision", None)}
                           for name, m in getattr(worker, "variants", {}).items()}
    plates = getattr(worker, "plates", None)
    if plates is not None:
        ov = getattr(plates, "_ov", None)  # the OpenVINO OCR, once loaded; else ONNX Runtime (float32)
        out["plate_ocr"] = {"runtime": "openvino" if ov is not None else getattr(plates, "runtime", None),
                            "precision": getattr(ov, "precision", None) if ov is not None else "f32"}
    return out


def bench_main(duration_s: float = 30.0, stride: int = 3, plate: bool = True, rounds: int = 3,
               videos_per_pass: int = 2, **clip_kw: Any) -> dict[str, Any]:
    """c, with plate OCR on (the default configuration) and, side by side, off."""
    clip_kw.setdefault("vehicles_per_min", 30.0)  # dense traffic: many snapshots per yolo_worker run
    path = clip(duration_s, **clip_kw)
    variants = [True, False] if plate else [False]
    with local_stack(device="cpu", receive_wait_s=1) as (s, _):
        from ..main_worker.worker import MainWorker

        passes = rounds * len(MODES) * len(variants)
        t0 = time.perf_counter()
        _make_snapshots(s, path, stride, videos=passes * videos_per_pass)
        videos = _take_all(s)
        sets = [sum(videos[i:i + videos_per_pass], []) for i in range(0, len(videos), videos_per_pass)]
        n = min(len(b) for b in sets)
        sets = [b[:n] for b in sets]  # the same number of messages in every pass
        log(f"{passes} passes of {n} snapshots made in {time.perf_counter() - t0:.0f} s")
        workers = {True: MainWorker(s, plate_reader=TimedPlateReader(runtime=s.plate_runtime)) if plate else None,
                   False: MainWorker(s.replace(plate_enabled=False))}
        best: dict[tuple[bool, str], dict[str, Any]] = {}
        for r in range(rounds):
            for with_plate in variants:
                for name, batch in MODES:
                    res = _pass(s, workers[with_plate], batch, sets.pop())
                    log(f"round {r + 1}, plates {'on' if with_plate else 'off'}, {name}: "
                        f"{res['snapshots']} snapshots in {res['wall_s']} s ({res['ms_per_snapshot']} ms each, "
                        f"OCR {res['ocr_ms_per_snapshot']})")
                    key = (with_plate, name)
                    if key not in best or res["snapshots_per_s"] > best[key]["snapshots_per_s"]:
                        best[key] = res
        out: dict[str, Any] = {"snapshots_per_pass": n, "rounds": rounds, "queue_depth": QUEUE_DEPTH,
                               "plate_enabled": plate,
                               "color_enabled": s.color_enabled, "main_mode": s.main_mode,
                               "runtimes": runtimes_used(workers[plate] or workers[False])}
        for with_plate in variants:
            group = {name: best[(with_plate, name)] for name, _ in MODES}
            b, one = group["batched"], group["one_at_a_time"]
            group["ratio"] = ratio(b["snapshots_per_s"], one["snapshots_per_s"])
            group["ratio_of_time_outside_ocr"] = ratio(one["other_ms_per_snapshot"], b["other_ms_per_snapshot"])
            out["plates_on" if with_plate else "plates_off"] = group
        # the target figure is the default configuration's (plates on unless --no-plate)
        out["c_batched_vs_one_at_a_time"] = out["plates_on" if plate else "plates_off"]["ratio"]
        return out
