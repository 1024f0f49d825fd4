"""Best-frame ranking: border, oversize and a large confidence gap first, then area -> conf ->
sharpness -> center -> earlier, with tolerances."""
import numpy as np
import pytest

from video_analysis.yolo_worker.selection import Candidate, TrackBook, is_better, make_candidate

W, H = 1000, 600


def cand(frame=10, box=(400, 250, 600, 350), conf=0.8, sharp=100.0, cls=0):
    return make_candidate(frame, frame * 40, box, conf, cls, sharp, W, H)


@pytest.mark.parametrize("a,b,a_wins,why", [
    (cand(box=(400, 250, 600, 350)), cand(box=(400, 250, 560, 350)), True, "area 20% larger"),
    (cand(box=(400, 250, 600, 350), conf=0.5), cand(box=(400, 250, 590, 350), conf=0.9), False,
     "area within 10% -> conf decides"),
    (cand(box=(0, 250, 300, 400)), cand(box=(400, 250, 500, 300)), False, "border loses even when much larger"),
    (cand(box=(400, 250, 600, 350), conf=0.82, sharp=50), cand(box=(400, 250, 600, 350), conf=0.8, sharp=100), False,
     "conf within 0.05 -> sharpness decides"),
    (cand(sharp=105), cand(sharp=100, frame=20), True, "all tie within tolerance -> earlier wins"),
    (cand(sharp=105, frame=30), cand(sharp=100, frame=20), False, "all tie -> earlier wins (b)"),
    (cand(box=(450, 250, 650, 350), frame=30), cand(box=(700, 400, 900, 500), frame=20), True,
     "same area/conf/sharpness -> closer to centre"),
    (cand(box=(400, 250, 600, 350), conf=0.9), cand(box=(400, 250, 600, 350), conf=0.7), True, "higher conf"),
    (cand(box=(400, 250, 600, 350), sharp=200), cand(box=(400, 250, 600, 350), sharp=100), True, "sharper"),
    (cand(box=(350, 250, 650, 350), conf=0.3), cand(box=(400, 250, 550, 350), conf=0.8), False,
     "twice the area but 0.5 less sure: a merged box loses"),
    (cand(box=(350, 250, 650, 350), conf=0.55), cand(box=(400, 250, 550, 350), conf=0.8), True,
     "0.25 less sure is within the gate: area decides"),
    (cand(box=(0, 250, 300, 400), conf=0.95), cand(box=(400, 250, 500, 300), conf=0.3), False,
     "border comes before the confidence gate"),
])
def test_ranking(a, b, a_wins, why):
    assert is_better(a, b) is a_wins, why


def test_candidate_geometry():
    c = cand(box=(0, 0, 100, 100))
    assert c.touches_border and c.area == 10000
    centred = make_candidate(0, 0, (450, 250, 550, 350), 0.9, 0, 1.0, W, H)
    assert centred.center_dist == pytest.approx(0.0) and not centred.touches_border
    corner = make_candidate(0, 0, (990, 590, 1000, 600), 0.9, 0, 1.0, W, H)
    assert corner.center_dist == pytest.approx(np.hypot(495, 295) / np.hypot(500, 300))


def crop_fn(box):
    x1, y1, x2, y2 = (int(v) for v in box)
    return np.zeros((y2 - y1, x2 - x1, 3), np.uint8)


def test_book_keeps_only_the_best_crop_and_votes_type():
    book = TrackBook(max_age=2, min_hits=2)
    book.observe(1, cand(frame=1, box=(400, 250, 500, 300), cls=1, conf=0.9), 7, crop_fn)
    book.observe(2, cand(frame=2, box=(400, 250, 600, 350), cls=0, conf=0.7), 7, crop_fn)
    book.observe(3, cand(frame=3, box=(400, 250, 520, 310), cls=1, conf=0.9), 7, crop_fn)
    st = book.live[7]
    assert st.best.frame_index == 2 and st.best_crop.shape == (100, 200, 3)
    assert st.yolo_type == "SUV"  # votes: SUV 1.8 vs Car 0.7
    assert book.expire(5) == []  # unseen for 2 steps: not yet
    done = book.expire(6)
    assert [f.track_id for f in done] == [7] and done[0].hits == 3 and done[0].best.frame_index == 2
    assert book.live == {}


