"""Fixtures for the yolo_worker integration tests (helpers: ``yolo_harness.py`` beside this file)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from video_analysis.worker_config import Settings


def _load_harness():
    """``yolo_harness.py`` as the module ``yolo_harness``, so test files can import it (the
    directory is no package, and the name ``yolo_worker`` is the product's own)."""
    if "yolo_harness" not in sys.modules:
        spec = importlib.util.spec_from_file_location("yolo_harness", Path(__file__).with_name("yolo_harness.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["yolo_harness"] = module
        spec.loader.exec_module(module)
    return sys.modules["yolo_harness"]


_h = _load_harness()
YOLO_TEST_SETTINGS, Client = _h.YOLO_TEST_SETTINGS, _h.Client


@pytest.fixture
def yw_settings(provisioned) -> Settings:
    """Provisioned settings for the yolo_worker: the project's detector on CPU, 1 s long polls,
    no transient back-off (a retried message comes back at once)."""
    return provisioned.replace(**YOLO_TEST_SETTINGS)


@pytest.fixture
def client(yw_settings) -> Client:
    return Client(yw_settings)
