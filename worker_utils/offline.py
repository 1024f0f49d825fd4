"""Import ultralytics with every run-time download and auto-install path shut.

ultralytics, left to itself, fetches fonts, weights and pip packages on demand.  Workers
must never depend on that (production hosts may have no egress; this project's machines have
none).  :func:`ultralytics_offline` sets ultralytics' own switches before its first import
(YOLO_OFFLINE, YOLO_AUTOINSTALL=False, no analytics) and replaces its download helpers with
ones that raise :class:`DownloadRefused` naming the file, so a missing local file is a clear
error instead of a hang or a silent fetch.  Attempts are recorded for tests.
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import Any

ATTEMPTS: list[str] = []


class DownloadRefused(RuntimeError):
    pass


def _refuse(what: Any, *_a: Any, **_k: Any) -> Any:
    name = str(getattr(what, "name", what) or _k.get("url") or _k.get("file"))
    ATTEMPTS.append(name)
    raise DownloadRefused(f"ultralytics tried to download {name!r}; CVITX never downloads at run time: "
                          "put the file on disk and point the config at it")


def ultralytics_offline() -> ModuleType:
    """``import ultralytics`` with downloads and auto-installs disabled; returns the module."""
    # Written (never read) here, before ultralytics' first import reads them.
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    import ultralytics
    from ultralytics.utils import SETTINGS, checks, downloads

    if getattr(downloads, "_cvitx_guarded", False):
        return ultralytics
    SETTINGS.update({"sync": False})  # no analytics / crash reports

    def _local_or_refuse(file: Any, *a: Any, **k: Any) -> str:
        path = str(file).strip()
        if os.path.exists(path):
            return path
        return _refuse(path)

    downloads.safe_download = _refuse
    downloads.attempt_download_asset = _local_or_refuse
    downloads.is_url = lambda url, check=False: False if check else str(url).startswith(("http://", "https://"))
    checks.check_font = lambda font="Arial.ttf": _refuse(font)
    for mod_name in ("ultralytics.nn.tasks", "ultralytics.engine.model", "ultralytics.nn.autobackend",
                     "ultralytics.trackers.utils.reid"):
        try:
            mod = __import__(mod_name, fromlist=["_"])
        except ImportError:  # pragma: no cover - layout differs between versions
            continue
        if hasattr(mod, "attempt_download_asset"):
            mod.attempt_download_asset = _local_or_refuse
    downloads._cvitx_guarded = True
    return ultralytics


def ultralytics_offline_without_plot_fonts() -> ModuleType:
    """:func:`ultralytics_offline` for training and validation with ``plots=False``.

    ultralytics' dataset check still asks for a plotting font (``check_det_dataset`` ->
    ``check_font``), which with plots off nothing draws with; there that check does nothing
    instead of being refused.  The workers never train or validate, so they never need this."""
    module = ultralytics_offline()
    import ultralytics.data.utils as data_utils

    data_utils.check_font = lambda *_a, **_k: None
    return module
