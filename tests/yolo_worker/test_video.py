"""Frame reading: stride, container timestamps at odd frame rates, unreadable files."""
import cv2
import numpy as np
import pytest

from video_analysis.worker_utils.errors import BadMedia
from video_analysis.yolo_worker.video import FrameReader, probe


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
