"""Frame reading: stride, container timestamps at odd frame rates, unreadable files."""
import cv2
import numpy as np
import pytest

from video_analysis.worker_utils.errors import BadMedia
from video_analysis.yolo_worker.video import FrameReader, decode_threads, probe


def write_clip(path, fps, n, size=(160, 120)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8))
    w.release()
    return path


@pytest.mark.parametrize("fps,stride", [(12.5, 1), (12.5, 3), (29.97, 2), (25.0, 5)])
def test_stride_and_timestamps(tmp_path, fps, stride):
    path = write_clip(tmp_path / "c.mp4", fps, 37)
    info = probe(path)
    assert (info.width, info.height, info.frame_count) == (160, 120, 37) and info.fps == pytest.approx(fps, abs=0.01)
    reader = FrameReader(path, stride)
    frames = list(reader)
    assert [f.index for f in frames] == list(range(0, 37, stride))
    assert all(abs(f.ts_ms - f.index * 1000 / fps) <= 1 for f in frames)  # container time, rounded to ms
    assert reader.frames_read == 37
    assert frames[0].image.shape == (120, 160, 3)


def test_timestamps_at_12_5_fps_are_80_ms_steps(tmp_path):
    frames = list(FrameReader(write_clip(tmp_path / "c.mp4", 12.5, 20), 1))
    assert [f.ts_ms for f in frames] == [i * 80 for i in range(20)]


@pytest.mark.parametrize("content,needle", [
    (b"", "not a readable video"),
    (b"this is not a video at all" * 100, "not a readable video"),
])
def test_unreadable_files(tmp_path, content, needle):
    p = tmp_path / "x.mp4"
    p.write_bytes(content)
    with pytest.raises(BadMedia, match=needle):
        probe(p)


def test_truncated_mp4(tmp_path):
    path = write_clip(tmp_path / "c.mp4", 25, 50)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # mp4v writes its index at the end: cut it off
    with pytest.raises(BadMedia):
        probe(path)


def test_reader_stops_early_without_leaking_its_thread(tmp_path):
    import threading

    reader = FrameReader(write_clip(tmp_path / "c.mp4", 25, 60), 1, queue_size=2)
    for f in reader:
        if f.index == 3:
            break
    assert not any(t.name == "frame-reader" and t.is_alive() for t in threading.enumerate())


def test_stride_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        FrameReader(tmp_path / "x.mp4", 0)


@pytest.mark.parametrize("setting, device, threads", [
    (None, "cpu", 1),       # a CPU detector keeps the cores busy: one decoding thread
    (None, "cuda:0", 0),    # beside a GPU the cores are free: FFmpeg's own choice
    (None, "cuda:1", 0),
    (None, "mps", 1),       # only cuda[:N] is a GPU here; anything else computes on the CPU
    (0, "cpu", 0),          # asked for: FFmpeg's own choice
    (3, "cpu", 3),
    (2, "cuda:0", 2),
])
def test_decode_threads(setting, device, threads):
    assert decode_threads(setting, device) == threads


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_the_decoders_threads_change_nothing_but_its_speed(tmp_path, threads):
    """FFmpeg decodes the same pixels on any number of threads; the reader reports how many it ran."""
    path = write_clip(tmp_path / "c.mp4", 25, 30, size=(320, 180))
    reference = list(FrameReader(path, 2, threads=1))
    reader = FrameReader(path, 2, threads=threads)
    assert reader.decoder_threads is None  # not open yet
    frames = list(reader)
    assert [(f.index, f.ts_ms) for f in frames] == [(f.index, f.ts_ms) for f in reference]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, reference))
    assert reader.decoder_threads == threads if threads else reader.decoder_threads >= 1


def test_a_file_the_decoder_cannot_open_is_bad_media_not_an_empty_video(tmp_path):
    reader = FrameReader(tmp_path / "missing.mp4", 1, threads=1)
    with pytest.raises(BadMedia, match="could not open missing.mp4"):
        list(reader)


def test_decode_threads_must_not_be_negative(tmp_path):
    with pytest.raises(ValueError, match="decode threads"):
        FrameReader(tmp_path / "x.mp4", 1, threads=-1)


def _box(kind: bytes, payload: bytes = b"", large: bool = False) -> bytes:
    import struct

    if large:  # 64-bit "largesize" header
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


FTYP = _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")


@pytest.mark.parametrize("data,needle", [
    (FTYP + _box(b"moov", b"x" * 40) + _box(b"mdat", b"y" * 100), None),  # fast start
    (FTYP + _box(b"free") + _box(b"mdat", b"y" * 100) + _box(b"moov", b"x" * 40), None),  # index at the end
    (FTYP + _box(b"moov", b"x" * 40) + _box(b"mdat", b"y" * 100, large=True), None),  # 64-bit box size
    (FTYP + _box(b"moov", b"x" * 40) + b"\x00\x00\x00\x00mdat" + b"y" * 50, None),  # size 0: runs to the end
    (FTYP + _box(b"moov", b"x" * 40) + _box(b"mdat", b"y" * 100)[:60], "truncated"),
    (FTYP + _box(b"mdat", b"y" * 100) + _box(b"moov", b"x" * 40)[:20], "truncated"),  # index cut off
    (FTYP + _box(b"mdat", b"y" * 100), "no 'moov' box"),
    (FTYP + _box(b"moov", b"x" * 40) + _box(b"mdat"), "no video frames"),
    (FTYP + _box(b"moov", b"x" * 40) + b"\x00\x00\x00\x03mdat", "invalid size"),
    (b"", "empty"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "looks like a JPEG image"),
    (b"\x1aE\xdf\xa3" + b"\x00" * 100, "looks like a Matroska/WebM file"),
    (b"<html><body>AccessDenied</body></html>", "looks like text"),
])
def test_container_problem(tmp_path, data, needle):
    from video_analysis.yolo_worker.video import container_problem

    p = tmp_path / "x.mp4"
    p.write_bytes(data)
    problem = container_problem(p)
    if needle is None:
        assert problem is None
    else:
        assert problem is not None and needle in problem
