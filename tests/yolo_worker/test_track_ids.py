"""The worker's own track ids (yolo_worker/track_ids.py): the hand-over rule as a table, then
relabelling over frames."""
from __future__ import annotations

import numpy as np
import pytest

from video_analysis.yolo_worker.track_ids import TrackIds, box_iou, is_handover, predicted_box


def _h(*boxes):
    """History of boxes at steps 1, 2, 3 ..."""
    return [(i + 1, np.array(b, np.float64)) for i, b in enumerate(boxes)]


@pytest.mark.parametrize("a,b,iou", [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
    ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
    ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),  # touching edges
    ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),
])
def test_box_iou(a, b, iou):
    assert box_iou(np.array(a, float), np.array(b, float)) == pytest.approx(iou)


def test_predicted_box_moves_at_the_recent_velocity():
    hist = _h((100, 50, 150, 80), (90, 50, 140, 80), (80, 50, 130, 80))  # 10 px left a frame
    assert predicted_box(hist, 5).tolist() == [60, 50, 110, 80]  # two frames on
    assert predicted_box(_h((1, 2, 3, 4)), 9).tolist() == [1, 2, 3, 4]  # one box: no velocity


# A vehicle leaving at the left edge (moving left 20 px a frame, h 37) ...
LEAVER = _h((87, 184, 190, 221), (67, 184, 170, 221), (47, 184, 150, 221), (27, 184, 130, 221))


@pytest.mark.parametrize("box,handover", [
    ((7, 184, 110, 221), False),     # where its motion puts it: the same vehicle
    ((2, 199, 83, 276), True),       # the id handed to a taller vehicle entering in the lane below
    ((2, 166, 60, 224), False),      # taller (1.6x), off its motion, but on its own lane line: cut by the edge
    ((40, 160, 120, 221), False),    # taller, bottom edge where expected: a box covering a roof rack
    ((2, 186, 83, 241), False),      # taller (1.5x), 20 px lower, but still overlapping its motion (IoU 0.47)
    ((7, 199, 110, 236), False),     # another lane, same height: the tracker's business, not ours
    ((2, 150, 83, 190), False),      # shorter but not 1.45x: noise
    ((2, 120, 83, 145), True),       # much shorter, another lane (above): handed over too
])
def test_handover_rule(box, handover):
    assert is_handover(LEAVER, 5, np.array(box, np.float64)) is handover


def test_ids_are_dense_from_1_and_a_handover_gets_a_new_id():
    ids = TrackIds(max_age=5)
    row = lambda *b: np.array([*b, 0.9, 0], np.float32)  # noqa: E731
    out = []
    for step, (_s, b) in enumerate(LEAVER, start=1):
        out.append(ids.relabel(step, [(7, row(*b)), (12, row(300, 100, 340, 130))]))
    assert [[i for i, _ in rows] for rows in out] == [[1, 2]] * 4  # tracker ids 7, 12 -> 1, 2
    handed = ids.relabel(5, [(7, row(2, 199, 83, 276)), (12, row(300, 100, 340, 130))])
    assert [i for i, _ in handed] == [3, 2] and ids.handovers == 1
    assert ids.relabel(6, [(7, row(4, 199, 95, 276))])[0][0] == 3  # the new vehicle keeps its id
    assert ids.relabel(7, [(30, row(500, 100, 540, 130))])[0][0] == 4  # next new track: next id
    np.testing.assert_array_equal(handed[0][1], row(2, 199, 83, 276))  # rows pass through untouched


def test_ids_of_tracks_the_tracker_dropped_are_forgotten():
    ids = TrackIds(max_age=2)
    box = np.array([10, 10, 50, 40, 0.9, 0], np.float32)
    ids.relabel(1, [(1, box)])
    for step in range(2, 6):
        ids.relabel(step, [])
    assert ids._tracks == {}  # no state kept per dropped track: memory stays flat over a long video
    assert ids.relabel(6, [(1, box)])[0][0] == 2  # a reused tracker id is a new track
