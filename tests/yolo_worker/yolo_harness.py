"""Helpers for the yolo_worker integration tests: the real handler (YoloWorker) served by the
real poller loop (worker_utils.poller.Poller) against the real local stack (moto_server +
PostgreSQL), with the project's trained detector loaded once per session.

Nothing is mocked.  ``RecordingWorker`` is the real YoloWorker; it only keeps a copy of each
FinishedTrack it emitted (frame index and box of the chosen best frame), which is what a test
needs to map a snapshot back to the ground-truth vehicle it shows.
"""
from __future__ import annotations

import itertools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from conftest import DETECTOR
from helpers import WID, new_uuid
from video_analysis.worker_config import Settings
from video_analysis.worker_utils.db import Database
from video_analysis.worker_utils.keys import build_raw_key
from video_analysis.worker_utils.poller import HandlerContext, Poller
from video_analysis.worker_utils.repository import upsert_video_queued
from video_analysis.worker_utils.s3_store import S3Store
from video_analysis.worker_utils.sqs_queue import ReceivedMessage, SqsQueues

RECORDED_AT = "2026-03-02T08:00:00Z"


class Crash(BaseException):
    """Stands in for the process dying (kill -9, OOM, power) in the middle of a video."""


@dataclass
class Emitted:
    track_id: int
    frame_index: int
    box: tuple[float, float, float, float]
    ts_ms: int
    yolo_type: str
    hits: int
    video_id: str


