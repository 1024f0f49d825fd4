"""eval/real.py's scorer: counts per clip, as a table, and the invariants every report keeps."""
from __future__ import annotations

import pytest

from video_analysis.eval.real import Snapshot, Vehicle, score_snapshots, shifted, touches_edge

W, H = 640, 360
CAR1 = Vehicle("C1", 0, 50, boxes={0: (100, 100, 140, 130)})
CAR2 = Vehicle("C2", 0, 50, boxes={0: (300, 100, 340, 130)})
CAR3 = Vehicle("C3", 60, 90, boxes={60: (500, 200, 540, 230)})
HARD = Vehicle("H1", 0, 50, note="hard: tiny at the top", boxes={0: (400, 0, 410, 6)})
EDGE = Vehicle("E1", 0, 50, boxes={0: (0, 300, 60, 360)})


def snap(frame, box, track=None):
    return Snapshot(frame, tuple(float(v) for v in box), track)


KEYS = ("countable_vehicles", "exactly_one", "duplicated", "missed", "snapshots", "on_countable_vehicles",
        "on_hard_vehicles", "no_vehicle", "cut_off")


@pytest.mark.parametrize("snapshots,vehicles,expected", [
    # one each: perfect
    ([snap(10, (100, 100, 140, 130)), snap(20, (300, 100, 340, 130))], [CAR1, CAR2], (2, 2, 0, 0, 2, 2, 0, 0, 0)),
    # C1 twice, C2 never, one of the road, one of the hard car (free), C3 out of its frames
    ([snap(10, (100, 100, 140, 130)), snap(40, (102, 101, 141, 131)), snap(20, (0, 0, 30, 30)),
      snap(5, (399, 0, 411, 7)), snap(20, (500, 200, 540, 230))],
     [CAR1, CAR2, CAR3, HARD], (3, 0, 1, 2, 5, 2, 1, 2, 2)),   # cut off: the road one and the hard one touch y=0
    # a picture cut off at the frame edge still counts for its vehicle, and as cut off
    ([snap(30, (0, 305, 58, 360))], [EDGE, CAR1], (2, 1, 0, 1, 1, 1, 0, 0, 1)),
    # no snapshots: everything missed
    ([], [CAR1, CAR2, HARD], (2, 0, 0, 2, 0, 0, 0, 0, 0)),
    # only hard vehicles: nothing to count, nothing penalised
    ([snap(3, (400, 0, 410, 6))], [HARD], (0, 0, 0, 0, 1, 0, 1, 0, 1)),
])
def test_score_table(snapshots, vehicles, expected):
    got = score_snapshots(snapshots, vehicles, W, H)
    c = got["counts"]
    assert tuple(c[k] for k in KEYS) == expected
    assert c["exactly_one"] + c["duplicated"] + c["missed"] == c["countable_vehicles"]
    assert c["on_countable_vehicles"] + c["on_hard_vehicles"] + c["no_vehicle"] == c["snapshots"]
    assert c["recall_exactly_one"] == (round(c["exactly_one"] / c["countable_vehicles"], 4)
                                       if c["countable_vehicles"] else 1.0)
    assert [v["id"] for v in got["vehicles"]] == [v.id for v in vehicles]
    assert len(got["snapshot_list"]) == len(snapshots)
    assert sum(len(v["snapshots"]) for v in got["vehicles"]) == c["snapshots"] - c["no_vehicle"]


def test_per_snapshot_and_per_vehicle_details():
    got = score_snapshots([snap(10, (100, 100, 140, 130), 7), snap(12, (0, 0, 30, 30), 8)], [CAR1, HARD], W, H)
    assert got["snapshot_list"] == [
        {"frame": 10, "box": [100.0, 100.0, 140.0, 130.0], "track_id": 7, "vehicle": "C1", "matched_by": "box",
         "cut_off": False},
        {"frame": 12, "box": [0.0, 0.0, 30.0, 30.0], "track_id": 8, "vehicle": None, "matched_by": None,
         "cut_off": True}]
    assert got["vehicles"][0] == {"id": "C1", "kind": "", "countable": True, "frames": [0, 50], "boxes": 1,
                                  "snapshots": [0]}
    assert got["matched_by"] == {"box": 1, "range": 0}


def test_a_ground_truth_shifted_in_time_scores_worse():
    snaps = [snap(10, (100, 100, 140, 130)), snap(20, (300, 100, 340, 130))]
    good = score_snapshots(snaps, [CAR1, CAR2], W, H)["counts"]
    bad = score_snapshots(snaps, shifted([CAR1, CAR2], 200), W, H)["counts"]
    assert good["exactly_one"] == 2 and bad["exactly_one"] == 0 and bad["no_vehicle"] == 2


@pytest.mark.parametrize("box,edge_px,cut", [
    ((10, 10, 50, 50), 2, False), ((2, 10, 50, 50), 2, True), ((10, 10, 638, 50), 2, True),
    ((10, 10, 50, 357.5), 2, False), ((10, 10, 50, 357.5), 3, True), ((10, 0, 50, 50), 0, True),
])
def test_cut_off_means_within_edge_px_of_the_frame_edge(box, edge_px, cut):
    assert touches_edge(box, W, H, edge_px) is cut


# A vehicle leaving at the bottom: its drawn box reaches the frame edge (H = 360) from frame 30 on.
LEAVING = Vehicle("R9", 0, 40, "car", "", {0: (300, 250, 360, 300), 30: (300, 300, 360, 360), 40: (300, 330, 360, 360)})


@pytest.mark.parametrize("frame,box,vehicle,cut", [
    (0, (300, 250, 360, 300), LEAVING, False),     # a whole view
    (35, (300, 315, 360, 352), LEAVING, True),     # the detector's box ends 8 px short; the drawn one does not
    (35, (300, 315, 360, 352), None, False),       # no vehicle matched: the snapshot's own box decides
    (35, (300, 315, 360, 359), None, True),
    (15, (300, 275, 360, 330), LEAVING, False),    # interpolated: 330 at frame 15, clear of the edge
])
def test_cut_off_is_judged_by_the_drawn_box_where_there_is_one(frame, box, vehicle, cut):
    from video_analysis.eval.real import cut_off

    assert cut_off(snap(frame, box), vehicle, W, H) is cut
