"""main_worker handler: SNAPSHOT_READY -> Type/Make/Model (+Color, Plate; Baseline vs CMT) -> Postgres.

What lives where: model loading and the one classifier interface in ``variants.py`` (the
formats in ``formats/``), the stored rows' schema in ``results.py``, the batch's plate OCR in
``plate_batch.py``; this module plans the batch and does its I/O.

A receive of up to ``main_batch_size`` messages is handled as one batch:

1. validate each message (schema, configured bucket, URI regex, ids); fetch the valid ones'
   snapshots concurrently (size limit, Content-Type image/jpeg, decodable JPEG, exactly
   640x640); upsert their ``image_analyses`` rows and move them to ``processing`` in one
   transaction (a ``done`` row is skipped);
2. all surviving snapshots through each variant's model in one forward pass;
3. the batch's plates in one batched OCR (``PlateReader.read_batch``), which starts on its own
   thread as soon as the snapshots are fetched and runs beside the start transaction and the
   forward pass; per message, hierarchy decoding and colour; then one transaction for the
   whole batch that upserts a results row per variant and marks each analysis ``done``.

A failure is that message's alone: validation, fetch, decoding and colour failures are caught
per message; a forward pass that fails is redone one snapshot at a time, so an inference
error (permanent: the model cannot take this input) is the failing snapshot's alone; when a
batch transaction fails permanently (a row the database refuses), the batch is redone one
message per transaction, so only the message it belongs to fails; the database being down is
every message's (an outage: the poller pauses).  Whatever sends a message to the DLQ, the
poller first calls :meth:`MainWorker.dead_letter`, which marks its analysis ``error`` with
the DLQ's reason.
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional, Sequence, TypeVar

import numpy as np

from ..worker_config import Settings
from ..worker_utils import readiness
from ..worker_utils.db import Database
from ..worker_utils.errors import BadMedia, PermanentError, WorkerError, inference_error
from ..worker_utils.imaging import decode_jpeg
from ..worker_utils.keys import is_uuid, parse_snapshot_uri
from ..worker_utils.logs import log_context
from ..worker_utils.messages import SnapshotReady
from ..worker_utils.poller import Dependency, HandlerContext, Outcome, Poller
from ..worker_utils.repository import (fail_analysis, finish_analyses, finish_analysis, start_analyses,
                                       start_analysis)
from ..worker_utils.s3_store import S3Store
from ..worker_utils.sqs_queue import ReceivedMessage, SqsQueues
from ..worker_utils.validation import validate_snapshot_ready
from .plate import PlateReader
from .plate_batch import BatchPlates, PlateRun
from .results import Plate, variant_rows
from .variants import Classifier, hierarchy_of, load_variants  # noqa: F401 - re-exported for callers of this module

log = logging.getLogger(__name__)
FETCH_THREADS = 8  # concurrent S3 gets + JPEG decodes of one receive (botocore pools 10 connections)

T = TypeVar("T")
Failures = dict[int, BaseException]  # a message's position in the receive -> its outcome
Probs = dict[str, dict[str, np.ndarray]]  # variant -> {head: C probabilities} of one snapshot


@dataclass
class _Snapshot:
    """One fetched snapshot of the batch."""

    index: int  # the message's position in the receive (its outcome)
    position: int  # its position in the fetch (its plate reading)
    message: ReceivedMessage
    msg: SnapshotReady
    image: np.ndarray  # 640 x 640 x 3 BGR
    analysis_id: str = ""


class MainWorker:
    def __init__(self, settings: Settings, *, s3: Optional[S3Store] = None, db: Optional[Database] = None,
                 variants: Optional[dict[str, Classifier]] = None, plate_reader: Optional[PlateReader] = None):
        self.settings = settings
        self.s3 = s3 or S3Store(settings)
        self.db = db or Database(settings)
        self.variants = variants if variants is not None else load_variants(settings)
        self.hierarchies = {name: hierarchy_of(b) for name, b in self.variants.items()}
        self._dead_letter_db = Database(settings)  # dead_letter's own connection (see there)
        self._sqs: Optional[SqsQueues] = None
        self.plates = plate_reader or (PlateReader(runtime=settings.plate_runtime) if settings.plate_enabled else None)
        if self.plates is not None and hasattr(self.plates, "warm_up"):
            self.plates.warm_up()  # at start-up, like the bundles: not on the first message
        self._plate_batch = BatchPlates(self.plates)
        self._pool: Optional[ThreadPoolExecutor] = None  # snapshot fetches

    # --- the batch, top to bottom ------------------------------------------------------
    def handle_batch(self, messages: Sequence[ReceivedMessage], ctx: HandlerContext) -> list[Outcome]:
        """One outcome per message (None = done).  Each step returns the snapshots that go on
        and the failures it met, which are those messages' outcomes; the rest carry on."""
        failed: Failures = {}

        def carry_on(step: tuple[list[T], Failures]) -> list[T]:
            survivors, failures = step
            failed.update(failures)
            return survivors

        ctx.progress("fetch snapshots")
        snaps = carry_on(self._fetch_valid(messages))
        inferred: list[tuple[_Snapshot, Probs]] = []
        infer_ms = 0.0
        if snaps:
            plates = self._plate_batch.start([s.image for s in snaps])  # beside the next two steps
            try:
                ctx.progress("start analyses")
                snaps = carry_on(self._start_all(snaps))
                if snaps:
                    ctx.check_cancelled()
                    ctx.progress("inference")
                    t0 = time.perf_counter()
                    inferred = carry_on(self._infer(snaps))
                    infer_ms = (time.perf_counter() - t0) * 1e3 / len(snaps)
                    ctx.progress("plate OCR")
            finally:
                plates.wait()
        if inferred:
            ctx.progress("results")
            finished = carry_on(self._results(inferred, plates, infer_ms))
            ctx.progress("write results")
            carry_on(self._write(finished, ctx))
        return [failed.get(i) for i in range(len(messages))]

    # --- step 1: validate each message, fetch the valid ones' snapshots together ------------
    def _fetch_valid(self, messages: Sequence[ReceivedMessage]) -> tuple[list[_Snapshot], Failures]:
        valid: list[tuple[int, SnapshotReady]] = []
        failures: Failures = {}
        for i, m in enumerate(messages):
            try:
                valid.append((i, validate_snapshot_ready(m.body, self.settings)))
            except Exception as exc:  # noqa: BLE001 - isolated per message
                failures[i] = exc
        snaps: list[_Snapshot] = []
        for (i, msg), img in zip(valid, self._fetch_all([msg.snapshot_s3_key for _, msg in valid])):
            if isinstance(img, BaseException):
                failures[i] = img
            else:
                snaps.append(_Snapshot(i, len(snaps), messages[i], msg, img))
        return snaps, failures

    def _fetch_all(self, uris: list[str]) -> list[Any]:
        """:meth:`_fetch` of each URI (the image, or the exception it raised), run concurrently:
        S3 gets wait on the network and JPEG decoding releases the GIL."""
        def one(uri: str) -> Any:
            try:
                return self._fetch(uri)
            except Exception as exc:  # noqa: BLE001 - isolated per message
                return exc

        if len(uris) <= 1:
            return [one(u) for u in uris]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="snapshot-fetch")
        return list(self._pool.map(one, uris))

    def _fetch(self, uri: str) -> np.ndarray:
        s = self.settings
        ref = parse_snapshot_uri(uri, s.bucket, s.user_prefix)
        data, info = self.s3.get_bytes(ref.key, s.snapshot_max_bytes)
        if info.content_type != "image/jpeg":
            raise BadMedia(f"snapshot {uri} has Content-Type {info.content_type!r}, expected 'image/jpeg'; "
                           "re-upload it with ContentType=image/jpeg")
        try:
            img = decode_jpeg(data)
        except ValueError as exc:
            raise BadMedia(f"snapshot {uri}: {exc}") from None
        if img.shape[:2] != (s.snapshot_size, s.snapshot_size):
            raise BadMedia(f"snapshot {uri} is {img.shape[1]}x{img.shape[0]}, expected exactly "
                           f"{s.snapshot_size}x{s.snapshot_size} (letterbox it)")
        return img

    # --- step 2: start the analyses in one transaction -------------------------------------
    def _start_all(self, snaps: list[_Snapshot]) -> tuple[list[_Snapshot], Failures]:
        """The snapshots to infer (a ``done`` analysis is skipped), their analysis ids set; one
        transaction, or one a message when that fails permanently (to find whose it is)."""
        started = _batch_or_each(lambda args: start_analyses(self.db, args),
                                 lambda args: start_analysis(self.db, **args),
                                 [_start_args(s.msg) for s in snaps])
        kept: list[_Snapshot] = []
        failures: Failures = {}
        for s, st in zip(snaps, started):
            if isinstance(st, BaseException):
                failures[s.index] = st
            elif st[1] == "done":
                with log_context(message_id=s.message.message_id, video_id=s.msg.video_id):
                    log.info("analysis already done; redelivery changes nothing")
            else:
                s.analysis_id = st[0]
                kept.append(s)
        return kept, failures

    # --- step 3: every variant's forward pass for the batch ---------------------------------
    def _infer(self, snaps: list[_Snapshot]) -> tuple[list[tuple[_Snapshot, Probs]], Failures]:
        """Each snapshot with its heads, from one forward pass per variant for the batch.  When
        that fails, each snapshot is tried alone, so a failure stays with the input it belongs
        to (typed by :func:`inference_error`: permanent, or transient when out of memory)."""
        if len(snaps) > 1:
            try:
                out = {name: b.predict(np.stack([s.image for s in snaps])) for name, b in self.variants.items()}
                return [(s, _row_of(out, j)) for j, s in enumerate(snaps)], {}
            except Exception:  # noqa: BLE001 - redone one by one below
                pass
        kept: list[tuple[_Snapshot, Probs]] = []
        failures: Failures = {}
        for s in snaps:
            try:
                kept.append((s, _row_of({name: b.predict(s.image[None]) for name, b in self.variants.items()}, 0)))
            except Exception as exc:  # noqa: BLE001 - this input's failure
                failures[s.index] = exc if isinstance(exc, WorkerError) else inference_error(
                    "main model", s.msg.snapshot_s3_key, exc)
        return kept, failures

    # --- step 4: rows per message, one write for the batch ----------------------------------
    def _results(self, inferred: list[tuple[_Snapshot, Probs]], plates: PlateRun,
                 infer_ms: float) -> tuple[list[tuple[_Snapshot, list[dict]]], Failures]:
        finished: list[tuple[_Snapshot, list[dict]]] = []
        failures: Failures = {}
        for s, probs in inferred:
            with log_context(message_id=s.message.message_id, video_id=s.msg.video_id):
                try:
                    plate, plate_ms = plates.plate(s.position)
                    finished.append((s, self._rows(s, probs, infer_ms, plate, plate_ms)))
                except Exception as exc:  # noqa: BLE001 - that message's failure
                    failures[s.index] = exc
        return finished, failures

    def _rows(self, snap: _Snapshot, probs: Probs, infer_ms: float, plate: Plate, plate_ms: float) -> list[dict]:
        s = self.settings
        return variant_rows(self.variants, self.hierarchies, probs, snap.image, snap.msg, topk=s.topk,
                            color_enabled=s.color_enabled, infer_ms=infer_ms, plate=plate, plate_ms=plate_ms)

    def _write(self, finished: list[tuple[_Snapshot, list[dict]]], ctx: HandlerContext) -> tuple[list, Failures]:
        """Every finished message's rows in one transaction; when that fails permanently, one
        transaction per message, so the message whose rows the database refuses fails alone."""
        results = _batch_or_each(lambda items: finish_analyses(self.db, items),
                                 lambda item: finish_analysis(self.db, *item),
                                 [(s.analysis_id, rows) for s, rows in finished])
        failures: Failures = {}
        for (s, rows), res in zip(finished, results):
            if isinstance(res, BaseException):
                failures[s.index] = res
            elif res:  # said on the poller's one "message done" line for this snapshot
                best = rows[0]
                ctx.note(s.message.message_id, analysis="done", variants=len(rows), type=best["type"],
                         make=best["make"], model=best["model"], plate=best["plate"])
            else:
                with log_context(message_id=s.message.message_id, video_id=s.msg.video_id):
                    log.info("analysis was finished by another delivery; nothing changed")
        return [], failures

    # --- the poller's side ---------------------------------------------------------
    def dead_letter(self, message: ReceivedMessage, reason: str, code: str) -> None:
        """The poller's terminal-state hook: the message is going to the DLQ, so its analysis
        row (where one exists, belongs to the message's workspace and is not done) becomes
        ``error`` with the same reason.  Runs on its own connection: a stalled handler may hold
        the worker's.  Raises DependencyDown while the database is down (nothing is dead-lettered)."""
        uri, workspace_id = _snapshot_ids_of(message.body)
        if uri and workspace_id and fail_analysis(self._dead_letter_db, uri, reason, workspace_id):
            log.info("analysis marked error", extra={"snapshot_s3_key": uri, "error_code": code})

    def dependencies(self) -> list[Dependency]:
        s = self.settings
        return [readiness.database(self.db), readiness.s3(self.s3, s, "snapshots"),
                readiness.sqs(SqsQueues(s) if self._sqs is None else self._sqs, [s.snapshot_queue, s.snapshot_dlq])]

    def poller(self, name: str = "main_worker", sqs: Optional[SqsQueues] = None) -> Poller:
        """The poller that serves this worker, as ``run_poller`` runs it."""
        s = self.settings
        self._sqs = sqs or self._sqs or SqsQueues(s)
        return Poller(s, s.snapshot_queue, s.snapshot_dlq, self.handle_batch, batch_size=s.main_batch_size,
                      sqs=self._sqs, name=name, on_dead_letter=self.dead_letter, dependencies=self.dependencies())


