"""Shared fixtures: one real local stack per test session (moto_server + PostgreSQL),
fresh queue names, bucket and database per test, so tests never see each other's data."""
from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

import pytest

from video_analysis.worker_config import Settings, build_settings
from video_analysis.worker_utils.db import Database, apply_migrations
from video_analysis.worker_utils.local_stack import LOCAL_AWS_ENV, stack_down, stack_up

REPO = Path(__file__).resolve().parents[1]
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The same local stack `python -m video_analysis stack up` starts, under a temp dir."""
    root = tmp_path_factory.mktemp("stack")
    for k, v in LOCAL_AWS_ENV.items():
        os.environ.setdefault(k, v)
    state = stack_up(root)
    template = state.pg.create_database("cvitx_template")
    apply_migrations(Database(template))
    yield state
    stack_down(root)


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


def worker_env(stack, settings: Settings, **extra) -> dict[str, str]:
    """Environment for a subprocess worker: the stack plus these settings as CVITX_ overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CVITX_")}
    env.update(stack.environ())
    defaults = Settings()
    for field, value in {**settings.model_dump(), **extra}.items():
        if value != getattr(defaults, field) and value is not None:
            env["CVITX_" + field.upper()] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def new_uuid() -> str:
    return str(uuid.uuid4())
