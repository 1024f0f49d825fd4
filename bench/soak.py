"""``python -m video_analysis.bench.soak`` (``make soak``): the whole system under chaos.

N short generated videos (default 60) go through 2 yolo_workers and 2 main_workers, real
processes as systemd runs them, restarted like ``Restart=on-failure`` when they exit.
Meanwhile a chaos thread SIGKILLs a random worker every 15-30 s, and the database is stopped
once for 90 s.  Afterwards it checks what an operator would:

* every video ``done``, and done exactly once (one "video done" line at most per video);
* every analysis ``done`` with its result row exactly once;
* no duplicate snapshot object or row (S3 keys == rows' keys, each once), and every copy of a
  clip gave the same snapshots (the pipeline is deterministic, kills or not);
* nothing in a DLQ, nothing left ``queued`` or ``processing``, no ERROR line;

and prints the figures as JSON: videos, snapshots, kills, restarts, redeliveries, wall time.
Exit status 0 when every check holds, 1 otherwise.  ``tests/faults/test_soak.py`` runs a
short version (12 videos, 3+ kills, a shorter outage) in ``make test``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..worker_config import Settings, env_overrides
from ..worker_utils.db import Database
from ..worker_utils.keys import build_raw_key, build_snapshot_uri
from ..worker_utils.local_stack import StackState
from ..worker_utils.repository import upsert_video_queued
from ..worker_utils.s3_store import S3Store
from ..worker_utils.sqs_queue import SqsQueues

WORKSPACE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
MODULES = {"yolo": "video_analysis.yolo_worker.run_poller", "main": "video_analysis.main_worker.run_poller"}
RESTART_S = 2.0  # the units' RestartSec


@dataclass
class SoakConfig:
    videos: int = 60
    yolo_workers: int = 2
    main_workers: int = 2
    kill_every_s: tuple[float, float] = (15.0, 30.0)
    db_down_s: float = 90.0
    db_down_after_kills: int = 1  # the outage starts after this many kills
    clip_s: float = 6.0
    clip_seeds: tuple[int, ...] = (12, 13, 21, 34)
    timeout_s: float = 1800.0
    seed: int = 7


# Short timings so that a killed worker's message comes back in seconds, not minutes.
SOAK_SETTINGS = dict(visibility_timeout_s=8, heartbeat_s=1.0, receive_wait_s=1, stop_timeout_s=5.0,
                     transient_backoff_base_s=1, transient_backoff_max_s=4, outage_release_s=2,
                     outage_probe_max_s=5, progress_interval_s=1.0, plate_enabled=False, device="cpu")


@dataclass
class Worker:
    kind: str
    n: int
    env: dict[str, str]
    logdir: Path
    proc: Optional[subprocess.Popen] = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        self.starts += 1
        log = self.logdir / f"{self.kind}{self.n}-{self.starts}.log"
        self.logs.append(log)
        with open(log, "w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", MODULES[self.kind]], env=self.env, stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def events(self) -> list[dict]:
        out = []
        for log in self.logs:
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        return out


class Soak:
    """One soak run on a provisioned stack (``settings`` point at it)."""

    def __init__(self, cfg: SoakConfig, settings: Settings, stack: StackState, workdir: Path):
        self.cfg, self.s, self.stack, self.dir = cfg, settings, stack, workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db, self.s3, self.sqs = Database(settings), S3Store(settings), SqsQueues(settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CVITX_")}
        env.update(stack.environ())
        env.update(env_overrides(settings))
        env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")  # four workers share the cores
        self.workers = [Worker(kind, n, env, self.dir) for kind, count in (("yolo", cfg.yolo_workers),
                                                                           ("main", cfg.main_workers))
                        for n in range(1, count + 1)]
        self.rng = random.Random(cfg.seed)
        self.lock = threading.Lock()  # worker processes: the supervisor and the chaos thread
        self.finished = threading.Event()
        self.kills = 0
        self.exits: list[int] = []
        self.outage: dict[str, float] = {}
        self.video_ids: list[str] = []
        self.clips = 1
        self._outage_thread: Optional[threading.Thread] = None

    # --- the API's side ------------------------------------------------------------
    def submit_all(self, clips: list[Path]) -> None:
        """Video i is a copy of clip i mod len(clips)."""
        self.clips = len(clips)
        for i in range(self.cfg.videos):
            vid = f"{i + 1:08x}-5eed-4000-8000-{self.cfg.seed:012x}"
            key = build_raw_key(WORKSPACE, vid, "clip.mp4", self.s.user_prefix)
            upsert_video_queued(self.db, video_id=vid, workspace_id=WORKSPACE, workspace_code="CTX1005",
                                camera_code="CAM1", s3_key_raw=key, frame_stride=1, recorded_at=None)
            self.s3.upload_file(clips[i % len(clips)], key, "video/mp4")
            self.sqs.send_json(self.s.video_queue, {
                "event": "PROCESS_VIDEO", "video_id": vid, "workspace_id": WORKSPACE, "workspace_code": "CTX1005",
                "camera_code": "CAM1", "s3_key_raw": key, "frame_stride": 1, "recordedAt": None}, "process_video")
            self.video_ids.append(vid)

    # --- chaos ---------------------------------------------------------------------
    def _supervise(self) -> None:
        """systemd's Restart=: a worker that exited (killed, or failed) starts again after RESTART_S."""
        while not self.finished.is_set():
            with self.lock:
                for w in self.workers:
                    if w.proc is not None and w.proc.poll() is not None:
                        self.exits.append(w.proc.returncode)
                        w.proc = None
                        threading.Timer(RESTART_S, self._restart, args=(w,)).start()
            self.finished.wait(0.2)

    def _restart(self, w: Worker) -> None:
        with self.lock:
            if not self.finished.is_set() and w.proc is None:
                w.start()

    def _chaos(self) -> None:
        while not self.finished.wait(self.rng.uniform(*self.cfg.kill_every_s)):
            with self.lock:
                alive = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
                if not alive:
                    continue
                victim = self.rng.choice(alive)
                victim.proc.send_signal(signal.SIGKILL)
                self.kills += 1
            if self.kills == self.cfg.db_down_after_kills and not self.outage and self.cfg.db_down_s > 0:
                self.outage["at_s"] = round(time.monotonic() - self.t0, 1)  # kills go on meanwhile
                self._outage_thread = threading.Thread(target=self._db_outage, name="db-outage", daemon=True)
                self._outage_thread.start()

    def _db_outage(self) -> None:
        pg = self.stack.pg
        pg.stop("fast")
        try:
            self.finished.wait(self.cfg.db_down_s)
        finally:
            pg.start()
        self.outage["down_s"] = self.cfg.db_down_s

    # --- the run ---------------------------------------------------------------------
    def run(self, clips: list[Path]) -> dict[str, Any]:
        self.t0 = time.monotonic()
        with self.lock:
            for w in self.workers:
                w.start()
        self.submit_all(clips)
        threads = [threading.Thread(target=f, name=f.__name__, daemon=True) for f in (self._supervise, self._chaos)]
        for t in threads:
            t.start()
        try:
            while not self._converged():
                if time.monotonic() - self.t0 > self.cfg.timeout_s:
                    break
                time.sleep(1.0)
        finally:
            self.finished.set()
            for t in threads + ([self._outage_thread] if self._outage_thread else []):
                t.join(self.cfg.db_down_s + 30)
            if not self.stack.pg.running():
                self.stack.pg.start()
            with self.lock:
                for w in self.workers:
                    if w.proc is not None and w.proc.poll() is None:
                        w.proc.send_signal(signal.SIGTERM)
                for w in self.workers:
                    if w.proc is not None:
                        try:
                            w.proc.wait(timeout=30)
                        except subprocess.TimeoutExpired:
                            w.proc.kill()
                            w.proc.wait()
        wall = time.monotonic() - self.t0
        return self.report(wall)

    def _converged(self) -> bool:
        try:
            st = self.db.fetchall("SELECT status, count(*) AS n FROM videos GROUP BY status")
            an = self.db.fetchall("SELECT status, count(*) AS n FROM image_analyses GROUP BY status")
        except Exception:  # noqa: BLE001 - the database is down: not yet
            return False
        videos = {r["status"]: r["n"] for r in st}
        analyses = {r["status"]: r["n"] for r in an}
        return (videos.get("done", 0) == len(self.video_ids) and set(analyses) == {"done"}
                and all(self._depth(q) == 0 for q in (self.s.video_queue, self.s.snapshot_queue)))

    def _depth(self, queue: str) -> int:
        a = self.sqs.attributes(queue)
        return sum(int(a.get(k, 0)) for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                               "ApproximateNumberOfMessagesDelayed"))

    def report(self, wall_s: float) -> dict[str, Any]:
        events = [e for w in self.workers for e in w.events()]
        problems = self.check(events)
        done = [e for e in events if e.get("msg") == "message done"]
        return {"config": asdict(self.cfg), "videos": len(self.video_ids),
                "snapshots": self.db.fetchone("SELECT count(*) AS n FROM image_analyses")["n"],
                "kills": self.kills, "restarts": sum(w.starts - 1 for w in self.workers),
                "exit_statuses": sorted(set(self.exits)), "db_outage": self.outage or None,
                "redeliveries": sum(1 for e in done if e.get("receive_count", 1) > 1),
                "released_for_outage": sum(e.get("msg") == "message released: a dependency is down" for e in events),
                "outage_noticed": sum(e.get("msg") in ("dependency down: receiving paused, probing until it answers",
                                                       "waiting for a dependency before serving") for e in events),
                "wall_s": round(wall_s, 1), "problems": problems, "ok": not problems}

    def check(self, events: list[dict]) -> list[str]:
        """What must hold after the soak; each failed check as one line."""
        problems: list[str] = []
        videos = {r["id"]: r for r in self.db.fetchall("SELECT id::text AS id, status, error FROM videos")}
        not_done = {v: (videos.get(v) or {}).get("status") for v in self.video_ids
                    if (videos.get(v) or {}).get("status") != "done"}
        if not_done:
            problems.append(f"{len(not_done)} videos not done: {dict(list(not_done.items())[:5])}")
        done_lines: dict[str, int] = {}
        for e in events:
            if e.get("msg") == "video done":
                done_lines[e.get("video_id")] = done_lines.get(e.get("video_id"), 0) + 1
        twice = {v: n for v, n in done_lines.items() if n > 1}
        if twice:
            problems.append(f"videos done more than once: {twice}")
        rows = self.db.fetchall("SELECT a.id::text AS id, a.video_id::text AS video_id, a.snapshot_s3_key, a.status,"
                                " a.track_id, a.detected_in_ms, a.yolo_type,"
                                " (SELECT count(*) FROM image_analysis_results r WHERE r.analysis_id = a.id) AS results"
                                " FROM image_analyses a")
        bad = [r for r in rows if r["status"] != "done" or r["results"] != 1]
        if bad:
            problems.append(f"{len(bad)} analyses not done with exactly one result row: {bad[:3]}")
        # the pipeline is deterministic: every copy of a clip gives the same snapshots, kills or not
        per_clip: dict[int, set] = {}
        for i, vid in enumerate(self.video_ids):
            per_clip.setdefault(i % self.clips, set()).add(tuple(sorted(
                (r["track_id"], r["detected_in_ms"], r["yolo_type"]) for r in rows if r["video_id"] == vid)))
        differ = sorted(c for c, variants in per_clip.items() if len(variants) > 1)
        if differ:
            problems.append(f"copies of clips {differ} gave different snapshots")
        keys = [r["snapshot_s3_key"] for r in rows]
        if len(keys) != len(set(keys)):
            problems.append("duplicate snapshot rows")
        objects = {build_snapshot_uri(self.s.bucket, k)
                   for k in self.s3.list_keys(f"{self.s.user_prefix}/{WORKSPACE}/") if "/snapshots/" in k}
        if objects != set(keys):
            problems.append(f"snapshot objects and rows differ: {len(objects - set(keys))} objects without a row, "
                            f"{len(set(keys) - objects)} rows without an object")
        for q in (self.s.video_queue, self.s.snapshot_queue, self.s.video_dlq, self.s.snapshot_dlq):
            if self._depth(q):
                problems.append(f"{q} still holds {self._depth(q)} messages")
        errors = [e for e in events if e.get("level") in ("ERROR", "CRITICAL")]
        if errors:
            problems.append(f"{len(errors)} ERROR lines, first: {errors[0].get('msg')}: {errors[0].get('error')}")
        if not rows:
            problems.append("no snapshot at all")
        return problems


