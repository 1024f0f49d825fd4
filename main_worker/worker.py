"""main_worker handler: SNAPSHOT_READY -> Type/Make/Model (+Color, Plate; Baseline vs CMT) -> Postgres.

A receive of up to ``main_batch_size`` messages is handled as one batch:

1. each message alone: validate (schema, configured bucket, URI regex, ids), fetch the
   snapshot (size limit, Content-Type image/jpeg, decodable JPEG, exactly 640x640), upsert its
   ``image_analyses`` row and move it to ``processing`` (a ``done`` row is skipped);
2. all surviving snapshots through each variant's model in one forward pass;
3. each message alone again: hierarchy decoding, colour, plate, then one transaction that
   upserts a results row per variant and marks the analysis ``done``.

A failure in step 1 or 3 is that message's alone; a permanent one marks the analysis
``error`` with the reason where the row exists.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from ..worker_config import Settings
from ..worker_utils.db import Database
from ..worker_utils.errors import BadMedia, PermanentError, TransientError, ValidationFailed, WorkerError
from ..worker_utils.imaging import decode_jpeg
from ..worker_utils.keys import parse_snapshot_uri
from ..worker_utils.logs import log_context
from ..worker_utils.messages import SnapshotReady
from ..worker_utils.poller import HandlerContext, Outcome
from ..worker_utils.repository import fail_analysis, finish_analysis, start_analysis
from ..worker_utils.s3_store import S3Store
from ..worker_utils.sqs_queue import ReceivedMessage
from ..worker_utils.validation import validate_snapshot_ready
from ..worker_utils.vocab import COLOR_BASES
from .color import estimate_fbl, fbl_from_heads
from .decoding import Decoded, Hierarchy, decode_output
from .plate import PlateReader

log = logging.getLogger(__name__)


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
        self.plates = plate_reader or (PlateReader() if settings.plate_enabled else None)

    # --- step 1: one message -----------------------------------------------------
    def _prepare(self, index: int, message: ReceivedMessage) -> _Item:
        try:
            msg = validate_snapshot_ready(message.body, self.settings)
        except ValidationFailed as exc:
            uri = _snapshot_uri_of(message.body)
            if uri:
                self._fail(uri, f"invalid message: {exc.reason}")
            raise
        with log_context(video_id=msg.video_id):
            try:
                image = self._fetch(msg.snapshot_s3_key)
                analysis_id, before = start_analysis(
                    self.db, video_id=msg.video_id, workspace_id=msg.workspace_id, track_id=msg.track_id,
                    snapshot_uri=msg.snapshot_s3_key, detected_in_ms=msg.detectedIn, detected_at=msg.detectedAt,
                    yolo_type=msg.yolo_type)
            except PermanentError as exc:
                self._fail(msg.snapshot_s3_key, exc.reason)
                raise
        if before == "done":
            raise _AlreadyDone()
        return _Item(index, message, msg, analysis_id, image)

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

    def _fail(self, uri: str, reason: str) -> None:
        try:
            fail_analysis(self.db, uri, reason)
        except WorkerError as exc:
            log.warning("could not record the error on the analysis row", extra={"error": exc.reason})

    # --- the batch -----------------------------------------------------------------
    def handle_batch(self, messages: Sequence[ReceivedMessage], ctx: HandlerContext) -> list[Outcome]:
        outcomes: list[Outcome] = [None] * len(messages)
        items: list[_Item] = []
        for i, m in enumerate(messages):
            with log_context(message_id=m.message_id):
                try:
                    items.append(self._prepare(i, m))
                except _AlreadyDone:
                    log.info("analysis already done; redelivery changes nothing")
                except Exception as exc:  # noqa: BLE001 - isolated per message
                    outcomes[i] = exc
        if not items:
            return outcomes
        ctx.check_cancelled()
        batch = np.stack([it.image for it in items])
        t0 = time.perf_counter()
        try:
            probs = {name: bundle.predict(batch) for name, bundle in self.variants.items()}
        except Exception as exc:  # noqa: BLE001 - a model failure is every message's, and retryable
            err = TransientError(f"main model inference failed: {type(exc).__name__}: {exc}")
            for it in items:
                outcomes[it.index] = err
            return outcomes
        infer_ms = (time.perf_counter() - t0) * 1e3 / len(items)
        for j, it in enumerate(items):
            with log_context(message_id=it.message.message_id, video_id=it.msg.video_id):
                try:
                    self._finish(it, {name: {h: p[j] for h, p in pr.items()} for name, pr in probs.items()}, infer_ms)
                except Exception as exc:  # noqa: BLE001
                    if isinstance(exc, PermanentError):
                        self._fail(it.msg.snapshot_s3_key, exc.reason)
                    outcomes[it.index] = exc
        return outcomes

    # --- step 3: one message ---------------------------------------------------------
    def _finish(self, it: _Item, probs: dict[str, dict[str, np.ndarray]], infer_ms: float) -> None:
        s = self.settings
        t0 = time.perf_counter()
        plate, plate_conf = (self.plates.read(it.image) if self.plates else (None, None))
        plate_ms = (time.perf_counter() - t0) * 1e3
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
        if finish_analysis(self.db, it.analysis_id, rows):
            best = rows[0]
            log.info("analysis done", extra={"track_id": it.msg.track_id, "variants": len(rows), "type": best["type"],
                                             "make": best["make"], "model": best["model"], "plate": plate})
        else:
            log.info("analysis was finished by another delivery; nothing changed")

    @staticmethod
    def _colors(bundle: Classifier, p: dict[str, np.ndarray], image: np.ndarray) -> tuple[list[dict], str]:
        """(FBL array, where it came from: "model" heads or the "classical" estimator)."""
        if "color_base" in p and list(bundle.labels.get("color_base", [])) == list(COLOR_BASES):
            return fbl_from_heads(p["color_base"], p.get("finish"), p.get("lightness"),
                                  bundle.labels.get("finish", [None]), bundle.labels.get("lightness", [None])), "model"
        return estimate_fbl(image), "classical"


class _AlreadyDone(Exception):
    pass


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


def _snapshot_uri_of(body: str) -> Optional[str]:
    """The snapshot_s3_key of a message that failed validation, if it has a string one."""
    try:
        value = json.loads(body).get("snapshot_s3_key")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
