"""Fixtures for the main_worker integration tests: snapshots with ground truth cut from
generated clips, a publisher that does what the yolo_worker does (S3 put, queued analysis
row, SNAPSHOT_READY), and an in-process run of the real poller loop.

Everything runs against the real local stack (moto_server + PostgreSQL); nothing is mocked.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

import cv2
import numpy as np
import pytest

from conftest import CMT_BUNDLE, MAIN_BUNDLE
from helpers import WID, new_uuid
from video_analysis.worker_config import Settings
from video_analysis.worker_utils.db import Database
from video_analysis.worker_utils.imaging import encode_jpeg
from video_analysis.worker_utils.keys import build_raw_key, build_snapshot_key, build_snapshot_uri
from video_analysis.worker_utils.repository import insert_analysis_queued, upsert_video_queued
from video_analysis.worker_utils.s3_store import S3Store
from video_analysis.worker_utils.sqs_queue import ReceivedMessage, SqsQueues
from video_analysis.worker_utils.timeutil import detected_at

RECORDED_AT = "2026-03-02T08:00:00Z"
# Two scenes from the evaluation seed range (never trained on), at a low frame rate and busy
# traffic so that rendering ~100 distinct vehicles stays cheap.
GT_SCENES = ((500011, 60.0), (500023, 60.0))


@dataclass(frozen=True)
class GtSnap:
    """One vehicle's snapshot (640x640 BGR) and its ground truth (type, make, model, color, plate)."""

    image: np.ndarray
    jpeg: bytes
    vehicle: dict
    track_id: int
    offset_ms: int


def best_frames(gt, min_visibility: float = 0.7) -> dict[int, tuple[int, tuple]]:
    """vehicle id -> (frame, box) of its largest fully visible box (not cut by the frame edge),
    the frame the yolo_worker's best-frame rule (area first) would choose."""
    H, W = gt.config["height"], gt.config["width"]
    best: dict[int, tuple[float, int, tuple]] = {}
    for f, rows in gt.boxes.items():
        for vid, b, vis in rows:
            if vis < min_visibility or b[0] <= 1 or b[1] <= 1 or b[2] >= W - 1 or b[3] >= H - 1:
                continue
            area = (b[2] - b[0]) * (b[3] - b[1])
            if vid not in best or area > best[vid][0]:
                best[vid] = (area, f, b)
    return {vid: (f, b) for vid, (_a, f, b) in best.items()}


def snapshots_from_clip(info, rng: np.random.Generator, track_base: int = 0) -> list[GtSnap]:
    """The best snapshot of every vehicle of a generated clip, cut by the worker's own crop +
    letterbox code from the decoded H.264 frames (the box jittered like a detector's)."""
    from video_analysis.synth.clip import load_ground_truth
    from video_analysis.synth.datasets import snapshot_from_box

    gt = load_ground_truth(info.video)
    fps = gt.config["fps"]
    wanted: dict[int, list] = {}
    for vid, (f, b) in best_frames(gt).items():
        wanted.setdefault(f, []).append((vid, b))
    out = []
    cap = cv2.VideoCapture(str(info.video))
    i = 0
    try:
        while wanted:
            ok, frame = cap.read()
            if not ok:
                break
            for vid, b in wanted.pop(i, []):
                img = snapshot_from_box(frame, b, rng)
                out.append(GtSnap(img, encode_jpeg(img, 90), gt.vehicles[vid], track_base + vid,
                                  int(round(i * 1000 / fps))))
            i += 1
    finally:
        cap.release()
    return out


@pytest.fixture(scope="session")
def gt_snaps(clip_factory) -> list[GtSnap]:
    """~100 snapshots of distinct vehicles with ground truth (session-cached)."""
    from video_analysis.synth.datasets import random_config

    rng = np.random.default_rng(12345)
    out: list[GtSnap] = []
    for k, (seed, dur) in enumerate(GT_SCENES):
        cfg = random_config(seed, duration_s=dur, fps=10.0, vehicles_per_min=20.0)
        out += snapshots_from_clip(clip_factory(**asdict(cfg)), rng, track_base=1000 * k)
    return out


@pytest.fixture(scope="session")
def variants() -> dict[str, Any]:
    """Both demo bundles, loaded once per session."""
    from video_analysis.main_worker.model import load_bundle

    return {"baseline": load_bundle(MAIN_BUNDLE), "cmt": load_bundle(CMT_BUNDLE)}


@pytest.fixture
def mw_settings(provisioned) -> Settings:
    """Provisioned settings for the main_worker: the demo bundles, short long-polls, no OCR."""
    return provisioned.replace(main_model_path=str(MAIN_BUNDLE), cmt_model_path=str(CMT_BUNDLE),
                               receive_wait_s=1, plate_enabled=False)


