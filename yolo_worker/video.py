"""Video input: probe a file, then read every ``stride``-th frame with its container timestamp.

Frames are ``H x W x 3`` uint8 BGR at the video's full resolution.  Skipped frames are only
``grab()``-ed (demuxed and decoded as the codec requires, never converted to BGR).  Reading
runs on its own thread with a small bounded queue, so decoding overlaps detection while
memory stays bounded.

Timestamps come from the container (``CAP_PROP_POS_MSEC`` of each frame), so they are right
for odd (12.5, 29.97 fps) and variable frame rates, not ``index / fps``.
"""
from __future__ import annotations

import queue
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


def probe(path: str | Path) -> VideoInfo:
    """Open ``path`` and read its stream properties; BadMedia when it is not a readable video."""
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


def _reader(path: str, stride: int, out: "queue.Queue", stop: threading.Event) -> None:
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        index = -1
        while not stop.is_set():
            if not cap.grab():
                break
            index += 1
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
        cap.release()


class FrameReader:
    """Iterate ``Frame``s of every ``stride``-th frame; ``frames_read`` counts all frames seen."""

    def __init__(self, path: str | Path, stride: int, queue_size: int = 4):
        if stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {stride}")
        self.path, self.stride = str(path), stride
        self._q: "queue.Queue" = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.frames_read = 0

    def __iter__(self) -> Iterator[Frame]:
        self._thread = threading.Thread(target=_reader, args=(self.path, self.stride, self._q, self._stop),
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
