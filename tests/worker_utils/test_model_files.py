"""The exported models' cache folders (worker_utils.model_files): an export killed mid-way leaves
its private folder behind; the next export sweeps it, and never one that is still being written."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from video_analysis.worker_utils.model_files import (EXPORT_PREFIXES, STALE_EXPORT_S, export_workdir,
                                                      sweep_stale_exports)

HOUR = 3600.0


def leave(cache: Path, name: str, age_s: float, file_age_s: float | None = None) -> Path:
    """A folder ``name`` in ``cache`` last written ``age_s`` ago, holding one file written
    ``file_age_s`` ago (``age_s`` when None)."""
    folder = cache / name
    folder.mkdir(parents=True)
    f = folder / "model.bin"
    f.write_bytes(b"partial")
    now = time.time()
    os.utime(f, (now, now - (age_s if file_age_s is None else file_age_s)))
    os.utime(folder, (now, now - age_s))
    return folder


@pytest.mark.parametrize("name, age_s, file_age_s, swept", [
    (".export-abc123", 2 * HOUR, None, True),            # a killed ONNX or bundle export
    (".int8-abc123", 2 * HOUR, None, True),              # a killed INT8 export
    (".export-abc123", 60.0, None, False),               # an export running now
    (".export-abc123", 2 * HOUR, 30.0, False),           # old folder, but a file written 30 s ago: live
    (".cache-abc123", 2 * HOUR, None, False),            # not an export's folder
    ("export-abc123", 2 * HOUR, None, False),            # not hidden: not ours
])
def test_only_folders_of_killed_exports_are_swept(tmp_path, name, age_s, file_age_s, swept):
    folder = leave(tmp_path, name, age_s, file_age_s)
    kept = tmp_path / "yolo-abc-192x320.onnx"
    kept.write_bytes(b"onnx")
    os.utime(kept, (time.time(), time.time() - 10 * HOUR))  # an old finished export stays

    removed = sweep_stale_exports(tmp_path)

    assert removed == ([folder] if swept else [])
    assert folder.exists() is not swept
    assert kept.is_file()


def test_the_age_limit_is_a_setting_of_the_call(tmp_path):
    folder = leave(tmp_path, ".int8-x", 120.0)
    assert sweep_stale_exports(tmp_path, max_age_s=300.0) == []
    assert sweep_stale_exports(tmp_path, now=time.time() + 600.0, max_age_s=300.0) == [folder]


def test_a_new_export_folder_sweeps_what_a_killed_export_left_and_logs_it(tmp_path, caplog):
    stale = leave(tmp_path, ".export-killed", STALE_EXPORT_S + 60)
    live = leave(tmp_path, ".int8-running", 5.0)

    with caplog.at_level(logging.INFO, logger="video_analysis.worker_utils.model_files"):
        new = export_workdir(tmp_path, ".int8-")

    assert not stale.exists() and live.is_dir() and new.is_dir() and new.name.startswith(".int8-")
    assert [r.getMessage() for r in caplog.records] == ["removed 1 export folder(s) left by killed exports"]
    assert caplog.records[0].folders == [".export-killed"]


def test_an_export_folder_with_an_unknown_prefix_is_refused(tmp_path):
    with pytest.raises(ValueError, match="EXPORT_PREFIXES"):
        export_workdir(tmp_path, ".tmp-")
    assert not list(tmp_path.iterdir())


def test_a_file_written_deep_inside_keeps_the_folder(tmp_path):
    """An exporter that writes into a subfolder (ultralytics' OpenVINO export does) is live while
    any file below is fresh, whatever the folders' own times say."""
    folder = leave(tmp_path, ".export-deep", 2 * HOUR)
    sub = folder / "model_openvino_model"
    sub.mkdir()
    (sub / "model.bin").write_bytes(b"being written")
    old = time.time() - 2 * HOUR
    for p in (sub, folder):
        os.utime(p, (old, old))
    assert sweep_stale_exports(tmp_path) == [] and folder.is_dir()
    os.utime(sub / "model.bin", (old, old))
    assert sweep_stale_exports(tmp_path) == [folder] and not folder.exists()


def test_a_symlink_named_like_an_export_folder_is_left_alone(tmp_path):
    """A link named like an export's folder is not a folder an export made: neither it nor its
    target is touched, however old."""
    elsewhere = leave(tmp_path / "elsewhere", "models", 2 * HOUR)
    cache = tmp_path / "cache"
    cache.mkdir()
    link = cache / ".export-link"
    link.symlink_to(elsewhere, target_is_directory=True)
    old = time.time() - 2 * HOUR
    os.utime(link, (old, old), follow_symlinks=False)
    assert sweep_stale_exports(cache) == []
    assert link.is_symlink() and (elsewhere / "model.bin").read_bytes() == b"partial"


def test_every_prefix_in_use_is_one_the_sweep_knows():
    """Each exporter's folder prefix (the callers of export_workdir) is swept."""
    import re

    root = Path(__file__).resolve().parents[2]
    used = set()
    for src in root.glob("**/*.py"):
        if ".venv" in src.parts or "tests" in src.parts:
            continue
        used |= set(re.findall(r"export_workdir\([^)]*?\"(\.[a-z0-9]+-)\"", src.read_text()))
    assert used and used <= set(EXPORT_PREFIXES), used
