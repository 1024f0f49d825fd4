"""Honest demo weights (issue 15, deliverable 7): which stages run the bundled demo weights,
when ``analyze`` warns (a video the scene generator did not make), and the report naming the
weights of every stage with the notice at its top."""
from __future__ import annotations

import json

import pytest

from video_analysis.cli.weights_notice import demo_stages, demo_weights_notice, is_generated_clip, stage_weights
from video_analysis.report.html import write_report
from video_analysis.worker_config import PACKAGE_DIR, Settings

DEMO_MAIN = str(PACKAGE_DIR / "main_worker" / "bundle" / "demo" / "main.pt")


@pytest.mark.parametrize("changes,stages", [
    ({}, ["detector", "main model"]),
    ({"main_model_path": DEMO_MAIN}, ["detector", "main model"]),  # the same file, named absolutely
    ({"main_model_path": "/models/main.onnx"}, ["detector"]),
    ({"detector_path": "/models/yolov8m.pt", "main_model_path": "/models/main.onnx"}, []),
    ({"main_mode": "compare"}, ["detector", "main model", "cmt model"]),
    ({"main_mode": "compare", "cmt_model_path": "/models/cmt.pt2"}, ["detector", "main model"]),
])
def test_demo_stages(changes, stages):
    s = Settings().replace(**changes)
    assert demo_stages(s) == stages
    assert list(stage_weights(s)) == ["detector", "main model"] + (["cmt model"] if s.main_mode == "compare" else [])


@pytest.mark.parametrize("meta,frames,generated", [
    ({"config": {"seed": 1}, "frames": 250}, 250, True),
    ({"config": {"seed": 1}, "frames": 250}, 249, False),  # another video under the same name
    ({"frames": 250}, 250, False),
    (None, 250, False),  # no sidecar: a user's own file
    ("not json", 250, False),
])
def test_is_generated_clip(tmp_path, meta, frames, generated):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    if meta is not None:
        video.with_suffix(".json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    assert is_generated_clip(video, frames) is generated


def test_the_notice_says_which_weights_and_what_to_do(tmp_path):
    video = tmp_path / "carpark.mp4"
    video.write_bytes(b"")
    text = demo_weights_notice(Settings().replace(main_model_path="/models/main.onnx"), video, 100)
    assert text.startswith("the demo detector: these weights were trained on generated traffic scenes only")
    assert "(--detector, --main-model; README, 'Bring your own models')" in text
    assert demo_weights_notice(Settings(), video, 100).startswith("the demo detector and main model: ")
    assert demo_weights_notice(Settings().replace(detector_path="/m/d.pt", main_model_path="/m/m.onnx"), video,
                               100) is None
    video.with_suffix(".json").write_text(json.dumps({"config": {}, "frames": 100}))
    assert demo_weights_notice(Settings(), video, 100) is None  # a generated clip: the weights' own world


def test_real_footage_gets_the_shipped_coco_detector_and_generated_clips_keep_the_demo_one(tmp_path):
    from video_analysis.cli.weights_notice import COCO_DETECTOR, detector_for_video

    assert COCO_DETECTOR.is_file() and COCO_DETECTOR.with_name("yolox_nano.card.json").is_file()
    video = tmp_path / "pole-camera.mp4"
    video.write_bytes(b"")
    real = detector_for_video(Settings(), video, 100)
    assert real.detector_path == str(COCO_DETECTOR) and demo_stages(real) == ["main model"]
    assert demo_weights_notice(real, video, 100).startswith("the demo main model: ")  # the classifier still is
    own = Settings().replace(detector_path="/models/yolov8m.pt")
    assert detector_for_video(own, video, 100) is own  # a team's own detector stays
    video.with_suffix(".json").write_text(json.dumps({"config": {}, "frames": 100}))
    assert detector_for_video(Settings(), video, 100).detector_path == Settings().detector_path  # generated


def test_the_report_names_the_weights_and_puts_the_notice_on_top(tmp_path):
    weights = stage_weights(Settings())
    index = write_report(tmp_path, title="t", video={"id": "v", "status": "done"}, analyses=[], timings={},
                         weights=weights, notice="the demo detector and main model: trained on <generated> scenes")
    html = index.read_text()
    assert html.index("id=weights-notice") < html.index("<h1>")
    assert "trained on &lt;generated&gt; scenes" in html  # escaped
    assert f"detector <code>{weights['detector']}</code>" in html and "main model <code>" in html
    plain = write_report(tmp_path / "plain", title="t", video={}, analyses=[], timings={}).read_text()
    assert "weights-notice" not in plain and "id=weights" not in plain


ANALYSIS = {"track_id": 7, "detected_in_ms": 1200, "yolo_type": "Car", "status": "done",
            "snapshot_s3_key": "snapshots/ws/v/000007_001200.jpg",
            "results": [{"variant": "baseline", "type": "Motorcycle", "make": "Yamaha", "model": "Mio",
                         "type_conf": 0.9, "make_conf": 0.8, "model_conf": 0.7, "colors": [], "plate": None}]}


def test_the_demo_main_model_on_real_footage_is_marked_as_demo_weights(tmp_path, capsys):
    """Issue 24: on real footage the demo classifier said Motorcycle / Yamaha / Mio for every car;
    the rows are still written, but the report and the summary show the detector's type as the
    result and mark the classifier's answers as demo weights."""
    from types import SimpleNamespace

    from video_analysis.cli.analyze import DEMO_COLUMNS, print_summary
    from video_analysis.cli.weights_notice import demo_classifier_on_real_footage

    video = tmp_path / "pole.mp4"
    video.write_bytes(b"")
    assert demo_classifier_on_real_footage(Settings(), video, 10)
    assert not demo_classifier_on_real_footage(Settings().replace(main_model_path="/m/main.onnx"), video, 10)
    marked = write_report(tmp_path / "m", title="t", video={}, analyses=[ANALYSIS], timings={},
                          demo_classifier=True).read_text()
    plain = write_report(tmp_path / "p", title="t", video={}, analyses=[ANALYSIS], timings={}).read_text()
    assert "main model (demo weights)" in marked and "demo weights: <b>Motorcycle</b>" in marked
    assert "demo weights" not in plain and "<b>Motorcycle</b>" in plain
    assert '<span class="tag">Car</span>' in marked  # the detector's type, as it is

    print_summary(SimpleNamespace(analyses=[ANALYSIS]), demo_classifier=True)
    out = capsys.readouterr().out
    assert f"[{DEMO_COLUMNS}] type / make / model" in out and "[Motorcycle / Yamaha / Mio]" in out and "[70%]" in out
    print_summary(SimpleNamespace(analyses=[ANALYSIS]))
    assert "[" not in capsys.readouterr().out
