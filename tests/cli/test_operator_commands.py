"""The CLI in scripts: status exit codes (with and without --json), closed pipes, the warning
for ignored CVITX_* overrides, and send-video's order (row, upload, send) with failures that
say what was left behind.  Real processes against the local stack."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import WID, new_uuid, worker_env
from video_analysis.cli import (EXIT_DONE, EXIT_ERROR, EXIT_NO_VIDEO, EXIT_RUNNING, EXIT_STATUS_FAILED,
                                status_exit_code)
from video_analysis.worker_utils.db import Database
from video_analysis.worker_utils.errors import WorkerError
from video_analysis.worker_utils.keys import build_raw_key
from video_analysis.worker_utils.repository import get_video, upsert_video_queued
from video_analysis.worker_utils.s3_store import S3Store
from video_analysis.worker_utils.sqs_queue import SqsQueues
from video_analysis.worker_utils.submit import submit_video

CLI = [sys.executable, "-m", "video_analysis"]


@pytest.mark.parametrize("video,analyses,code", [
    ("done", [], EXIT_DONE),
    ("done", ["done", "done"], EXIT_DONE),
    ("done", ["done", "error"], EXIT_ERROR),
    ("done", ["done", "queued"], EXIT_RUNNING),
    ("done", ["error", "processing"], EXIT_RUNNING),
    ("error", ["queued"], EXIT_ERROR),
    ("error", [], EXIT_ERROR),
    ("processing", ["done"], EXIT_RUNNING),
    ("queued", [], EXIT_RUNNING),
    ("uploaded", [], EXIT_RUNNING),
])
def test_status_exit_code(video, analyses, code):
    assert status_exit_code(video, analyses) == code


def test_exit_codes_are_distinct():
    assert len({EXIT_DONE, EXIT_ERROR, EXIT_RUNNING, EXIT_NO_VIDEO, EXIT_STATUS_FAILED, 2}) == 6


def register(settings, status: str) -> str:
    vid = new_uuid()
    db = Database(settings)
    upsert_video_queued(db, video_id=vid, workspace_id=WID, workspace_code="CTX1005", camera_code="CAM1",
                        s3_key_raw=build_raw_key(WID, vid, "clip.mp4"), frame_stride=3, recorded_at=None)
    db.execute("UPDATE videos SET status = %s WHERE id = %s", (status, vid))
    return vid


def test_status_exit_codes_in_scripts(stack, settings):
    env = worker_env(stack, settings)
    for status, code in (("done", EXIT_DONE), ("error", EXIT_ERROR), ("processing", EXIT_RUNNING),
                         ("queued", EXIT_RUNNING)):
        vid = register(settings, status)
        for extra in ((), ("--json",)):
            r = subprocess.run([*CLI, "status", vid, *extra], capture_output=True, text=True, env=env, timeout=60)
            assert r.returncode == code, (status, extra, r.stdout, r.stderr)
            if extra:
                assert json.loads(r.stdout)["video"]["status"] == status
    missing = new_uuid()
    r = subprocess.run([*CLI, "status", missing, "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == EXIT_NO_VIDEO and json.loads(r.stdout) == {"video": None, "analyses": []}
    assert f"no video {missing}" in r.stderr
    dead_db = {**env, "CVITX_DB_URL": settings.db_url.rsplit("/", 1)[0] + "/no_such_database"}
    r = subprocess.run([*CLI, "status", missing], capture_output=True, text=True, env=dead_db, timeout=60)
    assert r.returncode == EXIT_STATUS_FAILED and "status failed:" in r.stderr


@pytest.mark.parametrize("args", [["status", "{vid}"], ["status", "{vid}", "--json"], ["--help"],
                                  ["redrive", "video", "--dry-run"]])
def test_a_closed_pipe_ends_quietly(stack, provisioned, tmp_path, args):
    vid = register(provisioned, "done")
    env = worker_env(stack, provisioned)
    cmd = " ".join([*CLI, *(a.format(vid=vid) for a in args)])
    # `true` exits without reading: every write of the command meets a closed pipe
    r = subprocess.run(["bash", "-c", f"{cmd} 2>err.txt | true; echo ${{PIPESTATUS[0]}}"], capture_output=True,
                       text=True, env=env, timeout=60, cwd=tmp_path)
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert r.stdout.strip() in ("0", "141"), r.stdout


def test_ignored_overrides_are_named_on_stderr():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CVITX_")}
    env.update(CVITX_DB_URL="postgresql://x@127.0.0.1:9/none", CVITX_BUCKET="other-bucket")
    r = subprocess.run([*CLI, "status", new_uuid()], capture_output=True, text=True, env=env, timeout=60)
    warning = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and "CVITX_BUCKET, CVITX_DB_URL" in warning[0] and "CVITX_ENV_OVERRIDES=1" in warning[0]
    on = subprocess.run([*CLI, "status", new_uuid()], capture_output=True, text=True, timeout=60,
                        env={**env, "CVITX_ENV_OVERRIDES": "1", "CVITX_DB_URL": "postgresql://x@127.0.0.1:9/none"})
    assert "warning:" not in on.stderr


# --- send-video: row, upload, send ----------------------------------------------------------------
@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00" * 4096)
    return path


def submit(settings, clip, **kw):
    return submit_video(settings, clip, workspace_id=WID, workspace_code="CTX1005", camera_code="CAM1", **kw)


def objects(settings, vid) -> list[str]:
    return S3Store(settings).list_keys(f"{settings.user_prefix}/{WID}/{vid}/")


def test_send_video_writes_the_row_then_uploads_then_sends(provisioned, clip):
    vid = submit(provisioned, clip)
    assert get_video(Database(provisioned), vid)["status"] == "queued"
    assert objects(provisioned, vid) == [build_raw_key(WID, vid, "clip.mp4")]
    [m] = SqsQueues(provisioned).receive(provisioned.video_queue, 10, wait_s=1)
    assert json.loads(m.body)["video_id"] == vid


def test_a_refused_row_leaves_nothing_behind(provisioned, clip):
    dead = provisioned.replace(db_url=provisioned.db_url.rsplit("/", 1)[0] + "/no_such_database")
    vid = new_uuid()
    with pytest.raises(WorkerError) as err:
        submit(dead, clip, video_id=vid)
    assert "Nothing was uploaded or sent" in err.value.reason and "will retry" not in err.value.reason
    assert objects(provisioned, vid) == []
    assert SqsQueues(provisioned).receive(provisioned.video_queue, 10, wait_s=0) == []


def test_a_failed_upload_says_the_row_is_there_and_how_to_finish(provisioned, clip):
    no_bucket = provisioned.replace(bucket=provisioned.bucket + "-missing")
    vid = new_uuid()
    with pytest.raises(WorkerError) as err:
        submit(no_bucket, clip, video_id=vid)
    reason = err.value.reason
    assert "registered as queued; nothing was sent" in reason
    assert f"--video-id {vid}" in reason and f"the videos row with id {vid} (delete it with psql)" in reason
    assert get_video(Database(provisioned), vid)["status"] == "queued"
    # finishing as it says works
    assert submit(provisioned, clip, video_id=vid) == vid
    assert objects(provisioned, vid) == [build_raw_key(WID, vid, "clip.mp4")]


def test_a_failed_send_names_the_row_the_object_and_reconcile(stack, provisioned, clip):
    no_queue = provisioned.replace(video_queue=provisioned.video_queue + "-missing")
    vid = new_uuid()
    env = worker_env(stack, no_queue)
    r = subprocess.run([*CLI, "send-video", str(clip), "--workspace-id", WID, "--workspace-code", "CTX1005",
                        "--camera-code", "CAM1", "--video-id", vid], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("send-video failed: sending PROCESS_VIDEO"), r.stderr
    assert "no message was sent" in r.stderr and f"reconcile --video {vid} --apply" in r.stderr
    assert f"s3://{provisioned.bucket}/{build_raw_key(WID, vid, 'clip.mp4')}" in r.stderr
    assert get_video(Database(provisioned), vid)["status"] == "queued"
    assert objects(provisioned, vid) == [build_raw_key(WID, vid, "clip.mp4")]
