"""A team's own main model: ONNX, OpenVINO IR, torch.export (.pt2) and TorchScript with a model
card (issue 15, deliverables 1-3).  A tiny three-head network is exported once per session to
every format; each must load, agree with the PyTorch network, and decode; every card mistake and
head/labels mismatch must be refused at load with one line naming the file, the key and the fix."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from video_analysis.main_worker.decoding import decode_output
from video_analysis.main_worker.formats.card import CardModel, card_problems
from video_analysis.main_worker.formats.common import preprocess, run_batched, softmax
from video_analysis.main_worker.formats.onnx import OrtRunner, onnx_runtime_choice
from video_analysis.worker_utils.model_files import sniff
from video_analysis.main_worker.model import BundleError, load_bundle, summary
from video_analysis.main_worker.worker import hierarchy_of

from .three_head import (LABELS, OUTPUT_NAMES, SIZE, card, export_onnx, export_openvino, export_pt2,
                         export_torchscript, three_head_net, write_card)

RNG = np.random.default_rng(15)
F32 = {"INFERENCE_PRECISION_HINT": "f32"}  # OpenVINO's own choice would be bfloat16 on AMX / AVX-512 BF16 CPUs
INDEXED = {"type": 0, "make": 1, "model": 2}
LEAVES = ["Car|Toyota|Vios", "Car|Honda|City", "SUV|Toyota|Fortuner", "Van|Toyota", "E-Jeepney"]


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Every format of the same network, each with its card (exported once per session)."""
    d = tmp_path_factory.mktemp("formats")
    net = three_head_net()
    out = {"onnx": export_onnx(net, d / "main.onnx"),
           "onnx-batch1": export_onnx(net, d / "fixed.onnx", dynamic=False),
           "pt2": export_pt2(three_head_net(as_dict=True), d / "main.pt2"),
           "torchscript": export_torchscript(net, d / "scripted.pt")}
    out["openvino"] = export_openvino(out["onnx"], d / "ir" / "main.xml")
    for name, path in out.items():
        write_card(path, card() if name in ("onnx", "onnx-batch1", "openvino", "pt2") else card(outputs=INDEXED))
    return out


def snapshots(n: int) -> np.ndarray:
    return RNG.integers(0, 256, (n, 640, 640, 3), dtype=np.uint8)


def reference(x: np.ndarray) -> dict[str, np.ndarray]:
    """The PyTorch network's softmax heads for the card's pre-processing."""
    c = card()["input"]
    with torch.inference_mode():
        outs = three_head_net()(torch.from_numpy(preprocess(x, SIZE, "RGB", c["scale"], c["mean"], c["std"])))
    return {h: softmax(o.numpy()) for h, o in zip(("type", "make", "model"), outs)}


FORMATS = [("onnx", "onnx", "openvino (CPU)"), ("onnx-batch1", "onnx", "openvino (CPU)"),
           ("openvino", "openvino-ir", "openvino (CPU)"), ("pt2", "torch.export", "torch (CPU)"),
           ("torchscript", "torchscript", "torch (CPU)")]


@pytest.mark.parametrize("name,fmt,runtime", FORMATS, ids=[f[0] for f in FORMATS])
def test_each_format_loads_agrees_with_pytorch_and_decodes(exports, name, fmt, runtime, caplog):
    caplog.set_level("INFO", logger="video_analysis.main_worker.model")
    m = load_bundle(exports[name], ov_config=F32)  # the start-up check runs inside; OpenVINO in float32
    ready = [r for r in caplog.records if r.getMessage() == "main model ready"]  # logged once, at start-up
    assert len(ready) == 1 and (ready[0].format, ready[0].runtime, ready[0].heads) == (fmt, runtime, {
        "type": 8, "make": 9, "model": 7})
    assert isinstance(m, CardModel) and (m.format_name, m.runtime) == (fmt, runtime)
    assert (m.model_name, m.version, m.labels, m.input_size) == ("ournet", "t1", LABELS, SIZE)
    x = snapshots(3)  # 3: a fixed-batch-1 model runs in chunks
    p = m.predict(x)
    assert m.precision == "f32"  # asked for: the strict tolerance holds on every CPU
    atol = 1e-4
    for head, ref in reference(x).items():
        assert p[head].shape == (3, len(LABELS[head]))
        np.testing.assert_allclose(p[head], ref, atol=atol)
    dec = decode_output(hierarchy_of(m), {h: v[0] for h, v in p.items()}, 3)
    assert dec.type in LABELS["type"] and (dec.make is None or card()["hierarchy"]["make_type"][dec.make] == dec.type)
    s = summary(m, latency_runs=3)
    assert s["heads"] == {"type": 8, "make": 9, "model": 7} and s["hierarchy_paths"] == 9 and s["median_ms"] > 0


