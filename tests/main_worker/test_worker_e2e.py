"""main_worker end to end: real SNAPSHOT_READY messages for snapshots of generated vehicles,
through the real poller loop, S3 (moto_server) and PostgreSQL, into image_analysis_results."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from conftest import MAIN_BUNDLE
from video_analysis.worker_utils.sqs_queue import SqsQueues
from video_analysis.worker_utils.vocab import COLOR_BASES, TAXONOMY

from .conftest import Publisher, SpyModel, make_worker, serve_until

RESULT_KEYS = {"type", "type_conf", "make", "make_conf", "model", "model_conf", "colors", "plate", "plate_conf",
               "payload", "model_name", "model_version", "latency_ms"}


def expected_metrics() -> dict:
    path = MAIN_BUNDLE.parent / "metrics.json"
    assert path.exists(), f"{path} is missing: the accuracy check compares with the bundle's published metrics"
    return json.loads(path.read_text())


def noise(p: float, n: int, sigmas: float = 3.0) -> float:
    """``sigmas`` binomial standard deviations of a proportion p measured on n samples."""
    return sigmas * math.sqrt(p * (1 - p) / n)


def all_settled(pub: Publisher, n: int):
    def check() -> bool:
        c = pub.status_counts()
        return c.get("done", 0) + c.get("error", 0) >= n and not c.get("queued") and not c.get("processing")
    return check


def queue_empty(pub: Publisher) -> bool:
    a = pub.sqs.attributes(pub.s.snapshot_queue)
    return a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0"


def check_fbl(colors) -> None:
    assert isinstance(colors, list) and 1 <= len(colors) <= 3, colors
    for c in colors:
        assert set(c) == {"finish", "base", "lightness", "conf"}, c
        assert c["finish"] in (None, "Matte", "Metallic") and c["base"] in COLOR_BASES
        assert c["lightness"] in (None, "Light") and 0.0 <= c["conf"] <= 1.0


def test_compare_mode_every_snapshot_done_with_two_rows_and_ground_truth_accuracy(mw_settings, variants, gt_snaps):
    """~100 vehicles of two unseen scenes; compare mode: baseline + cmt rows for every one;
    Type/Make/Model agree with ground truth at the accuracy metrics.json publishes.

    Tolerance: the published figures come from 2,000 snapshots (their own noise is small); a
    sample of n has binomial s.d. sqrt(p(1-p)/n), so each top-1 must lie within p +- 3 s.d.
    (n ~ 100: +-0.04 at p = 0.98, +-0.08 at p = 0.92)."""
    s = mw_settings.replace(main_mode="compare")
    pub = Publisher(s)
    n = len(gt_snaps)
    assert n >= 90, f"only {n} ground-truth snapshots"
    for snap in gt_snaps:
        pub.publish_snap(snap)
    serve_until(s, make_worker(s, variants), all_settled(pub, n), timeout_s=150)

    assert pub.status_counts() == {"done": n}
    rows = pub.results()
    assert len(rows) == 2 * n
    by_track: dict[int, dict[str, dict]] = {}
    for r in rows:
        by_track.setdefault(r["track_id"], {})[r["variant"]] = r
    assert all(set(v) == {"baseline", "cmt"} for v in by_track.values()) and len(by_track) == n
    truth = {snap.track_id: snap.vehicle for snap in gt_snaps}

    metrics = expected_metrics()
    report = {}
    for variant in ("baseline", "cmt"):
        published = metrics["variants"][variant]
        assert {r[variant]["model_name"] for r in by_track.values()} == {variants[variant].model_name}
        for head in ("type", "make", "model"):
            hits = sum(by_track[t][variant][head] == truth[t][head] for t in by_track)
            acc, p = hits / n, published[f"{head}_top1"]
            report[f"{variant}.{head}"] = (round(acc, 3), p, round(noise(p, n), 3))
        color_hits = sum(by_track[t][variant]["colors"][0]["base"] == truth[t]["color"]["base"] for t in by_track)
        p = published["color_base_top1"]
        report[f"{variant}.color_base"] = (round(color_hits / n, 3), p, round(noise(p, n), 3))
    print(f"\naccuracy on {n} snapshots (measured, published, 3 s.d.): {report}")
    off = {k: v for k, v in report.items() if abs(v[0] - v[1]) > v[2]}
    assert not off, f"differs from the published accuracy by more than 3 s.d. (n={n}): {off}"


def test_single_mode_row_content(mw_settings, variants, gt_snaps):
    s = mw_settings
    pub = Publisher(s)
    snaps = gt_snaps[:4]
    for snap in snaps:
        pub.publish_snap(snap)
    serve_until(s, make_worker(s, variants), all_settled(pub, len(snaps)))

    analyses = pub.analyses()
    assert [a["status"] for a in analyses] == ["done"] * len(snaps) and all(a["error"] is None for a in analyses)
    rows = pub.results()
    assert len(rows) == len(snaps) and {r["variant"] for r in rows} == {"baseline"}
    bundle = variants["baseline"]
    for r in rows:
        assert RESULT_KEYS <= set(r)
        assert r["type"] in TAXONOMY and r["make"] in bundle.labels["make"] and r["model"] in bundle.labels["model"]
        # hierarchy-consistent path: the model belongs to the make, the make to the type
        assert bundle.hierarchy["model_make"][r["model"]] == r["make"]
        assert bundle.hierarchy["make_type"][r["make"]] == r["type"]
        assert 0 < r["model_conf"] <= r["make_conf"] + 1e-4 <= r["type_conf"] + 2e-4 <= 1 + 2e-4
        check_fbl(r["colors"])
        assert r["plate"] is None and r["plate_conf"] is None  # plate_enabled=False
        assert r["model_name"] == bundle.model_name and r["model_version"] == bundle.version
        assert 0 < r["latency_ms"] < 60_000
        p = r["payload"]
        assert p["variant"] == "baseline" and p["type"]["label"] == r["type"] and p["model"]["label"] == r["model"]
        topk = p["topk"]
        assert len(topk) == s.topk and topk[0]["model"] == r["model"]
        assert all(set(t) == {"type", "make", "model", "conf"} for t in topk)
        assert [t["conf"] for t in topk] == sorted((t["conf"] for t in topk), reverse=True)
        assert p["colors"] == r["colors"] and p["snapshot"]["snapshot_s3_key"] == r["snapshot_s3_key"]
        assert p["colors_source"] in ("model", "classical")
        assert {"type", "make", "model"} <= set(p["heads"]) and len(p["heads"]["model"]) == 5
        assert [h["label"] for h in p["heads"]["type"]][0] in TAXONOMY and len(p["heads"]["type"]) == 8
        assert set(p["timings_ms"]) == {"inference", "decode", "color", "plate"}
        size = len(json.dumps(p))
        assert 2000 <= size <= 4096, f"payload is {size} bytes of JSON, spec says ~2-4 KB"
        # keys only, never URLs (presigned or otherwise)
        flat = json.dumps({k: v for k, v in r.items()}, default=str)
        assert "http" not in flat and "X-Amz" not in flat and "?" not in r["snapshot_s3_key"]
    # the analysis row keeps the message's facts
    a = analyses[0]
    assert a["detected_in_ms"] == snaps[0].offset_ms and a["yolo_type"] == snaps[0].vehicle["type"]
    assert a["detected_at"] is not None
    assert pub.drain(s.snapshot_queue) == [] and pub.drain(s.snapshot_dlq) == []


def test_redelivered_message_changes_nothing(mw_settings, variants, gt_snaps):
    s = mw_settings
    pub = Publisher(s)
    msgs = [pub.publish_snap(snap) for snap in gt_snaps[:3]]
    worker = make_worker(s, variants)
    serve_until(s, worker, all_settled(pub, 3))
    before_a, before_r = pub.analyses(), pub.results()
    assert len(before_r) == 3

    # SQS at-least-once: the same messages again, once alone and once twice in one batch
    for m in msgs + [msgs[0]]:
        pub.send(m)
    poller = serve_until(s, worker, lambda: queue_empty(pub))
    assert poller.processed == 4
    assert pub.analyses() == before_a  # same status, same updated_at: untouched
    assert pub.results() == before_r
    assert pub.drain(s.snapshot_dlq) == []


def test_duplicate_inside_one_batch_writes_once(mw_settings, variants, gt_snaps):
    s = mw_settings
    pub = Publisher(s)
    m = pub.publish_snap(gt_snaps[0])
    pub.send(m)  # the same message twice before any worker runs
    poller = serve_until(s, make_worker(s, variants), lambda: pub.status_counts() == {"done": 1} and queue_empty(pub))
    assert poller.processed == 2
    assert len(pub.results()) == 1
    assert pub.drain(s.snapshot_dlq) == []


def test_one_receive_is_one_forward_pass_and_a_bad_snapshot_fails_alone(mw_settings, variants, gt_snaps):
    """10 messages from one receive are inferred in one batch; the missing object among them
    goes to the DLQ and its analysis to error, the other nine are done."""
    from video_analysis.worker_utils.poller import HandlerContext
    import threading

    s = mw_settings
    pub = Publisher(s)
    snaps = gt_snaps[:10]
    for snap in snaps[:9]:
        pub.publish_snap(snap)
    bad = pub.publish(snaps[9].track_id, snaps[9].offset_ms, None, yolo_type=snaps[9].vehicle["type"])
    spy = SpyModel(variants["baseline"])
    worker = make_worker(s, {"baseline": spy})

    got = SqsQueues(s).receive(s.snapshot_queue, 10, wait_s=2)
    assert len(got) == 10, f"moto returned {len(got)} of 10 messages in one receive"
    outcomes = worker.handle_batch(got, HandlerContext(s, threading.Event()))
    assert spy.batches == [9]  # one forward pass for the whole receive (the bad one never gets there)
    failed = [(json.loads(m.body)["snapshot_s3_key"], o) for m, o in zip(got, outcomes) if o is not None]
    assert [f[0] for f in failed] == [bad["snapshot_s3_key"]]
    assert "does not exist" in failed[0][1].reason or "NoSuchKey" in failed[0][1].reason
    for m in got:  # settled by hand here; the poller does it below
        SqsQueues(s).delete(s.snapshot_queue, m.receipt_handle)

    # the same through the poller loop: settle into done x 9 + DLQ x 1
    pub2 = Publisher(s)
    for snap in snaps[:9]:
        pub2.publish_snap(snap)
    bad2 = pub2.publish(snaps[9].track_id, snaps[9].offset_ms, None, yolo_type=snaps[9].vehicle["type"])
    spy.batches.clear()
    serve_until(s, make_worker(s, {"baseline": spy}),
                lambda: sum(1 for a in pub2.analyses() if a["status"] in ("done", "error")
                            and pub2.video_id in a["snapshot_s3_key"]) == 10)
    mine = [a for a in pub2.analyses() if pub2.video_id in a["snapshot_s3_key"]]
    assert sorted(a["status"] for a in mine) == ["done"] * 9 + ["error"]
    err = next(a for a in mine if a["status"] == "error")
    assert err["snapshot_s3_key"] == bad2["snapshot_s3_key"] and "does not exist" in err["error"]
    assert sum(spy.batches) == 9 and max(spy.batches) <= 10
    dlq = pub2.drain(s.snapshot_dlq)
    assert len(dlq) == 1 and json.loads(dlq[0].body)["snapshot_s3_key"] == bad2["snapshot_s3_key"]


def plate_snapshot(text: str = "NDA 4821") -> bytes:
    """A 640x640 'vehicle' with a clearly printed plate (the demo scenes' plates are too small to read)."""
    img = np.full((640, 640, 3), 114, np.uint8)
    cv2.rectangle(img, (60, 180), (580, 460), (40, 40, 200), -1)
    cv2.rectangle(img, (170, 380), (470, 450), (255, 255, 255), -1)
    cv2.putText(img, text, (185, 432), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 4)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


@pytest.mark.parametrize("color,plate", [(True, True), (True, False), (False, True), (False, False)])
def test_color_and_plate_toggles(mw_settings, variants, color, plate):
    s = mw_settings.replace(color_enabled=color, plate_enabled=plate)
    pub = Publisher(s)
    pub.publish(7, 1234, plate_snapshot())
    serve_until(s, make_worker(s, variants), all_settled(pub, 1), timeout_s=90)
    assert pub.status_counts() == {"done": 1}
    (r,) = pub.results()
    if color:
        check_fbl(r["colors"])
    else:
        assert r["colors"] is None and r["payload"]["colors"] is None
    if plate:
        assert r["plate"] == "NDA 4821" and 0.5 < r["plate_conf"] <= 1
        assert r["payload"]["plate"] == {"text": "NDA 4821", "conf": pytest.approx(r["plate_conf"], abs=1e-4)}
    else:
        assert r["plate"] is None and r["plate_conf"] is None and r["payload"]["plate"] is None
