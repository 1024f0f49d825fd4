"""Detect -> track -> best frame per track, streaming finished tracks out as the video is read.

No S3, SQS or SQL here: the caller hands in ``emit(FinishedTrack)`` and gets each track as
soon as it ends (lost for more than ``track_max_age`` processed frames) or, for tracks
still live, when the video ends.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Protocol

import numpy as np

from ..worker_config import Settings
from ..worker_utils.errors import PermanentError, WorkerError, inference_error
from ..worker_utils.imaging import clamp_box, crop_with_margin, sharpness
from .containers import drop_containers
from .motion import MotionGate
from .segments import WHOLE, Segment, describe
from .selection import FinishedTrack, TrackBook, make_candidate
from .track_ids import TrackIds
from .video import Frame, FrameReader, VideoInfo, decode_threads

if TYPE_CHECKING:
    from .detector import DetectorStages

log = logging.getLogger(__name__)


class DetectorLike(Protocol):
    """``detect(frame) -> D x 6``; a detector may also have ``prepare(width, height)``, called
    with the video's frame size before the first frame (the exported runtime's input size),
    ``detect_batch(frames) -> [D x 6]`` (used when ``settings.detector_batch`` > 1) and
    ``stages(width, height) -> DetectorStages | None`` (its steps, run apart: see :func:`detected`)
    and ``device`` (``cpu``, ``cuda:N``: where it computes; without it, ``cpu``), which sizes the
    decoder's threads (video.decode_threads)."""

    def detect(self, frame: np.ndarray) -> np.ndarray: ...


# One frame of a detector job: the frame, whether the detector runs on it (motion gating), and
# its prepared network input when the detector is staged (else None; the error when that failed).
Job = tuple[Frame, bool, "np.ndarray | BaseException | None"]


class TrackerLike(Protocol):
    def update(self, dets: np.ndarray, frame: np.ndarray) -> np.ndarray: ...


@dataclass
class PipelineStats:
    frames_read: int = 0
    frames_processed: int = 0
    tracks_emitted: int = 0
    tracks_dropped: int = 0  # too few hits, or static false positives (below)
    tracks_dropped_static: int = 0  # static tracks that never reached static_min_conf
    tracks_not_owned: int = 0  # began outside the segment's range: another segment emits them
    frames_outside: int = 0  # processed frames outside the segment's range (warm-up and tail)
    # Of the processed frames: how many the detector ran on, how many got the last detected
    # frame's detections again because nothing moved (motion gating, motion.py).
    frames_detected: int = 0
    frames_carried: int = 0
    wall_s: float = 0.0
    first_emit_s: Optional[float] = None  # seconds from start to the first emitted track
    # How far the decoder had got (frames grabbed from the file) when the first track had been
    # emitted: below the video's frame count = snapshots flow out while the video is read.
    first_emit_frames_grabbed: Optional[int] = None
    decode_threads: Optional[int] = None  # FFmpeg's decoding threads (video.decode_threads)

    @property
    def fps(self) -> float:
        return self.frames_processed / self.wall_s if self.wall_s > 0 else 0.0


