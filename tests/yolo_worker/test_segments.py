"""Segments of a long video (yolo_worker/segments.py): the plan, the frame-exact seek, which
tracks a segment owns, and the proof that a segmented run gives each vehicle the snapshots the
whole run gives it (generated clip with parked vehicles and long stops)."""
from __future__ import annotations

import numpy as np
import pytest

from video_analysis.worker_config import Settings
from video_analysis.yolo_worker.segments import WHOLE, Segment, describe, id_block, plan_segments
from video_analysis.yolo_worker.selection import TrackBook, make_candidate
from video_analysis.yolo_worker.video import FrameReader


@pytest.mark.parametrize("frames,fps,stride,seg_s,why", [
    (1500, 25.0, 3, 600.0, "60 s, shorter than a segment"),
    (15000, 25.0, 3, 600.0, "exactly one segment long"),
    (0, 25.0, 3, 600.0, "frame count unknown"),
    (90000, 0.0, 3, 600.0, "frame rate unknown"),
    (90000, 25.0, 3, 0.0, "segmenting off"),
])
def test_one_segment(frames, fps, stride, seg_s, why):
    assert plan_segments(frames, fps, stride, seg_s, 10.0, 60.0) == [WHOLE], why


@pytest.mark.parametrize("frames,count", [(15003, 3), (15003 + 499, 3), (15003 + 501, 4)])
def test_a_short_remainder_joins_the_last_segment(frames, count):
    assert len(plan_segments(frames, 25.0, 3, 200.0, 10.0, 60.0)) == count  # 200 s = 5001 frames


def test_a_long_video_is_tiled_by_stride_aligned_segments():
    segs = plan_segments(15003 + 1000, 25.0, 3, 200.0, 10.0, 60.0)  # 3 segments of 5001 frames, then 1000
    assert len(segs) == 4 and all(s.count == 4 for s in segs)
    assert [s.start_frame for s in segs] == [0, 5001, 10002, 15003]
    assert [s.end_frame for s in segs] == [5001, 10002, 15003, None]  # the last runs to the end
    for a, b in zip(segs, segs[1:]):
        assert a.end_frame == b.start_frame  # the owned ranges tile the video
    assert all(s.start_frame % 3 == 0 and s.warm_frame % 3 == 0 for s in segs)
    assert segs[0].warm_frame == 0 and segs[1].warm_frame == 5001 - 252  # 10 s = 250 frames, up to the stride
    assert segs[1].tail_frame == 10002 + 1500 and segs[-1].tail_frame is None
    assert [s.first_track_id for s in segs] == [1, 100001, 200001, 300001]
    assert segs[1].owns(5001) and segs[1].owns(10001) and not segs[1].owns(10002) and not segs[1].owns(5000)
    assert segs[-1].owns(10 ** 9) and not segs[-1].past_end(10 ** 9)


@pytest.mark.parametrize("count,block", [(1, 100000), (9, 100000), (24, 10000), (99, 10000), (100, 1000)])
def test_id_blocks_fit_six_digits(count, block):
    assert id_block(count) == block
    assert (count - 1) * block + block - 1 <= 999_999


def test_a_warmup_as_long_as_the_segment_is_refused():
    with pytest.raises(ValueError, match="warm-up"):
        plan_segments(90000, 25.0, 3, 10.0, 10.0, 60.0)
    with pytest.raises(ValueError, match="segment_warmup_s"):
        Settings(segment_s=10.0, segment_warmup_s=10.0)


def test_describe():
    seg = plan_segments(4 * 3600 * 25, 25.0, 3, 600.0, 10.0, 60.0)[2]
    assert describe(seg, 25.0) == "segment 3 of 24 (00:20:00-00:30:00)"


def test_a_seek_reads_the_frames_a_whole_read_gives(clip_factory):
    clip = clip_factory(seed=3, duration_s=8.0, fps=12.5)
    whole = {f.index: f for f in FrameReader(clip.video, 3)}
    part = list(FrameReader(clip.video, 3, start=51))
    assert [f.index for f in part] == [i for i in sorted(whole) if i >= 51]
    for f in part:
        assert f.ts_ms == whole[f.index].ts_ms and np.array_equal(f.image, whole[f.index].image)
    with pytest.raises(ValueError, match="multiple of the stride"):
        FrameReader(clip.video, 3, start=50)