class Publisher:
    """Does what the yolo_worker does for one snapshot: S3 put (Content-Type), queued
    image_analyses row, SNAPSHOT_READY on the snapshot queue."""

    def __init__(self, settings: Settings, workspace_code: str = "CTX1005", camera_code: str = "CAM1"):
        self.s = settings
        self.s3, self.db, self.sqs = S3Store(settings), Database(settings), SqsQueues(settings)
        self.workspace_id, self.video_id = WID, new_uuid()
        self.wcode, self.ccode = workspace_code, camera_code
        upsert_video_queued(self.db, video_id=self.video_id, workspace_id=self.workspace_id,
                            workspace_code=workspace_code, camera_code=camera_code,
                            s3_key_raw=build_raw_key(self.workspace_id, self.video_id, "clip.mp4", settings.user_prefix),
                            frame_stride=3, recorded_at=RECORDED_AT)

    def key(self, track_id: int, offset_ms: int) -> str:
        return build_snapshot_key(self.workspace_id, self.video_id, self.wcode, self.ccode, track_id, offset_ms,
                                  self.s.user_prefix)

    def message(self, track_id: int, offset_ms: int, yolo_type: str = "Car", bucket: Optional[str] = None) -> dict:
        return {"event": "SNAPSHOT_READY", "video_id": self.video_id, "workspace_id": self.workspace_id,
                "workspace_code": self.wcode, "camera_code": self.ccode, "track_id": track_id,
                "snapshot_s3_key": build_snapshot_uri(bucket or self.s.bucket, self.key(track_id, offset_ms)),
                "recordedAt": RECORDED_AT, "detectedIn": offset_ms, "detectedAt": detected_at(RECORDED_AT, offset_ms),
                "yolo_type": yolo_type}

    def publish(self, track_id: int, offset_ms: int, data: Optional[bytes], *, content_type: str = "image/jpeg",
                yolo_type: str = "Car", row: bool = True, send: bool = True) -> dict:
        """Put ``data`` (None = no object), insert the queued row, send the message; returns it."""
        msg = self.message(track_id, offset_ms, yolo_type)
        if data is not None:
            self.s3.put_bytes(self.key(track_id, offset_ms), data, content_type)
        if row:
            insert_analysis_queued(self.db, video_id=self.video_id, workspace_id=self.workspace_id, track_id=track_id,
                                   snapshot_uri=msg["snapshot_s3_key"], detected_in_ms=offset_ms,
                                   detected_at=msg["detectedAt"], yolo_type=yolo_type)
        if send:
            self.send(msg)
        return msg

    def publish_snap(self, snap: GtSnap, **kw) -> dict:
        return self.publish(snap.track_id, snap.offset_ms, snap.jpeg, yolo_type=snap.vehicle["type"], **kw)

    def send(self, msg: dict | str) -> None:
        self.sqs.send_raw(self.s.snapshot_queue, msg if isinstance(msg, str) else json.dumps(msg))

    # --- reading back -------------------------------------------------------------
    def analyses(self) -> list[dict]:
        return self.db.fetchall("SELECT id::text AS id, track_id, snapshot_s3_key, detected_in_ms, detected_at,"
                                " yolo_type, status, error, updated_at FROM image_analyses ORDER BY track_id")

    def results(self) -> list[dict]:
        return self.db.fetchall("SELECT r.*, r.analysis_id::text AS analysis_id, a.track_id, a.snapshot_s3_key"
                                " FROM image_analysis_results r JOIN image_analyses a ON a.id = r.analysis_id"
                                " ORDER BY a.track_id, r.variant")

    def status_counts(self) -> dict[str, int]:
        return {r["status"]: r["n"] for r in
                self.db.fetchall("SELECT status, count(*) AS n FROM image_analyses GROUP BY status")}

    def drain(self, queue: str, wait_s: int = 1) -> list[ReceivedMessage]:
        out = []
        while True:
            got = self.sqs.receive(queue, 10, wait_s=wait_s, visibility_s=30)
            if not got:
                return out
            out.extend(got)


@pytest.fixture
def publisher(mw_settings) -> Publisher:
    return Publisher(mw_settings)


class SpyModel:
    """A real bundle that also records the batch size of every forward pass."""

    def __init__(self, bundle: Any):
        self.bundle = bundle
        self.model_name, self.version = bundle.model_name, bundle.version
        self.labels, self.hierarchy = bundle.labels, bundle.hierarchy
        self.batches: list[int] = []

    def predict(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.batches.append(len(batch))
        return self.bundle.predict(batch)


def make_worker(settings: Settings, variants: dict[str, Any], plate_reader: Any = None):
    from video_analysis.main_worker.worker import MainWorker

    names = ["baseline", "cmt"] if settings.main_mode == "compare" else ["baseline"]
    return MainWorker(settings, variants={n: variants[n] for n in names}, plate_reader=plate_reader)


def serve_until(settings: Settings, worker: Any, done: Callable[[], bool], timeout_s: float = 60.0):
    """Run the real poller loop (worker_utils.poller.Poller) in a thread until ``done()`` holds,
    then stop it the way SIGTERM does (stop event) and wait for it. Returns the poller."""
    from video_analysis.worker_utils.poller import Poller

    poller = Poller(settings, settings.snapshot_queue, settings.snapshot_dlq, worker.handle_batch,
                    batch_size=settings.main_batch_size, name="main_worker-test", install_signals=False)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            poller.run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=run, name="poller", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not done():
            if errors or not t.is_alive():
                raise AssertionError(f"poller stopped early: {errors!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached within {timeout_s:.0f}s")
            time.sleep(0.2)
    finally:
        poller.stop_event.set()
        t.join(timeout=settings.receive_wait_s + 30)
    assert not t.is_alive(), "poller did not stop"
    assert not errors, errors
    return poller
