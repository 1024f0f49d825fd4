"""eval/real.py: the ground-truth format and the snapshot -> vehicle matcher, as tables."""
from __future__ import annotations

import json

import pytest

from video_analysis.eval.real import (GroundTruthError, Snapshot, Vehicle, box_at, centre_inside, dump_ground_truth,
                                      match_snapshots, parse_ground_truth)

# A moves right 1 px a frame (boxes at 0 and 100); B stands still (one box); C and E have no boxes;
# D is hard; F and G overlap.
A = Vehicle("A", 0, 100, boxes={0: (0, 0, 10, 10), 100: (100, 0, 110, 10)})
B = Vehicle("B", 0, 100, boxes={0: (50, 50, 70, 70)})
C = Vehicle("C", 50, 150)
D = Vehicle("D", 0, 100, note="hard: far away", boxes={0: (200, 200, 220, 220)})
E = Vehicle("E", 120, 200)
F = Vehicle("F", 0, 10, boxes={0: (0, 0, 20, 20)})
G = Vehicle("G", 0, 10, boxes={0: (5, 5, 25, 25)})
P, Q = Vehicle("P", 0, 100), Vehicle("Q", 0, 50)
H = Vehicle("H", 0, 100, note="Hard: tiny")


@pytest.mark.parametrize("boxes,frame,expected", [
    ({}, 5, None),
    ({10: (0, 0, 10, 10)}, 0, (0, 0, 10, 10)),             # before the first given box: that box
    ({10: (0, 0, 10, 10)}, 99, (0, 0, 10, 10)),            # after the last: that box
    ({0: (0, 0, 10, 10), 100: (100, 0, 120, 20)}, 50, (50, 0, 65, 15)),  # linear in between
    ({0: (0, 0, 10, 10), 10: (10, 0, 20, 10), 30: (10, 20, 20, 30)}, 20, (10, 10, 20, 20)),  # the pair around it
])
def test_box_at(boxes, frame, expected):
    got = box_at(boxes, frame)
    assert got == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("box,region,grow,inside", [
    ((0, 0, 10, 10), (0, 0, 10, 10), 0.0, True),
    ((10, 0, 20, 10), (0, 0, 10, 10), 0.0, False),   # centre x 15 > 10
    ((10, 0, 20, 10), (0, 0, 10, 10), 0.5, True),    # grown to -5..15
    ((0, 0, 100, 100), (45, 45, 55, 55), 0.0, True),  # a huge box whose centre is on the vehicle
])
def test_centre_inside(box, region, grow, inside):
    assert centre_inside(box, region, grow) is inside


@pytest.mark.parametrize("snapshots,vehicles,expected", [
    # by box: the interpolated box at the snapshot's frame
    ([Snapshot(50, (50, 0, 60, 10))], [A, B, C], [("A", "box")]),
    ([Snapshot(10, (8, 0, 18, 10))], [A, B], [("A", "box")]),
    # where A was at frame 0, at frame 10 is no vehicle (A has moved on; C is not in view yet)
    ([Snapshot(10, (0, 0, 10, 10))], [A, B, C], [(None, None)]),
    # ... at frame 50 C (no boxes) is in view: a frame range is all it has, so it gets the snapshot
    ([Snapshot(50, (0, 0, 10, 10))], [A, B, C], [("C", "range")]),
    # a drawn box beats a frame range: B's box confirms it, C is in view too
    ([Snapshot(60, (55, 55, 65, 65))], [C, B], [("B", "box")]),
    # outside every frame range but E's
    ([Snapshot(200, (55, 55, 65, 65))], [A, B, C, E], [("E", "range")]),
    ([Snapshot(201, (55, 55, 65, 65))], [A, B, C, E], [(None, None)]),
    # a hard vehicle is matched like any other (the scorer decides what it counts for)
    ([Snapshot(50, (205, 205, 215, 215))], [A, D], [("D", "box")]),
    # both boxes contain the centre: the better overlap wins
    ([Snapshot(5, (6, 6, 24, 24))], [F, G], [("G", "box")]),
    ([Snapshot(5, (0, 0, 19, 19))], [F, G], [("F", "box")]),
    # frame ranges only: a maximum matching first, then a duplicate of the first candidate ...
    ([Snapshot(20, (0, 0, 9, 9)), Snapshot(30, (0, 0, 9, 9))], [P, Q], [("Q", "range"), ("P", "range")]),
    ([Snapshot(20, (0, 0, 9, 9)), Snapshot(30, (0, 0, 9, 9)), Snapshot(40, (0, 0, 9, 9))], [P, Q],
     [("Q", "range"), ("P", "range"), ("P", "range")]),
    # ... or a hard candidate, which costs nothing
    ([Snapshot(20, (0, 0, 9, 9)), Snapshot(30, (0, 0, 9, 9)), Snapshot(40, (0, 0, 9, 9))], [P, Q, H],
     [("Q", "range"), ("P", "range"), ("H", "range")]),
    # Q is out of view at 60: only P can take that one, so the matching moves the other snapshot to Q
    ([Snapshot(20, (0, 0, 9, 9)), Snapshot(60, (0, 0, 9, 9))], [P, Q], [("Q", "range"), ("P", "range")]),
    ([], [A, B], []),
    ([Snapshot(5, (0, 0, 10, 10))], [], [(None, None)]),
])
def test_match_snapshots(snapshots, vehicles, expected):
    got = [(m.vehicle, m.by) for m in match_snapshots(snapshots, vehicles)]
    assert got == expected