def _cand(frame):
    return make_candidate(frame, frame * 40, (100, 100, 160, 140), 0.9, 0, 100.0, 640, 360)


def test_a_segment_emits_only_the_tracks_that_began_in_its_range():
    seg = Segment(1, 3, 30, 60, 18, 90, 100001)
    book = TrackBook(max_age=50, min_hits=1, owns=seg.owns)
    crop = lambda box: np.zeros((2, 2, 3), np.uint8)  # noqa: E731
    for step, frame in enumerate(range(18, 75, 3), start=1):
        book.observe(step, _cand(frame), 1, crop)  # began in the warm-up: the segment before owns it
        if frame >= 30:
            book.observe(step, _cand(frame), 2, crop)  # began in range
        if frame >= 60:
            book.observe(step, _cand(frame), 3, crop)  # began after the end: the next segment's
    assert book.owns_live()
    assert [ft.track_id for ft in book.flush()] == [2] and book.not_owned == 2


def test_segmented_snapshots_equal_the_whole_runs(clip_factory, demo_detector):
    """The proof, short: 60 s at 12.5 fps with 2 parked vehicles and long stops at the stop line,
    cut into 20 s segments (5 s warm-up, raised to the tracker's 7.4 s memory; 20 s tail): no
    vehicle the whole run gives one snapshot gets two or none, exactly-one stays within one
    vehicle of the whole run's, and the ids are unique across the segments, each in its
    segment's block.  (Here one vehicle the whole run already gives two snapshots, through an id
    stitched from another vehicle in segment 1's warm-up, gets a third: the segment's tracker,
    with another history, does not make that stitch.)"""
    from video_analysis.eval.tracking import compare_segmented

    clip = clip_factory(seed=7, duration_s=60.0, fps=12.5, parked=2, stop_probability=0.5)
    settings = Settings(device="cpu", segment_s=20.0, segment_warmup_s=5.0, segment_tail_s=20.0)
    out = compare_segmented(clip.video, settings, stride=3, detector=demo_detector)
    assert out["segment_count"] == 3
    whole, seg = out["whole"]["coverage"], out["segmented"]["coverage"]
    assert whole["vehicles"] >= 25 and whole["exactly_one"] >= 0.7 * whole["vehicles"]  # the clip is a fair test
    assert out["doubled"] == [] and out["lost"] == [], f"(whole, segmented) snapshots per vehicle: {out['differ']}"
    assert abs(seg["exactly_one"] - whole["exactly_one"]) <= 1 and len(out["differ"]) <= 1, out["differ"]
    assert seg["missed"] <= whole["missed"]
    ids = out["segmented"]["track_ids"]
    assert len(ids) == len(set(ids)) and {i // 100000 for i in ids} == {0, 1, 2}
    assert out["segmented"]["frames_processed"] > out["whole"]["frames_processed"]  # warm-ups and tails


def test_a_segment_that_runs_out_of_ids_stops_before_using_the_next_blocks(clip_factory, demo_detector):
    """Segment 1 of 99,999 has 10 ids (1-10); the clip has dozens of vehicles: a permanent error
    that says to lower segment_s, and no snapshot with an id of the next segment's block."""
    from video_analysis.worker_utils.errors import PermanentError
    from video_analysis.yolo_worker.pipeline import run_pipeline
    from video_analysis.yolo_worker.tracking import Tracker
    from video_analysis.yolo_worker.video import probe

    clip = clip_factory(seed=7, duration_s=60.0, fps=12.5, parked=2, stop_probability=0.5)
    info = probe(clip.video)
    seg = Segment(0, 99_999, 0, 10 ** 6, 0, 10 ** 6, 1)
    assert seg.last_track_id == 10
    settings = Settings(device="cpu")
    emitted: list = []
    with pytest.raises(PermanentError, match="needs more than the 10 track ids of its block.*lower segment_s"):
        run_pipeline(clip.video, info, 3, settings, demo_detector, Tracker(settings, (info.height, info.width)),
                     emit=emitted.append, segment=seg)
    assert all(ft.track_id <= 10 for ft in emitted)
