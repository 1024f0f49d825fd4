"""Dependencies going away mid-run: PostgreSQL stopped for 30 s, S3 + SQS unreachable for a
while.  Both are transient: the workers keep running, retry, and lose no message."""
from __future__ import annotations

import time

from .conftest import MEDIUM

PG_DOWN_S = 30.0
NET_DOWN_S = 8.0


def _hold(rig, seconds: float) -> None:
    """Wait ``seconds`` while checking every worker stays up."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        dead = [w.name for w in rig.workers if not w.alive()]
        assert not dead, f"{dead} exited during the outage"
        time.sleep(0.2)


def test_postgres_down_30s_mid_run(make_rig, stack):
    # Receives are only burned while the DB is down: 10 of them, spaced 1, 2, 4, 8, 8 ... s
    # apart, outlast the 30 s outage (production: 5 spaced 5, 10, 20, 40 s), and a message
    # is retried within 8 s of the DB coming back.
    rig = make_rig(max_receive_count=10, transient_backoff_base_s=1, transient_backoff_max_s=8)
    workers = [rig.start("yolo", wait=False), rig.start("main", wait=False)]
    for w in workers:
        w.wait_serving()
    videos = [rig.submit(rig.clip(**MEDIUM)) for _ in range(3)]
    rig.wait(lambda: rig.analysis_counts().get("done", 0) >= 1, 120, "the first analysis done")
    assert not rig.all_finished(videos), "the run finished before the outage"
    pg = stack.pg
    try:
        pg.stop("fast")  # the shared cluster of the test session: restarted below whatever happens
        assert not pg.running()
        _hold(rig, PG_DOWN_S)
    finally:
        if not pg.running():
            pg.start()
    rig.wait(lambda: rig.all_finished(videos) and rig.queue_depth(rig.s.video_queue) == 0
             and rig.queue_depth(rig.s.snapshot_queue) == 0, 180, "every video analysed after the outage")
    rig.assert_converged(videos)
    retried = rig.events("transient failure; message will be retried")
    assert retried, "no message was retried: the outage did not hit the workers"
    assert all("database unavailable" in e["error"] for e in retried), [e["error"] for e in retried]
    assert max(e["receive_count"] for e in retried) < rig.s.max_receive_count


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
    for w in workers:  # each noticed (its long poll failed) and carried on
        failed = w.events("receive failed; retrying")
        assert failed, f"{w.name} never noticed the outage"
        assert all("will retry" in e["error"] for e in failed), failed
    # a message whose settling failed too names both failures (the handler's and the SQS one)
    assert all(e["handler_outcome"] for e in rig.events("could not settle message; it will be redelivered"))