def test_the_grow_margin_decides_near_misses():
    s = [Snapshot(0, (110, 50, 130, 70))]  # centre x 120; B spans 50..70, grown by 0.25: 45..75
    assert match_snapshots(s, [B])[0].vehicle is None
    assert match_snapshots(s, [B], grow=2.5)[0].vehicle == "B"  # 50..70 grown by 50 px each side


def test_the_shared_frame_range_format_still_parses():
    data = [{"id": "R0", "first_frame": 0, "last_frame": 32, "kind": "car", "note": "dark hatchback"},
            {"id": "H1", "first_frame": 0, "last_frame": 45, "kind": "truck", "note": "hard: small van"}]
    vehicles = parse_ground_truth(data)
    assert [(v.id, v.countable, dict(v.boxes)) for v in vehicles] == [("R0", True, {}), ("H1", False, {})]


def test_boxes_parse_and_the_file_round_trips_one_vehicle_per_line():
    data = [{"id": "A", "first_frame": 0, "last_frame": 100, "kind": "car", "note": "",
             "boxes": {"100": [100, 0, 110, 10], "0": [0, 0, 10.5, 10]}}, {"id": 7, "first_frame": 3, "last_frame": 4}]
    vehicles = parse_ground_truth(data)
    assert list(vehicles[0].boxes) == [0, 100] and vehicles[0].boxes[0] == (0, 0, 10.5, 10)
    assert vehicles[1].id == "7" and vehicles[1].note == "" and vehicles[1].countable
    text = dump_ground_truth(vehicles)
    assert text.count("\n") == len(vehicles) + 2  # "[", one line each, "]"
    assert parse_ground_truth(json.loads(text)) == vehicles


@pytest.mark.parametrize("data,fragment", [
    ({"id": "A"}, "expected a JSON list"),
    (["A"], "vehicle #0: expected an object"),
    ([{"first_frame": 0, "last_frame": 1}], "'id' must be a non-empty string"),
    ([{"id": "A", "first_frame": 0, "last_frame": 1}, {"id": "A", "first_frame": 0, "last_frame": 1}], "used twice"),
    ([{"id": "A", "first_frame": -1, "last_frame": 1}], "'first_frame' must be a frame index"),
    ([{"id": "A", "first_frame": 0, "last_frame": "9"}], "'last_frame' must be a frame index"),
    ([{"id": "A", "first_frame": 5, "last_frame": 1}], "before first_frame"),
    ([{"id": "A", "first_frame": 0, "last_frame": 9, "box": {}}], "unknown key(s) ['box']"),
    ([{"id": "A", "first_frame": 0, "last_frame": 9, "boxes": [[0, 0, 1, 1]]}], "'boxes' must map a frame"),
    ([{"id": "A", "first_frame": 0, "last_frame": 9, "boxes": {"x": [0, 0, 1, 1]}}], "not a frame index"),
    ([{"id": "A", "first_frame": 0, "last_frame": 9, "boxes": {"10": [0, 0, 1, 1]}}],
     "outside the vehicle's frames 0..9"),
    ([{"id": "A", "first_frame": 0, "last_frame": 9, "boxes": {"1": [0, 0, 1]}}], "a box is [x1, y1, x2, y2]"),
    ([{"id": "A", "first_frame": 0, "last_frame": 9, "boxes": {"1": [5, 0, 1, 1]}}], "x2 <= x1"),
])
def test_malformed_ground_truth_says_what_to_fix(data, fragment):
    with pytest.raises(GroundTruthError) as exc:
        parse_ground_truth(data, "gt.json")
    assert fragment in str(exc.value) and str(exc.value).startswith("gt.json")
