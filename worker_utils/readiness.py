"""A worker's dependencies as the poller sees them: what it checks before ``serving`` and
what it probes while one is down (see :class:`~.poller.Dependency`).

* database: reachable (``SELECT 1``) and migrated (every ``deploy/sql`` version recorded);
* S3: reachable and the bucket exists (one ranged GetObject inside the worker's own IAM scope);
* SQS: reachable and every queue the worker uses exists.

A misconfiguration raises PermanentError with what to fix (exit 2 at start-up); an
unreachable dependency raises DependencyDown (waited for, then exit 2).
"""
from __future__ import annotations

from typing import Sequence

from ..worker_config import Settings
from .db import Database, missing_migrations
from .errors import PermanentError
from .poller import Dependency
from .s3_store import S3Store
from .sqs_queue import SqsQueues

# The probe key's ids: no workspace or video has them, so the probe never reads real data.
_NIL = "00000000-0000-0000-0000-000000000000"


def database(db: Database) -> Dependency:
    def check() -> None:
        db.ping()
        missing = missing_migrations(db)
        if missing:
            raise PermanentError(f"the database (db_url) lacks migrations {', '.join(missing)}; run "
                                 "`python -m video_analysis setup` against it, or fix db_url", code="not_migrated")

    return Dependency("database", db.ping, check)


def s3(store: S3Store, settings: Settings, area: str) -> Dependency:
    """``area``: ``raw`` (the yolo_worker reads videos) or ``snapshots`` (the main_worker reads
    snapshots): the probe stays inside that worker's GetObject scope."""
    key = f"{settings.user_prefix}/{_NIL}/{_NIL}/{area}/cvitx-probe"
    return Dependency("s3", lambda: store.probe(key))


def sqs(queues: SqsQueues, names: Sequence[str]) -> Dependency:
    """``names[0]`` is the queue the worker consumes (the probe reads its attributes)."""
    def check() -> None:
        for name in names:
            queues.url(name)  # PermanentError "run setup" when missing
        queues.probe(names[0])

    return Dependency("sqs", lambda: queues.probe(names[0]), check)
