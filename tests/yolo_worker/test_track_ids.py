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


# --- stitching fragments of one vehicle -----------------------------------------------------------
# A car driving left 10 px a processed frame, last seen at step 4 (then hidden).
HIDDEN = _h((330, 180, 410, 220), (320, 180, 400, 220), (310, 180, 390, 220), (300, 180, 380, 220))


@pytest.mark.parametrize("box,gap", [
    ((298, 180, 378, 220), 0.475),   # it stopped behind the bus: where it was last seen (38 px off the prediction)
    ((260, 180, 340, 220), 0.0),     # where its speed puts it four frames on
    ((240, 181, 322, 221), 0.2375),  # a little further than expected, still within half a box
    ((300, 212, 380, 252), None),    # the lane below (bottom edge 32 px off: 0.8 of the height)
    ((150, 180, 230, 220), None),    # far beyond where it could be
    ((365, 180, 445, 220), None),    # behind where it was last seen: another vehicle coming up
    ((270, 170, 350, 230), None),    # 1.5x taller: another vehicle
])
def test_continuation_gap(box, gap):
    from video_analysis.yolo_worker.track_ids import continuation_gap, is_continuation

    got = continuation_gap(HIDDEN, 8, np.array(box, np.float64))
    assert (got is None) if gap is None else got == pytest.approx(gap, abs=0.01)
    assert is_continuation(HIDDEN, 8, np.array(box, np.float64)) is (gap is not None)


def _row(*b):
    return np.array([*b, 0.9, 0], np.float32)


def _hide_then_reappear(ids, new_box, new_step=8, other=(500, 100, 540, 130)):
    for step, (_s, b) in enumerate(HIDDEN, start=1):
        ids.relabel(step, [(7, _row(*b)), (12, _row(*other))])
    for step in range(5, new_step):
        ids.relabel(step, [(12, _row(*other))])
    return ids.relabel(new_step, [(12, _row(*other)), (30, _row(*new_box))])


def test_a_new_tracker_id_continues_the_vehicle_lost_behind_something():
    ids = TrackIds(max_age=10, frame_size=(640, 360))
    rows = _hide_then_reappear(ids, (290, 180, 370, 220))
    assert [i for i, _ in rows] == [2, 1] and ids.stitched == 1  # tracker id 30 carries on as vehicle 1
    assert ids.relabel(9, [(30, _row(285, 180, 365, 220))])[0][0] == 1
    # the tracker's old id coming back now is another vehicle: a new id, never a second "1"
    assert ids.relabel(10, [(30, _row(280, 180, 360, 220)), (7, _row(100, 180, 180, 220))]) [1][0] == 3


@pytest.mark.parametrize("kw,new_box,new_step,why", [
    ({"stitch": False}, (290, 180, 370, 220), 8, "stitching off"),
    ({}, (290, 180, 370, 220), 16, "lost longer than max_age"),
    ({}, (0, 180, 70, 220), 8, "the new box is at the frame edge: a vehicle entering"),
])
def test_no_stitch(kw, new_box, new_step, why):
    ids = TrackIds(max_age=10, frame_size=(640, 360), **kw)
    rows = _hide_then_reappear(ids, new_box, new_step)
    assert [i for i, _ in rows] == [2, 3] and ids.stitched == 0, why


def test_a_vehicle_that_left_at_the_edge_is_not_stitched():
    ids = TrackIds(max_age=10, frame_size=(640, 360))
    leaving = _h((60, 180, 140, 220), (30, 180, 110, 220), (1, 180, 80, 220))
    for step, (_s, b) in enumerate(leaving, start=1):
        ids.relabel(step, [(7, _row(*b))])
    assert ids.relabel(5, [(30, _row(5, 180, 70, 220))])[0][0] == 2 and ids.stitched == 0


# A light truck leaving at the left edge (13 px a frame), as on the dense e2e clip.
EDGE_LEAVER = [(39, 184, 143, 248), (26, 184, 130, 248), (13, 184, 117, 248), (0, 183, 104, 248)]


@pytest.mark.parametrize("frame_size,new_box,split,why", [
    ((640, 360), (0, 195, 72, 275), True, "its id handed to a truck entering in the lane below (1.2x taller)"),
    ((640, 360), (0, 186, 90, 250), False, "still in its own lane: the same truck, cut by the edge"),
    (None, (0, 195, 72, 275), False, "frame size unknown: the edge rule is off (and 1.2x is no hand-over)"),
])
def test_an_id_left_at_the_frame_edge_is_not_handed_to_another_lane(frame_size, new_box, split, why):
    ids = TrackIds(max_age=10, frame_size=frame_size)
    for step, b in enumerate(EDGE_LEAVER, start=1):
        assert ids.relabel(step, [(7, _row(*b))])[0][0] == 1
    assert (ids.relabel(5, [(7, _row(*new_box))])[0][0] == 2) is split, why
