"""Shared fixtures: one real local stack per test session (moto_server + PostgreSQL),
fresh queue names, bucket and database per test, so tests never see each other's data."""
from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import tempfile

from pathlib import Path

import pytest

from video_analysis.worker_config import Settings, build_settings, get_settings
from video_analysis.worker_utils.db import Database, apply_migrations
from video_analysis.worker_utils.local_stack import LOCAL_AWS_ENV, stack_down, stack_up

REPO = Path(__file__).resolve().parents[1]

# Loopback only, in this process and in every Python process the tests start (see netguard/).
NETGUARD = Path(__file__).resolve().parent / "netguard"
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(NETGUARD), os.environ.get("PYTHONPATH")) if p)
_spec = importlib.util.spec_from_file_location("cvitx_netguard", NETGUARD / "sitecustomize.py")
netguard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(netguard)
_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def fresh_process_settings():
    """get_settings() is built once per process (a worker reads its environment at start); a test
    that sets CVITX_* variables must not get the settings an earlier test in this process built."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def stack():
    """The same local stack `python -m video_analysis stack up` starts, under a temp dir.

    Not under pytest's tmp dir: that one is private (0700), and as root the server runs as
    the 'postgres' user, which must be able to reach its data directory.
    """
    root = Path(tempfile.mkdtemp(prefix="cvitx-test-stack-"))
    root.chmod(0o755)
    for k, v in LOCAL_AWS_ENV.items():
        os.environ.setdefault(k, v)
    try:
        state = stack_up(root)
        template = state.pg.create_database("cvitx_template")
        apply_migrations(Database(template))
        yield state
    finally:
        stack_down(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def unique() -> str:
    return f"t{os.getpid()}x{next(_counter)}"


@pytest.fixture
def db_url(stack, unique) -> str:
    """A fresh database with the migrations applied (cloned from a migrated template)."""
    import psycopg2

    conn = psycopg2.connect(stack.pg.url_for("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{unique}" TEMPLATE cvitx_template')
    conn.close()
    return stack.pg.url_for(unique)


@pytest.fixture
def settings(stack, unique, db_url) -> Settings:
    """Settings pointing at the stack with this test's own bucket, queues and database."""
    return build_settings({}, s3_endpoint_url=stack.moto.endpoint, sqs_endpoint_url=stack.moto.endpoint,
                          db_url=db_url, bucket=f"b-{unique.lower()}", video_queue=f"{unique}-video",
                          video_dlq=f"{unique}-video-dlq", snapshot_queue=f"{unique}-snap",
                          snapshot_dlq=f"{unique}-snap-dlq")


@pytest.fixture
def provisioned(settings) -> Settings:
    """``settings`` after `setup` created its bucket and queues (the DB is already migrated)."""
    from video_analysis.worker_utils.provision import run_setup

    run_setup(settings)
    return settings


# --- the project's own models and generated clips ------------------------------------------
DETECTOR = REPO / "yolo_worker" / "bundle" / "demo" / "detector.pt"
MAIN_BUNDLE = REPO / "main_worker" / "bundle" / "demo" / "main.pt"
CMT_BUNDLE = REPO / "main_worker" / "bundle" / "demo" / "cmt.pt"


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory):
    """``make(**SceneConfig fields) -> ClipInfo``: a generated MP4 + ground truth, rendered once
    per distinct configuration in the test session."""
    from video_analysis.synth.clip import write_clip
    from video_analysis.synth.scene import SceneConfig

    cache: dict = {}

    def make(**kw):
        key = tuple(sorted(kw.items()))
        if key not in cache:
            cache[key] = write_clip(SceneConfig(**kw), tmp_path_factory.mktemp("clip"), "clip")
        return cache[key]

    return make


@pytest.fixture(scope="session")
def demo_detector():
    """The committed demo detector, loaded once (ultralytics, CPU)."""
    from video_analysis.worker_config import Settings
    from video_analysis.yolo_worker.detector import Detector

    return Detector(Settings(device="cpu", detector_path=str(DETECTOR)))


@pytest.fixture(scope="session")
def main_bundle():
    from video_analysis.main_worker.model import load_bundle

    return load_bundle(MAIN_BUNDLE)
