"""The detector card (``cvitx-detector-card/1``): every mistake is refused in one line naming the
key and the fix (the schema's strictness first, then what it means), a card is checked against
the network's shapes, and the shipped YOLOX-Nano card fits its network."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from video_analysis.worker_utils.errors import PermanentError
from video_analysis.yolo_worker import detector_card as dc

COCO_DIR = Path(dc.__file__).resolve().parent / "bundle" / "coco"
YOLOX = COCO_DIR / "yolox_nano.onnx"
YOLOX_SHAPES = ([1, 3, 416, 416], [[1, 3549, 85]])  # the real network's input and output


def card() -> dict:
    return json.loads(dc.card_path(YOLOX).read_text())


def ultralytics_card(**output) -> dict:
    return {"format": dc.CARD_FORMAT, "family": "ultralytics",
            "input": {"size": [384, 640], "channel_order": "RGB", "scale": 1 / 255, "mean": [0, 0, 0],
                      "std": [1, 1, 1], "resize": "letterbox", "padding": "center", "pad_value": 114},
            "output": {"layout": "ultralytics", "scores": "sigmoid-applied", **output}, "labels": "coco80"}


def detr_card(layout: str = "detr") -> dict:
    return {"format": dc.CARD_FORMAT, "family": "detr",
            "input": {"size": [640, 640], "channel_order": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                      "std": [0.229, 0.224, 0.225], "resize": "stretch", "padding": "center", "pad_value": 0},
            "output": {"layout": layout, "scores": "logits"}, "labels": ["car", "truck", "bus"]}


def changed(path: str, value, base: dict | None = None) -> dict:
    """The YOLOX card (or ``base``) with the dotted key set to ``value`` (``...`` deletes it)."""
    c = copy.deepcopy(base if base is not None else card())
    *parents, last = path.split(".")
    node = c
    for k in parents:
        node = node[k]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return c


# --- the naming rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("model,card_name", [
    ("yolox_nano.onnx", "yolox_nano.card.json"),
    ("yolox_nano.xml", "yolox_nano.card.json"),      # OpenVINO IR (the .bin beside it)
    ("rtdetr-l.onnx", "rtdetr-l.card.json"),
    ("d.fine.s.onnx", "d.fine.s.card.json"),          # only the last suffix goes
])
def test_the_card_sits_beside_the_file_with_its_stem(tmp_path, model, card_name):
    assert dc.card_path(tmp_path / model) == tmp_path / card_name


def test_an_openvino_directory_has_its_card_beside_it(tmp_path):
    d = tmp_path / "rtdetr_openvino_model"
    d.mkdir()
    assert dc.card_path(d) == tmp_path / "rtdetr_openvino_model.card.json"


# --- the pure checks: one line naming the key -------------------------------------------------------
SCHEMA = "; fix the card (schemas/detector_card.json)"
CARD_CASES = [
    ("a misspelt key", changed("lables", "coco80"),
     "(card): Additional properties are not allowed ('lables' was unexpected)"),
    ("a misspelt input key", changed("input.sizes", [416, 416]),
     "input: Additional properties are not allowed ('sizes'"),
    ("a misspelt output key", changed("output.stride", [8, 16, 32]),
     "output: Additional properties are not allowed ('stride'"),
    ("a missing key", changed("labels", ...), "(card): 'labels' is a required property"),
    ("a missing input key", changed("input.padding", ...), "input: 'padding' is a required property"),
    ("wrong format", changed("format", "cvitx-model-card/1"), "format: 'cvitx-detector-card/1' was expected"),
    ("unknown family", changed("family", "yolov5"), "family: 'yolov5' is not one of ['ultralytics', 'yolox', 'detr']"),
    ("size of one side", changed("input.size", [416]), "input.size: [416] is too short"),
    ("size not an integer", changed("input.size", [416.5, 416]), "input.size.0: 416.5 is not of type 'integer'"),
    ("mean of two", changed("input.mean", [0, 0]), "input.mean: [0, 0] is too short"),
    ("std of four", changed("input.std", [1, 1, 1, 1]), "input.std: [1, 1, 1, 1] is too long"),
    ("zero std", changed("input.std", [1, 0, 1]), "input.std.1: 0 is less than or equal to the minimum of 0"),
    ("zero scale", changed("input.scale", 0), "input.scale: 0 is less than or equal to the minimum of 0"),
    ("channel order", changed("input.channel_order", "bgr"), "input.channel_order: 'bgr' is not one of ['RGB', 'BGR']"),
    ("padding spelt British", changed("input.padding", "centre"),
     "input.padding: 'centre' is not one of ['center', 'top-left']"),
    ("resize", changed("input.resize", "fit"), "input.resize: 'fit' is not one of ['letterbox', 'stretch']"),
    ("pad value", changed("input.pad_value", 256), "input.pad_value: 256 is greater than the maximum of 255"),
    ("unknown layout", changed("output.layout", "yolov8"), "output.layout: 'yolov8' is not one of"),
    ("scores", changed("output.scores", "softmax"),
     "output.scores: 'softmax' is not one of ['sigmoid-applied', 'logits']"),
    ("raw YOLOX without strides", changed("output.strides", ...), "output: 'strides' is a required property"),
    ("labels shorthand", changed("labels", "coco91"), "labels: 'coco80' was expected"),
    ("no labels", changed("labels", []), "labels: [] should be non-empty"),
    ("an empty label", changed("labels", ["car", ""]), "labels.1: '' should be non-empty"),
    # meaning, past the schema
    ("a layout of another family", changed("output.layout", "detr"),
     "output.layout: the yolox family reads yolox-raw or yolox-decoded, not detr; set one of those"),
    ("size off the largest stride", changed("input.size", [400, 416]),
     "input.size: [400, 416] is not a multiple of the largest stride 32 (output.strides); use the size the network "
     "was exported at, e.g. [416, 416]"),
    ("strides of a decoded head", changed("output.layout", "yolox-decoded"),
     "output.strides: only the yolox-raw layout has strides (yolox-decoded boxes are decoded); drop output.strides"),
    ("duplicate labels", changed("labels", ["car", "truck", "car"]), "labels: ['car'] appear more than once"),
    ("ultralytics in BGR", changed("input.channel_order", "BGR", ultralytics_card()),
     "input.channel_order: the ultralytics family runs ultralytics' own letterbox (\"BGR\" is not what it feeds); "
     "set \"RGB\", or use the yolox or detr family"),
    ("ultralytics at 0..255", changed("input.scale", 1, ultralytics_card()),
     "input.scale: the ultralytics family runs ultralytics' own letterbox (1 is not what it feeds); set "
     "0.00392156862745098 (1/255)"),
    ("ultralytics padded top-left", changed("input.padding", "top-left", ultralytics_card()),
     "input.padding: the ultralytics family runs ultralytics' own letterbox (\"top-left\" is not what it feeds); "
     "set \"center\""),
    ("ultralytics with ImageNet mean", changed("input.mean", [0.485, 0.456, 0.406], ultralytics_card()),
     "input.mean: the ultralytics family runs ultralytics' own letterbox ([0.485, 0.456, 0.406]"),
    ("ultralytics stretched", changed("input.resize", "stretch", ultralytics_card()),
     "input.resize: the ultralytics family"),
    ("ultralytics logits", ultralytics_card(scores="logits"),
     "output.scores: an ultralytics export's scores are sigmoid-applied; set \"sigmoid-applied\""),
    ("detr with strides", changed("output.strides", [32], detr_card()),
     "output.strides: only the yolox-raw layout has strides (detr boxes are decoded)"),
    ("detr reading ultralytics", changed("output.layout", "ultralytics", detr_card()),
     "output.layout: the detr family reads detr or detr-topk, not ultralytics"),
]


@pytest.mark.parametrize("c,says", [c[1:] for c in CARD_CASES], ids=[c[0] for c in CARD_CASES])
def test_card_problems(c, says):
    problems = dc.card_problems(c)
    assert problems, "the card was taken"
    assert says in problems[0], problems
    assert all("\n" not in p and ": " in p for p in problems)
    key = problems[0].split(":", 1)[0]  # every line starts with the key it is about
    assert key == "(card)" or key.split(".")[0] in c or key.split(".")[0] in ("input", "output", "labels"), problems


@pytest.mark.parametrize("c", [card(), ultralytics_card(), detr_card(), detr_card("detr-topk"),
                               changed("output", {"layout": "yolox-decoded", "scores": "logits"})],
                         ids=["yolox shipped", "ultralytics", "detr", "detr-topk", "yolox-decoded"])
def test_good_cards_pass(c):
    assert dc.card_problems(c) == []


def test_schema_refusals_say_where_the_schema_is():
    assert dc.card_problems(changed("lables", "coco80"))[0].endswith(SCHEMA)
    assert dc.card_problems([]) == ["(card): [] is not of type 'object'" + SCHEMA]


def test_coco80_is_ultralytics_coco_names_in_order():
    import yaml

    from video_analysis.worker_utils.offline import ultralytics_offline

    root = Path(ultralytics_offline().__file__).parent
    names = yaml.safe_load((root / "cfg" / "datasets" / "coco.yaml").read_text())["names"]
    assert list(dc.COCO80) == [names[i] for i in range(80)]
    assert dc.labels_of(card()) == list(dc.COCO80)


# --- against the network's shapes ------------------------------------------------------------------
MODEL_CASES = [
    ("the shipped card", card(), *YOLOX_SHAPES, None),
    ("dynamic batch and size", card(), ["batch", 3, "h", "w"], [["batch", "anchors", 85]], None),
    ("other input size", changed("input.size", [320, 320]), *YOLOX_SHAPES,
     "input.size: the network takes [416, 416] but the card says [320, 320]; set input.size to [416, 416]"),
    ("grey input", card(), [1, 1, 416, 416], YOLOX_SHAPES[1], "input.size: the network takes [1, 1, 416, 416], not one "
                                                              "[1, 3, h, w] image"),
    ("too few labels", changed("labels", ["person", "bicycle", "car"]), *YOLOX_SHAPES,
     "labels: the network scores 80 classes but the card lists 3 labels; list one name per class, in output order"),
    ("coco80 for 81 classes", card(), YOLOX_SHAPES[0], [[1, 3549, 86]],
     "labels: the network scores 81 classes but the card lists 80 labels; list one name per class, in output order "
     "(\"coco80\" is 80)"),
    ("strides it was not exported with", changed("output.strides", [16, 32]), *YOLOX_SHAPES,
     "output.strides: the network has 3549 anchors but [16, 32] at [416, 416] make 845"),
    ("an ultralytics output read as yolox", card(), YOLOX_SHAPES[0], [[1, 84, 3549]],
     "labels: the network scores 3544 classes but the card lists 80 labels"),
    ("a 2-d output", card(), YOLOX_SHAPES[0], [[3549, 85]],
     "output.layout: the network's output is [3549, 85], not the 3-dimensional [1, ..., ...] of the yolox-raw layout"),
    ("ultralytics classes", ultralytics_card(), [1, 3, 384, 640], [[1, 84, 5040]], None),
    ("ultralytics labels", changed("labels", ["car"], ultralytics_card()), [1, 3, 384, 640], [[1, 84, 5040]],
     "labels: the network scores 80 classes but the card lists 1 labels"),
    ("detr one output", detr_card(), [1, 3, 640, 640], [[1, 300, 7]], None),
    ("detr two outputs", detr_card(), [1, 3, 640, 640], [[1, 300, 3], [1, 300, 4]], None),
    ("detr two outputs, boxes first", detr_card(), [1, 3, 640, 640], [[1, 300, 4], [1, 300, 5]],
     "labels: the network scores 5 classes but the card lists 3 labels"),
    ("detr that cannot tell boxes from scores", changed("labels", ["a", "b", "c", "d"], detr_card()), [1, 3, 640, 640],
     [[1, 300, 4], [1, 300, 4]], "output.layout: outputs [[1, 300, 4], [1, 300, 4]]: cannot tell the boxes"),
    ("detr with three outputs", detr_card(), [1, 3, 640, 640], [[1, 300], [1, 300, 4], [1, 300]],
     "output.layout: the network has 3 outputs; a detr network has one [1, Q, 4 + C] or two"),
    ("detr-topk", detr_card("detr-topk"), [1, 3, 640, 640], [[1, 300, 6]], None),
    ("detr-topk of 7 values", detr_card("detr-topk"), [1, 3, 640, 640], [[1, 300, 7]],
     "output.layout: the network's output is [1, 300, 7], not the [1, K, 6] of the detr-topk layout"),
]


@pytest.mark.parametrize("c,inp,outs,says", [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_model_problems(c, inp, outs, says):
    assert dc.card_problems(c) == []
    problems = dc.model_problems(c, inp, outs)
    if says is None:
        assert problems == []
    else:
        assert problems and says in problems[0] and all("\n" not in p for p in problems), problems


def test_the_shipped_card_fits_the_real_network():
    import onnxruntime as ort

    session = ort.InferenceSession(str(YOLOX), providers=["CPUExecutionProvider"])
    c = dc.load_card(YOLOX)
    dc.check_model(c, YOLOX, session.get_inputs()[0].shape, [o.shape for o in session.get_outputs()])
    assert c["output"]["strides"] == [8, 16, 32] and dc.yolox_anchors(c["input"]["size"], [8, 16, 32]) == 3549


# --- loading: one typed error naming the file -------------------------------------------------------
def copy_with_card(tmp_path: Path, text: str | None) -> Path:
    model = tmp_path / "det.onnx"
    model.write_bytes(b"not read by the card checks")
    if text is not None:
        dc.card_path(model).write_text(text)
    return model


@pytest.mark.parametrize("text,says", [
    (None, "det.onnx: no detector card det.card.json beside it; write one (cvitx-detector-card/1: family, input, "
           "output, labels), see README, 'Bring a detector of another family'"),
    ("{\"format\": ", "det.card.json: not valid JSON (Expecting value: line 1 column 12 (char 11)); fix the card"),
    (json.dumps(changed("input.sizes", [416, 416])), "det.card.json: input: Additional properties are not allowed"),
    (json.dumps(changed("output.layout", "yolox-decoded") | {"labels": ["a", "a"]}),
     "det.card.json: output.strides: only the yolox-raw layout has strides (yolox-decoded boxes are decoded); drop "
     "output.strides (+1 more)"),
])
def test_a_bad_or_missing_card_is_refused_at_load(tmp_path, text, says):
    model = copy_with_card(tmp_path, text)
    with pytest.raises(dc.DetectorCardError) as e:
        dc.load_card(model)
    assert isinstance(e.value, PermanentError) and e.value.code == "detector_config"
    assert says in e.value.reason and str(tmp_path) in e.value.reason and "\n" not in e.value.reason, e.value.reason


def test_a_card_that_does_not_fit_its_network_is_refused_in_one_line(tmp_path):
    model = copy_with_card(tmp_path, json.dumps(changed("labels", ["car", "truck"]) | {"input": {
        **card()["input"], "size": [320, 320]}}))
    c = dc.load_card(model)
    with pytest.raises(dc.DetectorCardError) as e:
        dc.check_model(c, model, *YOLOX_SHAPES)
    assert e.value.reason == (f"{tmp_path / 'det.card.json'}: input.size: the network takes [416, 416] but the card "
                              "says [320, 320]; set input.size to [416, 416] (+2 more)")
