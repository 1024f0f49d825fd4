"""Poison messages with the real workers: a permanent fault goes to the DLQ on its first
receive, one that keeps failing transiently after ``max_receive_count`` receives, each with its
reason as message attributes and on its DB row; the good messages around them keep flowing."""
from __future__ import annotations

import json

import numpy as np

from helpers import Publisher, new_uuid
from video_analysis.worker_utils.imaging import encode_jpeg

from .conftest import SHORT

# The DB refuses to start one video, every time, as a serialization failure (SQLSTATE 40001:
# a transient fault for the worker).  Installed in this test's own database only.
REJECT_VIDEO_SQL = """
CREATE TABLE fault_reject_video (id uuid PRIMARY KEY);
CREATE FUNCTION fault_reject() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'processing' AND EXISTS (SELECT 1 FROM fault_reject_video WHERE id = NEW.id) THEN
        RAISE EXCEPTION 'fault injected by the test' USING ERRCODE = '40001';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fault_reject BEFORE INSERT OR UPDATE ON videos FOR EACH ROW EXECUTE FUNCTION fault_reject();
"""


def attrs(m) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in m.message_attributes.items()}


def test_poison_messages_dead_letter_with_reason_and_the_rest_flows(make_rig):
    rig = make_rig(max_receive_count=3)
    c = rig.client
    rig.db.execute(REJECT_VIDEO_SQL)

    missing, corrupt, rejected, invalid = (new_uuid() for _ in range(4))
    c.register(missing, frame_stride=2)
    c.send(c.message(missing, frame_stride=2))  # never uploaded
    c.upload(None, corrupt, data=b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64)
    c.register(corrupt, frame_stride=2)
    c.send(c.message(corrupt, frame_stride=2))
    c.send(c.message(invalid, frame_stride="three"))  # violates the schema
    rig.db.execute("INSERT INTO fault_reject_video VALUES (%s)", (rejected,))
    c.upload(rig.clip(**SHORT, seed=13), rejected)
    c.register(rejected, frame_stride=2)
    c.send(c.message(rejected, frame_stride=2))
    good = rig.submit(rig.clip(**SHORT, seed=12), frame_stride=2)
    # and a snapshot the main_worker must refuse: 320x320 instead of 640x640
    pub = Publisher(rig.s)
    small = pub.publish(7, 1000, encode_jpeg(np.full((320, 320, 3), 90, np.uint8), 90))

    workers = [rig.start("yolo", wait=False), rig.start("main", wait=False)]
    s = rig.s
    rig.wait(lambda: rig.queue_depth(s.video_dlq) == 4 and rig.queue_depth(s.snapshot_dlq) == 1
             and rig.all_finished([good]) and rig.queue_depth(s.video_queue) == 0
             and rig.queue_depth(s.snapshot_queue) == 0, 120, "the poison dead-lettered and the good video analysed")

    dead = {json.loads(m.body).get("video_id"): attrs(m) for m in rig.dlq(s.video_dlq)}
    assert set(dead) == {missing, corrupt, rejected, invalid}
    summary = {v: (a["cvitx_error_code"], a["cvitx_receive_count"]) for v, a in dead.items()}
    assert summary == {missing: ("missing_object", "1"), corrupt: ("bad_media", "1"),
                       invalid: ("invalid_message", "1"), rejected: ("transient", "3")}
    assert all(a["cvitx_source_queue"] == s.video_queue for a in dead.values())
    assert "does not exist" in dead[missing]["cvitx_error_reason"]
    assert "frame_stride" in dead[invalid]["cvitx_error_reason"]
    reason = dead[rejected]["cvitx_error_reason"]
    assert reason.startswith("gave up after 3 receives: ") and "fault injected by the test" in reason
    # the transient one really was tried three times, with back-off, before giving up
    tries = [e["receive_count"] for e in workers[0].events("transient failure; message will be retried",
                                                             message_id=dead[rejected]["cvitx_original_message_id"])]
    assert tries == [1, 2]
    # Postgres logged the injected errors: what Rig.postgres_errors() reads would show a UNIQUE violation too
    assert len([line for line in rig.postgres_errors() if "fault injected by the test" in line]) == 3

    snap_dead = rig.dlq(s.snapshot_dlq)
    assert [json.loads(m.body)["snapshot_s3_key"] for m in snap_dead] == [small["snapshot_s3_key"]]
    a = attrs(snap_dead[0])
    assert (a["cvitx_error_code"], a["cvitx_receive_count"]) == ("bad_media", "1") and "640x640" in a["cvitx_error_reason"]

    # the reasons are on the rows too; the good video went through untouched
    rows = {r["id"]: r for r in rig.db.fetchall("SELECT id::text AS id, status, error FROM videos")}
    assert {v: rows[v]["status"] for v in (missing, corrupt, rejected, good)} == {
        missing: "error", corrupt: "error", rejected: "error", good: "done"}
    assert invalid not in rows
    assert rows[rejected]["error"].startswith("gave up after 3 receives")
    assert all(rows[v]["error"] for v in (missing, corrupt))
    analyses = {r["snapshot_s3_key"]: r for r in rig.analyses()}
    assert analyses.pop(small["snapshot_s3_key"])["status"] == "error"
    assert analyses and all(r["status"] == "done" and r["video_id"] == good for r in analyses.values())
    assert len(rig.results()) == len(analyses)
    assert all(w.alive() for w in workers)
    # the dead letters' sends were recorded (make_rig checks them against the worker policies)
    assert workers[0].sent_to() == {s.video_dlq, s.snapshot_queue} and workers[1].sent_to() == {s.snapshot_dlq}
