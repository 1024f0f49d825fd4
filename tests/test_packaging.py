"""pip wheel / pip install give a complete package: every subpackage, the schemas, the SQL
migrations, the demo bundles, the pinned runtime dependencies and a working ``cvitx`` script.

The wheel is built from a copy of the checkout (the build writes build/ and *.egg-info beside
the sources), installed with --no-deps into a scratch --target and used from another directory
with only that target on the path.  The Makefile's editable install is checked the same way."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pip(tmp_path_factory):
    """``pip(*args)``: this interpreter's pip, run with only pip and setuptools on its path
    (``python -S``).  Pip uninstalls an installed project of the same name before installing it,
    even into a --prefix; hidden like this it cannot see (and remove) the checkout's own
    editable install in the virtualenv the tests run in."""
    tools = tmp_path_factory.mktemp("tools")
    import pip as pip_pkg

    site_packages = Path(pip_pkg.__file__).resolve().parents[1]
    for name in ("pip", "setuptools", "pkg_resources", "_distutils_hack"):
        if (site_packages / name).exists():
            (tools / name).symlink_to(site_packages / name)
    env = {**os.environ, "PYTHONPATH": str(tools)}

    def run(*args: str) -> None:
        subprocess.run([sys.executable, "-S", "-m", "pip", "--disable-pip-version-check", "-q", *args], env=env,
                       check=True, timeout=120)

    return run


def subpackages() -> set[str]:
    """Every directory of the checkout with an __init__.py, as a dotted name (tests/ excluded)."""
    out = set()
    for init in REPO.rglob("__init__.py"):
        rel = init.parent.relative_to(REPO)
        if rel.parts and rel.parts[0] in ("tests", ".venv", "build", "out", "artifacts", ".git", ".stack"):
            continue
        out.add(".".join(("video_analysis", *rel.parts)))
    return out


def requirements() -> list[str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the checkout's files (tracked and untracked, not ignored), without tests/."""
    src = tmp_path_factory.mktemp("pkg") / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for f in files:
        if f.startswith("tests/") or not (REPO / f).is_file():
            continue
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, src / f)
    return src


@pytest.fixture(scope="module")
def wheel(pip, source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(source))
    [whl] = out.glob("*.whl")
    return whl


def test_the_wheel_holds_the_whole_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert packages == subpackages()  # a new subpackage must be listed in pyproject.toml
    for data in ("schemas/process_video.json", "schemas/process_video_db.json", "schemas/snapshot_ready.json",
                 "deploy/sql/0001_init.sql", "yolo_worker/bundle/demo/detector.pt",
                 "main_worker/bundle/demo/main.pt", "main_worker/bundle/demo/cmt.pt", "__main__.py"):
        assert f"video_analysis/{data}" in names, data
    sql = {n for n in names if n.startswith("video_analysis/deploy/sql/")}
    assert sql == {f"video_analysis/deploy/sql/{p.name}" for p in (REPO / "deploy" / "sql").glob("*.sql")}
    assert not [n for n in names if "/tests/" in n or n.startswith("tests/") or ".venv" in n or "/out/" in n]
    info = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = zipfile.ZipFile(wheel).read(info).decode()
    assert [ln.removeprefix("Requires-Dist: ") for ln in meta.splitlines() if ln.startswith("Requires-Dist:")] == \
        requirements()
    entry = zipfile.ZipFile(wheel).read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "cvitx = video_analysis.cli:main" in entry


CHECK = """
import json, sys
from pathlib import Path
import video_analysis, video_analysis.yolo_worker.worker, video_analysis.main_worker.worker
from video_analysis.worker_config import Settings
from video_analysis.worker_utils.validation import SCHEMA_DIR, validate_video_task
from video_analysis.worker_utils.db import MIGRATIONS_DIR
wid, vid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "50651c85-90ab-471b-8707-adc0ef16f91f"
msg = validate_video_task({"event": "PROCESS_VIDEO", "video_id": vid, "workspace_id": wid,
    "workspace_code": "CTX1005", "camera_code": "CAM1", "s3_key_raw": f"demo_user/{wid}/{vid}/raw/a.mp4",
    "frame_stride": 3, "recordedAt": None}, Settings())
print(json.dumps({"package": video_analysis.__file__, "schemas": str(SCHEMA_DIR), "event": msg.event,
                  "migrations": sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql")),
                  "detector": str(Settings().resolve_path(Settings().detector_path)),
                  "detector_exists": Settings().resolve_path(Settings().detector_path).is_file()}))
"""


def test_installed_wheel_works_from_another_directory(pip, wheel, tmp_path):
    target, elsewhere = tmp_path / "target", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip("install", "--no-deps", "--target", str(target), str(wheel))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", CHECK], cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    pkg = target / "video_analysis"
    assert got["package"] == str(pkg / "__init__.py") and got["schemas"] == str(pkg / "schemas")
    assert got["event"] == "PROCESS_VIDEO"
    assert got["migrations"] == sorted(p.name for p in (REPO / "deploy" / "sql").glob("*.sql"))
    assert got["detector"].startswith(str(pkg)) and got["detector_exists"]
    script = subprocess.run([str(target / "bin" / "cvitx"), "--help"], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=60)
    assert script.returncode == 0 and "reconcile" in script.stdout and "run_poller" in script.stdout, script.stderr


def test_the_makefiles_editable_install_maps_every_subpackage(pip, source, tmp_path):
    prefix = tmp_path / "prefix"
    pip("install", "--no-deps", "--no-build-isolation", "-e", str(source), "--prefix", str(prefix))
    [site_dir] = prefix.glob("lib/python*/site-packages")
    code = ("import site, sys, json, importlib.util as u; site.addsitedir(sys.argv[1]); "
            "print(json.dumps([u.find_spec(n).origin for n in sys.argv[2:]]))")
    mods = ["video_analysis.worker_utils.redrive", "video_analysis.yolo_worker.run_poller", "video_analysis.cli"]
    # -S: only the prefix's site dir, not the virtualenv's (whose own editable install maps the checkout)
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(site_dir), *mods], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert all(o.startswith(str(source)) for o in json.loads(r.stdout)), r.stdout
