"""reconcile: rows left waiting without a message are found by age, announced again with messages
rebuilt from the rows (validated against the schemas), or marked error when their object is gone.
The planning is pure and tested on rows; the stack-restart case runs the CLI and real workers."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from helpers import WID, Publisher, load_test_module, new_uuid, worker_env
from video_analysis.worker_config import Settings
from video_analysis.worker_utils.imaging import encode_jpeg
from video_analysis.worker_utils.keys import build_raw_key, build_snapshot_key, build_snapshot_uri
from video_analysis.worker_utils.reconcile import parse_duration, plan, reconcile, snapshot_message, video_message
from video_analysis.worker_utils.validation import validate_snapshot_ready, validate_video_task

faults = load_test_module("faults_rig", Path(__file__).parents[1] / "faults" / "conftest.py")
S = Settings()
REC = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


# --- pure ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("15", 900),
                                          (" 1.5h ", 5400), ("0s", 0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "10x", "-5m", "1h30m"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def video_row(vid=None, status="queued", recorded_at=REC, **over):
    vid = vid or new_uuid()
    row = {"id": vid, "workspace_id": WID, "workspace_code": "CTX1005", "camera_code": "CAM1",
           "s3_key_raw": build_raw_key(WID, vid, "clip.mp4"), "frame_stride": 3, "recorded_at": recorded_at,
           "status": status, "updated_at": "t0", "idle_s": 7200.0}
    row.update(over)
    return row


def analysis_row(video_id, track=7, offset=2272, status="queued", recorded_at=REC):
    key = build_snapshot_key(WID, video_id, "CTX1005", "CAM1", track, offset)
    return {"id": new_uuid(), "video_id": video_id, "workspace_id": WID, "workspace_code": "CTX1005",
            "camera_code": "CAM1", "recorded_at": recorded_at, "track_id": track,
            "snapshot_s3_key": build_snapshot_uri(S.bucket, key), "detected_in_ms": offset, "yolo_type": "SUV",
            "status": status, "updated_at": "t0", "idle_s": 3600.0}, key


@pytest.mark.parametrize("recorded_at,expected", [(REC, "2026-03-02T08:00:02.272Z"), (None, None)])
def test_messages_rebuilt_from_rows_validate(recorded_at, expected):
    v = video_row(recorded_at=recorded_at)
    vm = video_message(v)
    validate_video_task(vm, S)
    assert vm["recordedAt"] == (None if recorded_at is None else "2026-03-02T08:00:00.000Z")
    a, _ = analysis_row(v["id"], recorded_at=recorded_at)
    sm = snapshot_message(a)
    validate_snapshot_ready(sm, S)
    assert (sm["detectedIn"], sm["detectedAt"], sm["track_id"]) == (2272, expected, 7)


def test_plan_resends_marks_error_and_covers():
    ok, gone, done_video = video_row(status="processing"), video_row(status="uploaded"), new_uuid()
    bad = video_row(s3_key_raw=build_raw_key(WID, new_uuid(), "clip.mp4"))  # key of another video
    a_ok, k_ok = analysis_row(done_video)
    a_gone, _ = analysis_row(done_video, track=8)
    a_covered, k_cov = analysis_row(ok["id"], track=9)
    exists = {ok["s3_key_raw"]: True, gone["s3_key_raw"]: False, bad["s3_key_raw"]: True, k_ok: True, k_cov: True}
    actions = {a.row_id: a for a in plan([ok, gone, bad], [a_ok, a_gone, a_covered], exists, S)}
    assert {k: a.kind for k, a in actions.items()} == {
        ok["id"]: "resend", gone["id"]: "error", bad["id"]: "error",
        a_ok["id"]: "resend", a_gone["id"]: "error", a_covered["id"]: "covered"}
    assert actions[ok["id"]].queue == S.video_queue and actions[ok["id"]].message["event"] == "PROCESS_VIDEO"
    assert actions[a_ok["id"]].queue == S.snapshot_queue and actions[a_ok["id"]].schema == "snapshot_ready"
    assert "is gone" in actions[gone["id"]].why and gone["s3_key_raw"] in actions[gone["id"]].why
    assert "cannot form a valid PROCESS_VIDEO" in actions[bad["id"]].why
    assert "snapshot" in actions[a_gone["id"]].why and "is gone" in actions[a_gone["id"]].why


# --- the stack-restart case, with the CLI and real workers -----------------------------------------
@pytest.fixture
def rig(stack, settings, tmp_path, clip_factory):
    s = settings.replace(**faults.FAULT_SETTINGS)
    faults.run_setup(s)
    r = faults.Rig(stack, s, tmp_path, clip_factory)
    yield r
    r.close()


def cli(rig, *args):
    return subprocess.run([sys.executable, "-m", "video_analysis", "reconcile", *args], capture_output=True,
                          text=True, env=worker_env(rig.stack, rig.s), timeout=120)


def test_rows_left_queued_after_the_queues_lost_their_messages(rig):
    """Postgres kept its rows, the queues lost their messages (purged): reconcile --apply sends
    them again and the workers finish them; a video whose upload is gone is marked error."""
    s, c = rig.s, rig.client
    videos = [rig.submit(rig.clip(**faults.SHORT, seed=seed), frame_stride=2) for seed in (12, 13)]
    lost = new_uuid()
    c.register(lost, frame_stride=2)  # its upload never happened / was deleted
    pub = Publisher(s)  # a video the yolo_worker finished, whose SNAPSHOT_READY was lost
    rig.db.execute("UPDATE videos SET status = 'done' WHERE id = %s", (pub.video_id,))
    snap = pub.publish(3, 1000, encode_jpeg(np.full((640, 640, 3), 90, np.uint8), 90), send=False)
    fresh = new_uuid()
    c.upload(rig.clip(**faults.SHORT, seed=12), fresh)
    c.register(fresh, frame_stride=2)  # registered just now: its message may still be on the way
    c.sqs.client.purge_queue(QueueUrl=c.sqs.url(s.video_queue))
    assert rig.queue_depth(s.video_queue) == 0
    rig.db.execute("UPDATE videos SET updated_at = now() - interval '2 hours' WHERE id <> %s", (fresh,))
    rig.db.execute("UPDATE image_analyses SET updated_at = now() - interval '2 hours'")

    dry = cli(rig)
    assert dry.returncode == 0, dry.stderr
    assert f"queue {s.video_queue}: 0 waiting, 0 in flight" in dry.stdout
    lines = dry.stdout.splitlines()
    for v in videos:
        assert any(ln.startswith("resend") and v in ln and "PROCESS_VIDEO" in ln for ln in lines), dry.stdout
    assert any(ln.startswith("error") and lost in ln and "is gone" in ln for ln in lines)
    assert any(ln.startswith("resend") and "SNAPSHOT_READY" in ln and "image_analyses" in ln for ln in lines)
    assert fresh not in dry.stdout  # idle less than 30 min
    assert "4 row(s) to reconcile; nothing changed" in dry.stdout
    assert rig.queue_depth(s.video_queue) == 0 and rig.video_statuses()[lost] == "queued"

    applied = cli(rig, "--apply")
    assert applied.returncode == 0 and "4 row(s) reconciled" in applied.stdout, applied.stdout + applied.stderr
    assert applied.stdout.count("-> sent") == 3 and applied.stdout.count("-> marked error") == 1
    assert rig.queue_depth(s.video_queue) == 2 and rig.queue_depth(s.snapshot_queue) == 1
    row = rig.db.fetchone("SELECT status, error FROM videos WHERE id = %s", (lost,))
    assert row["status"] == "error" and "is gone" in row["error"]
    again = cli(rig, "--apply")  # just re-sent: not idle any more, so nothing is sent twice
    assert "nothing to reconcile" in again.stdout, again.stdout

    rig.start("yolo", wait=False)
    rig.start("main", wait=False)
    rig.wait(lambda: rig.all_finished(videos) and rig.analysis_counts().keys() == {"done"}, 180,
             "the re-sent videos and snapshot analysed")
    assert {a["snapshot_s3_key"]: a["status"] for a in rig.analyses(pub.video_id)} == {snap["snapshot_s3_key"]: "done"}
    assert rig.dlq(s.video_dlq) == [] and rig.dlq(s.snapshot_dlq) == []
    one = cli(rig, "--video", fresh)  # --video: that video whatever its age
    assert one.returncode == 0 and fresh in one.stdout and "1 row(s) to reconcile" in one.stdout, one.stdout


def test_reconcile_in_process_marks_a_snapshot_that_is_gone(provisioned):
    pub = Publisher(provisioned)
    pub.db.execute("UPDATE videos SET status = 'done' WHERE id = %s", (pub.video_id,))
    msg = pub.publish(5, 400, None, send=False)  # no object
    report = reconcile(provisioned, older_than_s=0, apply=True)
    assert [(a.kind, o) for a, o in report.applied] == [("error", "marked error")]
    [row] = pub.analyses()
    assert row["status"] == "error" and msg["snapshot_s3_key"] in row["error"]