@pytest.mark.parametrize("name,kind", [("onnx", "onnx"), ("openvino", "openvino_ir"), ("pt2", "torch_export"),
                                       ("torchscript", "torchscript")])
def test_the_format_is_what_the_file_is(exports, name, kind, tmp_path):
    assert sniff(exports[name]).kind == kind
    if name in ("pt2", "torchscript"):  # not the name: a .pt2 renamed .pt is still a torch.export archive
        renamed = shutil.copy(exports[name], tmp_path / "renamed.pt")
        assert sniff(Path(renamed)).kind == kind


def test_onnx_runtime_parity_and_choice(exports):
    """ONNX Runtime, the fallback when OpenVINO is not installed, gives the same heads."""
    x = preprocess(snapshots(2), SIZE, "RGB", 1 / 255, card()["input"]["mean"], card()["input"]["std"])
    ort = OrtRunner(exports["onnx"])
    assert (ort.runtime, ort.precision, ort.fixed_batch) == ("onnxruntime (CPU)", "f32", None)
    assert [n for n, _ in ort.run(x)] == OUTPUT_NAMES
    assert OrtRunner(exports["onnx-batch1"]).fixed_batch == 1
    assert onnx_runtime_choice(True, ["CPUExecutionProvider"]) == "openvino"
    assert onnx_runtime_choice(False, ["CPUExecutionProvider"]) == "onnxruntime"
    assert onnx_runtime_choice(True, ["CUDAExecutionProvider", "CPUExecutionProvider"]) == "onnxruntime-cuda"


@pytest.mark.parametrize("n,fixed,calls", [(5, None, [5]), (5, 2, [2, 2, 2]), (2, 2, [2]), (1, 4, [4])])
def test_run_batched(n, fixed, calls):
    seen = []

    def run(x):
        seen.append(len(x))
        return [x[:, 0] * 2, x[:, :2]]

    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    out = run_batched(run, x, fixed)
    assert seen == calls
    np.testing.assert_array_equal(out[0], x[:, 0] * 2)
    np.testing.assert_array_equal(out[1], x[:, :2])


def test_a_path_head_model(tmp_path):
    """One ``path`` head over ``Type|Make|Model`` leaves: type/make/model are summed from it."""
    net = three_head_net(sizes=(len(LEAVES),))
    path = tmp_path / "leaves.onnx"
    torch.onnx.export(net, (torch.zeros(2, 3, SIZE, SIZE),), str(path), input_names=["images"], output_names=["leaf"],
                      dynamic_axes={"images": {0: "n"}}, dynamo=False)
    c = card(outputs={"path": "leaf"}, labels={"path": LEAVES})
    del c["hierarchy"]  # the leaves are the hierarchy
    write_card(path, c)
    m = load_bundle(path)
    assert m.paths[2] == ("SUV", "Toyota", "Fortuner") and m.labels["make"] == ["Honda", "Toyota"]
    p = m.predict(snapshots(2))
    assert p["path"].shape == (2, 5) and p["type"].shape == (2, 8)
    np.testing.assert_allclose(p["type"][:, 0], p["path"][:, 0] + p["path"][:, 1], atol=1e-5)
    assert summary(m)["hierarchy_paths"] == 5


