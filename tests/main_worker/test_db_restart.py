"""PostgreSQL restarts while the real main_worker process is in the middle of a batch.

The worker runs as systemd runs it (``python -m video_analysis.main_worker.run_poller``,
settings from CVITX_ overrides). Plate OCR is on, so a batch of 10 takes seconds and the
cluster goes down while the batch is being written. That is an outage, not the messages'
fault: they are released for later, the worker stops receiving and probes the database, and
once the cluster is back every analysis ends `done` with exactly one complete results row;
nothing reaches the DLQ.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from helpers import wait_for, worker_env
from video_analysis.worker_utils.vocab import COLOR_BASES

from .conftest import Publisher

N = 20


def test_postgres_restart_mid_batch(stack, mw_settings, gt_snaps, tmp_path):
    s = mw_settings.replace(plate_enabled=True, transient_backoff_base_s=2, transient_backoff_max_s=8,
                            visibility_timeout_s=60, heartbeat_s=5, stop_timeout_s=10)
    pub = Publisher(s)
    for snap in gt_snaps[:N]:
        pub.publish_snap(snap)
    log = tmp_path / "worker.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "video_analysis.main_worker.run_poller"],
                                env=worker_env(stack, s), stdout=fh, stderr=subprocess.STDOUT)
    pg = stack.pg
    try:
        # A batch's analyses turn done together (one transaction): stop the cluster once the first
        # batch is done and the next one has started (its rows processing, its OCR under way).
        wait_for(lambda: (lambda c: c.get("done", 0) >= 1 and c.get("processing", 0) >= 1)(pub.status_counts()),
                 120, "the first done analysis and the next batch started", proc, log)
        done_at_stop = pub.status_counts().get("done", 0)
        pg.stop("fast")  # kills the worker's connection too
        assert not pg.running()
        time.sleep(2.0)
        pg.start()
        wait_for(lambda: pub.status_counts() == {"done": N}, 120, "every analysis done", proc, log)
    finally:
        if not pg.running():
            pg.start()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    out = log.read_text()
    assert rc == 0, out[-3000:]
    assert 1 <= done_at_stop < N, done_at_stop

    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    # an outage, not the messages' fault: released for later, receiving paused, one line down, one back
    retried = [e for e in events if e.get("msg") == "message released: a dependency is down"]
    assert retried, "no message was released: the restart did not hit the worker"
    assert all(e["dependency"] == "database" and "database unavailable" in e["error"] for e in retried), retried
    # at least one message of a batch already fetched and inferred failed on its final write
    assert any("DB finish analysis" in e["error"] for e in retried), [e["error"] for e in retried]
    assert [e["dependency"] for e in events if e.get("msg") == "dependency down: receiving paused, probing until "
            "it answers"] == ["database"]
    assert [e["dependency"] for e in events if e.get("msg") == "dependency back: receiving resumed"] == ["database"]
    assert not [e for e in events if e.get("msg") == "transient failure; message will be retried"]

    rows = pub.results()
    assert len(rows) == N and len({r["analysis_id"] for r in rows}) == N
    for r in rows:
        assert r["variant"] == "baseline" and r["type"] and r["make"] and r["model"]
        assert r["colors"] and r["colors"][0]["base"] in COLOR_BASES and r["payload"]["model"]["label"] == r["model"]
    assert all(a["error"] is None for a in pub.analyses())
    assert pub.drain(s.snapshot_dlq) == [] and pub.drain(s.snapshot_queue) == []