def make_clips(cfg: SoakConfig) -> list[Path]:
    from .common import clip

    return [clip(cfg.clip_s, width=480, height=270, fps=10.0, seed=seed, vehicles_per_min=20.0)
            for seed in cfg.clip_seeds]


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m video_analysis.bench.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=60, help="short videos to process (default: 60)")
    ap.add_argument("--db-down", type=float, default=90.0, help="seconds the database is stopped (default: 90)")
    ap.add_argument("--kill-every", type=float, nargs=2, default=(15.0, 30.0), metavar=("MIN", "MAX"),
                    help="seconds between SIGKILLs of a random worker (default: 15 30)")
    ap.add_argument("--seed", type=int, default=7, help="chaos seed (which worker, when)")
    args = ap.parse_args(argv)
    from ..worker_utils.offline import ultralytics_offline
    from .common import WORK, local_stack, log

    cfg = SoakConfig(videos=args.videos, db_down_s=args.db_down, kill_every_s=tuple(args.kill_every), seed=args.seed)
    ultralytics_offline()
    clips = make_clips(cfg)
    with local_stack(**SOAK_SETTINGS, startup_wait_s=args.db_down + 60) as (settings, state):
        log(f"soak: {cfg.videos} videos, 2+2 workers, a SIGKILL every {cfg.kill_every_s[0]:g}-{cfg.kill_every_s[1]:g} s, "
            f"the database down {cfg.db_down_s:g} s once")
        result = Soak(cfg, settings, state, WORK / "soak" / time.strftime("%Y%m%d-%H%M%S")).run(clips)
    print(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
