"""The short soak of ``make test`` (``make soak`` runs the long one): 12 short videos through 2
yolo_workers and 2 main_workers, real processes restarted as systemd would, while a chaos
thread SIGKILLs a random worker every 3-5 s and the database is stopped once for 15 s (the 12
videos take about 10 s undisturbed on 2 cores, so kills every 8-12 s could miss them all).
Every video done once, every analysis done with its result row once, no duplicate snapshot,
nothing in a DLQ, nothing left queued or processing, no ERROR line (bench/soak.py checks them all)."""
from __future__ import annotations

import json

from video_analysis.bench.soak import SOAK_SETTINGS, Soak, SoakConfig, make_clips
from video_analysis.worker_utils.provision import run_setup

from .conftest import FAULT_SETTINGS


def test_short_soak_with_kills_and_a_database_outage(stack, settings, tmp_path):
    cfg = SoakConfig(videos=12, kill_every_s=(3.0, 5.0), db_down_s=15.0, db_down_after_kills=1, clip_s=6.0,
                     timeout_s=480.0)
    s = settings.replace(**{**SOAK_SETTINGS, "detector_path": FAULT_SETTINGS["detector_path"],
                            "main_model_path": FAULT_SETTINGS["main_model_path"], "startup_wait_s": 90.0})
    run_setup(s)
    report = Soak(cfg, s, stack, tmp_path / "soak").run(make_clips(cfg))
    print(json.dumps(report, indent=1))  # the figures, in the test log
    assert report["problems"] == [], report
    assert report["kills"] >= 3, report
    assert report["db_outage"] and report["db_outage"]["down_s"] == 15.0
    assert report["outage_noticed"] >= 1, report  # a worker paused for it, or waited for it at start-up
    assert report["restarts"] >= report["kills"] - 1  # (the last kill's restart may fall after the end)
    assert report["redeliveries"] >= 1  # a killed worker's message came back and was finished
