"""eval/run_record.py: the snapshots.json `analyze` writes, and reading a run back for `eval real --run`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from video_analysis.eval.run_record import (FROM_LOG, FROM_MS, dumps_record, logged_frames, read_run,
                                            snapshot_record)
from video_analysis.yolo_worker.video import VideoInfo

VID = "c54bf7bd-f5ae-42c4-948e-225bcd0b2c8f"
INFO = VideoInfo(640, 360, 30000 / 1001, 341)


def log_line(track_id, frame_index, ms, video_id=VID, msg="snapshot ready"):
    return json.dumps({"level": "INFO", "msg": msg, "video_id": video_id, "track_id": track_id,
                       "detected_in_ms": ms, "frame_index": frame_index})


def row(track_id, ms, bbox=(10, 20, 50, 60)):
    return {"track_id": track_id, "detected_in_ms": ms, "bbox": list(bbox) if bbox else None, "yolo_type": "Car",
            "snapshot_s3_key": f"s3://b/demo_user/w/v/snapshots/CTX1005_CAM1_{track_id:06d}_{ms:06d}.jpg"}


def test_logged_frames_reads_only_this_videos_snapshot_lines():
    lines = [log_line(4, 18, 601), "not json", '{"msg": "snapshot ready", broken',
             log_line(5, 99, 3303, video_id="other"), log_line(6, 27, 901, msg="progress"), log_line(7, 60, 2002)]
    assert logged_frames(lines, VID) == {4: (18, 601), 7: (60, 2002)}
    assert set(logged_frames(lines)) == {4, 5, 7}


@pytest.mark.parametrize("logged,frames,source", [
    ({4: (18, 601), 7: (60, 2002)}, [18, 60], FROM_LOG),
    ({4: (18, 601)}, [18, 60], FROM_MS),          # track 7 not logged: its frame from the timestamp
    ({4: (18, 999), 7: (60, 2002)}, [18, 60], FROM_MS),  # a logged line of another offset is not trusted
    ({}, [18, 60], FROM_MS),
])
def test_snapshot_record(logged, frames, source):
    rec = snapshot_record([row(4, 601), row(7, 2002)], logged, video="clip.mp4", width=640, height=360,
                          fps=INFO.fps, frame_count=341, frame_stride=3, detector="d.pt")
    assert [s["frame_index"] for s in rec["snapshots"]] == frames and rec["frame_index_from"] == source
    assert rec["snapshots"][0] == {"track_id": 4, "frame_index": 18, "detected_in_ms": 601, "box": [10, 20, 50, 60],
                                   "yolo_type": "Car", "file": "CTX1005_CAM1_000004_000601.jpg"}
    text = dumps_record(rec)
    assert json.loads(text) == rec
    assert text.count('{"track_id"') == 2 and len(text.splitlines()) == 15  # 11 header lines, a line each


def write_run(root: Path, record=None, results=None) -> Path:
    report = root / "report"
    report.mkdir(parents=True)
    if record is not None:
        (report / "snapshots.json").write_text(dumps_record(record))
    if results is not None:
        (report / "results.json").write_text(json.dumps(results))
    return root


def record(video="abhishek_highway.mp4", width=640):
    return snapshot_record([row(7, 2002, (30, 40, 70, 80)), row(4, 601)], {4: (18, 601), 7: (60, 2002)}, video=video,
                           width=width, height=360, fps=INFO.fps, frame_count=341, frame_stride=3, detector="d.pt")


def test_read_run_from_snapshots_json(tmp_path):
    snaps, run = read_run(write_run(tmp_path, record()), Path("x/abhishek_highway.mp4"), INFO)
    assert [(s.frame, s.box, s.track_id) for s in snaps] == [(18, (10.0, 20.0, 50.0, 60.0), 4),
                                                               (60, (30.0, 40.0, 70.0, 80.0), 7)]
    assert run["frame_index_from"] == FROM_LOG and run["detector"] == "d.pt" and run["frame_stride"] == 3
    # the report directory itself works too
    assert read_run(tmp_path / "report", Path("abhishek_highway.mp4"), INFO)[0] == snaps


def test_read_run_from_an_older_results_json(tmp_path):
    results = {"video": {"s3_key_raw": "demo_user/w/v/raw/abhishek_highway.mp4", "frame_stride": 3},
               "video_info": {"width": 640, "height": 360}, "analyses": [row(4, 601), row(9, 1001, None)]}
    snaps, run = read_run(write_run(tmp_path, results=results), Path("abhishek_highway.mp4"), INFO)
    assert [(s.frame, s.track_id) for s in snaps] == [(18, 4)]
    assert run["frame_index_from"] == FROM_MS and run["snapshots_without_box"] == 1


@pytest.mark.parametrize("rec,video,fragment", [
    (record(), "other.mp4", "that run analysed abhishek_highway.mp4, not other.mp4"),
    (record(width=1280), "abhishek_highway.mp4", "frames are 1280x360"),
    ({**record(), "format": "x/9"}, "abhishek_highway.mp4", "expected 'cvitx-snapshots/1'"),
])
def test_read_run_refuses_another_videos_run(tmp_path, rec, video, fragment):
    with pytest.raises(ValueError) as exc:
        read_run(write_run(tmp_path, rec), Path(video), INFO)
    assert fragment in str(exc.value)


def test_read_run_names_what_it_wants(tmp_path):
    with pytest.raises(ValueError, match="no report/snapshots.json or report/results.json"):
        read_run(tmp_path, Path("a.mp4"), INFO)