def make_recording_worker(settings: Settings, detector: Any, crash_after: Optional[int] = None,
                          client: Optional["Client"] = None):
    """The real YoloWorker (recording what it emits); with ``client``, it shares that client's
    S3/SQS/DB adapters (creating boto3 clients costs ~0.3 s each on this machine)."""
    from video_analysis.yolo_worker.worker import YoloWorker

    class RecordingWorker(YoloWorker):
        """The real worker; remembers what it emitted and the pipeline stats of each video."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.emitted: list[Emitted] = []
            self.stats: dict[str, Any] = {}

        def _emit(self, job, ft) -> None:
            if crash_after is not None and len(self.emitted) >= crash_after:
                raise Crash(f"simulated crash after {crash_after} snapshots")
            super()._emit(job, ft)  # S3 put, image_analyses row, SNAPSHOT_READY
            b = ft.best
            self.emitted.append(Emitted(ft.track_id, b.frame_index, b.box, b.ts_ms, ft.yolo_type, ft.hits,
                                        job.video_id))

        def _process(self, job, ctx, *args):
            stats = super()._process(job, ctx, *args)
            if stats is not None:  # None: planned as segments; a segmented video keeps its last segment's
                self.stats[job.video_id] = stats
            return stats

    adapters = dict(s3=client.s3, sqs=client.sqs, db=client.db) if client is not None else {}
    return RecordingWorker(settings, detector=detector, **adapters)


YOLO_TEST_SETTINGS = dict(detector_path=str(DETECTOR), device="cpu", receive_wait_s=1,
                          transient_backoff_base_s=0, transient_backoff_max_s=0)


_module_counter = itertools.count(1)


def provision_private(stack) -> Settings:
    """Like the ``provisioned`` fixture, for module-scoped fixtures: a database cloned from the
    migrated template, its own bucket and queues, ``setup`` run."""
    import psycopg2

    from video_analysis.worker_config import build_settings
    from video_analysis.worker_utils.provision import run_setup

    name = f"yw{os.getpid()}m{next(_module_counter)}"
    conn = psycopg2.connect(stack.pg.url_for("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE cvitx_template')
    conn.close()
    s = build_settings({}, s3_endpoint_url=stack.moto.endpoint, sqs_endpoint_url=stack.moto.endpoint,
                       db_url=stack.pg.url_for(name), bucket=f"b-{name}", video_queue=f"{name}-video",
                       video_dlq=f"{name}-video-dlq", snapshot_queue=f"{name}-snap", snapshot_dlq=f"{name}-snap-dlq")
    run_setup(s)
    return s.replace(**YOLO_TEST_SETTINGS)


def serve(settings: Settings, worker: Any, messages: int, timeout_s: float = 120.0) -> Poller:
    """Run the real poller loop in this thread until it has served ``messages`` receives
    (batch size 1, as run_poller does); a timer stops it (like SIGTERM) if they never come."""
    poller = worker.poller(name="yolo_worker-test")  # what run_poller serves, dead-letter hook included
    timer = threading.Timer(timeout_s, poller.stop)
    timer.start()
    try:
        poller.run(max_batches=messages)
    finally:
        timer.cancel()
    assert not poller.stopping, f"the poller served fewer than {messages} messages in {timeout_s:.0f}s"
    return poller


class Client:
    """What the API and an operator do around the worker: upload, register, send, read back."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.s3, self.sqs, self.db = S3Store(settings), SqsQueues(settings), Database(settings)

    def raw_key(self, video_id: str, name: str = "clip.mp4") -> str:
        return build_raw_key(WID, video_id, name, self.s.user_prefix)

    def upload(self, path: Path | None, video_id: str, data: bytes | None = None) -> str:
        key = self.raw_key(video_id)
        if data is not None:
            self.s3.put_bytes(key, data, "video/mp4")
        elif path is not None:
            self.s3.upload_file(path, key, "video/mp4")
        return key

    def register(self, video_id: str, frame_stride: int = 3, recorded_at: Optional[str] = None,
                 workspace_id: str = WID) -> None:
        upsert_video_queued(self.db, video_id=video_id, workspace_id=workspace_id, workspace_code="CTX1005",
                            camera_code="CAM1", s3_key_raw=f"{self.s.user_prefix}/{workspace_id}/{video_id}/raw/clip.mp4",
                            frame_stride=frame_stride, recorded_at=recorded_at)

    def message(self, video_id: str, frame_stride: Any = 3, recorded_at: Optional[str] = None, **over) -> dict:
        m = {"event": "PROCESS_VIDEO", "video_id": video_id, "workspace_id": WID, "workspace_code": "CTX1005",
             "camera_code": "CAM1", "s3_key_raw": self.raw_key(video_id), "frame_stride": frame_stride,
             "recordedAt": recorded_at}
        m.update(over)
        return m

    def submit(self, path: Path, frame_stride: int = 3, recorded_at: Optional[str] = None) -> tuple[str, dict]:
        """Upload + register + send PROCESS_VIDEO, the API's way; returns (video_id, message)."""
        vid = new_uuid()
        self.upload(path, vid)
        self.register(vid, frame_stride, recorded_at)
        msg = self.message(vid, frame_stride, recorded_at)
        self.send(msg)
        return vid, msg

    def send(self, body: dict | str) -> None:
        self.sqs.send_raw(self.s.video_queue, body if isinstance(body, str) else json.dumps(body))

    def drain(self, queue: str, wait_s: int = 0) -> list[ReceivedMessage]:
        out: list[ReceivedMessage] = []
        while True:
            got = self.sqs.receive(queue, 10, wait_s=wait_s, visibility_s=60)
            if not got:
                return out
            out.extend(got)

    def snapshot_messages(self) -> list[dict]:
        return [json.loads(m.body) for m in self.drain(self.s.snapshot_queue)]

    def video(self, video_id: str) -> Optional[dict]:
        return self.db.fetchone("SELECT status, error, workspace_code, camera_code FROM videos WHERE id = %s",
                                (video_id,))

    def analyses(self, video_id: str) -> list[dict]:
        return self.db.fetchall("SELECT id::text AS id, track_id, snapshot_s3_key, detected_in_ms, detected_at,"
                                " yolo_type, status, track_first_ms, track_last_ms, bbox FROM image_analyses"
                                " WHERE video_id = %s ORDER BY track_id", (video_id,))


def receive_one(client: Client, visibility_s: int) -> ReceivedMessage:
    got = client.sqs.receive(client.s.video_queue, 1, wait_s=2, visibility_s=visibility_s)
    assert len(got) == 1, got
    return got[0]


def context(settings: Settings) -> HandlerContext:
    return HandlerContext(settings, threading.Event())
