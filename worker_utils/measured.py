"""Choices made by measuring this host, made once and recorded: the detector's thread count and,
under ``detector_precision=auto``, INT8 against the float model (yolo_worker/detector_runtime.py,
yolo_worker/quantize.py).

**The rule.**  A measured choice picks the costlier or riskier option (more threads, INT8) only on
a clear gain, so that two measurements on one host agree:

* the candidates are timed in :data:`ROUNDS` rounds, taking turns inside each round (a busier
  stretch of the machine falls on all of them), each round giving every candidate the median of
  its runs in it;
* the gain is the **median over the rounds** of the per-round speed-up, and it must reach the
  caller's margin (1.10x for INT8, 1.25x for threads: numbers and their reasons beside the callers);
* and all rounds but one must show the candidate faster at all (a gain that appears in one or two
  rounds is noise).

A gain within noise (INT8 and bfloat16 on an AMD EPYC with AVX-512 BF16: 1.0 +- 0.05) therefore
always gives the default, never a coin toss.  Once made, the choice is written to a JSON record
beside the cached export with what it depends on (the CPU, cores, runtime version ...) and read by
every consumer on that host (the workers, ``check-model``, ``quantize``, the tests) until one of
those facts changes.  Measuring happens under an exclusive file lock, so two workers starting
together on one host measure once, not against each other.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

ROUNDS = 5           # timing rounds per decision
WARMUP_RUNS = 2      # untimed calls per candidate first (first inferences allocate and tune)


def time_rounds(calls: Sequence[Callable[[], object]], seconds: float, rounds: int = ROUNDS,
                min_runs: int = 2) -> list[list[float]]:
    """Milliseconds per call of each of ``calls``: ``result[i][r]`` = the median of candidate
    ``i``'s runs in round ``r``.  Each round lasts about ``seconds / rounds`` per candidate (at
    least ``min_runs`` runs each), the candidates taking turns call by call."""
    for call in calls:
        for _ in range(WARMUP_RUNS):
            call()
    per_round = max(0.0, seconds) / max(1, rounds)
    out: list[list[float]] = [[] for _ in calls]
    for _ in range(max(1, rounds)):
        times: list[list[float]] = [[] for _ in calls]
        deadline = time.monotonic() + per_round * len(calls)
        while time.monotonic() < deadline or len(times[0]) < min_runs:
            for call, t in zip(calls, times):
                t0 = time.perf_counter()
                call()
                t.append((time.perf_counter() - t0) * 1000.0)
        for o, t in zip(out, times):
            o.append(round(float(median(t)), 3))
    return out


def on_own_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` run on a new thread and its result (or exception) returned here: timings taken as
    the pipeline runs the detector, on a thread of its own (on the main thread torch's OpenMP pool
    spins against the runtime's threads; bench/yolo_throughput.py's detector-only loop)."""
    import threading

    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            out["error"] = exc

    t = threading.Thread(target=run, name="measure")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def speedups(base_ms: Sequence[float], other_ms: Sequence[float]) -> list[float]:
    """Per round, how many times faster ``other`` ran than ``base`` (ms a call each; a round
    with a zero or negative time counts as no gain)."""
    if len(base_ms) != len(other_ms) or not base_ms:
        raise ValueError(f"{len(base_ms)} base rounds for {len(other_ms)} others")
    return [round(b / o, 4) if o > 0 and b > 0 else 0.0 for b, o in zip(base_ms, other_ms)]


def clear_gain(ratios: Sequence[float], min_speedup: float) -> tuple[bool, float]:
    """``(take the candidate, median speed-up)`` for per-round speed-ups ``ratios`` (the rule in
    the module docstring: median at least ``min_speedup`` and every round but one above 1.0)."""
    if not ratios:
        raise ValueError("no timing rounds")
    gain = round(float(median(ratios)), 4)
    slower = sum(1 for r in ratios if r <= 1.0)
    return gain >= min_speedup and slower <= (1 if len(ratios) > 2 else 0), gain


def applies(record: Optional[Mapping[str, Any]], key: Mapping[str, Any]) -> bool:
    """True when a recorded choice was measured where every fact of ``key`` is the same."""
    return bool(record) and all(record.get(k) == v for k, v in key.items())


def read_json(path: Path) -> Optional[dict]:
    """The JSON object in ``path``, or None when it is missing or unreadable (a record that
    cannot be read is measured again, which is always correct)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """``path`` replaced in one rename by ``data`` as indented JSON."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".json-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def exclusive(record: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<record>.lock`` (beside the record) while measuring, so that
    processes on one host measure one after the other and the later one reads the earlier one's
    record.  A cache folder that cannot hold the lock file (read-only) measures unlocked."""
    lock_path = Path(record).with_name(Path(record).name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
