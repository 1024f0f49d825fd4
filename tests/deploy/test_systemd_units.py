"""The systemd units verify cleanly and score an exposure of 2.0 or lower (skips without systemd-analyze)."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "systemd").glob("*.service"))
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def test_units_present():
    assert {u.name for u in UNITS} >= {"cvitx-yolo-video.service", "cvitx-main-model.service",
                                       "cvitx-yolo-video-gpu.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_exposure_at_most_2(unit):
    r = subprocess.run([ANALYZE, "security", "--offline=true", str(unit)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_verify_is_clean_with_a_stand_in_interpreter(unit, tmp_path):
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "EnvironmentFile=-" in text
    assert "Restart=on-failure" in text and "TimeoutStopSec=" in text
    text = text.replace("/home/ubuntu/cvitx/api/.venv/bin/python", sys.executable)
    text = text.replace("WorkingDirectory=/home/ubuntu/cvitx", f"WorkingDirectory={tmp_path}")
    copy = tmp_path / unit.name
    copy.write_text(text)
    r = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_gpu_unit_reaches_nvidia_devices():
    gpu = next(u for u in UNITS if u.name == "cvitx-yolo-video-gpu.service").read_text()
    assert "PrivateDevices=no" in gpu and "DeviceAllow=/dev/nvidiactl rw" in gpu
