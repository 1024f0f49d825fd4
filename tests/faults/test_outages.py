"""Dependencies going away mid-run: PostgreSQL stopped for 150 s, S3 + SQS unreachable for a
while, the database down on a message's last receive.  All are outages: the workers keep
running, stop receiving, probe until the dependency answers, and lose no message."""
from __future__ import annotations

import time

import numpy as np

from helpers import Publisher, new_uuid, snapshots_from_clip

from .conftest import MEDIUM, SHORT

REQUEUED = "message requeued: its last receive met an outage"

PG_DOWN_S = 150.0
NET_DOWN_S = 8.0


def _hold(rig, seconds: float) -> None:
    """Wait ``seconds`` while checking every worker stays up."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        dead = [w.name for w in rig.workers if not w.alive()]
        assert not dead, f"{dead} exited during the outage"
        time.sleep(0.2)


def test_postgres_down_150s_mid_video(make_rig, stack):
    """A managed failover or a maintenance restart takes minutes: 150 s, longer than five
    transient back-offs (5+10+20+40 s), with the production retry settings (max_receive_count
    5, outage_budget_s 15 min).  The workers release what they hold, stop receiving, probe the
    database and resume: nothing is dead-lettered, nothing is left queued or processing."""
    rig = make_rig(max_receive_count=5, outage_release_s=2, outage_probe_max_s=5)
    workers = [rig.start("yolo", wait=False), rig.start("main", wait=False)]
    for w in workers:
        w.wait_serving()
    yolo = workers[0]
    videos = [rig.submit(rig.clip(**MEDIUM)) for _ in range(3)]

    def mid_video() -> bool:
        done = {v for v, st in rig.video_statuses().items() if st == "done"}
        return rig.analysis_counts().get("done", 0) >= 1 and any(
            e["video_id"] not in done and 10 <= (e["pct"] or 0) <= 80 for e in yolo.events("progress"))

    rig.wait(mid_video, 120, "an analysis done and the yolo_worker in the middle of a video")
    pg = stack.pg
    try:
        pg.stop("fast")  # the shared cluster of the test session: restarted below whatever happens
        assert not pg.running()
        _hold(rig, PG_DOWN_S)
    finally:
        if not pg.running():
            pg.start()
    rig.wait(lambda: rig.all_finished(videos) and rig.queue_depth(rig.s.video_queue) == 0
             and rig.queue_depth(rig.s.snapshot_queue) == 0, 240, "every video analysed after the outage")
    rig.assert_converged(videos)  # done exactly once, no DLQ, no ERROR line, nothing queued/processing
    down = yolo.events("dependency down: receiving paused, probing until it answers")
    back = yolo.events("dependency back: receiving resumed")
    assert [e["dependency"] for e in down] == ["database"], down  # one line down ...
    assert len(back) == 1 and back[0]["down_s"] >= PG_DOWN_S - 30, back  # ... one line back
    released = rig.events("message released: a dependency is down")
    assert released and all("database unavailable" in e["error"] for e in released), released
    assert not rig.events("transient failure; message will be retried")  # no receive burned on backoffs
    for w in workers:
        assert len(w.events("dependency down: receiving paused, probing until it answers")) == len(
            w.events("dependency back: receiving resumed")) <= 1
    assert max(e["receive_count"] for e in rig.events("message done")) <= 3


def test_s3_and_sqs_unreachable_for_a_while(rig):
    """Both workers reach moto through a TCP proxy that the test shuts (connections refused,
    open ones cut) and opens again on the same port; moto keeps its state."""
    workers = [rig.start(kind, via_proxy=("s3", "sqs"), wait=False) for kind in ("yolo", "main")]
    for w in workers:
        w.wait_serving()
    videos = [rig.submit(rig.clip(**MEDIUM)) for _ in range(3)]
    rig.wait(lambda: rig.analysis_counts().get("done", 0) >= 1, 120, "the first analysis done")
    assert not rig.all_finished(videos), "the run finished before the outage"
    rig.proxy.shut()
    _hold(rig, NET_DOWN_S)
    rig.proxy.open()
    rig.wait(lambda: rig.all_finished(videos) and rig.queue_depth(rig.s.video_queue) == 0
             and rig.queue_depth(rig.s.snapshot_queue) == 0, 180, "every video analysed after the outage")
    rig.assert_converged(videos)
    for w in workers:  # each noticed (its long poll failed), paused, and carried on: one line down, one back
        down = w.events("dependency down: receiving paused, probing until it answers")
        assert down, f"{w.name} never noticed the outage"
        assert all(e["dependency"] in ("s3", "sqs") and "endpoint unreachable" in e["error"] for e in down), down
        assert len(w.events("dependency back: receiving resumed")) == len(down)
    # a message whose settling failed too names both failures (the handler's and the SQS one)
    assert all(e["handler_outcome"] for e in rig.events("could not settle message; it will be redelivered"))


def test_a_last_receive_during_a_database_outage_is_requeued_not_dead_lettered(make_rig, stack):
    """``max_receive_count`` 1 (the queues' redrive maxReceiveCount too): every receive is a
    message's last, so releasing it would let SQS dead-letter it on the next receive.  A
    PROCESS_VIDEO and a SNAPSHOT_READY received while the database is down are requeued instead:
    a fresh copy (``cvitx_outage_requeues`` 1) on the worker's own queue, the received one
    deleted.  Once the database is back both are processed and nothing is dead-lettered.  That
    send to the own queue needs a grant of its own in both worker policies (deploy/iam/README.md);
    the recorded calls are checked against them when the test ends (``make_rig``)."""
    rig = make_rig(max_receive_count=1, outage_probe_max_s=1)
    yolo, main = rig.start("yolo", wait=False), rig.start("main", wait=False)
    for w in (yolo, main):
        w.wait_serving()
    c = rig.client
    vid = new_uuid()
    c.upload(rig.clip(**SHORT, seed=21), vid)
    c.register(vid, frame_stride=2)
    pub = Publisher(rig.s)  # a snapshot of a video the yolo_worker finished: object and queued row, not yet announced
    snap = snapshots_from_clip(rig.clip_info(**SHORT, seed=12), np.random.default_rng(3), track_base=1)[0]
    ready = pub.publish_snap(snap, send=False)
    rig.db.execute("UPDATE videos SET status = 'done' WHERE id = %s", (pub.video_id,))
    pg = stack.pg
    try:
        pg.stop("fast")
        c.send(c.message(vid, frame_stride=2))
        pub.send(ready)
        rig.wait(lambda: yolo.events(REQUEUED) and main.events(REQUEUED), 30, "both messages requeued")
    finally:
        if not pg.running():
            pg.start()
    videos = [vid, pub.video_id]
    rig.wait(lambda: rig.all_finished(videos) and rig.queue_depth(rig.s.video_queue) == 0
             and rig.queue_depth(rig.s.snapshot_queue) == 0, 90, "both processed after the outage")
    rig.assert_converged(videos)  # done exactly once, DLQs empty, no ERROR line
    for w in (yolo, main):
        [requeued] = w.events(REQUEUED)
        assert requeued["dependency"] == "database" and requeued["cvitx_outage_requeues"] == "1", requeued
        assert not w.events("message released: a dependency is down")
        assert len(w.events("dependency back: receiving resumed")) == 1
    # the copy went to the worker's own queue (the call its policy must allow), recorded
    assert rig.s.video_queue in yolo.sent_to() and rig.s.snapshot_queue in main.sent_to()
    assert [e["video_id"] for e in yolo.events("video done")] == [vid]
