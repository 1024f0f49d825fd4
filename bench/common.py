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
from typing import Any, Iterator, Mapping

from ..synth.clip import write_clip
from ..synth.scene import scene_config
from ..worker_config import PACKAGE_DIR, Settings, build_settings
from ..worker_utils.local_stack import LOCAL_AWS_ENV, StackState, stack_down, stack_up
from ..worker_utils.provision import run_setup

WORK = PACKAGE_DIR / "artifacts" / "bench"
WORKSPACE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def log(text: str) -> None:
    """Progress goes to stderr; stdout carries only the JSON result."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# The static-camera case's clip: the car-park preset at a seed with three movers in 30 s (one in
# the first 10 s, for --quick); 58 % of its frames at stride 3 have no moving pixel.
CARPARK_SEED = 4245


def clip(duration_s: float, *, width: int = 640, height: int = 360, fps: float = 25.0, seed: int = 4242,
         vehicles_per_min: float | None = None, scene: str = "road") -> Path:
    """A generated clip (``scene``: ``road`` = continuous traffic, 10 arrivals per lane per
    minute unless ``vehicles_per_min`` says otherwise; ``carpark`` = synth's car-park preset),
    rendered once with its ground truth (NAME.gt.txt, NAME.json) and cached under
    artifacts/bench/clips."""
    changes: dict[str, Any] = {"width": width, "height": height, "fps": fps, "duration_s": duration_s}
    if vehicles_per_min is not None or scene == "road":
        changes["vehicles_per_min"] = 10.0 if vehicles_per_min is None else vehicles_per_min
    cfg = scene_config(scene, seed, **changes)
    name = f"s{seed}_{width}x{height}_{fps:g}fps_{duration_s:g}s_v{cfg.vehicles_per_min:g}"
    if scene != "road":
        name = f"{scene}_{name}_p{cfg.parked}"
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
        settings = build_settings({}, **state.settings_changes(), **{**isa_cap_changes(os.environ), **changes})
        run_setup(settings)
        yield settings, state
    finally:
        stack_down(root)
        shutil.rmtree(root, ignore_errors=True)


# The ISA flags (as /proc/cpuinfo spells them) that decide what a CPU detector runs at: AVX2 is
# the float32 baseline; AVX-512 widens it; VNNI (AVX-512 or AVX) speeds up INT8; AVX-512 BF16
# and AMX run bfloat16 (OpenVINO's default where present) and AMX INT8 too.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The CPU model and its :data:`ISA_FLAGS` from the text of /proc/cpuinfo (the first
    processor's entry; x86 ``flags`` line).  Returns ``{"cpu": model name or None, "cpu_id":
    "vendor family F model M stepping S" or None (VMs often show a generic model name; these
    numbers still tell the generation), "isa": [the flags present, in ISA_FLAGS order],
    "isa_class": isa_class(...)}``."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not line.strip():
            if fields:
                break  # end of the first processor's entry
            continue
        if sep:
            fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    isa = [f for f in ISA_FLAGS if f in flags]
    cpu_id = None
    if "cpu family" in fields and "model" in fields:
        cpu_id = (f"{fields.get('vendor_id', '?')} family {fields['cpu family']} model {fields['model']}"
                  f" stepping {fields.get('stepping', '?')}")
    return {"cpu": fields.get("model name"), "cpu_id": cpu_id, "isa": isa, "isa_class": isa_class(isa)}


def isa_class(isa: list[str]) -> str:
    """The CPU class that decides the detector's speed, from the flags :func:`parse_cpuinfo`
    found: ``amx`` (bfloat16 and INT8 in tiles), ``avx512_bf16``, ``avx512_vnni``, ``avx512``,
    ``avx2_vnni``, ``avx2`` or ``older``.  The README's sizing guidance is by these classes."""
    has = set(isa)
    if {"amx_bf16", "amx_tile"} <= has:
        return "amx"
    if "avx512_bf16" in has:
        return "avx512_bf16"
    if "avx512f" in has:
        return "avx512_vnni" if "avx512_vnni" in has else "avx512"
    if "avx2" in has:
        return "avx2_vnni" if "avx_vnni" in has else "avx2"
    return "older"


ISA_CAP_VAR = "ONEDNN_MAX_CPU_ISA"  # oneDNN's own switch; OpenVINO's CPU plugin honours it for its kernels


def isa_cap_changes(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings a run capped at AVX2 needs (pure): OpenVINO still picks bfloat16 from the CPU's
    flags, not from the cap, and then finds no AVX2 kernel for it (the demo detector's MaxPool:
    "Supported primitive descriptors list is empty"), so the detector fell back to PyTorch, and the
    main model's export failed to compile and ran in PyTorch too.  An AVX2-only CPU runs float32:
    ask for it, for both."""
    if environ.get(ISA_CAP_VAR, "").upper() != "AVX2":
        return {}
    return {"detector_precision": "f32", "main_precision": "f32"}


def cpu_info() -> dict[str, Any]:
    """:func:`parse_cpuinfo` of this machine, and the cores this process may use."""
    try:
        info = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux
        info = {"cpu": None, "cpu_id": None, "isa": [], "isa_class": "unknown"}
    info["cpu"] = info["cpu"] or platform.processor() or "unknown"
    # `bench --isa avx2` caps the instruction set oneDNN (OpenVINO's and torch's kernels) may use,
    # to measure a CPU without AVX-512, VNNI or bfloat16 on one that has them (read, not set, here).
    info["isa_cap"] = os.environ.get(ISA_CAP_VAR) or None
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))  # a cpuset or CPUAffinity= counts, not the host
    except (AttributeError, OSError):
        info["usable_cores"] = os.cpu_count()
    return info


def cpu_line(info: dict[str, Any]) -> str:
    """One line naming the CPU, for the log and beside every figure, e.g.
    ``Intel Xeon ... | 2 usable cores | amx: avx2 avx512f ... amx_int8``."""
    line = f"{info['cpu']} | {info['usable_cores']} usable cores | {info['isa_class']}: {' '.join(info['isa']) or '-'}"
    return line + (f" | kernels capped at {info['isa_cap']} ({ISA_CAP_VAR})" if info.get("isa_cap") else "")


def machine() -> dict[str, Any]:
    import torch

    cpu = cpu_info()
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "cpu_line": cpu_line(cpu), **cpu,
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def _cpu_name() -> str:
    """The CPU model alone (check-model prints it the way the benchmarks do)."""
    return cpu_info()["cpu"]


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=1, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)),
          flush=True)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None
