import cv2
import numpy as np
import pytest

from video_analysis.main_worker.color import estimate_fbl, fbl_from_heads
from video_analysis.main_worker.plate import PlateReader, best_plate
from video_analysis.worker_utils.imaging import letterbox
from video_analysis.worker_utils.vocab import COLOR_BASES, COLOR_BGR, is_valid_plate, normalize_plate


@pytest.mark.parametrize("raw,norm,valid", [
    ("ABC 1234", "ABC 1234", True), ("abc1234", "ABC 1234", True), ("ABC-123", "ABC 123", True),
    ("123 ABC", "123 ABC", True), ("AB 12345", "AB 12345", True), ("A1B2", "A1B2", False),
    ("ABCD 1234", "ABCD 1234", False), ("", "", False),
])
def test_plate_rules(raw, norm, valid):
    assert normalize_plate(raw) == norm and is_valid_plate(norm) is valid


def test_best_plate_joins_split_lines_and_ignores_junk():
    lines = [([[10, 10], [60, 10], [60, 40], [10, 40]], "NAB", 0.95),
             ([[70, 12], [140, 12], [140, 40], [70, 40]], "4521", 0.9),
             ([[10, 100], [200, 100], [200, 130], [10, 130]], "TOYOTA", 0.99)]
    assert best_plate(lines) == ("NAB 4521", 0.9)
    assert best_plate([]) == (None, None)


def test_ocr_reads_a_rendered_plate():
    img = np.full((640, 640, 3), 90, np.uint8)
    cv2.rectangle(img, (170, 400), (470, 470), (255, 255, 255), -1)
    cv2.putText(img, "NDA 4821", (185, 452), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 4)
    text, conf = PlateReader().read(img)
    assert text == "NDA 4821" and 0.5 < conf <= 1.0


@pytest.mark.parametrize("base", ["Red", "Blue", "White", "Black", "Yellow", "Green"])
def test_classical_colour_on_a_flat_body(base):
    body = np.zeros((200, 400, 3), np.uint8)
    body[:] = COLOR_BGR[base]
    cv2.rectangle(body, (0, 150), (400, 200), (60, 60, 60), -1)  # tyres / road strip
    snap, _ = letterbox(body, 640)
    fbl = estimate_fbl(snap)
    assert 1 <= len(fbl) <= 3 and fbl[0]["base"] == base and fbl[0]["conf"] > 0.5
    assert set(fbl[0]) == {"finish", "base", "lightness", "conf"}


def test_fbl_from_heads():
    pb = np.zeros(len(COLOR_BASES)); pb[COLOR_BASES.index("Silver")] = 0.7; pb[COLOR_BASES.index("Gray")] = 0.3
    fbl = fbl_from_heads(pb, np.array([0.1, 0.1, 0.8]), np.array([0.9, 0.1]), [None, "Matte", "Metallic"], [None, "Light"])
    assert fbl == [{"finish": "Metallic", "base": "Silver", "lightness": None, "conf": 0.7},
                   {"finish": None, "base": "Gray", "lightness": None, "conf": 0.3}]
