"""The HTML report's header (report/html.py): a segmented video says how many segments finished."""
from video_analysis.report.html import write_report


def test_a_segmented_video_shows_segments_done_of_total(tmp_path):
    video = {"id": "v1", "status": "processing", "segments": {"done": 3, "total": 10}}
    text = write_report(tmp_path / "s", title="t", video=video, analyses=[], timings={}).read_text()
    assert "status <b>processing</b> · segments 3 of 10 done" in text
    plain = write_report(tmp_path / "p", title="t", video={"id": "v2", "status": "done"}, analyses=[],
                         timings={}).read_text()
    assert "segments" not in plain.split("<h2>")[0]
