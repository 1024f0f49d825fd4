"""Fixtures for the main_worker integration tests: snapshots with ground truth cut from
generated clips, a publisher that does what the yolo_worker does (S3 put, queued analysis
row, SNAPSHOT_READY), and an in-process run of the real poller loop.

Everything runs against the real local stack (moto_server + PostgreSQL); nothing is mocked.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import Any, Callable

import numpy as np
import pytest

from conftest import CMT_BUNDLE, MAIN_BUNDLE
# Shared with tests/faults/: moved to helpers.py, re-exported here for the tests beside this file.
from helpers import GtSnap, Publisher, snapshots_from_clip  # noqa: F401 - Publisher: re-exported
from video_analysis.worker_config import Settings

# Two scenes from the evaluation seed range (never trained on), at a low frame rate and busy
# traffic so that rendering ~100 distinct vehicles stays cheap.
GT_SCENES = ((500011, 60.0), (500023, 60.0))


@pytest.fixture(scope="session")
def gt_snaps(clip_factory, tmp_path_factory, worker_id) -> list[GtSnap]:
    """~100 snapshots of distinct vehicles with ground truth, made once per test run: the
    parallel test processes (pytest-xdist) share one copy through a file under their common
    temp root, behind a lock (rendering them costs ~50 s of CPU)."""
    import fcntl
    import pickle

    from video_analysis.synth.datasets import random_config

    def make() -> list[GtSnap]:
        rng = np.random.default_rng(12345)
        out: list[GtSnap] = []
        for k, (seed, dur) in enumerate(GT_SCENES):
            cfg = random_config(seed, duration_s=dur, fps=10.0, vehicles_per_min=20.0)
            out += snapshots_from_clip(clip_factory(**asdict(cfg)), rng, track_base=1000 * k)
        return out

    base = tmp_path_factory.getbasetemp()  # this run's; under xdist each worker's, below the run's
    shared = (base if worker_id == "master" else base.parent) / "gt_snaps.pickle"
    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shared.exists():
            return pickle.loads(shared.read_bytes())
        snaps = make()
        shared.write_bytes(pickle.dumps(snaps))
        return snaps


@pytest.fixture(scope="session")
def variants() -> dict[str, Any]:
    """Both demo bundles, loaded once per session."""
    from video_analysis.main_worker.model import load_bundle

    return {"baseline": load_bundle(MAIN_BUNDLE), "cmt": load_bundle(CMT_BUNDLE)}


@pytest.fixture
def mw_settings(provisioned) -> Settings:
    """Provisioned settings for the main_worker: the demo bundles, short long-polls, no OCR."""
    return provisioned.replace(main_model_path=str(MAIN_BUNDLE), cmt_model_path=str(CMT_BUNDLE),
                               receive_wait_s=1, plate_enabled=False)


@pytest.fixture
def publisher(mw_settings) -> Publisher:
    return Publisher(mw_settings)


class SpyModel:
    """A real bundle that also records the batch size of every forward pass."""

    def __init__(self, bundle: Any):
        self.bundle = bundle
        self.model_name, self.version = bundle.model_name, bundle.version
        self.labels, self.hierarchy = bundle.labels, bundle.hierarchy
        self.batches: list[int] = []

    def predict(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.batches.append(len(batch))
        return self.bundle.predict(batch)


def make_worker(settings: Settings, variants: dict[str, Any], plate_reader: Any = None):
    from video_analysis.main_worker.worker import MainWorker

    names = ["baseline", "cmt"] if settings.main_mode == "compare" else ["baseline"]
    return MainWorker(settings, variants={n: variants[n] for n in names}, plate_reader=plate_reader)


def serve_until(settings: Settings, worker: Any, done: Callable[[], bool], timeout_s: float = 60.0):
    """Run the real poller loop (worker_utils.poller.Poller) in a thread until ``done()`` holds,
    then stop it the way SIGTERM does (stop event) and wait for it. Returns the poller."""
    poller = worker.poller(name="main_worker-test")  # what run_poller serves, dead-letter hook included
    errors: list[BaseException] = []

    def run() -> None:
        try:
            poller.run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=run, name="poller", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not done():
            if errors or not t.is_alive():
                raise AssertionError(f"poller stopped early: {errors!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached within {timeout_s:.0f}s")
            time.sleep(0.2)
    finally:
        poller.stop()
        t.join(timeout=settings.receive_wait_s + 30)
    assert not t.is_alive(), "poller did not stop"
    assert not errors, errors
    return poller
