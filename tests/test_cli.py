"""The CLI as a user runs it: real processes, the local stack, --help for every command."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import worker_env

COMMANDS = ["stack", "setup", "send-video", "status", "redrive", "reconcile", "demo", "analyze", "check-model"]


def run_cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "video_analysis", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_top_level_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    for c in COMMANDS:
        assert c in r.stdout
    assert "stack up" in r.stdout  # the quick-start epilog
    # the "By hand" list starts the two workers, as systemd does
    assert "python -m video_analysis.yolo_worker.run_poller" in r.stdout
    assert "python -m video_analysis.main_worker.run_poller" in r.stdout


@pytest.mark.parametrize("command", ["--help", *(f"{c} --help" for c in COMMANDS)])
def test_help_is_plain_and_says_each_default_once(command):
    r = run_cli(*command.split())
    assert r.returncode == 0
    text = r.stdout
    assert "``" not in text and ":func:" not in text and ":class:" not in text  # no reST markup
    assert "(default: None)" not in text and "(default: False)" not in text
    # one option's help, joined across its wrapped lines, names its default at most once
    options, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("-") or not line.strip():
            options.append(current)
            current = line
        else:
            current += " " + line.strip()
    options.append(current)
    assert [o for o in options if o.count("(default") > 1] == []


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    r = run_cli(command, "--help")
    assert r.returncode == 0 and "usage:" in r.stdout and len(r.stdout) > 200


def test_bad_config_fails_with_the_key_named():
    env = {**os.environ, "CVITX_ENV_OVERRIDES": "1", "CVITX_MAIN_MODE": "triple"}
    r = run_cli("status", "x", env=env)
    assert r.returncode == 2 and "CVITX_MAIN_MODE" in r.stderr and "'single', 'compare'" in r.stderr


def test_stack_up_setup_send_status_down(tmp_path):
    root = Path(tempfile.mkdtemp(prefix="cvitx-cli-stack-"))
    root.chmod(0o755)
    try:
        r = run_cli("stack", "up", "--root", str(root))
        assert r.returncode == 0, r.stderr
        env_lines = (root / "env").read_text().splitlines()
        env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
        for line in env_lines:
            if line.startswith("export "):
                k, _, v = line.removeprefix("export ").partition("=")
                env[k] = v.strip("'")
        assert run_cli("setup", env=env).returncode == 0
        again = run_cli("setup", env=env)
        assert "nothing to change" in again.stdout
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(b"\x00" * 2048)
        wid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
        r = run_cli("send-video", str(clip), "--workspace-id", wid, "--workspace-code", "CTX1005",
                    "--camera-code", "CAM1", env=env)
        assert r.returncode == 0, r.stderr
        vid = r.stdout.strip()
        st = run_cli("status", vid, "--json", env=env)
        data = json.loads(st.stdout)
        assert data["video"]["status"] == "queued"
        assert data["video"]["s3_key_raw"] == f"demo_user/{wid}/{vid}/raw/clip.mp4"
        bad = run_cli("send-video", str(clip), "--workspace-id", "nope", "--workspace-code", "CTX1005",
                      "--camera-code", "CAM1", env=env)
        assert bad.returncode == 1 and "must be a lower-case UUID" in bad.stderr
    finally:
        r = run_cli("stack", "down", "--root", str(root))
        shutil.rmtree(root, ignore_errors=True)
        assert r.returncode == 0 and "stopped" in r.stdout
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(root) not in ps  # nothing left running
