"""main_worker handler: SNAPSHOT_READY -> Type/Make/Model (+Color, Plate; Baseline vs CMT) -> Postgres.

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

import contextvars
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from ..worker_config import Settings
from ..worker_utils.db import Database
from ..worker_utils import readiness
from ..worker_utils.errors import BadMedia, PermanentError, ValidationFailed, WorkerError, inference_error
from ..worker_utils.imaging import decode_jpeg
from ..worker_utils.keys import is_uuid, parse_snapshot_uri
from ..worker_utils.logs import log_context
from ..worker_utils.messages import SnapshotReady
from ..worker_utils.poller import Dependency, HandlerContext, Outcome, Poller
from ..worker_utils.repository import (fail_analysis, finish_analysis, finish_analyses, start_analyses,
                                       start_analysis)
from ..worker_utils.s3_store import S3Store
from ..worker_utils.sqs_queue import ReceivedMessage, SqsQueues
from ..worker_utils.validation import validate_snapshot_ready
from ..worker_utils.vocab import COLOR_BASES
from .color import estimate_fbl, fbl_from_heads
from .decoding import Decoded, Hierarchy, decode_output
from .plate import PlateReader

log = logging.getLogger(__name__)
FETCH_THREADS = 8  # concurrent S3 gets + JPEG decodes of one receive (botocore pools 10 connections)


class Classifier(Protocol):
    """What a loaded main-model bundle offers (see main_worker/model.py)."""

    model_name: str
    version: str
    labels: dict[str, list]
    hierarchy: dict[str, dict[str, str]]

    def predict(self, batch_bgr: np.ndarray) -> dict[str, np.ndarray]: ...


@dataclass
class _Item:
    index: int
    message: ReceivedMessage
    msg: SnapshotReady
    analysis_id: str
    image: np.ndarray


def hierarchy_of(bundle: Classifier) -> Hierarchy:
    """The bundle's valid paths: its explicit leaf ``paths`` when it has them (ultralytics
    ``Type|Make|Model`` checkpoints), else built from the label maps and ``hierarchy``."""
    if getattr(bundle, "paths", None):
        return Hierarchy.from_paths(bundle.labels["type"], bundle.paths)  # type: ignore[attr-defined]
    lab = bundle.labels
    return Hierarchy.build(lab["type"], lab.get("make", []), lab.get("model", []),
                           bundle.hierarchy.get("make_type", {}), bundle.hierarchy.get("model_make", {}))


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
        self._pool: Optional[ThreadPoolExecutor] = None  # snapshot fetches
        self._ocr: Optional[ThreadPoolExecutor] = None  # the batch's plate OCR, beside the model

    # --- step 1: each message alone, the batch's I/O together -----------------------------
    def _fetch_valid(self, messages: Sequence[ReceivedMessage],
                     outcomes: list[Outcome]) -> list[tuple[int, SnapshotReady, np.ndarray]]:
        """Validate every message and fetch the valid ones' snapshots concurrently.  Failures
        land in ``outcomes``; returns ``(index, message, image)`` of the fetched ones."""
        valid: list[tuple[int, SnapshotReady]] = []
        for i, m in enumerate(messages):
            with log_context(message_id=m.message_id):
                try:
                    valid.append((i, validate_snapshot_ready(m.body, self.settings)))
                except Exception as exc:  # noqa: BLE001 - isolated per message
                    outcomes[i] = exc
        images = self._fetch_all([msg.snapshot_s3_key for _, msg in valid])
        fetched: list[tuple[int, SnapshotReady, np.ndarray]] = []
        for (i, msg), img in zip(valid, images):
            if isinstance(img, BaseException):
                outcomes[i] = img
            else:
                fetched.append((i, msg, img))
        return fetched

    def _start_all(self, messages: Sequence[ReceivedMessage], fetched: list[tuple[int, SnapshotReady, np.ndarray]],
                   outcomes: list[Outcome]) -> list[_Item]:
        """Start the fetched messages' analyses in one transaction (one at a time when that fails
        permanently, to find the message it belongs to).  Failures land in ``outcomes``;
        returns the messages to infer (a ``done`` analysis is skipped)."""
        started = _batch_or_each(lambda snaps: start_analyses(self.db, snaps),
                                 lambda args: start_analysis(self.db, **args),
                                 [_start_args(msg) for _, msg, _ in fetched])
        items = []
        for (i, msg, img), st in zip(fetched, started):
            if isinstance(st, BaseException):
                outcomes[i] = st
            elif st[1] == "done":
                with log_context(message_id=messages[i].message_id, video_id=msg.video_id):
                    log.info("analysis already done; redelivery changes nothing")
            else:
                items.append(_Item(i, messages[i], msg, st[0], img))
        return items

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

    # --- the batch -----------------------------------------------------------------
    def handle_batch(self, messages: Sequence[ReceivedMessage], ctx: HandlerContext) -> list[Outcome]:
        outcomes: list[Outcome] = [None] * len(messages)
        ctx.progress("fetch snapshots")
        fetched = self._fetch_valid(messages, outcomes)
        if not fetched:
            return outcomes
        # The batch's plate OCR starts as soon as its snapshots are in, on its own thread, and
        # runs while the analyses are started and the model runs (the OCR waits in OpenVINO or
        # ONNX Runtime, which release the GIL).  A snapshot dropped meanwhile (its analysis is
        # already done, or could not be started) only costs its OCR time.
        ocr = (self._ocr_pool().submit(contextvars.copy_context().run, self._plates, [img for _, _, img in fetched])
               if self.plates else None)
        try:
            ctx.progress("start analyses")
            items = self._start_all(messages, fetched, outcomes)
            if not items:
                return outcomes
            ctx.check_cancelled()
            ctx.progress("inference")
            t0 = time.perf_counter()
            probs, items = self._infer(items, outcomes)
            if not items:
                return outcomes
            infer_ms = (time.perf_counter() - t0) * 1e3 / len(items)
            ctx.progress("plate OCR")
        finally:
            # never leave the OCR running past this batch (a next batch would queue behind it)
            read = ocr.result() if ocr is not None else None
        ctx.progress("results")
        plates: Optional[list[tuple[Optional[str], Optional[float]]]] = [(None, None)] * len(items)
        plate_ms = 0.0
        if read is not None:
            fetched_plates, plate_ms = read
            position = {i: k for k, (i, _, _) in enumerate(fetched)}
            plates = None if fetched_plates is None else [fetched_plates[position[it.index]] for it in items]
        finished: list[tuple[_Item, list[dict]]] = []
        for j, it in enumerate(items):
            with log_context(message_id=it.message.message_id, video_id=it.msg.video_id):
                try:
                    if plates is not None:
                        plate, ms = plates[j], plate_ms
                    else:
                        t1 = time.perf_counter()
                        plate = self._plate_of(it.image)
                        ms = (time.perf_counter() - t1) * 1e3
                    rows = self._rows(it, {name: {h: p[j] for h, p in pr.items()} for name, pr in probs.items()},
                                      infer_ms, plate, ms)
                    finished.append((it, rows))
                except Exception as exc:  # noqa: BLE001
                    outcomes[it.index] = exc
        ctx.progress("write results")
        self._write(finished, outcomes, ctx)
        return outcomes

    def _infer(self, items: list[_Item], outcomes: list[Outcome]) -> tuple[dict[str, dict[str, np.ndarray]], list[_Item]]:
        """Every variant's heads for the batch in one forward pass each.  When the batch fails,
        each snapshot is tried alone, so a failure stays with the input it belongs to (typed by
        :func:`inference_error`: permanent, or transient when out of memory); returns the heads
        and the items they are for."""
        try:
            return {name: b.predict(np.stack([it.image for it in items])) for name, b in self.variants.items()}, items
        except Exception:  # noqa: BLE001 - retried one by one below
            if len(items) == 1:
                return self._infer_one(items[0], outcomes)
        kept: list[_Item] = []
        parts: dict[str, dict[str, list[np.ndarray]]] = {}
        for it in items:
            probs, ok = self._infer_one(it, outcomes)
            if ok:
                kept.append(it)
                for name, heads in probs.items():
                    for head, p in heads.items():
                        parts.setdefault(name, {}).setdefault(head, []).append(p)
        return {name: {h: np.concatenate(ps) for h, ps in heads.items()} for name, heads in parts.items()}, kept

    def _infer_one(self, it: _Item, outcomes: list[Outcome]) -> tuple[dict[str, dict[str, np.ndarray]], list[_Item]]:
        try:
            return {name: b.predict(it.image[None]) for name, b in self.variants.items()}, [it]
        except Exception as exc:  # noqa: BLE001 - this input's failure
            outcomes[it.index] = exc if isinstance(exc, WorkerError) else inference_error(
                "main model", it.msg.snapshot_s3_key, exc)
            return {}, []

    # --- step 3: plates for the batch, rows per message, one write for the batch ------------
    def _ocr_pool(self) -> ThreadPoolExecutor:
        if self._ocr is None:
            self._ocr = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plate-ocr")
        return self._ocr

    def _plates(self, images: list[np.ndarray]) -> tuple[Optional[list[tuple[Optional[str], Optional[float]]]], float]:
        """Every image's plate from one batched OCR (plates are on), and its time per image.
        None when the batched OCR failed (or the reader has no ``read_batch``): each message
        then reads its own, so a failure stays that message's.  Never raises (it runs on the
        OCR thread; see :meth:`handle_batch`, which gives ``(None, None)`` when plates are off)."""
        read_batch = getattr(self.plates, "read_batch", None)  # a reader with only read() goes one by one
        if read_batch is None:
            return None, 0.0
        t0 = time.perf_counter()
        try:
            out = read_batch(images)
        except Exception as exc:  # noqa: BLE001
            log.warning("batched plate OCR failed; reading the snapshots one by one",
                        extra={"error": f"{type(exc).__name__}: {exc}"})
            return None, 0.0
        return out, (time.perf_counter() - t0) * 1e3 / len(images)

    def _plate_of(self, image: np.ndarray) -> tuple[Optional[str], Optional[float]]:
        return self.plates.read(image) if self.plates else (None, None)

    def _rows(self, it: _Item, probs: dict[str, dict[str, np.ndarray]], infer_ms: float,
              plate_read: tuple[Optional[str], Optional[float]], plate_ms: float) -> list[dict[str, Any]]:
        s = self.settings
        plate, plate_conf = plate_read
        rows = []
        for name, bundle in self.variants.items():
            t1 = time.perf_counter()
            p = probs[name]
            dec = decode_output(self.hierarchies[name], p, s.topk)
            t2 = time.perf_counter()
            colors, color_source = self._colors(bundle, p, it.image) if s.color_enabled else (None, None)
            t3 = time.perf_counter()
            timings = {"inference": infer_ms, "decode": (t2 - t1) * 1e3, "color": (t3 - t2) * 1e3, "plate": plate_ms}
            latency = infer_ms + (t3 - t1) * 1e3 + plate_ms
            rows.append(result_row(name, bundle, dec, colors, plate, plate_conf, latency, it.msg,
                                   heads=head_summary(bundle, p), timings_ms=timings, color_source=color_source))
        return rows

    def _write(self, finished: list[tuple[_Item, list[dict]]], outcomes: list[Outcome], ctx: HandlerContext) -> None:
        """Every finished message's rows in one transaction; when that fails permanently, one
        transaction per message, so the message whose rows the database refuses fails alone."""
        results = _batch_or_each(lambda items: finish_analyses(self.db, items),
                                 lambda item: finish_analysis(self.db, *item),
                                 [(it.analysis_id, rows) for it, rows in finished])
        for (it, rows), res in zip(finished, results):
            with log_context(message_id=it.message.message_id, video_id=it.msg.video_id):
                if isinstance(res, BaseException):
                    outcomes[it.index] = res
                elif res:  # said on the poller's one "message done" line for this snapshot
                    best = rows[0]
                    ctx.note(it.message.message_id, analysis="done", variants=len(rows), type=best["type"],
                             make=best["make"], model=best["model"], plate=best["plate"])
                else:
                    log.info("analysis was finished by another delivery; nothing changed")

    @staticmethod
    def _colors(bundle: Classifier, p: dict[str, np.ndarray], image: np.ndarray) -> tuple[list[dict], str]:
        """(FBL array, where it came from: "model" heads or the "classical" estimator)."""
        if "color_base" in p and list(bundle.labels.get("color_base", [])) == list(COLOR_BASES):
            return fbl_from_heads(p["color_base"], p.get("finish"), p.get("lightness"),
                                  bundle.labels.get("finish", [None]), bundle.labels.get("lightness", [None])), "model"
        return estimate_fbl(image), "classical"


HEAD_SUMMARY_K = 5


def head_summary(bundle: Classifier, p: dict[str, np.ndarray], k: int = HEAD_SUMMARY_K) -> dict[str, list[dict]]:
    """Each head's own labels with probabilities, best first (before hierarchy decoding): small
    heads (type, colour, finish, lightness: <= 10 labels) in full, make and model top-``k``.
    What the model saw, so a reviewer can tell a confident head from a close call."""
    out = {}
    for head, probs in p.items():
        if head not in bundle.labels:
            continue
        labels = bundle.labels[head]
        order = np.argsort(-np.asarray(probs), kind="stable")[:len(labels) if len(labels) <= 10 else k]
        out[head] = [{"label": labels[int(i)] if int(i) < len(labels) else int(i), "p": round(float(probs[int(i)]), 4)}
                     for i in order]
    return out


def result_row(variant: str, bundle: Classifier, dec: Decoded, colors: Optional[list[dict]], plate: Optional[str],
               plate_conf: Optional[float], latency_ms: float, msg: SnapshotReady, *,
               heads: Optional[dict[str, list[dict]]] = None, timings_ms: Optional[dict[str, float]] = None,
               color_source: Optional[str] = None) -> dict[str, Any]:
    """One image_analysis_results row; ``payload`` is the full record (~2-4 KB of JSON)."""
    r3 = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
    payload = {
        "variant": variant,
        "type": {"label": dec.type, "conf": r3(dec.type_conf)},
        "make": {"label": dec.make, "conf": r3(dec.make_conf)},
        "model": {"label": dec.model, "conf": r3(dec.model_conf)},
        "topk": list(dec.alternatives),
        "colors": colors,
        "colors_source": color_source,
        "plate": {"text": plate, "conf": r3(plate_conf)} if plate else None,
        "heads": heads or {},
        "model_name": bundle.model_name,
        "model_version": bundle.version,
        "latency_ms": round(latency_ms, 1),
        "timings_ms": {k: round(v, 1) for k, v in (timings_ms or {}).items()},
        "decoding": "hierarchy-consistent best path (see main_worker/decoding.py)",
        "snapshot": {"snapshot_s3_key": msg.snapshot_s3_key, "track_id": msg.track_id, "detectedIn": msg.detectedIn,
                     "detectedAt": msg.detectedAt, "yolo_type": msg.yolo_type,
                     "workspace_code": msg.workspace_code, "camera_code": msg.camera_code},
    }
    return {"variant": variant, "type": dec.type, "type_conf": r3(dec.type_conf), "make": dec.make,
            "make_conf": r3(dec.make_conf), "model": dec.model, "model_conf": r3(dec.model_conf),
            "colors": colors, "plate": plate, "plate_conf": r3(plate_conf), "payload": payload,
            "model_name": bundle.model_name, "model_version": bundle.version, "latency_ms": round(latency_ms, 1)}


def load_variants(settings: Settings) -> dict[str, Classifier]:
    """single: {'baseline': main}; compare: {'baseline': main, 'cmt': cmt}. Missing files fail start-up."""
    from .model import load_bundle

    paths = {"baseline": settings.main_model_path}
    if settings.main_mode == "compare":
        paths["cmt"] = settings.cmt_model_path
    out: dict[str, Classifier] = {}
    for name, p in paths.items():
        path = settings.resolve_path(p)
        if not path.exists():
            raise ValidationFailed(f"main model bundle {path} ({name}) does not exist; set "
                                   f"{'CVITX_MAIN_MODEL_PATH' if name == 'baseline' else 'CVITX_CMT_MODEL_PATH'}",
                                   code="model_config")
        out[name] = load_bundle(path)
    return out


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
