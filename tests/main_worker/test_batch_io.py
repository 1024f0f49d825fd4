"""The batched paths of the main_worker (issue 9, target c): the pure planning and cropping
helpers as tables, the batch transactions against the per-message ones on the real database,
and per-message isolation when a batch transaction fails: the batch is redone one message at
a time, so only the message the database refuses fails."""
from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest

from helpers import Publisher
from video_analysis.main_worker.plate import PlateReader, _grow, content_box, det_input_size
from video_analysis.worker_utils.imaging import DEFAULT_PAD_VALUE, letterbox
from video_analysis.worker_utils.poller import HandlerContext
from video_analysis.worker_utils.repository import (finish_analyses, plan_finishes, plan_starts, start_analyses,
                                                    start_analysis)
from video_analysis.worker_utils.sqs_queue import SqsQueues

from .conftest import make_worker


# --- pure helpers -------------------------------------------------------------------------------
def _canvas(h=640, w=640):
    return np.full((h, w, 3), DEFAULT_PAD_VALUE, np.uint8)


def _letterboxed(bh, bw):
    body = np.zeros((bh, bw, 3), np.uint8)
    body[:] = (30, 60, 200)
    return letterbox(body, 640)[0]


@pytest.mark.parametrize("img,expected", [
    (_canvas(), (0, 0, 640, 640)),  # all padding: the whole image
    (np.zeros((640, 640, 3), np.uint8), (0, 0, 640, 640)),  # no padding
    (_letterboxed(200, 400), (0, 160 - 8, 640, 480 + 8)),  # 640x320 content, top/bottom bars
    (_letterboxed(400, 200), (160 - 8, 0, 480 + 8, 640)),  # 320x640 content, left/right bars
    (_letterboxed(40, 1000), (0, 307 - 8 - 19, 640, 333 + 8 + 19)),  # 640x26 content: grown to 640x80 (1:8)
])
def test_content_box(img, expected):
    assert content_box(img) == expected


def test_content_box_ignores_jpeg_noise_and_keeps_a_small_object():
    img = _canvas()
    img[300:340, 100:180] = 255  # a small white plate-like patch
    noisy = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)
    x1, y1, x2, y2 = content_box(noisy)
    assert x1 <= 100 - 4 and x2 >= 180 + 4 and y1 <= 300 - 4 and y2 >= 340 + 4
    assert x2 - x1 >= 64 and y2 - y1 >= 64 and (x2 - x1) < 200 and (y2 - y1) < 200


@pytest.mark.parametrize("lo,hi,min_len,size,expected", [
    (10, 100, 64, 640, (10, 100)),  # long enough
    (100, 110, 64, 640, (73, 137)),  # grown about the centre
    (-5, 20, 64, 640, (0, 64)),  # clamped at the start, grown to the right
    (620, 650, 64, 640, (576, 640)),  # clamped at the end, grown to the left
    (0, 10, 64, 40, (0, 40)),  # never beyond the image
])
def test_grow(lo, hi, min_len, size, expected):
    assert _grow(lo, hi, min_len, size) == expected


@pytest.mark.parametrize("h,w,scale,expected", [
    (640, 640, 736 / 640, (736, 736)),  # what RapidOCR does to a whole snapshot
    (336, 640, 736 / 640, (384, 736)),
    (336, 640, 1.0, (320, 640)),  # rounded to the nearest multiple of 32
    (10, 640, 1.0, (32, 640)),  # at least 32
])
def test_det_input_size(h, w, scale, expected):
    assert det_input_size(h, w, scale) == expected


@pytest.mark.parametrize("uris,existing,before,inserts,updates", [
    (["a", "b"], {"a": "queued", "b": "error"}, ["queued", "error"], [], ["a", "b"]),
    (["a"], {"a": "done"}, ["done"], [], []),  # done stays done
    (["a", "b"], {}, [None, None], [0, 1], []),  # new rows
    (["a", "a"], {"a": "queued"}, ["queued", "processing"], [], ["a"]),  # duplicate sees processing
    (["a", "a"], {}, [None, "processing"], [0], []),  # a duplicate of a new row inserts once
    (["a", "a"], {"a": "done"}, ["done", "done"], [], []),
    (["b", "a", "c"], {"a": "processing", "c": "done"}, [None, "processing", "done"], [0], ["a"]),
])
def test_plan_starts(uris, existing, before, inserts, updates):
    assert plan_starts(uris, existing) == (before, inserts, updates)


