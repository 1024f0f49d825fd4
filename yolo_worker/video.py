"""Video input: probe a file, then read every ``stride``-th frame with its container timestamp.

Frames are ``H x W x 3`` uint8 BGR at the video's full resolution.  Skipped frames are only
``grab()``-ed (demuxed and decoded as the codec requires, never converted to BGR).  Reading
runs on its own thread with a small bounded queue, so decoding overlaps detection while
memory stays bounded.

Timestamps come from the container (``CAP_PROP_POS_MSEC`` of each frame), so they are right
for odd (12.5, 29.97 fps) and variable frame rates, not ``index / fps``.

Before OpenCV sees the file, :func:`container_problem` walks its top-level ISO-BMFF boxes
(a few seeks, never the whole file): FFmpeg happily "plays" a JPEG or PNG renamed ``.mp4``
as a one-frame video, and decodes a truncated fast-start MP4 (index at the front) up to the
cut without complaint, so both would otherwise finish as ``done`` with missing snapshots.
"""
from __future__ import annotations

import os
import queue
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from ..worker_utils.errors import BadMedia


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frame_count: int  # as the container declares it; 0 when unknown

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 and self.frame_count > 0 else 0.0


@dataclass(frozen=True)
class Frame:
    index: int  # 0-based index in the decoded stream
    ts_ms: int  # container timestamp, rounded to the millisecond
    image: np.ndarray


# Top-level box types an MP4/QuickTime file may start with.
_FIRST_BOXES = {b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"}
_SNIFF = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"GIF8", "a GIF image"),
          (b"RIFF", "a RIFF file (AVI/WAV/WebP)"), (b"\x1aE\xdf\xa3", "a Matroska/WebM file"),
          (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"ID3", "an MP3 file"))
_MAX_BOXES = 100_000


def _looks_like(head: bytes) -> str:
    for magic, what in _SNIFF:
        if head.startswith(magic):
            return what
    if head[:1] == b"\x47" and head[188:189] == b"\x47":
        return "an MPEG transport stream"
    if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head[:64]):
        return "text"
    return "not recognised"


def container_problem(path: str | Path) -> Optional[str]:
    """Why ``path`` is not a complete MP4 (ISO-BMFF), or None when its box structure is sound.

    Checks: not empty; starts with an MP4/QuickTime box; no top-level box runs past the end
    of the file (an interrupted upload); a ``moov`` (index) box exists; the media data
    (``mdat``) is not empty (a zero-frame file).
    """
    size = os.path.getsize(path)
    if size == 0:
        return "the file is empty (0 bytes); upload the complete video"
    pos, seen, mdat_payload = 0, set(), 0
    with open(path, "rb") as fh:
        head = fh.read(256)
        while pos < size and len(seen) < _MAX_BOXES:
            fh.seek(pos)
            hdr = fh.read(16)
            if len(hdr) < 8:
                return (f"the MP4 is truncated: the file ends inside a box header at byte {pos} of {size}; "
                        "the upload was cut short, upload the complete file")
            box_size, box_type = struct.unpack(">I4s", hdr[:8])
            header = 8
            if box_size == 1:
                if len(hdr) < 16:
                    return f"the MP4 is truncated inside a box header at byte {pos}; upload the complete file"
                box_size, header = struct.unpack(">Q", hdr[8:16])[0], 16
            elif box_size == 0:  # the last box runs to the end of the file
                box_size = size - pos
            if pos == 0 and box_type not in _FIRST_BOXES:
                return (f"not an MP4 file: it does not start with an MP4/ISO-BMFF box ('ftyp'); the content looks "
                        f"like {_looks_like(head)}; upload an H.264/MPEG-4 MP4")
            if box_size < header:
                return f"the MP4 is corrupt: top-level box {box_type!r} at byte {pos} has an invalid size {box_size}"
            if pos + box_size > size:
                name = box_type.decode("latin-1")
                return (f"the MP4 is truncated: its '{name}' box needs {box_size} bytes from byte {pos} but the file "
                        f"ends at byte {size} ({size - pos} of them present); the upload was cut short, upload the "
                        "complete file")
            seen.add(box_type)
            if box_type == b"mdat":
                mdat_payload += box_size - header
            pos += box_size
    if b"moov" not in seen:
        return "the MP4 has no 'moov' box (its index): the file is incomplete; upload the complete file"
    if mdat_payload == 0:
        return "the MP4 contains no video frames (its media data box is empty); upload a video with frames"
    return None


def probe(path: str | Path) -> VideoInfo:
    """Open ``path`` and read its stream properties; BadMedia when it is not a readable video."""
    problem = container_problem(path)
    if problem:
        raise BadMedia(f"not a readable video: {problem}")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise BadMedia("not a readable video (OpenCV/FFmpeg cannot open it: not an MP4, or truncated "
                           "before its index); provide a complete H.264/MPEG-4 MP4")
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        if w <= 0 or h <= 0:
            raise BadMedia("the file has no video stream with a frame size; upload a video MP4")
        ok = cap.grab()
        if not ok:
            raise BadMedia("the video has no decodable frames (empty or corrupt); re-encode and re-upload it")
        return VideoInfo(w, h, fps, n)
    finally:
        cap.release()


