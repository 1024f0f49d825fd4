"""Contact sheets: grids of a video's frames, each with its frame number and a pixel ruler, for
writing a ground-truth file by looking (``python -m video_analysis eval sheets``).

A tile is one frame scaled to ``tile_width`` with grid lines every ``grid`` pixels *of the
original frame* and rulers above and left of it labelled in original-frame pixels, so a box read
off a tile (``x1, y1, x2, y2``) is already in the coordinates ``eval real`` expects.  The frame
number is printed in the tile's top-left corner, on a dark label so it stays legible on any scene.

:func:`contact_sheet` is pure (frames in, one BGR image out); :func:`write_sheets` reads the
video and writes the JPEG files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np

RULER = 22          # px: height of the top ruler / width of the left ruler, on the sheet
GAP = 6             # px between tiles
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BACKGROUND = (32, 32, 32)
_GRID = (0, 255, 255)  # yellow (BGR): visible on asphalt, sky and foliage alike
_TEXT = (235, 235, 235)


def grid_step(width: int) -> int:
    """A round grid spacing (original-frame px) giving about 6-13 lines across ``width``:
    640 -> 50, 1280 -> 100, 1920 -> 200."""
    for step in (10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if width / step <= 13:
            return step
    return 1000


def draw_tile(frame: np.ndarray, frame_index: int, tile_width: int, grid: int) -> np.ndarray:
    """One tile: ``frame`` (H x W x 3 uint8 BGR) scaled to ``tile_width`` wide, with grid lines
    every ``grid`` original-frame pixels, rulers (labels in original px) on top and left, and the
    frame number.  Returns (RULER + h') x (RULER + tile_width) x 3 uint8, h' = round(H * scale)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"a frame must be H x W x 3 uint8 BGR, got shape {frame.shape} dtype {frame.dtype}")
    if grid < 1:
        raise ValueError(f"grid must be >= 1 pixel, got {grid}")
    h, w = frame.shape[:2]
    scale = tile_width / w
    th = max(1, int(round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    img = cv2.resize(frame, (tile_width, th), interpolation=interp)
    # Thin lines blended at half strength: the grid must not hide a small far vehicle.
    lines = img.copy()
    for x in range(grid, w, grid):
        cv2.line(lines, (int(round(x * scale)), 0), (int(round(x * scale)), th - 1), _GRID, 1)
    for y in range(grid, h, grid):
        cv2.line(lines, (0, int(round(y * scale))), (tile_width - 1, int(round(y * scale))), _GRID, 1)
    img = cv2.addWeighted(lines, 0.5, img, 0.5, 0.0)
    tile = np.full((RULER + th, RULER + tile_width, 3), _BACKGROUND, np.uint8)
    tile[RULER:, RULER:] = img
    for x in range(0, w, grid):
        px = RULER + int(round(x * scale))
        cv2.line(tile, (px, RULER - 5), (px, RULER - 1), _TEXT, 1)
        if x and px + 24 < tile.shape[1]:
            cv2.putText(tile, str(x), (px - 10, RULER - 8), _FONT, 0.33, _TEXT, 1, cv2.LINE_AA)
    for y in range(0, h, grid):
        py = RULER + int(round(y * scale))
        cv2.line(tile, (RULER - 5, py), (RULER - 1, py), _TEXT, 1)
        if y:
            cv2.putText(tile, str(y), (1, py + 4), _FONT, 0.3, _TEXT, 1, cv2.LINE_AA)
    label = f"f{frame_index}"
    (tw, tht), _ = cv2.getTextSize(label, _FONT, 0.5, 1)
    cv2.rectangle(tile, (RULER, RULER), (RULER + tw + 6, RULER + tht + 8), (0, 0, 0), -1)
    cv2.putText(tile, label, (RULER + 3, RULER + tht + 3), _FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def contact_sheet(frames: Sequence[np.ndarray], indices: Sequence[int], cols: int = 3,
                  tile_width: Optional[int] = None, grid: Optional[int] = None) -> np.ndarray:
    """A grid of tiles (:func:`draw_tile`), row by row, ``cols`` per row.

    ``frames``: N same-size H x W x 3 uint8 BGR images; ``indices``: their N frame numbers.
    ``tile_width`` defaults to min(W, 640) and ``grid`` to :func:`grid_step` (W).  Returns one
    uint8 BGR image; unused cells of the last row stay background."""
    if not frames:
        raise ValueError("a contact sheet needs at least one frame")
    if len(frames) != len(indices):
        raise ValueError(f"{len(frames)} frames but {len(indices)} frame numbers; give one number per frame")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise ValueError("every frame of a sheet must have the same size")
    w = shape[1]
    tile_width = tile_width or min(w, 640)
    grid = grid or grid_step(w)
    tiles = [draw_tile(f, int(i), tile_width, grid) for f, i in zip(frames, indices)]
    th, tw = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * th + (rows - 1) * GAP, min(cols, len(tiles)) * (tw + GAP) - GAP, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * (th + GAP):r * (th + GAP) + th, c * (tw + GAP):c * (tw + GAP) + tw] = tile
    return sheet


def sampled_frames(video: str | Path, every: int, start: int = 0,
                   end: Optional[int] = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame index, BGR frame)`` of every ``every``-th frame from ``start`` up to ``end``
    (inclusive; None = the last).  Frames in between are only grabbed, never converted."""
    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise ValueError(f"{video}: OpenCV/FFmpeg cannot open it; give an H.264/MPEG-4 MP4")
    try:
        index = -1
        while cap.grab():
            index += 1
            if end is not None and index > end:
                break
            if index < start or (index - start) % every:
                continue
            ok, img = cap.retrieve()
            if not ok:
                break
            yield index, img
    finally:
        cap.release()


def write_sheets(video: str | Path, out_dir: str | Path, every: int = 10, cols: int = 3, rows: int = 4,
                 tile_width: Optional[int] = None, grid: Optional[int] = None, start: int = 0,
                 end: Optional[int] = None, quality: int = 90) -> list[Path]:
    """Write ``<stem>_f<first>-<last>.jpg`` sheets of ``rows`` x ``cols`` tiles (every ``every``-th
    frame) under ``out_dir``; returns the paths in frame order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(video).stem
    written: list[Path] = []
    batch: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        sheet = contact_sheet([f for _, f in batch], [i for i, _ in batch], cols, tile_width, grid)
        path = out / f"{stem}_f{batch[0][0]:06d}-{batch[-1][0]:06d}.jpg"
        if not cv2.imwrite(str(path), sheet, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"could not write {path}; check that the directory is writable")
        written.append(path)
        batch.clear()

    for item in sampled_frames(video, every, start, end):
        batch.append(item)
        if len(batch) == cols * rows:
            flush()
    if batch:
        flush()
    if not written:
        raise ValueError(f"{video}: no frame in the range asked for (start {start}, end {end})")
    return written
