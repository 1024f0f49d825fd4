"""One video through the whole system on a private local stack: what `analyze` and `demo` run.

Steps (each printed as it starts; a failure names its step and the reason):

1. check the input video (before anything is started);
2. start a local stack (moto_server + throwaway Postgres) under a temp dir and run `setup`;
3. upload the MP4 and send PROCESS_VIDEO (as the API would);
4. start both pollers as separate processes, exactly as systemd runs them;
5. wait for ``videos.status`` done|error and every analysis done|error, with live status lines;
6. stop the workers (SIGTERM), collect rows and snapshots, write the report;
7. stop everything it started, on success and on failure.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..worker_config import Settings, build_settings, env_overrides
from ..worker_utils.db import Database
from ..worker_utils.errors import WorkerError
from ..worker_utils.local_stack import LOCAL_AWS_ENV, stack_down, stack_up
from ..worker_utils.provision import run_setup
from ..worker_utils.repository import get_video, list_analyses, segment_progress
from ..worker_utils.s3_store import S3Store
from ..worker_utils.submit import submit_video

DEMO_WORKSPACE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


class JobFailed(RuntimeError):
    """A step failed; ``str()`` is the one-line reason shown to the user."""


@dataclass
class JobOptions:
    video: Path
    out: Path
    detector: Optional[str] = None
    main_model: Optional[str] = None
    cmt_model: Optional[str] = None
    frame_stride: Optional[int] = None
    annotated: bool = False
    workspace_code: str = "CTX1005"
    camera_code: str = "CAM1"
    recorded_at: Optional[str] = None
    timeout_s: float = 3600.0
    settings_changes: dict[str, Any] = field(default_factory=dict)

    def stride(self, settings: Settings) -> int:
        """The frame stride the job runs with: the option, else the configured default."""
        return self.frame_stride or settings.default_frame_stride


@dataclass
class JobResult:
    video_id: str
    video: dict
    analyses: list[dict]
    snapshot_messages: int
    timings: dict[str, float]
    settings: Settings
    report_dir: Path
    yolo_log: Path
    main_log: Path


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Steps:
    def __init__(self, total: int):
        self.total, self.n, self.name = total, 0, ""
        self.timings: dict[str, float] = {}
        self._t0 = time.perf_counter()

    def start(self, name: str) -> None:
        self._close()
        self.n += 1
        self.name = name
        self._t0 = time.perf_counter()
        say(f"[{self.n}/{self.total}] {name} ...")

    def _close(self) -> None:
        if self.name:
            self.timings[self.name] = round(time.perf_counter() - self._t0, 2)

    def done(self) -> dict[str, float]:
        self._close()
        self.name = ""
        return self.timings


def check_video(path: Path) -> Any:
    """Probe the input before starting anything: a clear JobFailed for missing/broken files."""
    from ..yolo_worker.video import probe

    if not path.exists():
        raise JobFailed(f"{path}: no such file")
    if not path.is_file():
        raise JobFailed(f"{path}: not a regular file")
    try:
        return probe(path)
    except WorkerError as exc:
        raise JobFailed(f"{path}: {exc.reason}") from None


def _bundle_changes(opts: JobOptions) -> dict[str, Any]:
    changes: dict[str, Any] = dict(opts.settings_changes)
    for field_name, value in (("detector_path", opts.detector), ("main_model_path", opts.main_model),
                              ("cmt_model_path", opts.cmt_model)):
        if value:
            p = Path(value).expanduser().resolve()
            if not p.exists():
                raise JobFailed(f"{value}: no such file (given for {field_name})")
            changes[field_name] = str(p)
    if opts.cmt_model:
        changes["main_mode"] = "compare"
    return changes


def _start_worker(module: str, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _stop_worker(proc: Optional[subprocess.Popen], timeout: float = 60.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(path: Path, n: int = 5) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return ""
    return " | ".join(lines)


class _ProgressLog:
    """Reads the yolo_worker's JSON log for its latest progress record (percent of the video)."""

    def __init__(self, path: Path):
        self.path, self.offset, self.pct = path, 0, None

    def poll(self) -> Optional[float]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
                self.offset += len(chunk)
        except OSError:
            return self.pct
        for line in chunk.decode(errors="replace").splitlines():
            if '"progress"' in line:
                try:
                    self.pct = json.loads(line).get("pct", self.pct)
                except json.JSONDecodeError:
                    pass
        return self.pct


