"""The embedded default: moto_server (real S3/SQS wire protocol) + a throwaway PostgreSQL cluster.

``stack up`` starts both on 127.0.0.1 with state under ``.stack/`` and writes
``.stack/env``, the environment overrides that point every worker and CLI command at them.
The tests start the same stack under a temp directory.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..worker_config import env_file_lines

PG_USER = "cvitx"
PG_DB = "cvitx"
LOCAL_AWS_ENV = {
    # moto accepts any credentials; real-looking ones would be a trap in a shared shell.
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "ap-southeast-2",
}


class StackError(RuntimeError):
    """The local stack could not start or stop; the message says what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def pg_bindir() -> Path:
    """The directory of initdb/pg_ctl: PATH first, then Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if candidates:
        return candidates[-1].parent
    raise StackError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them with "
        "`sudo apt-get install postgresql` (Debian/Ubuntu), `brew install postgresql@15` (macOS), "
        "or run `make deps`."
    )


def _as_pg_user() -> list[str]:
    """initdb refuses to run as root: when root, run the server as the 'postgres' user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError("running as root needs a 'postgres' system user for the throwaway cluster "
                         "(`apt-get install postgresql` creates it), or run as a normal user") from None
    if not runuser:
        raise StackError("running as root needs `runuser` (util-linux) to start PostgreSQL as 'postgres'")
    return [runuser, "-u", "postgres", "--"]


def _check_traversable(path: Path) -> None:
    """As root the server runs as 'postgres', which must be able to reach ``path``."""
    if os.geteuid() != 0:
        return
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise StackError(f"{parent} is not searchable by the 'postgres' user (mode "
                             f"{oct(parent.stat().st_mode & 0o777)}); put the stack elsewhere (--root) "
                             f"or `chmod o+x {parent}`")


def _chown_pg(path: Path) -> None:
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        for p in [path, *path.rglob("*")]:
            os.chown(p, pw.pw_uid, pw.pw_gid)


@dataclass
class PgCluster:
    """A throwaway cluster: trust auth on 127.0.0.1 only, fsync off (disposable data)."""

    root: Path
    port: int

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{PG_DB}"

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [*_as_pg_user(), str(pg_bindir() / args[0]), *args[1:]]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
        if check and r.returncode != 0:
            raise StackError(f"{args[0]} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")
        return r

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if (self.datadir / "PG_VERSION").exists():
            return
        _check_traversable(self.root)
        _chown_pg(self.root)
        self._run("initdb", "-D", str(self.datadir), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                  "--no-instructions", "--no-sync")

    def start(self) -> None:
        self.init()
        (self.root / "sock").mkdir(exist_ok=True)
        _chown_pg(self.root / "sock")
        opts = (f"-p {self.port} -k {self.root / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        log = self.root / "postgres.log"
        log.touch()
        _chown_pg(log)
        self._run("pg_ctl", "-D", str(self.datadir), "-o", opts, "-l", str(log), "-w", "-t", "60", "start")
        self._ensure_db(PG_DB)

    def _ensure_db(self, name: str) -> None:
        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(self.url_for("postgres"), connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if not cur.fetchone():
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()

    def create_database(self, name: str) -> str:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r} must be [A-Za-z0-9_]")
        self._ensure_db(name)
        return self.url_for(name)

    def stop(self, mode: str = "fast") -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists() and port_open(self.port)


@dataclass
class MotoServer:
    """moto_server as its own process group (so it can be stopped with everything it spawned)."""

    root: Path
    port: int
    pid: Optional[int] = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "moto.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.pid = proc.pid
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"moto_server exited with {proc.returncode}; see {self.root / 'moto.log'}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()  # noqa: S310 - loopback
                return
            time.sleep(0.1)
        raise StackError(f"moto_server did not answer on {self.endpoint} within {timeout_s:.0f}s")

    def stop(self) -> None:
        if not self.pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
            for _ in range(50):
                if not _alive(self.pid):
                    break
                time.sleep(0.1)
            else:
                os.killpg(self.pid, signal.SIGKILL)
        self.pid = None


@dataclass
class StackState:
    root: str
    moto_port: int
    moto_pid: Optional[int]
    pg_port: int

    @property
    def moto(self) -> MotoServer:
        return MotoServer(Path(self.root) / "moto", self.moto_port, self.moto_pid)

    @property
    def pg(self) -> PgCluster:
        return PgCluster(Path(self.root) / "pg", self.pg_port)

    def settings_changes(self) -> dict[str, str]:
        return {"s3_endpoint_url": self.moto.endpoint, "sqs_endpoint_url": self.moto.endpoint, "db_url": self.pg.url}

    def environ(self) -> dict[str, str]:
        """The environment a worker process needs to use this stack."""
        env = dict(LOCAL_AWS_ENV)
        for line in env_file_lines(self.settings_changes()):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
        return env


def _state_file(root: Path) -> Path:
    return root / "state.json"


def load_state(root: Path) -> Optional[StackState]:
    f = _state_file(root)
    return StackState(**json.loads(f.read_text())) if f.exists() else None


def stack_up(root: Path) -> StackState:
    """Start (or reuse) the stack under ``root`` and write ``root/env``. Idempotent."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    state = load_state(root)
    if state and state.pg.running() and state.moto_pid and _alive(state.moto_pid) and port_open(state.moto_port):
        return state
    if state:
        stack_down(root)
    state = StackState(root=str(root), moto_port=free_port(), moto_pid=None, pg_port=free_port())
    moto = state.moto
    try:
        moto.start()
        state.moto_pid = moto.pid
        _state_file(root).write_text(json.dumps(asdict(state)))
        state.pg.start()
    except BaseException:
        stack_down(root)
        raise
    env_lines = [f"export {k}='{v}'" for k, v in LOCAL_AWS_ENV.items()] + env_file_lines(state.settings_changes())
    (root / "env").write_text("# written by `python -m video_analysis stack up`; `source` it\n" + "\n".join(env_lines) + "\n")
    return state


def stack_down(root: Path) -> bool:
    """Stop whatever ``stack up`` started under ``root``. Returns False when nothing was there."""
    root = root.resolve()
    state = load_state(root)
    if not state:
        return False
    state.pg.stop()
    state.moto.stop()
    _state_file(root).unlink(missing_ok=True)
    (root / "env").unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it first when it is our own exited child (no zombies)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
