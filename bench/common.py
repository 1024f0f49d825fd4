"""What every benchmark shares: a private local stack, cached generated clips, JSON output.

Benchmarks measure the compared variants side by side in one run (same clip, same weights,
same machine state), because these machines are shared and absolute figures drift.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from ..synth.clip import write_clip
from ..synth.scene import SceneConfig
from ..worker_config import PACKAGE_DIR, Settings, build_settings
from ..worker_utils.local_stack import LOCAL_AWS_ENV, StackState, stack_down, stack_up
from ..worker_utils.provision import run_setup

WORK = PACKAGE_DIR / "artifacts" / "bench"
WORKSPACE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def log(text: str) -> None:
    """Progress goes to stderr; stdout carries only the JSON result."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def clip(duration_s: float, *, width: int = 640, height: int = 360, fps: float = 25.0, seed: int = 4242,
         vehicles_per_min: float = 10.0) -> Path:
    """A generated traffic clip, rendered once and cached under artifacts/bench/clips."""
    cfg = SceneConfig(width=width, height=height, fps=fps, duration_s=duration_s, seed=seed,
                      vehicles_per_min=vehicles_per_min)
    name = f"s{seed}_{width}x{height}_{fps:g}fps_{duration_s:g}s_v{vehicles_per_min:g}"
    path = WORK / "clips" / f"{name}.mp4"
    if not path.exists():
        t0 = time.perf_counter()
        log(f"rendering {name} (once; cached) ...")
        tmp = WORK / "clips" / f".{name}.{os.getpid()}"
        info = write_clip(cfg, tmp, name)
        for f in tmp.iterdir():
            f.replace(path.parent / f.name)
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"  {info.frames} frames, {info.vehicles} vehicles in {time.perf_counter() - t0:.0f} s")
    return path


@contextmanager
def local_stack(**changes: Any) -> Iterator[tuple[Settings, StackState]]:
    """moto_server + throwaway Postgres under a temp dir, setup run; stopped on exit."""
    root = Path(tempfile.mkdtemp(prefix="cvitx-bench-"))
    root.chmod(0o755)  # as root, Postgres runs as 'postgres' and must reach its data dir
    try:
        state = stack_up(root)
        os.environ.update(LOCAL_AWS_ENV)  # the private stack's dummy credentials, never real ones
        settings = build_settings({}, **state.settings_changes(), **changes)
        run_setup(settings)
        yield settings, state
    finally:
        stack_down(root)
        shutil.rmtree(root, ignore_errors=True)


def machine() -> dict[str, Any]:
    import torch

    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "cpu_count": os.cpu_count(),
            "cpu": _cpu_name(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=1, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)),
          flush=True)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None