def test_short_tracks_are_dropped_and_flush_ends_everything():
    book = TrackBook(max_age=30, min_hits=3)
    for step in (1, 2, 3):
        book.observe(step, cand(frame=step), 1, crop_fn)
    book.observe(3, cand(frame=3), 2, crop_fn)
    out = book.flush()
    assert [f.track_id for f in out] == [1] and book.dropped == 1 and book.live == {}


def test_candidate_is_frozen():
    with pytest.raises(Exception):
        cand().conf = 1.0  # type: ignore[misc]
    assert isinstance(cand(), Candidate)


def _cand(frame, box, conf=0.9, w=640, h=360):
    from video_analysis.yolo_worker.selection import make_candidate

    return make_candidate(frame, frame * 80, box, conf, 0, 100.0, w, h)


def test_a_sudden_merged_box_does_not_win_on_area():
    """A box twice the track's usual size (the detector merged two vehicles) loses to a normal one,
    although "largest first" alone would pick it."""
    from video_analysis.yolo_worker.selection import TrackBook

    book = TrackBook(max_age=5, min_hits=1)
    crop = lambda box: np.zeros((2, 2, 3), np.uint8)  # noqa: E731
    for f, x in enumerate(range(100, 160, 10)):
        book.observe(f + 1, _cand(f, (x, 100, x + 60, 140)), 1, crop)
    book.observe(7, _cand(6, (160, 100, 280, 150)), 1, crop)  # merged: 120x50 vs 60x40
    (ft,) = book.flush()
    assert ft.best.area == 60 * 40 and not ft.best.oversized


def test_a_vehicle_entering_the_frame_still_gets_its_full_size_box():
    """Growing boxes at the border are not a size history: the first full box is not 'oversized'."""
    from video_analysis.yolo_worker.selection import TrackBook

    book = TrackBook(max_age=5, min_hits=1)
    crop = lambda box: np.zeros((2, 2, 3), np.uint8)  # noqa: E731
    for f, x2 in enumerate((10, 25, 40)):  # entering from the left edge
        book.observe(f + 1, _cand(f, (0, 100, x2, 140)), 1, crop)
    book.observe(4, _cand(3, (5, 100, 65, 140)), 1, crop)
    book.observe(5, _cand(4, (20, 100, 80, 140)), 1, crop)
    (ft,) = book.flush()
    assert not ft.best.touches_border and not ft.best.oversized and ft.best.area == 60 * 40


@pytest.mark.parametrize("box,prev,w,h,cut", [
    ((100, 100, 200, 200), None, 640, 360, False),
    ((1, 100, 60, 140), None, 640, 360, True),         # within BORDER_PX
    ((100, 100, 200, 357), None, 640, 360, True),      # 3 px short of the bottom: 1 % of 360 is 3.6 px
    ((100, 100, 200, 355), None, 640, 360, False),     # 5 px short, not moving: a whole view
    ((100, 100, 200, 713), None, 1280, 720, True),     # 7 px short at 720p: 1 % is 7.2 px
    ((100, 100, 200, 1070), None, 1920, 1080, True),   # 10 px short at 1080p: 1 % is 10.8 px
    ((100, 100, 200, 351), (100, 90, 200, 343), 640, 360, True),   # 9 px short and coming down 8 px a step
    ((100, 100, 200, 351), (100, 100, 200, 351), 640, 360, False),  # 9 px short, standing still (parked)
    ((100, 100, 200, 351), (100, 110, 200, 358), 640, 360, False),  # 9 px short, moving away from the edge
    ((100, 100, 200, 340), (100, 60, 200, 320), 640, 360, False),   # 20 px short: out of the zone, whole
    ((30, 100, 90, 140), (40, 100, 100, 140), 640, 360, False),     # leaving left, 30 px from it at 10 a step
    ((8, 100, 68, 140), (18, 100, 78, 140), 640, 360, True),        # leaving left, 8 px from it: in the zone
])
def test_cut_by_edge(box, prev, w, h, cut):
    from video_analysis.yolo_worker.selection import cut_by_edge

    assert cut_by_edge(box, w, h, prev) is cut


