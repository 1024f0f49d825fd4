"""Licence plates: RapidOCR (ONNX Runtime, models shipped inside the pip package) + format rules.

The OCR model reads every text line in the snapshot; each line (and each pair of adjacent
lines, for plates printed on two rows or split by the detector) is normalised
(``vocab.normalize_plate``) and kept only if it matches a Philippine plate format
(``vocab.PLATE_PATTERNS``).  The best-scoring valid reading wins; no valid reading -> None.

How the OCR runs (``PlateReader.read_batch``; ``read`` is a batch of one):

* text detection sees only the snapshot's *content*: the letterbox padding the yolo_worker
  adds around the vehicle crop (``imaging.DEFAULT_PAD_VALUE`` grey, see :func:`content_box`)
  holds no text, so it is cut away before the detector runs (typically a third to a half of
  the 640x640 snapshot);
* the detector sees that region at the scale RapidOCR itself uses for a 640x640 snapshot
  (736/640): smaller text is lost at lower scales (measured on ``eval plate-color``);
* the detector runs once per snapshot; the text lines of *all* snapshots of a batch go
  through the recogniser together (it sorts them by width and runs ``rec_batch`` at a time);
  the recogniser reads each line from the full-resolution snapshot, as before.

Plate positions are not assumed: the whole vehicle crop is searched, as before.

Runtime (``runtime``; the worker passes ``settings.plate_runtime``): RapidOCR's own ONNX models
run in ONNX Runtime as the package ships them, or - ``auto`` when the ``openvino`` package is
installed - compiled by OpenVINO (:class:`OpenVinoOcr`), which runs them in bfloat16 on CPUs
with AVX-512 BF16/AMX and about halves the OCR time there (measured: 57 of 60 plate readings
identical to ONNX Runtime's, the same number exactly right).  The detector's input
normalisation is compiled into its model too, so a region goes in as uint8 (measured on 60
generated snapshots: 23 -> 18 ms a snapshot one at a time, 20 -> 15 in batches of 10, the same
60 readings).  A batch's text detections then
run several at a time (OpenVINO's throughput streams: two on this 2-core machine, more on larger
ones), a single snapshot's on every core at once (latency mode).  When OpenVINO cannot compile the models the reader says why in
one warning and stays on ONNX Runtime.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Optional, Sequence

import numpy as np

from ..worker_utils.imaging import DEFAULT_PAD_VALUE
from ..worker_utils.offline import import_openvino
from ..worker_utils.runtimes import default_compile_config, kernel_cap_hides_bf16, openvino_available, precision_name
from ..worker_utils.vocab import is_valid_plate, normalize_plate

log = logging.getLogger(__name__)

# The detector sees the snapshot at RapidOCR's own scale for a 640x640 input (its default
# ``limit_side_len`` 736 / 640): small plates need it, and results stay those of before.
DET_SCALE = 736 / 640
REC_BATCH = 16  # text lines per recogniser run (RapidOCR's default is 6)

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive)


def content_box(img: np.ndarray, pad_value: int = DEFAULT_PAD_VALUE, tol: int = 24, margin: int = 8,
                min_side: int = 64, max_aspect: float = 8.0) -> Box:
    """The part of a letterboxed snapshot that is not padding, with ``margin`` pixels around it.

    A row (column) is content when more than 0.5 % of its pixel values (at least 3; each channel
    counts) differ from ``pad_value`` by more than ``tol`` (JPEG noise in flat padding stays
    well under that).  The box is grown (centred, inside the image) to at least ``min_side`` on each
    side and at most ``max_aspect`` long:short, the shapes the text detector handles unpadded.
    No content at all -> the whole image.
    """
    import cv2

    h, w = img.shape[:2]
    if h == 0 or w == 0:
        return 0, 0, w, h
    img = np.ascontiguousarray(img.reshape(h, w, -1))
    over = cv2.threshold(cv2.absdiff(img, np.full_like(img, pad_value)).reshape(h, -1), tol, 1,
                         cv2.THRESH_BINARY)[1]  # h x (w * channels): 1 where a value is off the pad grey
    rows = np.flatnonzero(cv2.reduce(over, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() > max(2, w // 200))
    cols = np.flatnonzero(cv2.reduce(over, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).reshape(w, -1).sum(axis=1)
                          > max(2, h // 200))
    if len(rows) == 0 or len(cols) == 0:
        return 0, 0, w, h
    x1, x2 = _grow(int(cols[0]) - margin, int(cols[-1]) + 1 + margin, min_side, w)
    y1, y2 = _grow(int(rows[0]) - margin, int(rows[-1]) + 1 + margin, min_side, h)
    bw, bh = x2 - x1, y2 - y1
    if bw > max_aspect * bh:
        y1, y2 = _grow(y1, y2, int(np.ceil(bw / max_aspect)), h)
    elif bh > max_aspect * bw:
        x1, x2 = _grow(x1, x2, int(np.ceil(bh / max_aspect)), w)
    return x1, y1, x2, y2


def _grow(lo: int, hi: int, min_len: int, size: int) -> tuple[int, int]:
    """``[lo, hi)`` clamped to ``[0, size)`` and grown about its centre to ``min_len`` (at most ``size``)."""
    lo, hi = max(0, lo), min(size, hi)
    need = min(min_len, size) - (hi - lo)
    if need > 0:
        lo -= need // 2
        hi += need - need // 2
        if lo < 0:
            hi, lo = hi - lo, 0
        if hi > size:
            lo, hi = lo - (hi - size), size
    return lo, hi


def det_input_size(h: int, w: int, scale: float = DET_SCALE) -> tuple[int, int]:
    """(height, width) the detector sees for an ``h x w`` region: scaled by ``scale``, each side
    rounded to a multiple of 32 (at least 32), as RapidOCR's own preprocessing does."""
    return max(32, int(round(h * scale / 32)) * 32), max(32, int(round(w * scale / 32)) * 32)