@pytest.mark.parametrize("ids,status,expected", [
    (["a", "b"], {"a": "processing", "b": "processing"}, [True, True]),
    (["a"], {"a": "done"}, [False]),  # finished by another delivery
    (["a"], {}, [False]),  # no such row
    (["a", "a"], {"a": "processing"}, [True, False]),  # the duplicate finds it done
    (["a", "b", "a"], {"a": "queued", "b": "done"}, [True, False, False]),
])
def test_plan_finishes(ids, status, expected):
    assert plan_finishes(ids, status) == expected


# --- batched OCR --------------------------------------------------------------------------------
def _plate_image(text, y):
    img = _canvas()
    cv2.rectangle(img, (60, 150), (580, 490), (40, 40, 200), -1)
    cv2.rectangle(img, (170, y), (470, y + 70), (255, 255, 255), -1)
    cv2.putText(img, text, (185, y + 52), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 4)
    return img


def test_read_batch_is_read_of_each():
    imgs = [_plate_image("NDA 4821", 380), _canvas(), _plate_image("ABC 1234", 200)]
    reader = PlateReader()
    batch = reader.read_batch(imgs)
    assert [p for p, _ in batch] == ["NDA 4821", None, "ABC 1234"]
    assert batch == [reader.read(img) for img in imgs]
    assert reader.read_batch([]) == []


# --- batch transactions on the real database ---------------------------------------------------
def _start_args(pub, track, offset):
    m = pub.message(track, offset)
    return {"video_id": pub.video_id, "workspace_id": pub.workspace_id, "track_id": track,
            "snapshot_uri": m["snapshot_s3_key"], "detected_in_ms": offset, "detected_at": m["detectedAt"],
            "yolo_type": "Car"}


def test_start_and_finish_analyses_match_the_per_message_functions(mw_settings):
    pub = Publisher(mw_settings)
    for t in (1, 2, 3):
        pub.publish(t, 1000 * t, None, send=False)  # queued rows
    done_id, _ = start_analysis(pub.db, **_start_args(pub, 3, 3000))
    assert finish_analyses(pub.db, [(done_id, [_result("baseline")])]) == [True]
    snaps = [_start_args(pub, 1, 1000), _start_args(pub, 2, 2000), _start_args(pub, 3, 3000),
             _start_args(pub, 4, 4000), _start_args(pub, 1, 1000)]  # 4: no row yet; 1 again: a duplicate
    before = {a["snapshot_s3_key"]: a for a in pub.analyses()}
    started = start_analyses(pub.db, snaps)
    assert [b for _, b in started] == ["queued", "queued", "done", None, "processing"]
    assert started[0][0] == started[4][0] and started[2][0] == done_id
    rows = {a["snapshot_s3_key"]: a for a in pub.analyses()}
    assert rows[snaps[2]["snapshot_uri"]] == before[snaps[2]["snapshot_uri"]]  # the done row is untouched
    assert [rows[s["snapshot_uri"]]["status"] for s in snaps] == ["processing"] * 2 + ["done"] + ["processing"] * 2

    items = [(a, [_result("baseline", conf=0.5 + k / 10)]) for k, (a, _) in enumerate(started)]
    assert finish_analyses(pub.db, items) == [True, True, False, True, False]
    assert pub.status_counts() == {"done": 4}
    res = {r["snapshot_s3_key"]: r for r in pub.results()}
    assert len(res) == 4 and res[snaps[0]["snapshot_uri"]]["type_conf"] == pytest.approx(0.5)
    assert res[snaps[2]["snapshot_uri"]]["type_conf"] == pytest.approx(0.9)  # written before, unchanged
    assert finish_analyses(pub.db, items) == [False] * 5  # redelivery changes nothing
    assert start_analyses(pub.db, []) == [] and finish_analyses(pub.db, []) == []


