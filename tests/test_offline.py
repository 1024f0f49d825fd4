"""Nothing at run time downloads anything: the tests run loopback-only (tests/netguard), and the
real model paths (detector, tracker, main model) make no network attempt at all."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import DETECTOR, netguard


def test_the_guard_is_active_in_child_processes():
    code = ("import socket\n"
            "try:\n    socket.create_connection(('1.1.1.1', 443), timeout=2)\nexcept OSError as e:\n    print('BLOCKED', e)\n"
            "try:\n    socket.getaddrinfo('pypi.org', 443)\nexcept OSError as e:\n    print('BLOCKED', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.count("BLOCKED") == 2 and "loopback only" in out


def test_loading_and_running_the_models_makes_no_network_attempt(demo_detector, main_bundle):
    from video_analysis.worker_config import Settings
    from video_analysis.worker_utils.offline import ATTEMPTS
    from video_analysis.yolo_worker.tracking import Tracker

    before = list(netguard.BLOCKED)
    frame = np.full((360, 640, 3), 114, np.uint8)
    dets = demo_detector.detect(frame)
    tracker = Tracker(Settings(device="cpu", detector_path=str(DETECTOR)), frame.shape[:2])
    tracker.update(dets, frame)
    main_bundle.predict(np.zeros((2, 640, 640, 3), np.uint8))
    assert ATTEMPTS == [] and netguard.BLOCKED == before


def test_a_missing_weight_file_is_refused_not_fetched(tmp_path):
    from video_analysis.worker_config import Settings
    from video_analysis.worker_utils.errors import PermanentError
    from video_analysis.yolo_worker.detector import Detector

    with pytest.raises(PermanentError, match="do not exist"):
        Detector(Settings(device="cpu", detector_path=str(tmp_path / "yolov8m.pt")))
    from ultralytics import YOLO

    from video_analysis.worker_utils.offline import DownloadRefused

    with pytest.raises(Exception) as e:  # ultralytics wraps it differently across versions
        YOLO("yolo11n.pt")
    assert isinstance(e.value, DownloadRefused) or "never downloads" in str(e.value)
