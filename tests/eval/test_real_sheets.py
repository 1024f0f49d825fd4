"""eval/sheets.py: contact sheets for writing a ground truth (pure sheet builder + the writer)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from video_analysis.eval.sheets import GAP, RULER, contact_sheet, draw_tile, grid_step, write_sheets

CLIP = Path(__file__).resolve().parents[1] / "data" / "real" / "abhishek_highway.mp4"


def frames(n, h=360, w=640, value=90):
    return [np.full((h, w, 3), value + i, np.uint8) for i in range(n)]


@pytest.mark.parametrize("width,step", [(320, 25), (640, 50), (1280, 100), (1920, 200), (3840, 500)])
def test_grid_step_gives_a_readable_number_of_lines(width, step):
    assert grid_step(width) == step and 6 <= width / step <= 13


@pytest.mark.parametrize("n,cols,tile_width,shape", [
    (1, 3, None, (RULER + 360, RULER + 640, 3)),
    (4, 3, None, (2 * (RULER + 360) + GAP, 3 * (RULER + 640) + 2 * GAP, 3)),
    (2, 3, 320, (RULER + 180, 2 * (RULER + 320) + GAP, 3)),   # a short row is as wide as its tiles
])
def test_sheet_layout(n, cols, tile_width, shape):
    sheet = contact_sheet(frames(n), list(range(n)), cols=cols, tile_width=tile_width)
    assert sheet.shape == shape and sheet.dtype == np.uint8


def test_a_tile_carries_the_grid_at_original_pixels_and_the_frame_number():
    frame = np.full((720, 1280, 3), 100, np.uint8)
    tile = draw_tile(frame, 123, tile_width=640, grid=100)
    img = tile[RULER:, RULER:]
    assert img.shape == (360, 640, 3)
    # a grid line every 100 original px = every 50 tile px, blended over the frame; none between
    assert not np.array_equal(img[200, 50], [100, 100, 100]) and not np.array_equal(img[50, 300], [100, 100, 100])
    assert np.array_equal(img[210, 75], [100, 100, 100])
    # the frame number's dark label in the top-left corner, white text on it
    corner = img[:18, :40]
    assert (corner.max(axis=2) == 0).sum() > 100 and (corner.min(axis=2) > 200).sum() > 10
    # the rulers are drawn on the dark band above and left of the picture
    assert (tile[:RULER, RULER:].max(axis=2) > 150).sum() > 50


@pytest.mark.parametrize("args,fragment", [
    (([], []), "at least one frame"),
    ((frames(2), [0]), "2 frames but 1 frame numbers"),
    ((frames(1) + frames(1, h=100), [0, 1]), "same size"),
    (([np.zeros((10, 10), np.uint8)], [0]), "H x W x 3 uint8"),
])
def test_bad_input_says_what_is_wrong(args, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        contact_sheet(*args)


def test_write_sheets_on_the_real_clip(tmp_path):
    paths = write_sheets(CLIP, tmp_path, every=40, cols=2, rows=2, tile_width=320, end=200)
    # frames 0, 40, ..., 200: six tiles, four to a sheet
    assert [p.name for p in paths] == ["abhishek_highway_f000000-000120.jpg", "abhishek_highway_f000160-000200.jpg"]
    first = cv2.imread(str(paths[0]))
    assert first.shape == (2 * (RULER + 180) + GAP, 2 * (RULER + 320) + GAP, 3)
    with pytest.raises(ValueError, match="no frame in the range"):
        write_sheets(CLIP, tmp_path, start=1000)


def test_the_eval_sheets_command(tmp_path, capsys):
    from video_analysis.cli import main

    assert main(["eval", "sheets", str(CLIP), "--out", str(tmp_path), "--every", "170"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["every"] == 170 and [Path(p).name for p in out["sheets"]] == ["abhishek_highway_f000000-000340.jpg"]
    assert Path(out["sheets"][0]).exists()