def _row_of(out: dict[str, dict[str, np.ndarray]], j: int) -> Probs:
    """Snapshot ``j``'s heads from a forward pass's {variant: {head: N x C}}."""
    return {name: {h: p[j] for h, p in heads.items()} for name, heads in out.items()}


def _batch_or_each(batch: Any, each: Any, items: list) -> list[Any]:
    """``batch(items)`` (one result per item, one transaction); when the database refuses that
    transaction (permanent), ``each(item)`` per item, so the failure stays with the item it
    belongs to.  Returns each item's result or exception; a transient failure of the batch (the
    database is down) is every item's, and retryable."""
    if not items:
        return []
    try:
        return list(batch(items))
    except PermanentError:
        out: list[Any] = []
        for item in items:
            try:
                out.append(each(item))
            except Exception as exc:  # noqa: BLE001 - that item's outcome
                out.append(exc)
        return out
    except Exception as exc:  # noqa: BLE001 - every item's, retryable
        return [exc] * len(items)


def _start_args(msg: SnapshotReady) -> dict[str, Any]:
    """``start_analysis``'s keyword arguments for a message."""
    return {"video_id": msg.video_id, "workspace_id": msg.workspace_id, "track_id": msg.track_id,
            "snapshot_uri": msg.snapshot_s3_key, "detected_in_ms": msg.detectedIn, "detected_at": msg.detectedAt,
            "yolo_type": msg.yolo_type}


def _snapshot_ids_of(body: str) -> tuple[Optional[str], Optional[str]]:
    """``(snapshot_s3_key, workspace_id)`` of a message, where it has string ones (a message
    that failed validation included): the analysis row a dead-lettered message leaves behind."""
    try:
        obj = json.loads(body)
        uri, wid = obj.get("snapshot_s3_key"), obj.get("workspace_id")
    except (ValueError, AttributeError):
        return None, None
    return (uri if isinstance(uri, str) else None), (wid if isinstance(wid, str) and is_uuid(wid) else None)
