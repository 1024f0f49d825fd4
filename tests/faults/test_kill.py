"""SIGKILL at the two worst moments: the yolo_worker halfway through a video, the main_worker
after its DB commit but before its DeleteMessage.  SQS redelivers; nothing may happen twice."""
from __future__ import annotations

import time

import numpy as np

from helpers import Publisher, snapshots_from_clip

from .conftest import MEDIUM, SHORT


def tracks(rows: list[dict]) -> list[tuple]:
    return sorted((r["track_id"], r["detected_in_ms"], r["yolo_type"]) for r in rows)


def test_sigkill_yolo_worker_mid_video_redelivery_writes_the_same_snapshots(rig):
    clip = rig.clip(**MEDIUM)
    first = rig.start("yolo")
    reference = rig.submit(clip)  # the undisturbed run of the same file
    rig.wait(lambda: rig.video_statuses().get(reference) == "done", 120, "the reference run")
    vid = rig.submit(clip)

    def halfway() -> bool:
        return any(e["snapshots_sent"] >= 1 and (e["pct"] or 0) >= 30 for e in first.events("progress", video_id=vid))

    rig.wait(halfway, 120, "the worker part-way through the video, with a snapshot already sent")
    first.sigkill()
    assert not first.events("video done", video_id=vid)
    assert rig.video_statuses()[vid] == "processing"
    before = rig.analyses(vid)
    assert before and all(r["status"] == "queued" for r in before)
    assert len(before) < len(rig.analyses(reference)), "killed too late: every snapshot was already written"

    second = rig.start("yolo")  # the message reappears once its visibility timeout lapses
    rig.wait(lambda: second.events("message done"), 120, "the redelivered video done")
    assert [e["receive_count"] for e in second.events("message done")] == [2]
    assert rig.video_statuses()[vid] == "done"

    after = rig.analyses(vid)
    assert tracks(after) == tracks(rig.analyses(reference))  # what an undisturbed run writes
    keys = [r["snapshot_s3_key"] for r in after]
    assert len(keys) == len(set(keys))
    # the rows written before the kill are the same rows (same id, key, creation), not re-inserted
    by_key = {r["snapshot_s3_key"]: r for r in after}
    assert [(r["id"], r["created_at"]) for r in before] == [
        (by_key[r["snapshot_s3_key"]]["id"], by_key[r["snapshot_s3_key"]]["created_at"]) for r in before]
    assert rig.snapshot_objects(vid) == set(keys)  # same keys overwritten in place, nothing stray
    # at-least-once: rows still queued are announced again, but only ever for these keys
    announced = [m for m in rig.client.snapshot_messages() if m["video_id"] == vid]
    assert {m["snapshot_s3_key"] for m in announced} == set(keys)
    assert len(announced) <= len(keys) + len(before)
    assert rig.dlq(rig.s.video_dlq) == []
    assert [e for e in rig.events() if e["level"] == "ERROR"] == [] and rig.postgres_errors() == []


