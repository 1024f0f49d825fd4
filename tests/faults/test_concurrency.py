"""Competing consumers and long jobs: several real worker processes on the same queues."""
from __future__ import annotations

import math

import pytest

from .conftest import MEDIUM, SHORT, SHORT_SEEDS

N_VIDEOS = 20


def test_two_yolo_and_two_main_workers_share_the_queues(rig):
    clips = [rig.clip(**SHORT, seed=seed) for seed in SHORT_SEEDS]
    workers = [rig.start(kind, wait=False) for kind in ("main", "main", "yolo", "yolo")]
    for w in workers:
        w.wait_serving()
    videos = {rig.submit(clips[i % len(clips)], frame_stride=2): i % len(clips) for i in range(N_VIDEOS)}
    q = rig.s
    rig.wait(lambda: rig.all_finished(list(videos)) and rig.queue_depth(q.video_queue) == 0
             and rig.queue_depth(q.snapshot_queue) == 0, 240, f"{N_VIDEOS} videos analysed")
    rows = rig.assert_converged(list(videos))  # includes: no ERROR log line, no Postgres ERROR (UNIQUE ...)

    # every copy of a clip gave the same snapshots (the pipeline is deterministic) ...
    per_clip: dict[int, set] = {}
    for vid, c in videos.items():
        per_clip.setdefault(c, set()).add(tuple(sorted((r["track_id"], r["detected_in_ms"])
                                                       for r in rows if r["video_id"] == vid)))
    assert all(len(v) == 1 for v in per_clip.values()), per_clip
    # ... each video and each analysis was worked on exactly once ...
    assert sorted(e["video_id"] for e in rig.events("video done")) == sorted(videos)
    # the final line of a video says how many frames the detector ran on and how many were carried over
    assert all(e["frames_detected"] + e["frames_carried"] == e["frames_processed"] and e["frames_detected"] > 0
               for e in rig.events("video done"))
    assert len([e for e in rig.events("message done") if e.get("analysis") == "done"]) == len(rows)
    assert rig.events("analysis was finished by another delivery; nothing changed") == []
    # ... and the work really was shared
    for w in workers:
        assert w.events("message done"), f"{w.name} served nothing"
    assert sum(len(w.events("message done")) for w in workers if w.kind == "yolo") == N_VIDEOS


@pytest.mark.serial  # calibrated on this machine's speed: a parallel test changing it would skew "long"
def test_long_job_is_heartbeated_and_never_processed_twice(make_rig):
    """A video that takes over 3x the visibility timeout, with a second yolo_worker idle on the
    queue: if a heartbeat were missed, the second worker would start the same video."""
    rig = make_rig(visibility_timeout_s=2, heartbeat_s=0.5, log_level="DEBUG")
    a, b = rig.start("yolo", wait=False), rig.start("yolo", wait=False)
    a.wait_serving(), b.wait_serving()
    # How long a video is "long" depends on the machine: measure the speed on a short one, then
    # render a clip of about 5.5 visibility timeouts of work (the probe, the first video
    # of its process, runs slower than the steady state).
    probe = rig.submit(rig.clip(**MEDIUM))
    rig.wait(lambda: rig.events("video done", video_id=probe), 120, "the speed probe")
    fps = rig.events("video done", video_id=probe)[0]["processed_fps"]
    seconds = math.ceil(fps * 5.5 * rig.s.visibility_timeout_s / MEDIUM["fps"])
    vid = rig.submit(rig.clip(**{**MEDIUM, "duration_s": float(seconds)}))
    rig.wait(lambda: len(rig.events("message done")) == 2, 180, "the long video done")
    done = rig.events("video done", video_id=vid)
    assert len(done) == 1
    took_s = done[0]["duration_ms"] / 1e3
    assert took_s >= 3 * rig.s.visibility_timeout_s, f"the job took only {took_s:.1f}s"
    assert len(rig.events("video opened", video_id=vid)) == 1  # no second worker ever started it
    assert [e["receive_count"] for e in rig.events("message done")] == [1, 1]
    beats = rig.events("heartbeat")  # DEBUG records of the heartbeat thread
    assert len(beats) >= took_s / rig.s.heartbeat_s / 2, len(beats)
    assert rig.events("heartbeat failed; trying again at the next beat") == []
    assert rig.queue_depth(rig.s.video_queue) == 0 and rig.dlq(rig.s.video_dlq) == []