def _result(variant, conf=0.9):
    return {"variant": variant, "type": "Car", "type_conf": conf, "make": None, "make_conf": None, "model": None,
            "model_conf": None, "colors": None, "plate": None, "plate_conf": None, "payload": {"variant": variant},
            "model_name": "m", "model_version": "1", "latency_ms": 1.0}


class NanForOne:
    """A real bundle whose output for one sample of each batch (the ``bad``-th) is NaN: its rows
    carry NaN into JSON, which PostgreSQL refuses (a permanent error of that message alone)."""

    def __init__(self, bundle, bad):
        self.bundle, self.bad = bundle, bad
        self.model_name, self.version = bundle.model_name, bundle.version
        self.labels, self.hierarchy = bundle.labels, bundle.hierarchy

    def predict(self, batch):
        out = {h: np.array(p, copy=True) for h, p in self.bundle.predict(batch).items()}
        if len(batch) > self.bad:
            for p in out.values():
                p[self.bad] = np.nan
        return out


def test_a_refused_row_or_an_unregistered_video_fails_alone(mw_settings, variants, gt_snaps):
    s = mw_settings
    pub = Publisher(s)
    good = [pub.publish_snap(snap) for snap in gt_snaps[:4]]
    orphan_pub = Publisher(s)  # its video row is deleted below: the analysis row cannot be inserted
    orphan = orphan_pub.publish_snap(gt_snaps[4], row=False)
    pub.db.execute("DELETE FROM videos WHERE id = %s", (orphan_pub.video_id,))
    worker = make_worker(s, {"baseline": NanForOne(variants["baseline"], bad=1)})

    got = SqsQueues(s).receive(s.snapshot_queue, 10, wait_s=2)
    assert len(got) == 5
    outcomes = worker.handle_batch(got, HandlerContext(s, threading.Event()))
    by_uri = {json.loads(m.body)["snapshot_s3_key"]: o for m, o in zip(got, outcomes)}
    failed = {u: o for u, o in by_uri.items() if o is not None}
    orphan_uri = orphan["snapshot_s3_key"]
    assert orphan_uri in failed and "violates a database rule" in failed[orphan_uri].reason
    nan_uri = next(u for u in failed if u != orphan_uri)  # the second inferred sample
    assert len(failed) == 2 and "violates a database rule" in failed[nan_uri].reason
    rows = {a["snapshot_s3_key"]: a for a in pub.analyses()}
    assert orphan_uri not in rows
    # the handler marks nothing terminal itself: the poller does, when it dead-letters the message
    # (tests/main_worker/test_dead_letter.py)
    assert rows[nan_uri]["status"] == "processing" and rows[nan_uri]["error"] is None
    assert sorted(a["status"] for a in rows.values()) == ["done"] * 3 + ["processing"]
    assert {r["snapshot_s3_key"] for r in pub.results()} == {m["snapshot_s3_key"] for m in good} - {nan_uri}


def test_each_message_gets_its_own_plate_when_the_batch_skips_one(mw_settings, variants):
    """The batch's OCR starts on the fetched snapshots, before the start transaction drops the
    message whose analysis is already done: every remaining message still gets its own plate."""
    s = mw_settings
    pub = Publisher(s)

    def jpeg(img):
        return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()

    first = pub.publish(1, 1000, jpeg(_plate_image("NDA 4821", 380)))
    done = pub.publish(2, 2000, jpeg(_plate_image("XYZ 789", 200)))
    last = pub.publish(3, 3000, jpeg(_plate_image("ABC 1234", 200)))
    done_id, _ = start_analysis(pub.db, **_start_args(pub, 2, 2000))
    assert finish_analyses(pub.db, [(done_id, [_result("baseline")])]) == [True]
    worker = make_worker(s, variants, plate_reader=PlateReader())

    got = SqsQueues(s).receive(s.snapshot_queue, 10, wait_s=2)
    assert len(got) == 3
    assert worker.handle_batch(got, HandlerContext(s, threading.Event())) == [None] * 3
    plates = {r["snapshot_s3_key"]: r["plate"] for r in pub.results()}
    assert plates == {first["snapshot_s3_key"]: "NDA 4821", done["snapshot_s3_key"]: None,  # written before
                      last["snapshot_s3_key"]: "ABC 1234"}
