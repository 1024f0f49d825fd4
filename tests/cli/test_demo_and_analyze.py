"""The main job: `demo` and `analyze` end to end on a private local stack, the HTML report in a
real headless Chromium, and clean failures that leave nothing running."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CMT_BUNDLE, DETECTOR, MAIN_BUNDLE, REPO

ARTIFACTS = REPO / "artifacts"


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CVITX_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _job_processes(out_dir: Path) -> set[int]:
    """PIDs of what a job started and what is still alive: a process whose command line or
    standard output/error names the job's temp dir (``cvitx-job-*``: moto_server's log, the
    postmaster's data dir) or the job's ``--out`` dir (the workers' logs).  Looked up in
    /proc, so processes of other tests running beside this one (make test runs two at a
    time) never count, and a leftover that holds a port is a leftover process."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            refs = [(proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")]
            for fd in ("1", "2"):
                try:
                    refs.append(os.readlink(proc / "fd" / fd))
                except OSError:
                    pass
        except OSError:
            continue  # gone meanwhile
        if any("cvitx-job-" in r or str(out_dir) in r for r in refs):
            pids.add(int(proc.name))
    return pids


def _gallery_count(index_html: Path) -> int:
    return len(re.findall(r"<figure class=item", index_html.read_text()))


def test_demo_command_exits_0_and_leaves_nothing_running(tmp_path):
    """The README's main command (what `make demo` runs), on a shorter clip."""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "video_analysis", "demo", "--out", str(tmp_path), "--duration", "12",
                        "--seed", "3", "--detector", str(DETECTOR), "--main-model", str(MAIN_BUNDLE)],
                       capture_output=True, text=True, env=_cli_env(), timeout=600)
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Scores against ground truth" in r.stdout
    for step in ("[0/7]", "[1/7]", "[7/7]"):
        assert step in r.stderr  # progress lines
    report = tmp_path / "report" / "index.html"
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert results["video"]["status"] == "done"
    assert results["analyses"] and all(a["status"] in ("done", "error") for a in results["analyses"])
    assert _gallery_count(report) == len(results["analyses"])
    scores = json.loads((tmp_path / "report" / "scores.json").read_text())
    assert scores["coverage"]["vehicles"] > 0
    # Nothing it started is still running, or so listening (give the OS a moment to reap).
    time.sleep(1.0)
    assert _job_processes(tmp_path) == set()
    print(f"demo (12 s clip) wall {wall:.1f} s")


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="Chromium is not installed (make deps installs it)")
def test_analyze_unseen_video_report_matches_db_in_a_real_browser(tmp_path, clip_factory):
    """A seed, resolution and frame rate never used before; the report's gallery equals the DB rows
    and the SNAPSHOT_READY count; every image loads in Chromium; a screenshot is kept."""
    from video_analysis.cli.analyze import write_job_report
    from video_analysis.cli.job import JobOptions, run_job
    from video_analysis.worker_utils.db import Database

    clip = clip_factory(width=768, height=432, fps=15.0, duration_s=12.0, seed=910001, lighting="dusk")
    seen: dict = {}

    def report(result):
        # While the stack is still up: the DB's own count and every snapshot message.
        db = Database(result.settings)
        seen["db_rows"] = db.fetchall("SELECT id, status FROM image_analyses WHERE video_id = %s", (result.video_id,))
        seen["db_results"] = db.fetchall(
            "SELECT r.variant FROM image_analysis_results r JOIN image_analyses a ON a.id = r.analysis_id "
            "WHERE a.video_id = %s", (result.video_id,))
        return write_job_report(result, "test")

    opts = JobOptions(video=clip.video, out=tmp_path, detector=str(DETECTOR), main_model=str(MAIN_BUNDLE),
                      cmt_model=str(CMT_BUNDLE), timeout_s=600)
    result = run_job(opts, report)
    yolo_log = result.yolo_log.read_text().splitlines()
    sent = [json.loads(line) for line in yolo_log if '"snapshot ready"' in line]
    index = result.report_dir / "index.html"
    assert len(seen["db_rows"]) == len(result.analyses) == len(sent) > 0
    assert _gallery_count(index) == len(seen["db_rows"])
    assert len(seen["db_results"]) == 2 * sum(1 for r in seen["db_rows"] if r["status"] == "done")  # compare mode
    assert "Baseline vs CMT" in index.read_text()

    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(index.as_uri(), wait_until="load")
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=20000)
        imgs = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
        items = page.evaluate("document.querySelectorAll('.gallery .item').length")
        page.screenshot(path=str(ARTIFACTS / "report-screenshot.png"), full_page=True)
        browser.close()
    assert imgs and all(w > 0 for _src, w in imgs), [s for s, w in imgs if w == 0]
    assert items == len(seen["db_rows"])


@pytest.mark.parametrize("kind", ["missing", "not_a_video", "truncated", "empty"])
def test_analyze_bad_input_fails_fast_with_one_line(tmp_path, clip_factory, kind):
    path = tmp_path / "in.mp4"
    if kind == "not_a_video":
        path.write_text("this is a text file, not a video\n" * 50)
    elif kind == "truncated":
        good = clip_factory(width=320, height=180, fps=10.0, duration_s=3.0, seed=5).video.read_bytes()
        path.write_bytes(good[: len(good) // 3])
    elif kind == "empty":
        path.write_bytes(b"")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "video_analysis", "analyze", str(path), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, env=_cli_env(), timeout=120)
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("analyze failed:"), r.stderr
    assert str(path.name) in lines[0]
    assert time.monotonic() - t0 < 60
    assert _job_processes(tmp_path) == set()  # nothing was started, or all of it is gone
