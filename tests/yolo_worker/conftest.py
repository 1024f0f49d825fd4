"""Fixtures for the yolo_worker integration tests (helpers: ``yolo_harness.py`` beside this file)."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import load_test_module
from video_analysis.worker_config import Settings

_h = load_test_module("yolo_harness", Path(__file__).with_name("yolo_harness.py"))
YOLO_TEST_SETTINGS, Client = _h.YOLO_TEST_SETTINGS, _h.Client


@pytest.fixture
def yw_settings(provisioned) -> Settings:
    """Provisioned settings for the yolo_worker: the project's detector on CPU, 1 s long polls,
    no transient back-off (a retried message comes back at once)."""
    return provisioned.replace(**YOLO_TEST_SETTINGS)


@pytest.fixture
def client(yw_settings) -> Client:
    return Client(yw_settings)
