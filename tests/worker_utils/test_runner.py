"""The runner's own pieces that the process tests do not single out: the warning for CVITX_*
variables that are ignored because the override switch is off (a systemd EnvironmentFile
without it would otherwise run on the defaults: the default database, real AWS)."""
from __future__ import annotations

import logging
import os

import pytest

from video_analysis.worker_utils.runner import _warn_ignored_overrides


@pytest.mark.parametrize("environ,warned", [
    ({"CVITX_DB_URL": "postgresql://x@db/cvitx", "CVITX_MAIN_MODE": "compare"}, ["CVITX_DB_URL", "CVITX_MAIN_MODE"]),
    ({"CVITX_DB_URL": "postgresql://x@db/cvitx", "CVITX_ENV_OVERRIDES": "1"}, None),  # the switch is on: used
    ({"PATH": "/usr/bin"}, None),
])
def test_a_worker_warns_once_about_ignored_overrides(monkeypatch, caplog, environ, warned):
    for k in [k for k in os.environ if k.startswith("CVITX_")]:
        monkeypatch.delenv(k)
    for k, v in environ.items():
        monkeypatch.setenv(k, v)
    with caplog.at_level(logging.WARNING, logger="video_analysis.worker_utils.runner"):
        _warn_ignored_overrides()
    lines = [r for r in caplog.records if r.getMessage().startswith("environment overrides ignored")]
    if warned is None:
        assert lines == []
    else:
        assert len(lines) == 1 and lines[0].ignored == warned
        assert "CVITX_ENV_OVERRIDES=1" in lines[0].fix
