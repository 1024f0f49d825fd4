import numpy as np
import pytest

from video_analysis.eval.metrics import iou_matrix, mot_metrics, snapshot_coverage


@pytest.mark.parametrize("a,b,iou", [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0), ((0, 0, 10, 10), (5, 0, 15, 10), 1 / 3),
    ((0, 0, 10, 10), (20, 20, 30, 30), 0.0), ((0, 0, 10, 10), (0, 0, 5, 5), 0.25),
])
def test_iou(a, b, iou):
    assert iou_matrix([a], [b])[0, 0] == pytest.approx(iou)


def test_perfect_tracking_and_an_id_switch():
    gt = {f: [(1, (f, 0, f + 10, 10)), (2, (50, 50, 60, 60))] for f in range(10)}
    hyp = {f: [(7, (f, 0, f + 10, 10)), (8, (50, 50, 60, 60))] for f in range(10)}
    m = mot_metrics(gt, hyp, range(10))
    assert m["mota"] == 1.0 and m["idf1"] == 1.0 and m["id_switches"] == 0
    hyp2 = {f: [(7 if f < 5 else 9, (f, 0, f + 10, 10)), (8, (50, 50, 60, 60))] for f in range(10)}
    assert mot_metrics(gt, hyp2, range(10))["id_switches"] == 1


def test_snapshot_coverage():
    gt = {3: [(1, (0, 0, 10, 10)), (2, (50, 50, 60, 60))], 6: [(1, (2, 0, 12, 10))]}
    cov = snapshot_coverage(gt, [(3, (0, 0, 10, 10)), (6, (2, 0, 12, 10)), (3, (100, 100, 110, 110))], [1, 2, 3])
    assert cov == {"vehicles": 3, "snapshots": 3, "exactly_one": 0, "more_than_one": 1, "missed": 2,
                   "unmatched_snapshots": 1, "recall_exactly_one": 0.0}
    cov = snapshot_coverage(gt, [(3, (0, 0, 10, 10)), (3, (50, 50, 60, 60))], [1, 2])
    assert cov["exactly_one"] == 2 and cov["recall_exactly_one"] == 1.0


@pytest.mark.parametrize("rows,box,expected", [
    ([], (0, 0, 10, 10), None),
    ([(1, (0, 0, 10, 10)), (2, (50, 50, 60, 60))], (0, 0, 10, 10), 1),
    ([(1, (0, 0, 10, 10)), (2, (50, 50, 60, 60))], (51, 50, 61, 60), 2),
    ([(1, (0, 0, 10, 10))], (5, 0, 15, 10), None),  # IoU 1/3 < 0.5
])
def test_best_match(rows, box, expected):
    from video_analysis.eval.metrics import best_match

    assert best_match(rows, box)[0] == expected


def test_pooled_coverage_adds_counts_and_recomputes_recall():
    from video_analysis.eval.tracking import pooled_coverage

    a = {"vehicles": 10, "snapshots": 9, "exactly_one": 8, "more_than_one": 1, "missed": 1, "unmatched_snapshots": 0,
         "recall_exactly_one": 0.8}
    b = {"vehicles": 30, "snapshots": 31, "exactly_one": 28, "more_than_one": 0, "missed": 2, "unmatched_snapshots": 3,
         "recall_exactly_one": 0.9333}
    out = pooled_coverage([a, b])
    assert out["vehicles"] == 40 and out["exactly_one"] == 36 and out["unmatched_snapshots"] == 3
    assert out["recall_exactly_one"] == 0.9  # pooled, not the mean of 0.8 and 0.9333


@pytest.mark.parametrize("fps,arg,stride", [(12.5, "auto", 1), (15.0, "auto", 1), (25.0, "auto", 3),
                                            (29.97, "auto", 3), (12.5, "2", 2)])
def test_eval_stride_choice(fps, arg, stride):
    from video_analysis.eval.__main__ import stride_for

    assert stride_for(fps, arg) == stride
