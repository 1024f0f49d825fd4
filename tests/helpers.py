"""Helpers the tests import (tests/ is on sys.path through pytest's `pythonpath`)."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

import numpy as np

from video_analysis.worker_config import Settings, env_overrides
from video_analysis.worker_utils.db import Database
from video_analysis.worker_utils.errors import TransientError
from video_analysis.worker_utils.imaging import encode_jpeg
from video_analysis.worker_utils.keys import build_raw_key, build_snapshot_key, build_snapshot_uri
from video_analysis.worker_utils.repository import insert_analysis_queued, upsert_video_queued
from video_analysis.worker_utils.s3_store import S3Store
from video_analysis.worker_utils.sqs_queue import ReceivedMessage, SqsQueues
from video_analysis.worker_utils.timeutil import detected_at

WID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
VID = "50651c85-90ab-471b-8707-adc0ef16f91f"
# Spec §3 examples, verbatim.
PROCESS_VIDEO = {
    "event": "PROCESS_VIDEO", "video_id": VID, "workspace_id": WID, "workspace_code": "CTX1005",
    "camera_code": "CAM1", "s3_key_raw": f"demo_user/{WID}/{VID}/raw/CCTV_Test1.mp4", "frame_stride": 3,
    "recordedAt": None,
}
PROCESS_VIDEO_DB = {"event": "PROCESS_VIDEO_DB", "video_id": VID, "workspace_id": WID}
SNAPSHOT_READY = {
    "event": "SNAPSHOT_READY", "video_id": VID, "workspace_id": WID, "workspace_code": "CTX1005",
    "camera_code": "CAM1", "track_id": 305,
    "snapshot_s3_key": f"s3://cvitx-uploads-dev-jdfirme/demo_user/{WID}/{VID}/snapshots/CTX1005_CAM1_000305_002272.jpg",
    "recordedAt": None, "detectedIn": 2272, "detectedAt": None, "yolo_type": "SUV",
}


def worker_env(stack, settings: Settings, **extra) -> dict[str, str]:
    """Environment for a subprocess worker: the stack plus these settings as CVITX_ overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CVITX_")}
    env.update(stack.environ())
    env.update(env_overrides(settings.replace(**extra) if extra else settings))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def new_uuid() -> str:
    return str(uuid.uuid4())


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, proc=None, log: Optional[Path] = None):
    """Poll ``predicate`` until it holds; our own DB connection dying with a restarting
    cluster (TransientError) counts as "not yet".  With ``proc``, fail at once when that
    process exits; ``log`` is quoted in the failure."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except TransientError:  # our own connection died with the cluster; it reconnects
            pass
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log else ""))


def poll_until(fetch: Callable[[], Any], timeout_s: float, what: Callable[[], str] | str) -> Any:
    """Call ``fetch`` until it returns something truthy, and return that; ``what`` (or what it
    returns) says what was awaited when it times out."""
    deadline = time.monotonic() + timeout_s
    while not (got := fetch()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what() if callable(what) else what}")
        time.sleep(0.1)
    return got


def load_test_module(name: str, path: Path) -> ModuleType:
    """``path`` imported as the module ``name`` (once), for harness files that live in a test
    directory which is no package (tests/yolo_worker/yolo_harness.py)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# --- snapshots with ground truth, published the way the yolo_worker does -----------------------
RECORDED_AT = "2026-03-02T08:00:00Z"


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
    import cv2

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
