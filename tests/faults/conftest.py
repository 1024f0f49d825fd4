"""Fault-injection harness: the real worker processes (``python -m video_analysis.<worker>.run_poller``,
as systemd starts them) against moto_server and the throwaway PostgreSQL, with faults made from
the outside only: signals, ``pg_ctl stop``, a TCP proxy in front of moto that can refuse every
connection, a DB trigger that rejects one video's writes.  No production hook, nothing mocked.

Every worker process records its AWS calls (tests/netguard/cvitx_aws_calls.py, one file per
process); when a test ends, ``make_rig`` evaluates them against the worker's policy under
deploy/iam/ with the IAM matching of tests/deploy/test_iam.py (tests/iam_policies.py), so the
calls of the failure paths (outage release and requeue, stall, dead letters) are checked too,
not only the happy path's.

Timings come from settings, as in tests/worker_utils/test_poller.py: 4 s visibility, 1 s
heartbeat and long poll, 5 s stop timeout, short transient back-off.  Clips are tiny
(320x180 / 480x270, 10 fps) so the whole directory runs in a few minutes on two cores.
"""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from conftest import DETECTOR, MAIN_BUNDLE
from helpers import WID, load_test_module, worker_env
from iam_policies import RECORDER_ENV, policy_names, read_calls, sent_to, violations
from video_analysis.worker_config import Settings
from video_analysis.worker_utils.errors import TransientError
from video_analysis.worker_utils.keys import build_snapshot_uri
from video_analysis.worker_utils.local_stack import free_port
from video_analysis.worker_utils.provision import run_setup

Client = load_test_module("yolo_harness", Path(__file__).parents[1] / "yolo_worker" / "yolo_harness.py").Client

FAULT_SETTINGS = dict(
    detector_path=str(DETECTOR), device="cpu", main_model_path=str(MAIN_BUNDLE), plate_enabled=False,
    visibility_timeout_s=4, heartbeat_s=1.0, receive_wait_s=1, stop_timeout_s=5.0,
    transient_backoff_base_s=1, transient_backoff_max_s=2, progress_interval_s=0.3,
)
# Generated clips (synth.SceneConfig fields), each rendered once per session by clip_factory.
SHORT = dict(width=320, height=180, fps=10.0, duration_s=3.0)  # ~3 snapshots, well under a second of work
SHORT_SEEDS = (12, 13, 21, 34)
MEDIUM = dict(width=480, height=270, fps=10.0, duration_s=30.0, seed=11, vehicles_per_min=20.0)  # ~2-3 s of work
# (12 s of video took 1 s on a 2-core Intel Xeon with AMX: a SIGTERM or SIGKILL "mid video" came after its end)

MODULES = {"yolo": "video_analysis.yolo_worker.run_poller", "main": "video_analysis.main_worker.run_poller"}
ROLES = {"yolo": "yolo_worker", "main": "main_worker"}  # kind -> its deploy/iam policy (iam_policies.POLICIES)


