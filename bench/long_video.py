"""Benchmarks d and e: the real ``yolo_worker.run_poller`` process on a short and a long clip.

- **d**: peak RSS (``VmHWM`` from /proc, read just before the worker is stopped) on a 1-minute
  vs a 10-minute clip: memory must not grow with video length (frames are streamed, only
  the current best crop per live track is kept).
- **e**: seconds from sending PROCESS_VIDEO to the first SNAPSHOT_READY on the snapshot
  queue, as a fraction of the seconds until ``videos.status`` is done: snapshots flow out
  while the video is still being read.

Each clip gets a fresh worker process on the same local stack, started and idle (model
loaded) before the message is sent, so start-up is not counted.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..worker_config import env_overrides
from ..worker_utils.db import Database
from ..worker_utils.repository import get_video
from ..worker_utils.sqs_queue import SqsQueues
from ..worker_utils.submit import submit_video
from .common import WORK, WORKSPACE, clip, local_stack, log, ratio


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc (Linux only)")


def _wait_for_line(log_path: Path, needle: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in log_path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited ({proc.returncode}); see {log_path}")
        time.sleep(0.2)
    raise RuntimeError(f"worker did not log {needle!r} in {timeout_s:.0f} s; see {log_path}")


def run_one(settings, env: dict[str, str], path: Path, stride: int, name: str) -> dict[str, Any]:
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"yolo_worker_{name}.log"
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "video_analysis.yolo_worker.run_poller"], env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait_for_line(log_path, '"msg": "serving"', proc, 120)
        idle_mb = _vm_hwm_mb(proc.pid)
        sqs, db = SqsQueues(settings), Database(settings)
        t0 = time.perf_counter()
        video_id = submit_video(settings, path, workspace_id=WORKSPACE, workspace_code="CTX1005",
                                camera_code="CAM1", frame_stride=stride)
        first = None
        while True:
            if first is None and sqs.receive(settings.snapshot_queue, 1, wait_s=0, visibility_s=3600):
                first = time.perf_counter() - t0
            status = (get_video(db, video_id) or {}).get("status")
            if status in ("done", "error"):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited ({proc.returncode}); see {log_path}")
            time.sleep(0.05)
        total = time.perf_counter() - t0
        if status != "done":
            raise RuntimeError(f"video ended {status}; see {log_path}")
        peak_mb = _vm_hwm_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
    return {"clip": path.name, "status": status, "total_s": round(total, 2),
            "first_snapshot_ready_s": None if first is None else round(first, 2),
            "first_snapshot_fraction": None if first is None else ratio(first, total),
            "idle_rss_mb": round(idle_mb, 1), "peak_rss_mb": round(peak_mb, 1)}


def bench_long(short_min: float = 1.0, long_min: float = 10.0, stride: int = 3, **clip_kw: Any) -> dict[str, Any]:
    clips = {"short": clip(60 * short_min, **clip_kw), "long": clip(60 * long_min, **clip_kw)}
    with local_stack(device="cpu", receive_wait_s=1) as (s, state):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CVITX_")}
        env.update(state.environ())
        env.update(env_overrides(s))
        runs = {}
        for name, path in clips.items():
            log(f"{name} clip: {path.name}")
            runs[name] = run_one(s, env, path, stride, name)
            log(f"  {runs[name]}")
    growth = runs["long"]["peak_rss_mb"] / runs["short"]["peak_rss_mb"] - 1
    return {"frame_stride": stride, "short": runs["short"], "long": runs["long"],
            "d_peak_rss_growth_short_to_long": round(growth, 4),
            "e_first_snapshot_fraction_long": runs["long"]["first_snapshot_fraction"]}