def test_an_oncoming_vehicle_gets_its_last_whole_view_not_its_biggest_cut_one():
    """An oncoming car grows towards the bottom edge; the detector's biggest boxes end 3-9 px short
    of it while the car runs out of the picture (issue 24): the snapshot is the last box clear of
    the approach zone, although the later ones are larger."""
    from video_analysis.yolo_worker.selection import TrackBook

    book = TrackBook(max_age=5, min_hits=1)
    crop = lambda box: np.zeros((2, 2, 3), np.uint8)  # noqa: E731
    bottoms = (280, 300, 320, 340, 351, 357)  # px, of a 360 px high frame
    for f, y2 in enumerate(bottoms):
        top = y2 - 40 - 4 * f  # growing as it comes nearer
        book.observe(f + 1, _cand(f, (300, top, 360 + 6 * f, y2)), 1, crop)
    (ft,) = book.flush()
    assert not ft.best.touches_border and ft.best.box[3] == 340, ft.best


# (name, per-observation centre shift in px, confidences, frames between observations, emitted?)
# The box is 40 x 30 px, so a static track's centre stays within 0.3 x 40 = 12 px.  Frames are
# 80 ms apart (_cand), so 8 observations 1 frame apart span 0.56 s: long enough to judge.
STATIC_CASES = [
    ("static, never sure: painted arrow / far-queue spot", 1.0, [0.3, 0.25, 0.2, 0.35, 0.3, 0.28, 0.22, 0.3], 1, False),
    ("static but once sure: a parked vehicle", 1.0, [0.3, 0.25, 0.45, 0.35, 0.3, 0.28, 0.22, 0.3], 1, True),
    ("unsure but moving: a far car", 3.0, [0.3, 0.25, 0.2, 0.35, 0.3, 0.28, 0.22, 0.3], 1, True),
    ("static, unsure, too short to judge (0.4 s)", 0.5, [0.3, 0.25, 0.2, 0.35, 0.3, 0.28], 1, True),
    ("static, unsure, long: 21 s of a sign", 0.0, [0.2] * 30, 9, False),
]


@pytest.mark.parametrize("name,step_px,confs,gap,emitted", STATIC_CASES, ids=[c[0] for c in STATIC_CASES])
def test_static_tracks_need_one_sure_detection(name, step_px, confs, gap, emitted):
    book = TrackBook(max_age=5, min_hits=3, static_min_conf=0.4)
    crop = lambda box: np.zeros((2, 2, 3), np.uint8)  # noqa: E731
    for i, conf in enumerate(confs):
        x = 300 + i * step_px
        book.observe(i + 1, _cand(i * gap, (x, 150, x + 40, 180), conf=conf), 1, crop)
    out = book.flush()
    assert (len(out) == 1) is emitted, name
    assert book.dropped_static == (0 if emitted else 1) and book.dropped == book.dropped_static


def test_static_test_off_at_zero():
    book = TrackBook(max_age=5, min_hits=1)  # static_min_conf defaults to 0: off
    crop = lambda box: np.zeros((2, 2, 3), np.uint8)  # noqa: E731
    for i in range(20):
        book.observe(i + 1, _cand(i, (300, 150, 340, 180), conf=0.12), 1, crop)
    assert len(book.flush()) == 1 and book.dropped_static == 0