_END = object()


def decode_threads(setting: Optional[int], detector_device: str) -> int:
    """FFmpeg's decoding threads for ``decode_threads`` = ``setting`` beside a detector on
    ``detector_device`` (``cpu``, ``cuda:0`` ...); 0 = OpenCV's choice for FFmpeg (the usable cores,
    at most 16; OpenCV's OPENCV_FFMPEG_THREADS is not consulted once a count is passed).

    Unset: 1 beside a CPU detector, which keeps every core busy; FFmpeg's frame threads then
    only add their hand-offs (640x360 at stride 3 on a 2-core Xeon: 0.55 ms of CPU a processed
    frame on 1 thread, 0.8-1.2 ms on FFmpeg's 2, in the same wall time).  Beside a GPU detector the
    cores are free, and more threads decode a frame sooner (1080p: 3.5 vs 4.5 ms)."""
    if setting is not None:
        return setting
    return 0 if detector_device.startswith("cuda") else 1  # a GPU is "cuda[:N]", as everywhere here


def _reader(path: str, stride: int, threads: int, out: "queue.Queue", stop: threading.Event, grabbed: list,
            start: int = 0) -> None:
    cap = None
    try:
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
        if not cap.isOpened():
            raise OSError(f"OpenCV's FFmpeg backend could not open {os.path.basename(path)}: upload "
                          "an H.264/MPEG-4 MP4")
        grabbed[1] = int(cap.get(cv2.CAP_PROP_N_THREADS))  # what FFmpeg runs (0 asked: the core count)
        if start > 0:
            # FFmpeg seeks to the key frame before and decodes forward to the frame itself:
            # frame-exact (pixels and timestamps equal to reading from the start, on generated
            # and real H.264 MP4s); a position it cannot reach is refused, never guessed.
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            at = int(round(cap.get(cv2.CAP_PROP_POS_FRAMES)))
            if at != start:
                raise OSError(f"cannot seek to frame {start} (FFmpeg is at {at}); re-encode the video "
                              "with a constant frame rate")
        index = start - 1
        while not stop.is_set():
            if not cap.grab():
                break
            index += 1
            grabbed[0] = index + 1
            if index % stride:
                continue
            ts = cap.get(cv2.CAP_PROP_POS_MSEC)
            ok, img = cap.retrieve()
            if not ok:
                break
            item = Frame(index, int(round(ts)), img)
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
        out.put(("end", index + 1))
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
        out.put(exc)
    finally:
        if cap is not None:
            cap.release()


class FrameReader:
    """Iterate ``Frame``s of every ``stride``-th frame; ``frames_read`` counts all frames seen.

    ``frames_read`` counts frames up to the last one handed out; ``frames_grabbed`` is how far
    the decoding thread has got (it runs ahead by up to ``queue_size`` processed frames).
    """

    def __init__(self, path: str | Path, stride: int, queue_size: int = 4, threads: int = 0, start: int = 0):
        """``threads``: FFmpeg's decoding threads (:func:`decode_threads`; 0 = its own choice);
        ``start``: the first frame to read (a multiple of ``stride``: a segment's warm-up frame),
        indices stay those of the whole video."""
        if stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {stride}")
        if threads < 0:
            raise ValueError(f"decode threads must be >= 0, got {threads}")
        if start < 0 or start % stride:
            raise ValueError(f"start frame {start} must be a multiple of the stride {stride}")
        self.path, self.stride, self.threads, self.start = str(path), stride, threads, start
        self._q: "queue.Queue" = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.frames_read = 0
        self._grabbed = [0, None]  # frames grabbed, decoder threads: written by the reader thread

    @property
    def frames_grabbed(self) -> int:
        return self._grabbed[0]

    @property
    def decoder_threads(self) -> Optional[int]:
        """FFmpeg's decoding threads once the file is open (None before)."""
        return self._grabbed[1]

    def __iter__(self) -> Iterator[Frame]:
        self._thread = threading.Thread(target=_reader, args=(self.path, self.stride, self.threads, self._q, self._stop,
                                                                   self._grabbed, self.start),
                                        name="frame-reader", daemon=True)
        self._thread.start()
        try:
            while True:
                item = self._q.get()
                if isinstance(item, Frame):
                    self.frames_read = item.index + 1
                    yield item
                elif isinstance(item, BaseException):
                    raise BadMedia(f"video decoding failed: {type(item).__name__}: {item}")
                else:
                    self.frames_read = item[1]
                    return
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                try:  # unblock a reader waiting on a full queue
                    self._q.get_nowait()
                except queue.Empty:
                    pass
                self._thread.join(timeout=0.05)
