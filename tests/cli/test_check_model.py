"""`check-model PATH [--kind detector|main]` (issue 15, deliverable 5): what it prints for each
kind of model, exit 0 when a worker could run it, 2 with one line of reason when not, and
nothing in the file runs while it is checked."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import DETECTOR, MAIN_BUNDLE
from video_analysis.cli.check_model import _cmd_check_model, guess_kind

from helpers import load_test_module

_models = load_test_module("three_head", Path(__file__).parents[1] / "main_worker" / "three_head.py")
Evil, card, export_onnx, three_head_net, write_card = (_models.Evil, _models.card, _models.export_onnx,
                                                       _models.three_head_net, _models.write_card)


def check(capsys, path, kind=None, runs=2) -> tuple[int, str, str]:
    rc = _cmd_check_model(argparse.Namespace(path=str(path), kind=kind, runs=runs))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def own_onnx(tmp_path_factory) -> Path:
    path = export_onnx(three_head_net(), tmp_path_factory.mktemp("own") / "main.onnx")
    write_card(path, card())
    return path


def test_the_demo_main_bundle(capsys):
    rc, out, _ = check(capsys, MAIN_BUNDLE)
    assert rc == 0 and out.endswith("ok: the main_worker can run it\n")
    # the runtime the main_worker runs it in: OpenVINO on CPU (main_runtime auto), its precision the CPU's
    assert "format      cvitx-bundle" in out and "runtime     openvino (CPU), precision " in out
    assert "heads       type 8, make 24, model 48, color_base 10, finish 3, lightness 2" in out
    assert "input       128 x 128" in out and "hierarchy   48 type/make/model paths" in out
    assert "ms median per snapshot (2 runs, batch 1) on " in out


def test_a_teams_onnx_model_with_its_card(capsys, own_onnx):
    rc, out, _ = check(capsys, own_onnx)
    assert rc == 0 and "kind        main model (ournet t1)" in out and "format      onnx" in out
    assert "runtime     openvino (CPU), precision " in out and "heads       type 8, make 9, model 7" in out
    assert "hierarchy   9 type/make/model paths" in out


def test_the_demo_detector_with_its_class_mapping(capsys, monkeypatch, caplog):
    monkeypatch.setenv("CVITX_ENV_OVERRIDES", "1")
    monkeypatch.setenv("CVITX_DETECTOR_RUNTIME", "torch")  # no export here: that is the yolo_worker's own test
    caplog.set_level("INFO", logger="video_analysis.yolo_worker.detector")
    rc, out, _ = check(capsys, DETECTOR)
    loaded = [r for r in caplog.records if r.getMessage() == "detector loaded"]  # the worker's start-up line
    assert len(loaded) == 1 and loaded[0].class_map[0] == "Car -> Car" and loaded[0].ignored_classes == 0
    assert rc == 0 and "kind        detector (8 classes)" in out and "runtime     torch on cpu" in out, out
    assert "classes     Car -> Car, SUV -> SUV" in out and "ignored     0 classes" in out
    # the spec's deepsort.engine (the default) needs a GPU: reported as motion-only here
    from video_analysis.worker_config import get_settings
    from video_analysis.yolo_worker.tracking import reid_status

    use_reid, why = reid_status(get_settings())
    assert f"tracker     botsort, re-ID: {why}" in out and (use_reid or "motion-only" in why)
    assert out.endswith("ok: the yolo_worker can run it\n")


@pytest.fixture(scope="module")
def coco_yolov8m(tmp_path_factory) -> dict[str, Path]:
    """A COCO-named YOLOv8m (built from ultralytics' yolov8m.yaml, random weights: the plumbing,
    not the accuracy) as a checkpoint, its ONNX export and its OpenVINO directory (at 160 px)."""
    from video_analysis.worker_utils.offline import ultralytics_offline

    ultralytics_offline()
    import ultralytics
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import ROOT, YAML

    d = tmp_path_factory.mktemp("coco")
    torch.manual_seed(0)
    m = DetectionModel("yolov8m.yaml", nc=80, verbose=False)
    m.names = YAML.load(ROOT / "cfg" / "datasets" / "coco.yaml")["names"]
    m.args = {"task": "detect", "imgsz": 640}
    torch.save({"model": m.half(), "train_args": {"task": "detect", "imgsz": 640}, "epoch": -1,
                "version": ultralytics.__version__}, str(d / "yolov8m.pt"))
    return {"pt": d / "yolov8m.pt",
            "onnx": Path(YOLO(str(d / "yolov8m.pt")).export(format="onnx", imgsz=160, simplify=False, verbose=False)),
            "openvino": Path(YOLO(str(d / "yolov8m.pt")).export(format="openvino", imgsz=160, verbose=False))}


def skip_native_openvino_under_a_kernel_cap(form: str) -> None:
    """An OpenVINO directory runs as ultralytics loads it ("native"), compiled with OpenVINO's own
    default precision: under a oneDNN kernel cap that hides the CPU's bfloat16 (ONEDNN_MAX_CPU_ISA=AVX2
    on an AVX-512 CPU) that is bfloat16 with no kernels, which a real AVX2-only CPU never picks."""
    from video_analysis.worker_utils.runtimes import kernel_cap_hides_bf16

    if form == "openvino" and kernel_cap_hides_bf16():
        pytest.skip("ultralytics compiles an OpenVINO directory at OpenVINO's default precision, bfloat16 from "
                    "CPUID, which has no kernels under the ONEDNN_MAX_CPU_ISA cap")


@pytest.mark.parametrize("form,runtime", [("pt", "torch"), ("onnx", "native"), ("openvino", "native")])
def test_a_coco_yolov8m_and_its_exports_with_the_class_mapping(capsys, monkeypatch, coco_yolov8m, form, runtime):
    skip_native_openvino_under_a_kernel_cap(form)
    monkeypatch.setenv("CVITX_ENV_OVERRIDES", "1")
    monkeypatch.setenv("CVITX_DETECTOR_RUNTIME", "torch")  # a .pt as it is; exports run as ultralytics loads them
    monkeypatch.setenv("CVITX_DETECTOR_IMGSZ", "160")
    rc, out, err = check(capsys, coco_yolov8m[form], runs=1)  # the kind is guessed: a detector
    assert rc == 0, err
    assert "kind        detector (80 classes)" in out and f"runtime     {runtime} on cpu" in out
    assert "classes     car -> Car, motorcycle -> Motorcycle, bus -> CarouselBus, truck -> LightTruck" in out
    assert "ignored     76 classes: person, bicycle, airplane, train, boat" in out
    assert out.endswith("ok: the yolo_worker can run it\n")


@pytest.mark.parametrize("form", ["onnx", "openvino"])
def test_a_teams_ultralytics_export_is_reported_in_the_projects_runtime(capsys, coco_yolov8m, form):
    """Without detector_runtime=torch an ultralytics export runs in the project's runtime: the
    family from its metadata, the input it was exported at, OpenVINO, the measured threads."""
    rc, out, err = check(capsys, coco_yolov8m[form], runs=1)
    assert rc == 0, err
    assert "family      ultralytics (its export's metadata; no card needed)" in out
    assert "runtime     openvino on cpu" in out and "input       160x160 (the card)" in out
    assert "classes     car -> Car, motorcycle -> Motorcycle, bus -> CarouselBus, truck -> LightTruck" in out


@pytest.mark.parametrize("kind", [None, "main", "detector"])
def test_a_file_that_would_run_code_is_refused_and_not_run(capsys, tmp_path, kind):
    marker = tmp_path / "ran"
    path = tmp_path / "model.pt"
    torch.save({"model": Evil(marker)}, str(path))
    rc, out, err = check(capsys, path, kind)
    assert rc == 2 and out == "" and not marker.exists()
    assert err.count("\n") == 1 and "refused, not loaded" in err and str(path) in err


def test_a_card_that_does_not_fit_exits_2_through_the_real_command(tmp_path, own_onnx):
    bad = tmp_path / "main.onnx"
    bad.write_bytes(own_onnx.read_bytes())
    c = card()
    c["labels"]["type"] = c["labels"]["type"][:-1]
    c["hierarchy"]["make_type"] = {m: t for m, t in c["hierarchy"]["make_type"].items() if t != "E-Jeepney"}
    c["labels"]["make"] = sorted(c["hierarchy"]["make_type"])
    write_card(bad, c)
    proc = subprocess.run([sys.executable, "-m", "video_analysis", "check-model", str(bad), "--runs", "1"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2 and proc.stdout == ""
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"check-model: a worker cannot run {bad} as a main: {tmp_path / 'main.json'}: labels.type:")
    assert "lists 7 labels" in line


YOLOX = Path(__file__).resolve().parents[2] / "yolo_worker" / "bundle" / "coco" / "yolox_nano.onnx"


def test_the_shipped_yolox_with_its_card(capsys):
    """A detector of another family: its family, its card, the COCO classes mapped, the latency."""
    assert guess_kind(YOLOX) == "detector"  # from the detector card beside it
    rc, out, _ = check(capsys, YOLOX)
    assert rc == 0 and out.endswith("ok: the yolo_worker can run it\n"), out
    assert "family      yolox (yolox-raw), card yolox_nano.card.json" in out
    assert "input       416x416 (the card)" in out and "runtime     openvino on cpu, precision " in out
    assert "kind        detector (80 classes)" in out and "car -> Car" in out and "truck -> LightTruck" in out
    assert "threads     " in out and "ms median per" in out
    from video_analysis.yolo_worker.detector_runtime import usable_cores

    if usable_cores() > 1:  # the record's reason, as for an exported .pt
        assert "(measured on this host: " in out.split("threads     ")[1].splitlines()[0]


def test_a_detector_card_with_a_wrong_key_exits_2_naming_it(tmp_path, capsys):
    import json
    import shutil

    model = tmp_path / "yolox_nano.onnx"
    shutil.copy(YOLOX, model)
    c = json.loads(YOLOX.with_name("yolox_nano.card.json").read_text())
    c["input"]["channel_order"] = "GBR"
    model.with_name("yolox_nano.card.json").write_text(json.dumps(c))
    rc, out, err = check(capsys, model)
    assert rc == 2 and out == ""
    line = err.strip()
    assert line.startswith(f"check-model: a worker cannot run {model} as a detector: ") and "channel_order" in line
    assert "\n" not in line


@pytest.mark.parametrize("name,kind", [("detector", "detector"), ("bundle", "main"), ("own", "main")])
def test_the_kind_is_guessed_from_the_file(own_onnx, name, kind):
    assert guess_kind({"detector": DETECTOR, "bundle": MAIN_BUNDLE, "own": own_onnx}[name]) == kind


@pytest.mark.parametrize("names,mapped,ignored", [
    ({0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"},
     ["car -> Car", "motorcycle -> Motorcycle", "bus -> CarouselBus", "truck -> LightTruck"], ["person", "bicycle"]),
    ({0: "Car", 1: "SUV"}, ["Car -> Car", "SUV -> SUV"], []),
])
def test_class_mapping(names, mapped, ignored):
    from video_analysis.yolo_worker.detector import class_lookup, class_mapping

    assert class_mapping(names, class_lookup(names, None)) == (mapped, ignored)


@pytest.mark.parametrize("form", ["pt", "onnx", "openvino"])
def test_a_coco_yolov8m_runs_a_video_end_to_end_in_the_real_worker(provisioned, coco_yolov8m, clip_factory, form):
    """The same three files through the real YoloWorker and its poller: PROCESS_VIDEO in, the
    video ``done`` (random weights find no vehicle worth a snapshot: this is the plumbing, and
    every box they do report is of a mapped COCO class or ignored)."""
    skip_native_openvino_under_a_kernel_cap(form)
    harness = load_test_module("yolo_harness", Path(__file__).parents[1] / "yolo_worker" / "yolo_harness.py")
    from video_analysis.yolo_worker.detector import Detector

    s = provisioned.replace(**{**harness.YOLO_TEST_SETTINGS, "detector_path": str(coco_yolov8m[form]),
                               "detector_imgsz": 160, "detector_runtime": "torch"})
    client = harness.Client(s)
    worker = harness.make_recording_worker(s, Detector(s), client=client)
    vid, _ = client.submit(clip_factory(width=320, height=180, fps=10.0, duration_s=2.0, seed=12).video, frame_stride=2)
    harness.serve(s, worker, 1)
    assert client.video(vid)["status"] == "done"
    assert client.drain(s.video_dlq) == []
    assert worker.stats[vid].frames_processed == 10
    assert {e.yolo_type for e in worker.emitted} <= {"Car", "Motorcycle", "CarouselBus", "LightTruck"}
