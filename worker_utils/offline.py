"""Import ultralytics with every run-time download and auto-install path shut.

ultralytics, left to itself, fetches fonts, weights and pip packages on demand.  Workers
must never depend on that (production hosts may have no egress; this project's machines have
none).  :func:`ultralytics_offline` sets ultralytics' own switches before its first import
(YOLO_OFFLINE, YOLO_AUTOINSTALL=False, no analytics) and replaces its download helpers with
ones that raise :class:`DownloadRefused` naming the file, so a missing local file is a clear
error instead of a hang or a silent fetch.  Attempts are recorded for tests.

OpenVINO likewise: :func:`import_openvino` is the one way the workers import it, with its
Google Analytics telemetry declined before ``import openvino`` could send anything.
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


# --- OpenVINO ----------------------------------------------------------------------------------
_TELEMETRY_DECLINED = False


def import_openvino():
    """``import openvino`` with its telemetry declined; returns the module.

    ``import openvino`` itself starts openvino-telemetry (Google Analytics): with no consent file
    under ``~/intel`` it counts as consent, writes a client id there and sends an "import" event
    from a forked child process (so a socket guard in the parent never sees it).  The package's
    switches are a consent file (``opt_in_out --opt_out``, per user and host) or a CI environment.
    Here its one instance (a singleton that openvino and NNCF share) is created first, declined
    (``CI=true`` for that one call only, so nothing is written), and kept declined: openvino's tools
    re-initialise it under their own name (``convert_model``), which would ask again."""
    global _TELEMETRY_DECLINED
    if not _TELEMETRY_DECLINED:
        try:
            import openvino_telemetry
        except ImportError:  # openvino without telemetry: nothing to decline
            openvino_telemetry = None
        if openvino_telemetry is not None:
            saved = os.environ.get("CI")
            os.environ["CI"] = "true"  # its disable_in_ci check: declined, no consent dialog, no files
            try:  # (already created by an earlier import elsewhere: that instance, declined from now on)
                t = openvino_telemetry.Telemetry(app_name="OpenVINO", app_version="declined", tid="declined",
                                                 backend="ga4", enable_opt_in_dialog=False, disable_in_ci=True)
            finally:
                if saved is None:
                    del os.environ["CI"]
                else:
                    os.environ["CI"] = saved
            t.consent = False
            t.init = lambda *_a, **_k: None  # a re-initialisation would find no consent file and send
        _TELEMETRY_DECLINED = True
    import openvino

    return openvino
