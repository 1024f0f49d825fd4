import cv2
import numpy as np
import pytest

from video_analysis.worker_utils import imaging


def _solid(h, w, value=200):
    return np.full((h, w, 3), value, np.uint8)


@pytest.mark.parametrize("h,w", [(1, 1), (10, 2000), (2000, 10), (1080, 1920), (700, 1300), (640, 640),
                                 (3, 641), (37, 51), (1, 639)])
def test_letterbox_is_640_square_centered_aspect_kept(h, w):
    out, info = imaging.letterbox(_solid(h, w), 640)
    assert out.shape == (640, 640, 3) and out.dtype == np.uint8
    content = np.argwhere(out[:, :, 0] == 200)
    y0, x0 = content.min(0)
    y1, x1 = content.max(0) + 1
    assert (x1 - x0, y1 - y0) == (info.new_w, info.new_h)
    assert max(info.new_w, info.new_h) == 640
    # aspect kept within 1 px on the short side
    if w >= h:
        assert abs(info.new_h - h * 640 / w) <= 1
    else:
        assert abs(info.new_w - w * 640 / h) <= 1
    # centered: the two pads differ by at most one pixel
    assert abs(x0 - (640 - x1)) <= 1 and abs(y0 - (640 - y1)) <= 1
    # padding uses the documented value
    if info.new_w < 640:
        assert (out[:, 0] == imaging.DEFAULT_PAD_VALUE).all()
    if info.new_h < 640:
        assert (out[0] == imaging.DEFAULT_PAD_VALUE).all()


def test_letterbox_accepts_grey_and_rejects_empty():
    out, _ = imaging.letterbox(np.zeros((5, 5), np.uint8))
    assert out.shape == (640, 640, 3)
    with pytest.raises(ValueError):
        imaging.letterbox(np.zeros((0, 5, 3), np.uint8))


@pytest.mark.parametrize("box,margin,expected", [
    ((10, 10, 20, 20), 0.0, (10, 10, 20, 20)),
    ((10, 10, 20, 20), 0.5, (5, 5, 25, 25)),
    ((-50, -50, 20, 20), 0.1, (0, 0, 27, 27)),
    ((90, 40, 300, 300), 0.0, (90, 40, 100, 50)),
    ((10.2, 10.7, 19.1, 19.9), 0.0, (10, 10, 20, 20)),
    ((20, 20, 10, 10), 0.0, (10, 10, 20, 20)),
    ((200, 200, 300, 300), 0.0, (99, 49, 100, 50)),
])
def test_clamp_box(box, margin, expected):
    assert imaging.clamp_box(box, 100, 50, margin) == expected


def test_crop_is_a_copy_from_the_full_frame():
    frame = np.arange(100 * 50 * 3, dtype=np.uint32).reshape(50, 100, 3).astype(np.uint8)
    crop = imaging.crop_with_margin(frame, (10, 10, 20, 20), 0.0)
    assert crop.shape == (10, 10, 3) and not np.shares_memory(crop, frame)
    assert (crop == frame[10:20, 10:20]).all()


def test_jpeg_round_trip_and_rejections():
    img = _solid(640, 640, 90)
    data = imaging.encode_jpeg(img, 90)
    assert data[:3] == imaging.JPEG_MAGIC
    assert imaging.decode_jpeg(data).shape == (640, 640, 3)
    png = cv2.imencode(".png", img)[1].tobytes()
    with pytest.raises(ValueError, match="PNG"):
        imaging.decode_jpeg(png)
    with pytest.raises(ValueError, match="do not decode"):
        imaging.decode_jpeg(data[:3] + b"\x00" * 20)


def test_sharpness_orders_sharp_above_blurred():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(img, (9, 9), 3)
    assert imaging.sharpness(img) > imaging.sharpness(blurred) > 0
    assert imaging.sharpness(np.zeros((0, 0), np.uint8)) == 0.0


def test_snapshot_from_frame():
    frame = _solid(432, 768, 50)
    snap = imaging.snapshot_from_frame(frame, (100, 100, 200, 150))
    assert snap.shape == (640, 640, 3)
