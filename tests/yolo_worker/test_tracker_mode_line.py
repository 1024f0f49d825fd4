"""The yolo_worker says once, at start-up, how its tracker runs: appearance (re-ID) or motion
only.  Re-ID weights it cannot use here (the spec's deepsort.engine on a host without a GPU, a
missing file) are a WARNING, since identities across occlusions are weaker without them."""
from __future__ import annotations

import logging

import pytest

from conftest import REPO


@pytest.mark.parametrize("tracker,reid_path,level,msg", [
    ("botsort", "yolo_worker/bundle/deepsort.engine", logging.WARNING, "tracker re-ID unavailable here: motion-only"),
    ("botsort", str(REPO / "yolo_worker" / "bundle" / "demo" / "reid.onnx"), logging.INFO, "tracker ready"),
    ("bytetrack", "yolo_worker/bundle/deepsort.engine", logging.INFO, "tracker ready"),
])
def test_the_tracker_mode_is_logged_once_at_start_up(yw_settings, demo_detector, caplog, tracker, reid_path, level,
                                                     msg):
    from video_analysis.yolo_worker.worker import YoloWorker

    s = yw_settings.replace(tracker=tracker, tracker_reid_path=reid_path)
    with caplog.at_level(logging.INFO, logger="video_analysis.yolo_worker.worker"):
        YoloWorker(s, detector=demo_detector)
    lines = [r for r in caplog.records if r.getMessage().startswith("tracker")]
    assert [(r.levelno, r.getMessage()) for r in lines] == [(level, msg)]
    if level == logging.WARNING:
        assert "deepsort.engine" in lines[0].why and "motion-only" in lines[0].why