class OpenVinoOcr:
    """RapidOCR's text detector and recogniser (its ONNX files) compiled by OpenVINO for the CPU.

    ``detect(x)`` takes the resized region itself, ``1 x H x W x 3`` uint8 BGR (H, W multiples
    of 32): the detector's normalisation (``(x / 255 - mean) / std``, channels first) is compiled
    into the model (OpenVINO's PrePostProcessor), so it runs vectorised inside the inference
    streams, in parallel with the other snapshots' detections, not in numpy on the calling thread
    (6 ms a region in numpy here).  It returns the probability map RapidOCR's session does.
    ``recognise(x)`` takes and returns what RapidOCR's recogniser session does (``N x 3 x 48 x W``
    float32 -> character scores).  ``detect_many(xs)`` runs several detector inputs with up to
    ``streams`` in flight at once."""

    def __init__(self, det_path: str, rec_path: str, det_mean: Sequence[float], det_std: Sequence[float]):
        ov = import_openvino()  # its telemetry declined (worker_utils/offline.py)

        core = ov.Core()
        det = _with_uint8_input(core.read_model(det_path), det_mean, det_std)
        latency, throughput = (default_compile_config({"PERFORMANCE_HINT": h}) for h in ("LATENCY", "THROUGHPUT"))
        self._det = core.compile_model(det, "CPU", latency).create_infer_request()
        self._det_many = core.compile_model(det, "CPU", throughput)
        self.streams = int(self._det_many.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        rec = core.compile_model(core.read_model(rec_path), "CPU", latency)
        self._rec = rec.create_infer_request()
        self.precision = precision_name(rec.get_property("INFERENCE_PRECISION_HINT"))
        self._queue: Any = None

    def detect(self, x: np.ndarray) -> np.ndarray:
        return self._det.infer({0: x})[0].copy()

    def detect_many(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        if len(xs) < 2 or self.streams < 2:
            return [self.detect(x) for x in xs]
        ov = import_openvino()  # its telemetry declined (worker_utils/offline.py)

        if self._queue is None:
            self._queue = ov.AsyncInferQueue(self._det_many, self.streams)
        out: list[Any] = [None] * len(xs)

        def done(request: Any, i: int) -> None:
            out[i] = request.get_output_tensor(0).data.copy()

        self._queue.set_callback(done)
        for i, x in enumerate(xs):
            self._queue.start_async({0: x}, i)
        self._queue.wait_all()
        missing = [i for i, o in enumerate(out) if o is None]
        if missing:  # a callback failed: say so here, not later as a puzzling post-processing error
            raise RuntimeError(f"OpenVINO text detection returned nothing for inputs {missing}")
        return out

    def recognise(self, x: np.ndarray) -> list[np.ndarray]:
        """RapidOCR's recogniser session signature: a list whose first item is the output."""
        return [self._rec.infer({0: x})[0].copy()]


def _with_uint8_input(model: Any, mean: Sequence[float], std: Sequence[float]) -> Any:
    """``model`` (input ``1 x 3 x H x W`` float32, normalised) taking ``1 x H x W x 3`` uint8
    instead: ``(x - 255 mean) / (255 std)`` per channel and the transpose are compiled in."""
    ov = import_openvino()  # its telemetry declined (worker_utils/offline.py)
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean([255.0 * m for m in mean]).scale(
        [255.0 * v for v in std])
    return ppp.build()


def normalised_blob(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``1 x 3 x H x W`` float32 ``(x / 255 - mean) / std`` of an ``H x W x 3`` uint8 image, what
    RapidOCR's own detector preprocessing gives, in one OpenCV pass when ``std`` is the same for
    every channel (RapidOCR's is), else in numpy."""
    import cv2

    if len(set(std)) == 1:
        return cv2.dnn.blobFromImage(x, 1.0 / (255.0 * std[0]), mean=tuple(255.0 * m for m in mean))
    m, sd = np.float32(mean), np.float32(std)
    return np.ascontiguousarray(((x.astype(np.float32) / 255.0 - m) / sd).transpose(2, 0, 1)[None])


def rapidocr_model_paths() -> tuple[str, str]:
    """(text detector, recogniser): the ONNX files shipped in the ``rapidocr_onnxruntime`` wheel,
    as its own ``config.yaml`` names them."""
    from pathlib import Path

    import rapidocr_onnxruntime
    import yaml

    root = Path(rapidocr_onnxruntime.__file__).parent
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    return str(root / cfg["Det"]["model_path"]), str(root / cfg["Rec"]["model_path"])


def plate_runtime(requested: str) -> str:
    """``"openvino"`` or ``"onnxruntime"`` for the requested ``auto`` / ``openvino`` / ``onnxruntime``.

    ``auto`` under a oneDNN kernel cap that hides the CPU's bfloat16 (an AVX2-only CPU emulated on
    an AVX-512 one: the tests, ``bench --isa avx2``) is ONNX Runtime: there OpenVINO's float32
    recogniser segfaulted on its first inference (AMD EPYC with AVX-512 BF16 under
    ``ONEDNN_MAX_CPU_ISA=AVX2``, OpenVINO 2026.4.1), and bfloat16 has no kernels."""
    if requested == "auto":
        return "openvino" if openvino_available() and not kernel_cap_hides_bf16() else "onnxruntime"
    return requested


class PlateReader:
    """Loads RapidOCR once per process (about 0.3 s; OpenVINO's compile about 1 s more), on first
    use or :meth:`warm_up`.  Not for concurrent use: the worker reads one batch at a time."""

    def __init__(self, det_scale: float = DET_SCALE, rec_batch: int = REC_BATCH, runtime: str = "auto") -> None:
        self._ocr: Any = None
        self._ov: Optional[OpenVinoOcr] = None
        self._lock = threading.Lock()
        self.det_scale = det_scale
        self.rec_batch = rec_batch
        self.runtime = plate_runtime(runtime)

    def _engine(self) -> Any:
        with self._lock:
            if self._ocr is None:
                from rapidocr_onnxruntime import RapidOCR

                ocr = RapidOCR()
                ocr.text_rec.rec_batch_num = self.rec_batch
                if self.runtime == "openvino":
                    self._use_openvino(ocr)
                self._ocr = ocr
            return self._ocr

    def _use_openvino(self, ocr: Any) -> None:
        """Swap RapidOCR's recogniser session for OpenVINO's (the detector is called by
        :meth:`_detect` directly); on any failure stay on ONNX Runtime and say why."""
        try:
            self._ov = OpenVinoOcr(*rapidocr_model_paths(), ocr.text_det.mean, ocr.text_det.std)
        except Exception as exc:  # noqa: BLE001 - missing package, unreadable model: ONNX Runtime still works
            log.warning(f"plate OCR runtime openvino unavailable, running ONNX Runtime instead: "
                        f"{type(exc).__name__}: {exc} (reinstall requirements.txt for OpenVINO, or set "
                        "CVITX_ENV_OVERRIDES=1 CVITX_PLATE_RUNTIME=onnxruntime to skip it)")
            self.runtime = "onnxruntime"
            return
        ocr.text_rec.session = self._ov.recognise
        log.info("plate OCR runtime ready", extra={"runtime": "openvino", "precision": self._ov.precision,
                                                    "streams": self._ov.streams})

    def warm_up(self) -> None:
        """Load the OCR models and run them once (on a drawn plate), so that the first real
        snapshot does not pay for it; the worker calls this at start-up, like loading its bundles."""
        import cv2

        img = np.full((640, 640, 3), DEFAULT_PAD_VALUE, np.uint8)
        cv2.rectangle(img, (170, 280), (470, 350), (255, 255, 255), -1)
        cv2.putText(img, "ABC 1234", (185, 332), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 4)
        self.read_batch([img, img])  # a batch: the throughput (several in flight) path is compiled too

    def read(self, snapshot: np.ndarray) -> tuple[Optional[str], Optional[float]]:
        """(plate text, confidence 0-1) of a BGR snapshot, or (None, None)."""
        return self.read_batch([snapshot])[0]

    def read_batch(self, snapshots: Sequence[np.ndarray]) -> list[tuple[Optional[str], Optional[float]]]:
        """:meth:`read` of each snapshot, the OCR batched over them (see the module docstring)."""
        if not snapshots:
            return []
        ocr = self._engine()
        boxes = [content_box(img) for img in snapshots]
        regions = [img[y1:y2, x1:x2] for img, (x1, y1, x2, y2) in zip(snapshots, boxes)]
        detections = self._detect(ocr, regions)
        crops: list[np.ndarray] = []
        owners: list[tuple[int, np.ndarray]] = []
        for i, (region, dt) in enumerate(zip(regions, detections)):
            if dt is None or len(dt) == 0:
                continue
            dt = ocr.sorted_boxes(dt)
            crops += ocr.get_crop_img_list(region, dt)
            x1, y1 = boxes[i][:2]
            owners += [(i, np.asarray(b, np.float32) + np.float32([x1, y1])) for b in dt]
        lines: list[list[tuple[Any, str, float]]] = [[] for _ in snapshots]
        if crops:
            rec, _ = ocr.text_rec(crops)
            for (i, box), res in zip(owners, rec):
                text, score = res[0], float(res[1])
                if score >= ocr.text_score:
                    lines[i].append((box.tolist(), text, score))
        return [best_plate(ls) for ls in lines]

    def _detect(self, ocr: Any, regions: list[np.ndarray]) -> list[Optional[np.ndarray]]:
        """Text boxes (N x 4 x 2, region pixels) of each region, one detector run per region
        (stacking equal-sized regions into one run was slower per image on CPU: measured); with
        OpenVINO the runs of a batch overlap, one per CPU stream."""
        import cv2

        det = ocr.text_det
        resized = []
        for region in regions:
            dh, dw = det_input_size(*region.shape[:2], self.det_scale)
            resized.append(cv2.resize(region, (dw, dh)) if (dh, dw) != region.shape[:2] else region)
        if self._ov is not None:  # normalisation compiled into the model (OpenVinoOcr)
            maps = self._ov.detect_many([np.ascontiguousarray(x)[None] for x in resized])
        else:
            maps = [det.infer(normalised_blob(x, det.mean, det.std))[0] for x in resized]
        out: list[Optional[np.ndarray]] = []
        for region, preds in zip(regions, maps):
            dt, _ = det.postprocess_op(preds, region.shape[:2])
            out.append(det.filter_tag_det_res(dt, region.shape[:2]))
        return out


def best_plate(lines: list[tuple[Any, str, float]]) -> tuple[Optional[str], Optional[float]]:
    """The best valid plate among OCR lines ``(box, text, score)`` and adjacent pairs of them."""
    # order lines left-to-right, top-to-bottom so pairs are neighbours
    def key(line):
        pts = np.asarray(line[0], dtype=float).reshape(-1, 2)
        return (round(pts[:, 1].mean() / 40), pts[:, 0].mean())

    lines = sorted(lines, key=key)
    readings: list[tuple[str, float]] = [(t, s) for _, t, s in lines]
    readings += [(a[1] + " " + b[1], min(a[2], b[2])) for a, b in zip(lines, lines[1:])]
    best: tuple[Optional[str], Optional[float]] = (None, None)
    for text, score in readings:
        plate = normalize_plate(text)
        if is_valid_plate(plate) and (best[1] is None or score > best[1]):
            best = (plate, round(score, 4))
    return best
