"""Plate bookkeeping of one batch: the batch's plates are read by one batched OCR on its own
thread, started as soon as the snapshots are fetched, so it runs beside the start transaction
and the forward pass (OpenVINO and ONNX Runtime release the GIL).  Each snapshot's reading is
then looked up by its position in the fetch; when the batched OCR failed (or the reader has no
``read_batch``) each snapshot reads its own, so a failure stays that snapshot's."""
from __future__ import annotations

import contextvars
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional

import numpy as np

from .results import Plate

log = logging.getLogger(__name__)
NO_PLATE: Plate = (None, None)


class BatchPlates:
    """The worker's plate reader (None: plates off) and the one OCR thread it runs on."""

    def __init__(self, reader: Optional[Any]):
        self.reader = reader
        self._pool: Optional[ThreadPoolExecutor] = None

    def start(self, images: list[np.ndarray]) -> "PlateRun":
        """Start reading ``images`` (N x 640 x 640 x 3 BGR each) in the background."""
        if self.reader is None:
            return PlateRun(None, None, images)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plate-ocr")
        return PlateRun(self.reader, self._pool.submit(contextvars.copy_context().run, _read_batch, self.reader,
                                                       images), images)


class PlateRun:
    """One batch's OCR in flight.  :meth:`wait` before anything else is done with the batch:
    never leave it running past the batch (a next batch would queue behind it)."""

    def __init__(self, reader: Optional[Any], future: Optional[Future], images: list[np.ndarray]):
        self.reader, self.future, self.images = reader, future, images
        self.read: Optional[list[Plate]] = None
        self.ms_each = 0.0

    def wait(self) -> None:
        """Wait for the batched OCR (it never raises: a failure means one by one later)."""
        if self.future is not None:
            self.read, self.ms_each = self.future.result()
            self.future = None

    def plate(self, position: int) -> tuple[Plate, float]:
        """The reading of the snapshot at ``position`` in the fetch, and its OCR time (ms)."""
        if self.reader is None:
            return NO_PLATE, 0.0
        if self.read is not None:
            return self.read[position], self.ms_each
        t0 = time.perf_counter()
        plate = self.reader.read(self.images[position])
        return plate, (time.perf_counter() - t0) * 1e3


def _read_batch(reader: Any, images: list[np.ndarray]) -> tuple[Optional[list[Plate]], float]:
    """(every image's plate from one batched OCR, its time per image in ms); (None, 0) when the
    batched OCR failed or the reader has none.  Never raises: it runs on the OCR thread."""
    read_batch = getattr(reader, "read_batch", None)  # a reader with only read() goes one by one
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