# --- the card: pure checks --------------------------------------------------------------------
def changed(path: str, value) -> dict:
    """card() with the dotted key set to ``value`` (``...`` deletes it)."""
    c = copy.deepcopy(card())
    *parents, last = path.split(".")
    node = c
    for k in parents:
        node = node[k]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return c


CARD_CASES = [
    ("a wrong key", changed("lables", {}), "(card): Additional properties are not allowed ('lables' was unexpected)"),
    ("a missing key", changed("activation", ...), "'activation' is a required property"),
    ("wrong format", changed("format", "cvitx-model-card/2"), "format: 'cvitx-model-card/1' was expected"),
    ("a wrong input key", changed("input.sizes", 3), "input: Additional properties are not allowed"),
    ("channel order", changed("input.channel_order", "rgb"), "input.channel_order: 'rgb' is not one of"),
    ("zero std", changed("input.std", [0.2, 0, 0.2]), "input.std.1: 0 is less than or equal to the minimum of 0"),
    ("unknown head", changed("labels.colour", ["Red"]), "labels: 'colour' is not one of"),
    ("a type outside the taxonomy", changed("labels.type", ["Car", "Sedan"]),
     "labels.type: ['Sedan'] are not taxonomy names; use ['Car', 'SUV',"),
    ("a make without a type", changed("hierarchy.make_type.Hino", ...),
     "hierarchy.make_type: ['Hino'] have no type in labels.type and can never be the answer"),
    ("a model without a make", changed("hierarchy.model_make.Elf", "Mitsubishi"),
     "hierarchy.model_make: ['Elf'] have no make in labels.make"),
    ("a type no make reaches", changed("hierarchy.make_type.Francisco", "Car"),
     "labels.type: ['E-Jeepney'] have no make in hierarchy.make_type and can never be the answer"),
    ("a hierarchy naming other labels", changed("hierarchy.model_make.Jazz", "Honda"),
     "hierarchy.model_make: ['Jazz'] are not in labels.model"),
    ("no hierarchy", changed("hierarchy", ...), "hierarchy: separate make/model heads need hierarchy.make_type"),
    ("a head without an output", changed("outputs.model", ...), "outputs.model: labels.model has no output"),
    ("an output without labels", changed("outputs.finish", 3), "labels.finish: outputs.finish has no labels"),
    ("duplicate labels", changed("labels.make", LABELS["make"] + ["Honda"]), "labels.make: ['Honda'] appear more"),
    ("a colour outside the vocabulary", changed("labels.color_base", ["White", "Teal"]) | {
        "outputs": {**card()["outputs"], "color_base": 3}}, "labels.color_base: ['Teal'] are not in ['White',"),
    ("path beside type", changed("labels.path", LEAVES) | {"outputs": {**card()["outputs"], "path": 3}},
     "labels.path: a path head replaces ['type', 'make', 'model']"),
    ("a model head alone", {**changed("labels.make", ...), "outputs": {"type": 0, "model": 2}},
     "labels.model: a model head needs a make head"),
]


@pytest.mark.parametrize("c,says", [c[1:] for c in CARD_CASES], ids=[c[0] for c in CARD_CASES])
def test_card_problems(c, says):
    problems = card_problems(c)
    assert problems and says in problems[0] + " | " + " | ".join(problems), problems


def test_the_shipped_example_card_and_the_test_card_are_valid():
    root = Path(__file__).resolve().parents[2]
    example = json.loads((root / "main_worker" / "bundle" / "example" / "main.json").read_text())
    assert card_problems(example) == [] and card_problems(card()) == []
    assert card_problems({"format": "cvitx-model-card/1"})  # and an empty one is not


# --- refusals at load: one line naming the file, the key and the fix -------------------------
def copy_with_card(src: Path, dst_dir: Path, c: dict | None) -> Path:
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    if src.suffix == ".xml":
        shutil.copy(src.with_suffix(".bin"), dst.with_suffix(".bin"))
    if c is not None:
        write_card(dst, c)
    return dst