def test_main_worker_killed_after_commit_before_delete_has_no_second_effect(rig):
    """SQS is cut (a proxy in front of moto refuses every connection) the moment the worker
    starts on its batch, so its commits land but its DeleteMessage cannot; it is SIGKILLed once
    the commits are seen.  The redelivered messages must change nothing."""
    rng = np.random.default_rng(7)
    snaps = [s for seed in (12, 13) for s in snapshots_from_clip(rig.clip_info(**SHORT, seed=seed), rng,
                                                                 track_base=100 * seed)]
    assert len(snaps) >= 4
    pub = Publisher(rig.s)
    for snap in snaps:
        pub.publish_snap(snap)
    # Plate OCR on: each message takes a noticeable time after the batch is fetched, which
    # gives the test time to cut SQS between the fetch and the commits.
    first = rig.start("main", via_proxy=("sqs",), plate_enabled=True)
    deadline = time.monotonic() + 60
    while not set(rig.analysis_counts()) - {"queued"}:
        assert time.monotonic() < deadline and first.alive(), first.text()[-3000:]
        time.sleep(0.01)
    rig.proxy.shut()
    at_cut = {r["id"]: r["status"] for r in rig.analyses()}
    rig.wait(lambda: not set(rig.analysis_counts()) & {"processing"}, 120, "the batch committed")
    first.sigkill()
    state = {r["id"]: r for r in rig.analyses()}
    results = {r["analysis_id"]: r for r in rig.results()}
    # committed while SQS was cut: these messages were never deleted
    orphans = [a for a, st in at_cut.items() if st != "done" and state[a]["status"] == "done"]
    assert orphans, f"no commit happened while SQS was cut: {at_cut}"
    assert set(orphans) <= set(results)

    rig.proxy.open()
    second = rig.start("main")
    rig.wait(lambda: len(second.events("analysis already done; redelivery changes nothing")) >= len(orphans)
             and rig.queue_depth(rig.s.snapshot_queue) == 0, 60, "the orphaned messages redelivered and deleted")
    assert len(second.events("analysis already done; redelivery changes nothing")) == len(orphans)
    redelivered = [e["receive_count"] for e in second.events("message done") if e["receive_count"] > 1]
    assert len(redelivered) >= len(orphans)
    # no second effect: the rows, their results and their timestamps are exactly as committed
    now = {r["id"]: r for r in rig.analyses()}
    assert {a: now[a] for a in orphans} == {a: state[a] for a in orphans}
    now_results = {r["analysis_id"]: r for r in rig.results()}
    assert {a: now_results[a] for a in orphans} == {a: results[a] for a in orphans}
    rig.assert_converged([pub.video_id], video_status=None)  # the API owns this video's status


SEGMENTED = dict(width=640, height=360, fps=10.0, duration_s=60.0, seed=11, vehicles_per_min=20.0, parked=1)


def test_sigkill_mid_segment_redoes_only_that_segment(make_rig):
    """Issue 26's crash cost: a 60 s video in three 20 s segments; one worker is SIGKILLed part-way
    through a segment, a second one finishes the video.  Only the segment in hand is redone
    (frames processed twice, against the video's total, printed), and the snapshots are those of
    an undisturbed segmented run of the same file."""
    rig = make_rig(segment_s=20.0, segment_warmup_s=2.0, segment_tail_s=5.0)
    clip = rig.clip(**SEGMENTED)
    first = rig.start("yolo")
    reference = rig.submit(clip)
    rig.wait(lambda: rig.video_statuses().get(reference) == "done", 180, "the reference run")
    vid = rig.submit(clip)

    def in_a_segment():
        return [e for e in first.events("progress", video_id=vid) if e.get("segment") and (e["pct"] or 0) >= 20]

    rig.wait(in_a_segment, 180, "the worker part-way through a segment of the video")
    first.sigkill()
    killed = in_a_segment()[-1]
    segs = {r["segment_index"]: r["status"] for r in rig.db.fetchall(
        "SELECT segment_index, status FROM video_segments WHERE video_id = %s", (vid,))}
    assert len(segs) == 3 and "processing" in segs.values(), segs  # killed with a segment in hand
    done_before = [e for e in first.events("segment done", video_id=vid)] + first.events("video done", video_id=vid)

    second = rig.start("yolo")  # the killed segment reappears once its visibility timeout lapses
    rig.wait(lambda: rig.video_statuses().get(vid) == "done", 180, "the segments finished by the second worker")
    finished = second.events("segment done", video_id=vid) + second.events("video done", video_id=vid)
    assert len(done_before) + len(finished) == 3
    total = probe_frames(clip)
    lost = killed["frames_read"]  # the killed segment's frames read before the kill: all processed again
    print(f"\n[crash cost] SIGKILL mid-segment: {lost} frames processed twice of the video's {total} "
          f"({lost / total:.0%}); unsegmented, the whole video would start again")
    assert 0 < lost < total / 2
    assert tracks(rig.analyses(vid)) == tracks(rig.analyses(reference))  # each segment is deterministic
    assert rig.dlq(rig.s.video_dlq) == []


def probe_frames(clip) -> int:
    from video_analysis.yolo_worker.video import probe

    return probe(clip).frame_count