class WorkerProc:
    """One real worker process; its JSON log lines go to a file, its AWS calls (when ``env``
    names a recorder file) to another."""

    def __init__(self, kind: str, env: dict[str, str], log: Path, settings: Optional[Settings] = None):
        self.kind, self.log, self.settings = kind, log, settings
        self.aws_log = Path(env[RECORDER_ENV]) if env.get(RECORDER_ENV) else None
        with open(log, "w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", MODULES[kind]], env=env, stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.expect_exit = False

    @property
    def name(self) -> str:
        return self.log.stem

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self, msg: Optional[str] = None, **match: Any) -> list[dict]:
        """The process's log records (complete JSON lines), optionally only those with this
        ``msg`` and these field values."""
        out = []
        for line in self.text().splitlines():
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:  # a line still being written
                continue
            if (msg is None or rec.get("msg") == msg) and all(rec.get(k) == v for k, v in match.items()):
                out.append(rec)
        return out

    def alive(self) -> bool:
        return self.proc.poll() is None

    def aws_calls(self) -> list[dict]:
        """Every AWS call this process made so far (service, operation, resource parameters)."""
        return read_calls(self.aws_log) if self.aws_log is not None else []

    def sent_to(self) -> set[str]:
        """The queues this process sent messages to."""
        return sent_to(self.aws_calls())

    def iam_violations(self) -> list[str]:
        """The recorded calls its policy (deploy/iam/, instantiated for this worker's bucket and
        queues) does not allow, one line each naming the call, action, resource and policy."""
        if self.aws_log is None or self.settings is None:
            return []
        role = ROLES[self.kind]
        return [f"{self.name}: {v}" for v in violations(self.aws_calls(), role, self.settings.region,
                                                           policy_names(self.settings))]

    def wait_serving(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.events("serving"):
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before serving:\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not serving after {timeout_s:.0f}s:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    def sigkill(self) -> None:
        self.expect_exit = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def sigterm(self, timeout_s: float = 30.0) -> tuple[int, float]:
        """SIGTERM; returns (exit status, seconds until the process was gone)."""
        self.expect_exit = True
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} still running {timeout_s:.0f}s after SIGTERM:\n{self.text()[-3000:]}")
        return rc, time.monotonic() - t0

    def cleanup(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()


class TcpProxy:
    """127.0.0.1:<port> -> moto_server, byte for byte.  ``shut()`` makes the endpoint
    unreachable (the port refuses connections, open ones are cut); ``open()`` listens on the
    same port again; ``freeze()`` keeps connections open but forwards nothing (a hung
    endpoint) until ``thaw()``.  moto keeps its state: only the network path fails."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._thawed = threading.Event()
        self._thawed.set()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: Optional[socket.socket] = None
        self.open()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        sock.settimeout(0.1)
        with self._lock:
            self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), name="proxy-accept", daemon=True).start()

    def shut(self) -> None:
        with self._lock:
            sock, self._listener = self._listener, None
            conns, self._conns = list(self._conns), set()
        if sock is not None:
            sock.close()
        for c in conns:
            _hard_close(c)

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not sock:
                    return
            try:
                client, _ = sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
                client.settimeout(None)
            except OSError:
                _hard_close(client)
                continue
            with self._lock:
                if self._listener is not sock:  # shut while connecting
                    _hard_close(client)
                    _hard_close(upstream)
                    return
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), name="proxy-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._thawed.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
            _hard_close(src)
            _hard_close(dst)


def _hard_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Rig:
    """One test's system: its own bucket, queues and database on the shared stack, the worker
    processes it started, and what the API and an operator do around them."""

    def __init__(self, stack, settings: Settings, tmp_path: Path, clip_factory):
        self.stack, self.s, self.tmp, self.clip_factory = stack, settings, tmp_path, clip_factory
        self.client = Client(settings)
        self.db = self.client.db
        self.workers: list[WorkerProc] = []
        self.proxy: Optional[TcpProxy] = None
        self._pg_log = Path(stack.pg.root) / "postgres.log"
        self._pg_log_start = self._pg_log.stat().st_size if self._pg_log.exists() else 0

    # --- processes ------------------------------------------------------------------
    def start(self, kind: str, *, via_proxy: tuple[str, ...] = (), wait: bool = True,
              env: Optional[dict[str, str]] = None, **changes: Any) -> WorkerProc:
        """Start a worker (``kind`` yolo|main) with this rig's settings plus ``changes``;
        ``via_proxy`` ("s3", "sqs") routes those endpoints through the rig's proxy; ``env``:
        more environment (systemd's NOTIFY_SOCKET, a test-only fault of tests/netguard)."""
        if via_proxy:
            proxy = self.proxy_up()
            for service in via_proxy:
                changes[f"{service}_endpoint_url"] = proxy.endpoint
        n = sum(w.kind == kind for w in self.workers) + 1
        env = {**worker_env(self.stack, self.s, **changes), **(env or {})}
        # Up to four workers share two cores here: one math thread each, or torch/OpenMP
        # spin-waiting threads thrash (measured: the 20-video test runs twice as fast).
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault(RECORDER_ENV, str(self.tmp / f"{kind}{n}.aws.jsonl"))  # checked by make_rig at the end
        w = WorkerProc(kind, env, self.tmp / f"{kind}{n}.log", settings=self.s.replace(**changes))
        self.workers.append(w)
        if wait:
            w.wait_serving()
        return w

    def proxy_up(self) -> TcpProxy:
        if self.proxy is None:
            self.proxy = TcpProxy(self.stack.moto.port)
        return self.proxy

    def wait(self, predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
        """Poll ``predicate``; fail at once if a worker died that was not meant to."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if predicate():
                    return
            except TransientError:  # the DB is restarting under our own connection too
                pass
            for w in self.workers:
                if not w.alive() and not w.expect_exit:
                    raise AssertionError(f"{w.name} exited ({w.proc.returncode}) while waiting for {what}:\n"
                                         f"{w.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; "
                                     f"videos {self.video_statuses()}, analyses {self.analysis_counts()}\n"
                                     + "\n".join(f"--- {w.name}\n{w.text()[-1500:]}" for w in self.workers))
            time.sleep(0.1)

    def events(self, msg: Optional[str] = None, **match: Any) -> list[dict]:
        return [e for w in self.workers for e in w.events(msg, **match)]

    # --- the API's side --------------------------------------------------------------
    def clip(self, **config: Any) -> Path:
        return self.clip_factory(**config).video

    def clip_info(self, **config: Any):
        return self.clip_factory(**config)

    def submit(self, clip: Path, frame_stride: int = 1) -> str:
        return self.client.submit(clip, frame_stride=frame_stride)[0]

    # --- reading back --------------------------------------------------------------
    def video_statuses(self) -> dict[str, str]:
        return {r["id"]: r["status"] for r in self.db.fetchall("SELECT id::text AS id, status FROM videos")}

    def analysis_counts(self) -> dict[str, int]:
        return {r["status"]: r["n"] for r in
                self.db.fetchall("SELECT status, count(*) AS n FROM image_analyses GROUP BY status")}

    def analyses(self, video_id: Optional[str] = None) -> list[dict]:
        where, params = ("WHERE video_id = %s", (video_id,)) if video_id else ("", ())
        return self.db.fetchall("SELECT id::text AS id, video_id::text AS video_id, track_id, snapshot_s3_key,"
                                " detected_in_ms, yolo_type, status, error, created_at, updated_at FROM image_analyses "
                                f"{where} ORDER BY video_id, track_id, detected_in_ms", params)

    def results(self) -> list[dict]:
        return self.db.fetchall("SELECT r.*, r.id::text AS id, r.analysis_id::text AS analysis_id"
                                " FROM image_analysis_results r ORDER BY r.analysis_id, r.variant")

    def all_finished(self, video_ids: list[str]) -> bool:
        """Every one of these videos done, and every analysis of theirs done."""
        st = self.video_statuses()
        if any(st.get(v) != "done" for v in video_ids):
            return False
        rows = self.db.fetchall("SELECT count(*) AS n, count(*) FILTER (WHERE status = 'done') AS done"
                                " FROM image_analyses WHERE video_id::text = ANY(%s)", (list(video_ids),))
        return rows[0]["n"] > 0 and rows[0]["n"] == rows[0]["done"]

    def snapshot_objects(self, video_id: str) -> set[str]:
        keys = self.client.s3.list_keys(f"{self.s.user_prefix}/{WID}/{video_id}/snapshots/")
        return {build_snapshot_uri(self.s.bucket, k) for k in keys}

    def queue_depth(self, queue: str) -> int:
        """Messages visible + in flight (+ delayed) in ``queue``."""
        a = self.client.sqs.attributes(queue)
        return sum(int(a.get(k, 0)) for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                               "ApproximateNumberOfMessagesDelayed"))

    def dlq(self, queue: str) -> list:
        return self.client.drain(queue, wait_s=0)

    def postgres_errors(self) -> list[str]:
        """ERROR lines the server logged since this rig was made (the cluster is shared, but
        tests run one at a time)."""
        if not self._pg_log.exists():
            return []
        with open(self._pg_log, "rb") as fh:
            fh.seek(self._pg_log_start)
            text = fh.read().decode(errors="replace")
        return [line for line in text.splitlines() if "ERROR:" in line]

    # --- the checks every fault ends with ------------------------------------------------
    def assert_converged(self, video_ids: list[str], *, variants: tuple[str, ...] = ("baseline",),
                         video_status: Optional[str] = "done") -> list[dict]:
        """Every video ``video_status`` (None: not checked); every analysis done with its result rows exactly once; snapshot
        keys unique and each backed by its S3 object; queues and DLQs empty; no worker logged
        an error and Postgres rejected no statement (a UNIQUE violation would show there)."""
        if video_status is not None:
            st = self.video_statuses()
            assert {v: st.get(v) for v in video_ids} == {v: video_status for v in video_ids}
        rows = self.analyses()
        assert rows, "no snapshot at all: the clips must show vehicles"
        assert {r["video_id"] for r in rows} <= set(video_ids)
        assert [r for r in rows if r["status"] != "done" or r["error"]] == []
        keys = [r["snapshot_s3_key"] for r in rows]
        assert len(keys) == len(set(keys))
        for v in video_ids:
            assert self.snapshot_objects(v) == {r["snapshot_s3_key"] for r in rows if r["video_id"] == v}
        results = self.results()
        per = {}
        for r in results:
            per.setdefault(r["analysis_id"], []).append(r["variant"])
        assert per == {r["id"]: sorted(variants) for r in rows}
        for q in (self.s.video_queue, self.s.snapshot_queue, self.s.video_dlq, self.s.snapshot_dlq):
            assert self.queue_depth(q) == 0, (q, self.client.sqs.attributes(q))
        errors = [e for e in self.events() if e.get("level") in ("ERROR", "CRITICAL")]
        assert errors == []
        assert self.postgres_errors() == []
        return rows

    def close(self) -> None:
        for w in self.workers:
            w.cleanup()
        if self.proxy is not None:
            self.proxy.shut()


@pytest.fixture
def make_rig(stack, settings, tmp_path, clip_factory):
    """``make_rig(**setting changes) -> Rig``; its workers are killed and its proxy shut afterwards."""
    rigs: list[Rig] = []

    def make(**changes: Any) -> Rig:
        s = settings.replace(**{**FAULT_SETTINGS, **changes})
        run_setup(s)  # queue attributes (visibility, redrive maxReceiveCount) follow the settings
        rig = Rig(stack, s, tmp_path, clip_factory)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()
    # Issue 26: the policies allow every call on every path, the failure paths included.
    bad = [v for rig in rigs for w in rig.workers for v in w.iam_violations()]
    if bad:
        pytest.fail("worker processes of this test made AWS calls their deploy/iam policy does not allow (least "
                    "privilege: grant each there, scoped to its ARN, with a reason in deploy/iam/README.md, or "
                    "remove the call):\n  " + "\n  ".join(bad), pytrace=False)


@pytest.fixture
def rig(make_rig) -> Rig:
    return make_rig()