@pytest.mark.parametrize("name", ["onnx", "pt2", "torchscript", "openvino"])
def test_a_model_without_a_card_is_refused(exports, tmp_path, name):
    path = copy_with_card(exports[name], tmp_path, None)
    with pytest.raises(BundleError) as e:
        load_bundle(path)
    assert e.value.reason.startswith(f"{path}: no model card {path.stem}.json beside it; write one")


LOAD_CASES = [
    ("head size", "onnx", changed("labels.model", LABELS["model"] + ["Jazz"]) | {
        "hierarchy": {**card()["hierarchy"], "model_make": {**card()["hierarchy"]["model_make"], "Jazz": "Honda"}}},
     "main.json: labels.model: the output has 7 scores per snapshot but labels.model lists 8 labels; make "
     "labels.model match"),
    ("head size, torch.export", "pt2", changed("labels.make", LABELS["make"][:-1]) | {
        "hierarchy": {"make_type": {k: v for k, v in card()["hierarchy"]["make_type"].items() if k != "Yamaha"},
                      "model_make": {k: v for k, v in card()["hierarchy"]["model_make"].items() if k != "NMAX"}},
        "labels": {**card()["labels"], "make": [m for m in LABELS["make"] if m != "Yamaha"],
                   "model": [m for m in LABELS["model"] if m != "NMAX"],
                   "type": [t for t in LABELS["type"] if t != "Motorcycle"]}},
     "labels.type: the output has 8 scores per snapshot but labels.type lists 7 labels"),
    ("an output name the model lacks", "onnx", changed("outputs.make", "make_probs"),
     "main.json: outputs: the model has no output 'make_probs'; its outputs are ['type_logits', 'make_logits', "
     "'model_logits']"),
    ("an output index past the end", "torchscript", changed("outputs", {"type": 0, "make": 1, "model": 5}),
     "scripted.json: outputs: the model has no output 5"),
    ("a card error", "openvino", changed("labels.type", ["Car", "Truck"]), "main.json: labels.type: ['Truck']"),
    ("input size the model cannot take", "onnx-batch1", changed("input.size", 48),
     "fixed.onnx: the start-up forward pass on a blank 640x640 snapshot failed"),
]


@pytest.mark.parametrize("name,c,says", [c[1:] for c in LOAD_CASES], ids=[c[0] for c in LOAD_CASES])
def test_a_model_its_card_does_not_fit_is_refused_at_load(exports, tmp_path, name, c, says):
    path = copy_with_card(exports[name], tmp_path, c)
    with pytest.raises(BundleError) as e:
        load_bundle(path)
    assert e.value.code == "model_config" and "\n" not in e.value.reason
    assert says in e.value.reason and str(tmp_path) in e.value.reason, e.value.reason


class WithSoftmax(torch.nn.Module):
    """The network with a softmax on every head: outputs are probabilities."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return tuple(torch.softmax(o, 1) for o in self.net(x))


@pytest.mark.parametrize("softmax_in_model,activation,ok", [(True, "probabilities", True), (True, "logits", True),
                                                              (False, "probabilities", False)])
def test_the_activation(tmp_path, softmax_in_model, activation, ok):
    """A model that ends in softmax is read as it is with ``probabilities``; logits that the card
    calls probabilities are refused at start-up (they would decode to nonsense)."""
    net = three_head_net()
    path = export_onnx(WithSoftmax(net) if softmax_in_model else net, tmp_path / "main.onnx")
    write_card(path, card(activation=activation))
    if not ok:
        with pytest.raises(BundleError, match=r"main.json: activation: the card says probabilities but output "
                                              r"make is not a probability distribution"):
            load_bundle(path)
        return
    x = snapshots(2)
    p = load_bundle(path).predict(x)
    ref = reference(x)
    if activation == "probabilities":
        np.testing.assert_allclose(p["model"], ref["model"], atol=1e-4)
    else:  # softmax of probabilities: still a distribution, flatter than the model's
        assert np.allclose(p["model"].sum(1), 1) and p["model"].max() < ref["model"].max()


@pytest.mark.parametrize("v,bad", [([[0.2, 0.8]], False), ([[0.5, 0.6]], True), ([[-0.5, 1.5]], True),
                                   ([[3.0, -1.0]], True)])
def test_not_probabilities(v, bad):
    from video_analysis.main_worker.model import not_probabilities

    assert not_probabilities({"type": np.array(v)}) == (["type"] if bad else [])


@pytest.mark.parametrize("name", ["onnx", "openvino"])
def test_main_precision_f32_reaches_a_model_openvino_runs(exports, name, monkeypatch):
    """``main_precision=f32`` (variants.openvino_config) is OpenVINO's compile hint for an ONNX or
    IR main model as well as for a CVITX bundle: float32, PyTorch's numbers to 1e-4."""
    from .test_openvino_bundle import compile_configs

    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    configs = compile_configs(monkeypatch)
    m = load_bundle(exports[name], ov_config=f32)
    assert configs == [f32]  # asked for on any CPU (an AVX2 CPU would run f32 unasked)
    assert (m.runtime, m.precision) == ("openvino (CPU)", "f32")
    x = snapshots(2)
    p = m.predict(x)
    for head, ref in reference(x).items():
        np.testing.assert_allclose(p[head], ref, atol=1e-4)


