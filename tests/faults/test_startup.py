"""Start-up checks of the real worker processes: before ``serving`` each checks that the
database is reachable and migrated and that its queues and bucket exist.  A failed check exits
2 with one line saying what to fix (systemd retries after RestartSec); an unreachable
dependency is waited for up to ``startup_wait_s`` first, so a worker restarted during a
database failover does not burn systemd's start limit."""
from __future__ import annotations

import pytest

from video_analysis.worker_utils.local_stack import free_port


# Each check once (the checks are the same code for both workers; each worker's own wiring,
# its queue list and its bucket area, is covered by one case of its own).
@pytest.mark.parametrize("kind,case", [("main", "not migrated"), ("main", "no bucket"),
                                       ("main", "database unreachable"), ("yolo", "no queue")])
def test_a_failed_start_up_check_exits_2_with_what_to_fix(make_rig, stack, unique, kind, case):
    rig = make_rig()
    changes, needle = {
        "not migrated": (dict(db_url=stack.pg.create_database(f"{unique}_empty")),
                         "lacks migrations 0001_init, 0002_track_span, 0003_snapshot_box, 0004_video_segments; run "
                         "`python -m video_analysis setup`"),
        "no bucket": (dict(bucket=f"{rig.s.bucket}-missing"), "does not exist; create it with "
                                                              "`python -m video_analysis setup`"),
        "no queue": (dict(video_queue=f"{rig.s.video_queue}-missing", snapshot_queue=f"{rig.s.snapshot_queue}-missing"),
                     "does not exist; run `python -m video_analysis setup` first"),
        "database unreachable": (dict(db_url=f"postgresql://cvitx@127.0.0.1:{free_port()}/cvitx", startup_wait_s=3),
                                 "database unreachable at start-up for 3 s (startup_wait_s)"),
    }[case]
    w = rig.start(kind, wait=False, **changes)
    w.expect_exit = True
    rc = w.proc.wait(timeout=120)
    out = w.text()
    assert rc == 2, out[-3000:]
    assert needle in out, out[-3000:]
    assert not w.events("serving")
    cannot = [line for line in out.splitlines() if "cannot start: " in line and not line.startswith("{")]
    assert len(cannot) == 1, out[-3000:]  # one plain line for the journal, saying what to fix
    if case == "database unreachable":
        assert len(w.events("waiting for a dependency before serving", dependency="database")) == 1
