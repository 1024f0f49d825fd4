"""Issue 5 acceptance: one generated traffic clip through the real yolo_worker (trained demo
detector, tracker, best-frame selection) served by the real poller loop, against the real
local stack (moto_server S3/SQS + PostgreSQL).  Nothing is mocked.

The clip is rendered by synth/ with ground truth, from a seed in the evaluation range (never
trained on).  The run happens once per module; each test checks one acceptance point.

**Which vehicles count ("N").**  A ground-truth vehicle counts when it is at least 50 % visible
(not occluded; ``visibility`` of the MOT ground truth) in frames spanning at least one second
(``fps`` frames).  Vehicles that only flash past an edge or stay hidden behind a bus are not
expected to get a snapshot; when they do get one it is neither rewarded nor punished in the
coverage figure (it still counts in the number of SNAPSHOT_READY messages).

**Mapping a snapshot to a vehicle.**  The worker is the real YoloWorker; the test subclass only
remembers, for each track it emitted, the best candidate's frame index and box
(``FinishedTrack.best``).  A snapshot covers the ground-truth vehicle whose box in that frame
overlaps the chosen box best, at IoU >= 0.5 (``eval.metrics.snapshot_coverage``).
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest

from video_analysis.eval.metrics import best_match, snapshot_coverage
from video_analysis.synth.clip import GroundTruth, load_ground_truth
from video_analysis.worker_utils.keys import parse_snapshot_uri
from video_analysis.worker_utils.timeutil import detected_at
from video_analysis.worker_utils.validation import schema_errors, validate_snapshot_ready
from video_analysis.yolo_worker.video import probe

from yolo_harness import RECORDED_AT, Client, Emitted, make_recording_worker, provision_private, serve

# 30 s of four-lane traffic at the spec's 12.5 fps (80 ms per frame), 640x360.
CLIP = dict(seed=500202, duration_s=30.0, vehicles_per_min=15.0, width=640, height=360, fps=12.5)
STRIDE = 1
MIN_VISIBILITY = 0.5
MIN_VISIBLE_S = 1.0
# The spec's snapshot-URI regex (§11), with this test's bucket in place of the literal one.
SPEC_URI = r"^s3://{bucket}/demo_user/[0-9a-f-]{{36}}/[0-9a-f-]{{36}}/snapshots/CTX\d{{4,}}_CAM\d+_\d{{6}}_\d{{6}}\.jpg$"


@dataclass
class Run:
    settings: Any
    client: Client
    video_id: str
    clip: Any
    gt: GroundTruth
    messages: list[dict]
    emitted: dict[int, Emitted]  # track_id -> what the worker emitted
    stats: Any
    wall_s: float


def counted_vehicles(gt: GroundTruth) -> list[int]:
    """The "N" rule of the module docstring."""
    frames = Counter(vid for rows in gt.boxes.values() for vid, _b, vis in rows if vis >= MIN_VISIBILITY)
    need = MIN_VISIBLE_S * gt.config["fps"]
    return sorted(v for v, n in frames.items() if n >= need)


@pytest.fixture(scope="module")
def run(stack, clip_factory, demo_detector) -> Run:
    s = provision_private(stack)
    clip = clip_factory(**CLIP)
    client = Client(s)
    video_id, _msg = client.submit(clip.video, frame_stride=STRIDE, recorded_at=RECORDED_AT)
    worker = make_recording_worker(s, demo_detector, client=client)
    t0 = time.perf_counter()
    serve(s, worker, messages=1)
    wall = time.perf_counter() - t0
    messages = client.snapshot_messages()
    emitted = {e.track_id: e for e in worker.emitted}
    assert len(emitted) == len(worker.emitted), "track ids must be unique within a video"
    r = Run(s, client, video_id, clip, load_ground_truth(clip.video), messages, emitted,
            worker.stats.get(video_id), wall)
    print(f"\n[yolo e2e] {clip.frames} frames, stride {STRIDE}: {len(messages)} SNAPSHOT_READY in {wall:.1f}s "
          f"(first emitted after {r.stats and r.stats.first_emit_s}s)")
    return r


def matched_vehicle(gt: GroundTruth, e: Emitted) -> tuple[int | None, float]:
    return best_match(gt.per_frame(0.0).get(e.frame_index, []), e.box)


def test_the_video_finishes_with_one_queued_row_per_message(run):
    video = run.client.video(run.video_id)
    assert video["status"] == "done" and video["error"] is None
    assert run.client.drain(run.settings.video_dlq) == [] and run.client.drain(run.settings.video_queue) == []
    rows = run.client.analyses(run.video_id)
    keys = [m["snapshot_s3_key"] for m in run.messages]
    assert len(keys) == len(set(keys)) == len(rows) == len(run.emitted) > 0
    assert {r["snapshot_s3_key"] for r in rows} == set(keys)
    by_key = {m["snapshot_s3_key"]: m for m in run.messages}
    for r in rows:
        m = by_key[r["snapshot_s3_key"]]
        assert r["status"] == "queued"
        assert (r["track_id"], r["detected_in_ms"], r["yolo_type"]) == (m["track_id"], m["detectedIn"], m["yolo_type"])
        # the row keeps the track's span, and the snapshot frame lies inside it
        assert r["track_first_ms"] <= r["detected_in_ms"] <= r["track_last_ms"]
        # ... and the chosen box, so a snapshot can be located in its frame from the DB alone
        assert r["bbox"] == [int(round(v)) for v in run.emitted[r["track_id"]].box]


def test_motion_gating_is_on_and_its_counts_add_up(run):
    """Dense traffic: nearly every frame has motion, so nearly every frame is detected; the few
    still ones are carried over (the counts depend only on the decoded pixels)."""
    st = run.stats
    assert st.frames_detected + st.frames_carried == st.frames_processed
    assert 0 < st.frames_carried < 0.2 * st.frames_processed, (st.frames_detected, st.frames_carried)


def test_one_snapshot_ready_per_vehicle(run):
    n = len(counted_vehicles(run.gt))
    got = len(run.messages)
    print(f"[yolo e2e] N={n} counted vehicles ({len(run.gt.vehicles)} in the scene), {got} SNAPSHOT_READY")
    assert n >= 20, "the clip must have enough vehicles for a 10 % tolerance to mean something"
    assert abs(got - n) <= 0.10 * n, f"{got} snapshots for {n} vehicles"


def test_each_snapshot_is_a_640_jpeg_at_its_spec_key(run):
    s = run.settings
    uri_re = re.compile(SPEC_URI.format(bucket=re.escape(s.bucket)))
    for m in run.messages:
        assert schema_errors("snapshot_ready", m) == [], m
        validate_snapshot_ready(m, s)  # the main_worker's own check: ids, codes, offsets, detectedAt
        assert uri_re.match(m["snapshot_s3_key"]), m["snapshot_s3_key"]
        assert (m["workspace_code"], m["camera_code"], m["video_id"]) == ("CTX1005", "CAM1", run.video_id)
        ref = parse_snapshot_uri(m["snapshot_s3_key"], s.bucket, s.user_prefix)
        head = run.client.s3.head(ref.key)
        assert head.content_type == "image/jpeg"
        data, _ = run.client.s3.get_bytes(ref.key, s.snapshot_max_bytes)
        assert data[:3] == b"\xff\xd8\xff" and len(data) == head.size
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (640, 640, 3)
        assert img.std() > 5, "a snapshot must show something, not a flat letterbox"


def _coverage(run) -> dict:
    vehicles = counted_vehicles(run.gt)
    snaps = [(e.frame_index, e.box) for e in run.emitted.values()]
    cov = snapshot_coverage(run.gt.per_frame(0.0), snaps, vehicles)
    print(f"[yolo e2e] coverage {json.dumps(cov)}")
    return cov


def test_snapshots_cover_each_vehicle_exactly_once(run):
    """Issue 5's target: at least 90 % of the counted vehicles get exactly one snapshot, and the
    snapshots show real vehicles.  35 of 36 measured with the default runtime (bfloat16 on this
    machine's CPU), 33 of 36 in float32 (ONNX Runtime, PyTorch: two motorcycles queueing nose to
    tail come out as one box).  The history on this clip: 0.75 before the hand-over split of
    track_ids.py, 0.86 before the tracker's second association on unsure detections
    (``track_low_conf``), 0.94 after it; the third-stage detector typed far better but merged more
    neighbours (0.83), which selection's confidence gate, the stitching of fragments and the
    frame-edge hand-over rule of track_ids.py brought back to 0.92, and association on IoU alone
    (no score fusion: a fast motorcycle is confirmed) to 0.97."""
    cov = _coverage(run)
    assert cov["recall_exactly_one"] >= 0.90, cov
    assert cov["unmatched_snapshots"] <= 0.10 * cov["snapshots"], cov
    assert cov["more_than_one"] <= 0.10 * cov["vehicles"], cov


def _yolo_type_right(run) -> tuple[int, int]:
    pairs = []
    for e in run.emitted.values():
        vid, _iou = matched_vehicle(run.gt, e)
        if vid is not None:
            pairs.append((e.yolo_type, run.gt.vehicles[vid]["type"]))
    right = sum(a == b for a, b in pairs)
    print(f"[yolo e2e] yolo_type right for {right}/{len(pairs)} matched snapshots; "
          f"wrong: {Counter(p for p in pairs if p[0] != p[1]).most_common(5)}")
    assert len(pairs) >= 20, "too few matched snapshots for a percentage to mean something"
    return right, len(pairs)


def test_yolo_type_matches_the_ground_truth_type(run):
    """The detector's own type (the class vote over the track) for at least 90 % of the matched
    snapshots: 37 of 38 measured with the third-stage demo detector (32 of 36 before it)."""
    right, n = _yolo_type_right(run)
    assert right >= 0.90 * n


def test_detected_in_is_the_frame_time_80_ms_per_frame_at_12_5_fps(run):
    info = probe(run.clip.video)
    assert info.fps == pytest.approx(12.5, abs=1e-3)
    for m in run.messages:
        e = run.emitted[m["track_id"]]
        assert e.frame_index % STRIDE == 0
        assert m["detectedIn"] == e.frame_index * 80 == e.ts_ms, (m, e)
        assert parse_snapshot_uri(m["snapshot_s3_key"], run.settings.bucket).offset_ms == m["detectedIn"]
        assert m["recordedAt"] == RECORDED_AT
        assert m["detectedAt"] == detected_at(RECORDED_AT, m["detectedIn"])


def test_the_first_snapshot_is_sent_before_the_last_frame_is_decoded(run):
    st = run.stats
    max_age = run.settings.track_max_age
    processed = -(-run.clip.frames // STRIDE)
    assert processed > 3 * max_age, "the clip must outlast the tracker's max age three times over"
    assert st.frames_read == run.clip.frames and st.frames_processed == processed
    # The first SNAPSHOT_READY had been sent (S3 put, row, SQS send all happen inside emit)
    # while the decoder had not yet grabbed the last frame of the file.
    assert st.first_emit_frames_grabbed is not None
    print(f"[yolo e2e] first snapshot sent with {st.first_emit_frames_grabbed}/{run.clip.frames} frames decoded, "
          f"{st.first_emit_s:.1f}s of {st.wall_s:.1f}s")
    assert st.first_emit_frames_grabbed < run.clip.frames
    assert st.first_emit_s < st.wall_s