def test_an_openvino_ir_without_its_weights_is_refused(exports, tmp_path):
    path = copy_with_card(exports["openvino"], tmp_path, card())
    path.with_suffix(".bin").unlink()
    with pytest.raises(BundleError, match=r"main.xml: its weights main.bin are missing beside it"):
        load_bundle(path)


def test_an_ultralytics_classify_onnx_export_needs_no_card(tmp_path):
    """ultralytics writes the class names into the ONNX file's metadata: they are its card."""
    from video_analysis.main_worker.formats.onnx import is_ultralytics_classify, onnx_metadata
    from video_analysis.main_worker.model import UltralyticsHierBundle
    from video_analysis.worker_utils.offline import ultralytics_offline

    from .test_model_bundle import LEAVES as NAMES, write_classify_checkpoint

    write_classify_checkpoint(tmp_path / "cls.pt", NAMES)
    ultralytics_offline()
    from ultralytics import YOLO

    onnx_path = Path(YOLO(str(tmp_path / "cls.pt")).export(format="onnx", imgsz=64, dynamic=True, simplify=False))
    assert is_ultralytics_classify(onnx_metadata(onnx_path)) and not is_ultralytics_classify(onnx_metadata(
        Path(__file__)))
    m = load_bundle(onnx_path)
    assert isinstance(m, UltralyticsHierBundle) and m.format_name == "ultralytics-classify (onnx)"
    p = m.predict(snapshots(2))
    assert p["path"].shape == (2, len(NAMES)) and summary(m)["hierarchy_paths"] == len(NAMES)


def test_colour_heads_from_the_card_are_the_worker_s_colours(tmp_path):
    """A model with colour heads whose labels are the spec's vocabulary: the worker reports its
    colours (source "model") instead of the classical estimator's."""
    from video_analysis.main_worker.results import colors_of
    from video_analysis.worker_utils.vocab import COLOR_BASES

    heads = {"color_base": list(COLOR_BASES), "finish": [None, "Matte", "Metallic"], "lightness": [None, "Light"]}
    net = three_head_net(sizes=(8, 9, 7, 10, 3, 2))
    path = tmp_path / "colours.onnx"
    names = OUTPUT_NAMES + ["color", "finish", "light"]
    torch.onnx.export(net, (torch.zeros(2, 3, SIZE, SIZE),), str(path), input_names=["images"], output_names=names,
                      dynamic_axes={"images": {0: "n"}}, dynamo=False)
    c = card()
    c["outputs"].update(color_base="color", finish=4, lightness="light")
    c["labels"].update(heads)
    write_card(path, c)
    m = load_bundle(path)
    x = snapshots(1)
    p = {h: v[0] for h, v in m.predict(x).items()}
    assert {h: len(p[h]) for h in heads} == {"color_base": 10, "finish": 3, "lightness": 2}
    colors, source = colors_of(m, p, x[0])
    assert source == "model" and colors[0]["base"] in COLOR_BASES