def run_job(opts: JobOptions, make_report: Callable[[JobResult], Path], before_submit: Callable[[], None] = lambda: None,
            ) -> JobResult:
    steps = _Steps(7)
    steps.start("check input video")
    info = check_video(opts.video)
    changes = _bundle_changes(opts)
    say(f"    {opts.video.name}: {info.width}x{info.height}, {info.fps:.3g} fps, {info.frame_count} frames")
    before_submit()
    root = Path(tempfile.mkdtemp(prefix="cvitx-job-"))
    root.chmod(0o755)  # as root, Postgres runs as 'postgres' and must reach its data dir
    yolo = main = None
    opts.out.mkdir(parents=True, exist_ok=True)
    logs = opts.out / "logs"
    logs.mkdir(exist_ok=True)
    yolo_log, main_log = logs / "yolo_worker.log", logs / "main_worker.log"
    for p in (yolo_log, main_log):
        p.write_bytes(b"")
    try:
        steps.start("start local stack (moto_server + PostgreSQL) and run setup")
        state = stack_up(root)
        # This process talks only to its private stack: moto accepts the stack's dummy keys, and
        # a user's real AWS credentials must never be sent to it (or be required).
        os.environ.update(LOCAL_AWS_ENV)
        settings = build_settings({}, **state.settings_changes(), **changes)
        run_setup(settings)
        steps.start("upload the video and send PROCESS_VIDEO")
        video_id = submit_video(settings, opts.video, workspace_id=DEMO_WORKSPACE,
                                workspace_code=opts.workspace_code, camera_code=opts.camera_code,
                                frame_stride=opts.frame_stride, recorded_at=opts.recorded_at)
        steps.start("start yolo_worker and main_worker (separate processes)")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CVITX_")}
        env.update(state.environ())
        env.update(env_overrides(settings))
        env["PYTHONUNBUFFERED"] = "1"
        yolo = _start_worker("video_analysis.yolo_worker.run_poller", env, yolo_log)
        main = _start_worker("video_analysis.main_worker.run_poller", env, main_log)
        steps.start("process: detect, track, snapshot, classify")
        db = Database(settings)
        _wait(db, video_id, yolo, main, yolo_log, main_log, opts.timeout_s)
        steps.start("collect results and write the report")
        _stop_worker(yolo)
        _stop_worker(main)
        video = get_video(db, video_id) or {}
        segments = segment_progress(db, [video_id]).get(video_id)
        if segments:  # a segmented video: the report says how many of its segments finished
            video["segments"] = {"done": segments[0], "total": segments[1]}
        analyses = list_analyses(db, video_id)
        _download_snapshots(S3Store(settings), analyses, opts.out / "report" / "snapshots")
        result = JobResult(video_id, video, analyses, len(analyses), steps.timings, settings, opts.out / "report",
                           yolo_log, main_log)
        result.timings = steps.timings
        make_report(result)
        steps.start("stop the local stack")
    except WorkerError as exc:
        raise JobFailed(f"step '{steps.name}' failed: {exc.reason}") from None
    except JobFailed as exc:
        raise JobFailed(f"step '{steps.name}' failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user sees which step and why
        raise JobFailed(f"step '{steps.name}' failed: {type(exc).__name__}: {exc}") from exc
    finally:
        _stop_worker(yolo, 10)
        _stop_worker(main, 10)
        stack_down(root)
        shutil.rmtree(root, ignore_errors=True)
    result.timings = steps.done()
    return result


def _wait(db: Database, video_id: str, yolo: subprocess.Popen, main: subprocess.Popen, yolo_log: Path,
          main_log: Path, timeout_s: float) -> None:
    t0 = time.monotonic()
    progress = _ProgressLog(yolo_log)
    last_line = ""
    while True:
        for proc, name, log in ((yolo, "yolo_worker", yolo_log), (main, "main_worker", main_log)):
            if proc.poll() is not None:
                raise JobFailed(f"{name} exited with code {proc.returncode}: {_tail(log, 3)}")
        video = get_video(db, video_id)
        analyses = list_analyses(db, video_id)
        counts: dict[str, int] = {}
        for a in analyses:
            counts[a["status"]] = counts.get(a["status"], 0) + 1
        pct = progress.poll()
        status = video["status"] if video else "?"
        segments = segment_progress(db, [video_id]).get(video_id)
        line = (f"    video {status}"
                + (f" {segments[0]}/{segments[1]} segments" if segments else
                   f" {pct:.0f}%" if pct is not None and status == "processing" else "")
                + f" | snapshots {len(analyses)} | analysed {counts.get('done', 0)}"
                + (f" | errors {counts['error']}" if counts.get("error") else "")
                + f" | {time.monotonic() - t0:.0f} s")
        if line.rsplit("|", 1)[0] != last_line.rsplit("|", 1)[0]:
            say(line)
            last_line = line
        if video and video["status"] == "error":
            raise JobFailed(f"the video failed: {video['error']}")
        if video and video["status"] == "done" and all(a["status"] in ("done", "error") for a in analyses):
            return
        if time.monotonic() - t0 > timeout_s:
            raise JobFailed(f"timed out after {timeout_s:.0f} s; worker logs: {yolo_log}, {main_log}")
        time.sleep(1.0)


def _download_snapshots(s3: S3Store, analyses: list[dict], dest: Path) -> None:
    from ..worker_utils.keys import parse_snapshot_uri

    dest.mkdir(parents=True, exist_ok=True)
    for a in analyses:
        ref = parse_snapshot_uri(a["snapshot_s3_key"], s3.bucket, s3.settings.user_prefix)
        data, _ = s3.get_bytes(ref.key, s3.settings.snapshot_max_bytes)
        (dest / ref.key.rsplit("/", 1)[1]).write_bytes(data)