def track_rows(dets: np.ndarray, tracks: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(track_id, detection row)`` for each confirmed track: boxes are the detector's own
    (the tracker's are Kalman-smoothed and may run off the vehicle), class and conf too."""
    rows = []
    for t in tracks:
        det_idx = int(t[7])
        if 0 <= det_idx < len(dets):
            rows.append((int(t[4]), dets[det_idx]))
    return rows


def run_pipeline(path: str | Path, info: VideoInfo, stride: int, settings: Settings, detector: DetectorLike,
                 tracker: TrackerLike, emit: Callable[[FinishedTrack], None],
                 check_cancelled: Callable[[], None] = lambda: None,
                 on_progress: Callable[[dict], None] = lambda _p: None,
                 on_tracks: Optional[Callable[[int, list[tuple[int, np.ndarray]]], None]] = None,
                 report: Callable[[Optional[str]], None] = lambda _stage=None: None,
                 segment: Segment = WHOLE) -> PipelineStats:
    """Process ``path``; calls ``emit`` once per kept track, in order of track end, on a
    background thread (:class:`Emitter`) so that detection never waits for it; returns once
    every track is emitted, or raises the first exception ``emit`` raised.

    ``report(stage)`` is told of real work as it happens (the poller's stall detection): the
    stage when it changes, then ``report(None)`` per processed frame and per emitted track.
    ``on_progress(figures)`` gets the progress figures every ``progress_interval_s``.

    ``on_tracks(frame_index, [(track_id, detection row)])``, when given, sees every processed
    frame's confirmed tracks (evaluation, annotated video).

    ``segment`` (segments.py; default the whole video): read from its warm-up frame, emit only
    the tracks that begin in its owned range, numbered from its first id, and stop after its
    end once none of those is live, or at its tail frame.
    """
    prepare = getattr(detector, "prepare", None)
    if prepare is not None and info.width > 0 and info.height > 0:
        prepare(info.width, info.height)  # export / load the runtime for this size (not timed)
    stats = PipelineStats()
    book = TrackBook(max_age=settings.track_max_age, min_hits=settings.min_track_hits,
                     static_min_conf=settings.static_min_conf, owns=None if segment is WHOLE else segment.owns)
    t0 = time.perf_counter()
    batch = max(1, settings.detector_batch)
    reader = FrameReader(path, stride, queue_size=max(4, batch),
                         threads=decode_threads(settings.decode_threads, getattr(detector, "device", "cpu")),
                         start=segment.warm_frame)
    gate = MotionGate.from_settings(settings)

    def _emitted(_ft: FinishedTrack) -> None:  # on the emitter thread, once emit() has returned
        report(None)
        stats.tracks_emitted += 1
        if stats.first_emit_s is None:
            stats.first_emit_s = time.perf_counter() - t0
            stats.first_emit_frames_grabbed = reader.frames_grabbed

    emitter = Emitter(emit, _emitted)
    try:
        report("detect and track")
        _run(reader, detector, tracker, settings, book, emitter, stats, batch, t0, check_cancelled, on_progress,
             on_tracks, info, report, gate, segment)
        report("emit the last snapshots")
        emitter.close()  # every snapshot written and announced (or the first emit error raised)
    except BaseException:
        emitter.abort()
        raise
    stats.frames_read = reader.frames_read
    stats.decode_threads = reader.decoder_threads
    stats.tracks_dropped, stats.tracks_dropped_static = book.dropped, book.dropped_static
    stats.tracks_not_owned = book.not_owned
    stats.wall_s = time.perf_counter() - t0
    return stats


def _run(reader: FrameReader, detector: DetectorLike, tracker: TrackerLike, settings: Settings, book: TrackBook,
         emitter: "Emitter", stats: PipelineStats, batch: int, t0: float, check_cancelled: Callable[[], None],
         on_progress: Callable[[dict], None],
         on_tracks: Optional[Callable[[int, list[tuple[int, np.ndarray]]], None]], info: VideoInfo,
         report: Callable[[Optional[str]], None], gate: Optional[MotionGate], segment: Segment) -> None:
    """The frame loop of :func:`run_pipeline`: finished tracks go to ``emitter``."""
    last_report = t0
    ids = TrackIds(settings.track_max_age, frame_size=(info.width, info.height) if info.width > 0 else None,
                   first_id=segment.first_track_id)

    def _emit(finished: list[FinishedTrack]) -> None:
        for ft in finished:
            emitter.put(ft)

    # closing(): when this loop fails (tracker, emitter), the detector's worker thread stops now,
    # not whenever the garbage collector gets to the generator: the next video shares the detector.
    with contextlib.closing(detected(reader, detector, batch, check_cancelled, gate=gate)) as stream:
        for step, (frame, dets) in enumerate(stream, start=1):
            img = frame.image
            h, w = img.shape[:2]
            dets = drop_containers(dets)
            tracks = tracker.update(dets, img)
            rows = ids.relabel(step, track_rows(dets, tracks))
            if ids.next_id - 1 > segment.last_track_id:  # before any such id reaches a snapshot name
                raise PermanentError(f"{describe(segment, info.fps)} needs more than the "
                                     f"{segment.last_track_id - segment.first_track_id + 1} track ids of its block "
                                     "(the next segment's ids follow them); lower segment_s")
            if on_tracks is not None:
                on_tracks(frame.index, rows)
            for track_id, det in rows:
                x1, y1, x2, y2 = clamp_box(det[:4], w, h)
                cand = make_candidate(frame.index, frame.ts_ms, det[:4], det[4], int(det[5]),
                                      sharpness(img[y1:y2, x1:x2]), w, h)
                book.observe(step, cand, track_id, lambda box, img=img: crop_with_margin(img, box, settings.crop_margin))
            _emit(book.expire(step))
            stats.frames_processed = step
            if not segment.owns(frame.index):
                stats.frames_outside += 1
            _count_gated(stats, gate)
            report(None)
            now = time.perf_counter()
            if now - last_report >= settings.progress_interval_s:
                last_report = now
                on_progress(_progress(stats, reader.frames_read, info, len(book.live), now - t0, segment))
            if segment.past_tail(frame.index) or (segment.past_end(frame.index) and not book.owns_live()):
                break  # the segment's own tracks have all ended (or its tail is spent)
    _emit(book.flush())


def _count_gated(stats: PipelineStats, gate: Optional[MotionGate]) -> None:
    """``frames_detected`` / ``frames_carried`` of the frames processed so far.  The gate decides
    when a frame is handed to the detector thread, up to one job ahead of the tracker: its
    counts are capped at the frames the tracker has seen."""
    if gate is None:
        stats.frames_detected, stats.frames_carried = stats.frames_processed, 0
    else:
        stats.frames_carried = min(gate.carried, stats.frames_processed)
        stats.frames_detected = stats.frames_processed - stats.frames_carried


class Emitter:
    """Calls ``emit(track)`` for each :meth:`put` track on its own thread, in order, then
    ``on_emitted(track)``.

    Why: emitting is I/O (JPEG encode, S3 put, a DB insert, an SQS send: tens of ms per
    snapshot against AWS) that would otherwise stall detection on the main thread.  The queue
    is bounded (``maxsize`` finished tracks, each one crop), so memory stays flat.  The first
    exception of ``emit`` stops the emitter: later tracks are skipped and :meth:`put` /
    :meth:`close` raise that exception (with its type: transient or permanent) in the caller.
    The thread runs in a copy of the caller's context, so its log lines keep the message and
    video ids.
    """

    def __init__(self, emit: Callable[[FinishedTrack], None], on_emitted: Callable[[FinishedTrack], None],
                 maxsize: int = 16):
        import contextvars
        import queue
        import threading

        self._emit, self._on_emitted = emit, on_emitted
        self._q: "queue.Queue[Optional[FinishedTrack]]" = queue.Queue(maxsize=maxsize)
        self._error: Optional[BaseException] = None
        self._aborted = False
        ctx = contextvars.copy_context()
        self._thread = threading.Thread(target=ctx.run, args=(self._loop,), name="snapshot-emitter", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            ft = self._q.get()
            if ft is None:
                return
            if self._error is not None or self._aborted:
                continue  # drain without emitting: the caller is failing or stopping
            try:
                self._emit(ft)
                self._on_emitted(ft)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self._error = exc

    def put(self, ft: FinishedTrack) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(ft)

    def close(self) -> None:
        """Wait until every track put so far is emitted; raise the first emit error, if any."""
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Skip the tracks not yet emitted (the one in flight finishes) and wait for the thread."""
        self._aborted = True
        self._q.put(None)
        self._thread.join()


def detected(frames: Iterable[Frame], detector: DetectorLike, batch: int = 1,
             check_cancelled: Callable[[], None] = lambda: None, ahead: bool = True,
             gate: Optional[MotionGate] = None) -> Iterator[tuple[Frame, np.ndarray]]:
    """``(frame, D x 6 detections)`` for each frame, in order.

    ``gate`` (motion gating): a frame where nothing moved since the last detected frame is not
    detected; it gets a copy of that frame's detections (the gate decides in frame order, before
    the frame is handed to the detector thread).

    ``batch`` > 1 (and a detector with ``detect_batch``): frames are detected ``batch`` at a time,
    one forward pass each (the GPU path: a batched fp16 pass costs little more than one frame);
    the tracker still sees them one by one, in order.

    ``ahead`` (default): the next frame (or batch) is detected on a worker thread while the caller
    tracks the current one, so the tracker, the best-frame bookkeeping and the detector overlap
    instead of taking turns (the runtimes release the GIL while they compute).  One job runs at a
    time, in order; at most two jobs' frames (``2 x batch``) are held.  An exception of the
    detector reaches the caller, with its type, at the frame it belongs to.

    A detector with ``stages(width, height)`` (an exported runtime, ``detector.DetectorStages``)
    at ``batch`` 1 runs in three steps: the network's input is prepared (letterbox) and its output
    turned into detections (NMS) on the caller's thread, and only the network runs on the
    detector thread.  Why: that Python holds the GIL.  On the detector thread it started just as
    the tracker's Python did, and waited for it: at 320 px (Intel Xeon, 2 cores, 1 OpenVINO
    thread) its pre-processing took 0.9 ms a frame there against 0.33 ms alone, and the pipeline
    ran at 0.77 of the detector-only rate.  Here it runs while the network computes.
    """
    detect_batch = getattr(detector, "detect_batch", None) if batch > 1 else None
    stages_of = getattr(detector, "stages", None) if detect_batch is None else None
    staged: list[Optional["DetectorStages"]] = []  # the detector's stages (or None), resolved at the first frame
    last: list[np.ndarray] = [np.zeros((0, 6), np.float32)]  # the last detected frame's detections

    def typed(frame: Frame, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with a failure typed here, at the frame it belongs to: the poller
        decides from the type."""
        try:
            return fn(*args)
        except WorkerError:
            raise
        except Exception as exc:  # noqa: BLE001 - any library error of the detector
            raise inference_error("detector", f"frame {frame.index}", exc) from exc

    def run(job: list[Job]) -> list[np.ndarray]:
        """On the detector thread: for each frame of ``job`` to detect, the network's raw output
        (staged) or its detections."""
        todo = [(f, x) for f, detect, x in job if detect and not isinstance(x, BaseException)]
        if not todo:
            return []
        st = staged[0]
        if st is not None:
            return [typed(f, st.infer, x) for f, x in todo]
        if detect_batch is None:
            return [typed(f, detector.detect, f.image) for f, _x in todo]
        return typed(todo[0][0], detect_batch, [f.image for f, _x in todo])

    def finish(job: list[Job], results: list[np.ndarray]) -> list[tuple[Frame, np.ndarray]]:
        """On the caller's thread, in order: each frame of ``job`` with its detections (NMS here
        when staged); a frame not detected gets a copy of the last detected frame's."""
        fresh = iter(results)
        st, out = staged[0], []
        for f, detect, x in job:
            if isinstance(x, BaseException):  # its input could not be prepared (jobs())
                raise x
            if detect:
                r = next(fresh)
                last[0] = typed(f, st.post, r, x, f.image) if st is not None else r
                out.append((f, last[0]))
            else:
                out.append((f, last[0].copy()))
        return out

    def jobs() -> Iterator[list[Job]]:
        job: list[Job] = []
        size = batch if detect_batch is not None else 1
        for frame in frames:
            check_cancelled()
            if not staged:
                h, w = frame.image.shape[:2]
                staged.append(typed(frame, stages_of, w, h) if stages_of is not None else None)
            detect = gate is None or gate.should_detect(frame.image)
            try:
                x = typed(frame, staged[0].pre, frame.image) if detect and staged[0] is not None else None
            except WorkerError as exc:  # raised by finish() at this frame, after the frames before it
                # (staged jobs are one frame each: `job` is empty here, nothing before it is held back)
                yield job + [(frame, detect, exc)]
                return
            job.append((frame, detect, x))
            if len(job) == size:
                yield job
                job = []
        if job:
            yield job

    if not ahead:
        for job in jobs():
            yield from finish(job, run(job))
        return
    import contextvars
    from concurrent.futures import Future, ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector")
    ctx = contextvars.copy_context()  # the detector's log lines keep the message and video ids
    in_flight: Optional[tuple[list[Job], Future]] = None
    try:
        for job in jobs():
            if in_flight is not None and in_flight[1].done() and in_flight[1].exception() is not None:
                in_flight[1].result()  # a failed detection raises before more work is started
            submitted = (job, pool.submit(ctx.run, run, job))
            if in_flight is not None:
                done, fut = in_flight
                in_flight = submitted
                results = finish(done, fut.result())
                del fut, done  # hold only the job in flight and the one being handed out
                yield from results
                del results
            else:
                in_flight = submitted
        if in_flight is not None:
            done, fut = in_flight
            in_flight = None
            yield from finish(done, fut.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a closed generator leaves no detection running


def _progress(stats: PipelineStats, frames_read: int, info: VideoInfo, live: int, elapsed: float,
              segment: Segment = WHOLE) -> dict:
    """The progress line's figures; a segment's frames, percentage and ETA count from its warm-up
    frame to its end (its tail, only as long as its vehicles, is not in the total)."""
    fps = stats.frames_processed / elapsed if elapsed > 0 else 0.0
    end = segment.end_frame if segment.end_frame is not None else info.frame_count
    total = max(0, end - segment.warm_frame) if end else 0
    read = max(0, frames_read - segment.warm_frame)
    eta = max(0, total - read) / max(read / elapsed, 1e-9) if total and elapsed > 0 else None
    out = {"frames_read": read, "frames_total": total or None, "processed_fps": round(fps, 1),
           "live_tracks": live, "snapshots_sent": stats.tracks_emitted,
           "frames_detected": stats.frames_detected, "frames_carried": stats.frames_carried,
           "pct": round(min(100.0, 100.0 * read / total), 1) if total else None,
           "eta_s": round(eta, 1) if eta is not None else None}
    if segment.count > 1:
        out["segment"] = f"{segment.index + 1}/{segment.count}"
    return out
