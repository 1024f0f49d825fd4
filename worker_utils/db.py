"""Postgres adapter (psycopg2): lazy connect, reconnect after failures, typed errors, migrations.

All SQL in the project is parameterised (``%s`` placeholders); nothing is formatted into
query text.  Failures are translated by SQLSTATE class:

* no server (connection refused or lost: class 08, 57P01-57P03, an OperationalError without
  SQLSTATE) -> DependencyDown("database"): an outage, the poller pauses and probes; the
  connection is dropped so the next use reconnects;
* resources / serialization / a cancelled statement (53, 40, other 57) -> TransientError;
* integrity and data errors (23, 22) -> PermanentError: the message can never satisfy them;
* everything else (e.g. 42: a missing table before ``setup``) -> TransientError: a deployment
  problem that a fix plus redelivery resolves.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import psycopg2
import psycopg2.extras

from ..worker_config import PACKAGE_DIR, Settings
from .errors import DependencyDown, PermanentError, TransientError, WorkerError

log = logging.getLogger(__name__)
MIGRATIONS_DIR = PACKAGE_DIR / "deploy" / "sql"
_MIGRATION_LOCK = 0x43564954  # "CVIT": one pg_advisory_xact_lock key for concurrent setups
# admin_shutdown, crash_shutdown, cannot_connect_now: the server is going or not yet there
_SERVER_GONE = {"57P01", "57P02", "57P03"}


def translate_db_error(exc: BaseException, what: str) -> WorkerError:
    if isinstance(exc, WorkerError):
        return exc
    code = getattr(exc, "pgcode", None) or ""
    detail = str(getattr(exc, "pgerror", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if code[:2] == "08" or code in _SERVER_GONE or (
            not code and isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))):
        # No server to talk to (refused, reset, shutting down, starting up): an outage.
        return DependencyDown("database", f"{what}: database unavailable ({detail})")
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) or code[:2] in ("57", "53", "40"):
        return TransientError(f"{what}: database busy or interrupted ({detail})")
    if code[:2] in ("23", "22"):
        return PermanentError(f"{what}: the data violates a database rule ({detail})", code="db_constraint")
    return TransientError(f"{what}: database error {code or type(exc).__name__} ({detail})")


class Database:
    """One connection per worker process (workers are single-threaded), reopened on demand."""

    def __init__(self, settings: Settings | str):
        if isinstance(settings, Settings):
            self.url, self.connect_timeout = settings.db_url, settings.db_connect_timeout_s
        else:
            self.url, self.connect_timeout = settings, 5
        self._conn: Optional[Any] = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg2.connect(self.url, connect_timeout=self.connect_timeout,
                                              application_name="cvitx-video-analysis")
            except psycopg2.Error as exc:
                self._conn = None
                raise translate_db_error(exc, "DB connect") from exc
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def transaction(self, what: str = "DB transaction") -> Iterator[Any]:
        """A cursor (dict rows) inside one transaction: commit on success, rollback on error.

        Any psycopg2 error leaves as a typed error; after a connection-level failure the
        connection is dropped so the next transaction reconnects.
        """
        with self._lock:
            conn = self._connect()
            try:
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    yield cur
                conn.commit()
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    conn.rollback()
                if isinstance(exc, psycopg2.Error):
                    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) or conn.closed:
                        self.close()
                    raise translate_db_error(exc, what) from exc
                raise

    def fetchall(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        with self.transaction() as cur:
            cur.execute(sql, params)
            return [dict(r) for r in cur.fetchall()]

    def fetchone(self, sql: str, params: tuple | dict = ()) -> Optional[dict]:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: tuple | dict = ()) -> int:
        with self.transaction() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def ping(self) -> None:
        """One round trip (``SELECT 1``); raises DependencyDown while the server is unreachable."""
        self.fetchall("SELECT 1 AS ok")


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    """``NNNN_name.sql`` files in version order."""
    return sorted(p for p in directory.glob("*.sql") if p.name[:4].isdigit())


def apply_migrations(db: Database, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the migrations not yet recorded in ``schema_migrations``; returns the versions applied.

    Each file runs in its own transaction under an advisory lock, so concurrent ``setup``
    runs serialise and a second run applies nothing.
    """
    applied: list[str] = []
    with db.transaction("DB migrations table") as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
    for path in migration_files(directory):
        version = path.stem
        with db.transaction(f"DB migration {version}") as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (version,))
            if cur.fetchone():
                continue
            cur.execute(path.read_text())
            cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied.append(version)
            log.info("migration applied", extra={"version": version})
    return applied


def missing_migrations(db: Database, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """The migration versions not recorded in ``schema_migrations`` (all of them when the table
    itself is missing): empty when the database is ready for the workers."""
    wanted = [p.stem for p in migration_files(directory)]
    row = db.fetchone("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
    if not row or not row["present"]:
        return wanted
    done = {r["version"] for r in db.fetchall("SELECT version FROM schema_migrations")}
    return [v for v in wanted if v not in done]


__all__ = ["Database", "apply_migrations", "migration_files", "missing_migrations", "translate_db_error"]
