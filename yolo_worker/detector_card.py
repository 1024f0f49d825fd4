"""The detector card (``cvitx-detector-card/1``): how to feed and read a detector of another family.

An ultralytics ``.pt`` (or its export) carries its class names and needs nothing beside it.  A
detector of another family (YOLOX, an RT-DETR / D-FINE style transformer) is a bare network:
which pixels it wants and what its output means live in a JSON card beside the file, named
``<file without its suffix>.card.json``::

    yolox_nano.onnx            -> yolox_nano.card.json
    yolox_nano.xml (+ .bin)    -> yolox_nano.card.json     (OpenVINO IR)
    d_fine_openvino_model/     -> d_fine_openvino_model.card.json   (a directory: beside it)

Not ``.json`` as the main model's card (``main.onnx`` -> ``main.json``): beside a detector sit
other JSON files (the INT8 export's ``-int8.json``, a dataset's annotations), and a main-model
card copied next to a detector by mistake must not be read as a detector card.  An example::

    {"format": "cvitx-detector-card/1", "family": "yolox",
     "input": {"size": [416, 416], "channel_order": "BGR", "scale": 1, "mean": [0, 0, 0],
               "std": [1, 1, 1], "resize": "letterbox", "padding": "top-left", "pad_value": 114},
     "output": {"layout": "yolox-raw", "strides": [8, 16, 32], "scores": "sigmoid-applied"},
     "labels": "coco80", "licence": "Apache-2.0", "source": "Megvii YOLOX 0.1.1rc0"}

Network pixel = (value * ``scale`` - ``mean``) / ``std`` per channel, value the 0..255 channel in
``channel_order``.  Output layouts (A anchors, Q queries, C classes; yolo_worker/families.py reads them):

* ``ultralytics``   ``[1, 4 + C, A]``: cx, cy, w, h in input pixels, C class scores (NMS after).
* ``yolox-raw``     ``[1, A, 5 + C]``: the undecoded head, anchors of each stride row-major, the
  strides in ``output.strides`` order; objectness and C class scores (score = obj x cls).
* ``yolox-decoded`` ``[1, A, 5 + C]``: the same with the grid decoding in the graph (cx, cy, w, h
  in input pixels).
* ``detr``          ``[1, Q, 4 + C]`` (or two outputs, boxes ``[1, Q, 4]`` and scores ``[1, Q, C]``):
  cx, cy, w, h normalised 0..1 to the network input, then per-class scores of independent
  sigmoids (RT-DETR, D-FINE); no NMS.
* ``detr-topk``     ``[1, K, 6]``: cx, cy, w, h normalised, score, class id, top-k already taken in
  the graph (ultralytics >= 8.4's RT-DETR export).

``output.scores``: ``sigmoid-applied`` (probabilities in the output) or ``logits`` (the adapter
applies the sigmoid).  ``labels``: the class names in output order, or ``"coco80"``.

:func:`card_problems` is the pure check (schemas/detector_card.json, then what a schema cannot
say); :func:`model_problems` checks a card against a loaded network's input and output shapes.
Every refusal is one ``"key: problem; fix"`` line, as the main-model card's (main_worker/formats/card.py).
"""
from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any, Optional, Sequence

from jsonschema.exceptions import best_match

from ..worker_utils.errors import PermanentError
from ..worker_utils.validation import schema_validator

CARD_FORMAT = "cvitx-detector-card/1"
CARD_SUFFIX = ".card.json"
CARD_HELP = "see README, 'Bring a detector of another family', and yolo_worker/bundle/coco/yolox_nano.card.json"

# Which output layouts each family's adapter reads (yolo_worker/families.py).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "ultralytics": ("ultralytics",),
    "yolox": ("yolox-raw", "yolox-decoded"),
    "detr": ("detr", "detr-topk"),
}

# The pre-processing ultralytics' own letterbox (detector_runtime.to_input) applies: the
# ultralytics family reuses it, so its card must say exactly this.
ULTRALYTICS_INPUT: dict[str, Any] = {"channel_order": "RGB", "scale": 1 / 255, "mean": [0, 0, 0],
                                     "std": [1, 1, 1], "resize": "letterbox", "padding": "center",
                                     "pad_value": 114}

# The 80 COCO class names in the order every COCO-trained detector outputs them (ultralytics'
# cfg/datasets/coco.yaml, YOLOX's COCO_CLASSES, torchvision's list without the N/A gaps).
COCO80: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)


class DetectorCardError(PermanentError):
    """A detector card that is missing, malformed, or does not fit its network; ``reason`` names
    the file, the key and the fix.  Permanent: the worker refuses to start (exit 2).

    The same ``code`` as detector.py's DetectorConfigError (a detector the configuration names
    cannot run), without importing detector.py: detector.py will import this module."""

    code = "detector_config"


def card_path(model_path: str | Path) -> Path:
    """``yolox_nano.onnx`` -> ``yolox_nano.card.json``; an OpenVINO directory ``x_openvino_model/``
    -> ``x_openvino_model.card.json`` beside it."""
    model_path = Path(model_path)
    stem = model_path.name if model_path.is_dir() else model_path.stem
    return model_path.with_name(stem + CARD_SUFFIX)


def labels_of(card: dict) -> list[str]:
    """The card's class names in output order (``"coco80"`` expanded)."""
    labels = card["labels"]
    return list(COCO80) if labels == "coco80" else list(labels)


def _schema_problem(card: Any) -> Optional[str]:
    err = best_match(schema_validator("detector_card").iter_errors(card))
    if err is None:
        return None
    where = ".".join(str(p) for p in err.absolute_path) or "(card)"
    return f"{where}: {err.message}"


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-9) for x, y in zip(a, b))


def card_problems(card: Any) -> list[str]:
    """Everything wrong with a card, as ``"key: problem; fix"`` lines (empty when it is good).
    The schema first (a card that fails it is not read further), then the meaning: the layout is
    one the family reads, strides only for the raw YOLOX head and the input a multiple of the
    largest, the ultralytics family's input exactly ultralytics' letterbox (its adapter reuses
    it), each label once."""
    schema = _schema_problem(card)
    if schema:
        return [f"{schema}; fix the card (schemas/detector_card.json)"]
    family, inp, out = card["family"], card["input"], card["output"]
    layout = out["layout"]
    problems: list[str] = []
    if layout not in LAYOUTS[family]:
        problems.append(f"output.layout: the {family} family reads {' or '.join(LAYOUTS[family])}, not {layout}; "
                        f"set one of those, or the family whose layout {layout} is")
    if "strides" in out and layout != "yolox-raw":
        problems.append(f"output.strides: only the yolox-raw layout has strides ({layout} boxes are decoded); "
                        "drop output.strides")
    if layout == "yolox-raw":
        largest = max(out["strides"])
        h, w = inp["size"]
        if h % largest or w % largest:
            fit = [-(-v // largest) * largest for v in (h, w)]
            problems.append(f"input.size: {[h, w]} is not a multiple of the largest stride {largest} "
                            f"(output.strides); use the size the network was exported at, e.g. {fit}")
    if family == "ultralytics":
        for key, want in ULTRALYTICS_INPUT.items():
            have = inp[key]
            same = _same(have, want) if isinstance(want, list) else (
                math.isclose(have, want, rel_tol=1e-4) if key == "scale" else have == want)
            if not same:
                shown = "0.00392156862745098 (1/255)" if key == "scale" else json.dumps(want)
                problems.append(f"input.{key}: the ultralytics family runs ultralytics' own letterbox "
                                f"({json.dumps(have)} is not what it feeds); set {shown}, or use the yolox or "
                                "detr family for other pre-processing")
        if out["scores"] != "sigmoid-applied":
            problems.append("output.scores: an ultralytics export's scores are sigmoid-applied; set "
                            "\"sigmoid-applied\"")
    if card["labels"] != "coco80":
        labels = card["labels"]
        dup = sorted({v for v in labels if labels.count(v) > 1})
        if dup:
            problems.append(f"labels: {dup[:3]} appear more than once; each class name once, in output order")
    return problems


# --- against a loaded network -------------------------------------------------------------------
Shape = Sequence[Any]  # a tensor's dimensions; a dynamic one is a string, None or a negative number


def _static(dim: Any) -> Optional[int]:
    """A fixed dimension as an int; None for a dynamic one (ONNX Runtime's names, OpenVINO's -1)."""
    return int(dim) if isinstance(dim, numbers.Integral) and not isinstance(dim, bool) and dim >= 0 else None


def yolox_anchors(size: Sequence[int], strides: Sequence[int]) -> int:
    """Anchors of a raw YOLOX head at input ``size`` (h, w): one per grid cell of each stride."""
    return sum((int(size[0]) // s) * (int(size[1]) // s) for s in strides)


def detr_outputs(shapes: Sequence[Shape]) -> tuple[Optional[int], Optional[str]]:
    """``(index of the box output or None when boxes and scores come as one tensor, problem)`` for
    a ``detr`` layout's outputs: one ``[1, Q, 4 + C]`` tensor, or boxes ``[1, Q, 4]`` and scores
    ``[1, Q, C]`` in either order (told apart by the 4)."""
    if len(shapes) == 1:
        return None, None
    if len(shapes) != 2:
        return None, (f"the network has {len(shapes)} outputs; a detr network has one [1, Q, 4 + C] or two, "
                      "boxes [1, Q, 4] and scores [1, Q, C]")
    last = [_static(s[-1]) if len(s) else None for s in shapes]
    fours = [i for i, v in enumerate(last) if v == 4]
    if len(fours) != 1:
        return None, (f"outputs {[list(s) for s in shapes]}: cannot tell the boxes [1, Q, 4] from the scores "
                      "[1, Q, C]; export boxes and scores as one [1, Q, 4 + C] output")
    return fours[0], None


def network_classes(layout: str, shapes: Sequence[Shape]) -> tuple[Optional[int], Optional[str]]:
    """``(class count the output shapes give, or None where they do not say, problem or None)``
    for ``layout`` (see the module docstring)."""
    if layout == "detr":
        box_at, problem = detr_outputs(shapes)
        if problem:
            return None, problem
        if box_at is not None:
            return _static(shapes[1 - box_at][-1]), None
    shape = list(shapes[0]) if shapes else []
    if len(shape) != 3:
        return None, f"the network's output is {shape}, not the 3-dimensional [1, ..., ...] of the {layout} layout"
    if layout == "detr-topk":
        if _static(shape[2]) not in (None, 6):
            return None, f"the network's output is {shape}, not the [1, K, 6] of the detr-topk layout"
        return None, None  # class ids, not one score per class: the shape does not give the count
    axis, extra = {"ultralytics": (1, 4), "yolox-raw": (2, 5), "yolox-decoded": (2, 5), "detr": (2, 4)}[layout]
    n = _static(shape[axis])
    if n is not None and n <= extra:
        return None, f"the network's output is {shape}: too few values per box for the {layout} layout"
    return (n - extra if n is not None else None), None


def model_problems(card: dict, input_shape: Shape, output_shapes: Sequence[Shape]) -> list[str]:
    """What does not fit between a (good) card and a loaded network with this input shape and
    these output shapes, as ``"key: problem; fix"`` lines: the input size, the class count the
    output gives against the labels, the raw YOLOX head's anchor count against size and strides."""
    out: list[str] = []
    size = [int(v) for v in card["input"]["size"]]
    shape = list(input_shape)
    if len(shape) != 4 or _static(shape[1]) not in (None, 3) or _static(shape[0]) not in (None, 1):
        out.append(f"input.size: the network takes {shape}, not one [1, 3, h, w] image; export it for batch 1, "
                   "3 channels")
    else:
        hw = [_static(v) for v in shape[2:]]
        if any(v is not None and v != s for v, s in zip(hw, size)):
            out.append(f"input.size: the network takes {shape[2:]} but the card says {size}; set input.size to "
                       f"{[v if v is not None else s for v, s in zip(hw, size)]}")
    layout = card["output"]["layout"]
    classes, problem = network_classes(layout, output_shapes)
    if problem:
        return out + [f"output.layout: {problem}; export the network with that output, or fix output.layout"]
    n_labels = len(labels_of(card))
    if classes is not None and classes != n_labels:
        out.append(f"labels: the network scores {classes} classes but the card lists {n_labels} labels; list one "
                   f"name per class, in output order" + (" (\"coco80\" is 80)" if card["labels"] == "coco80" else ""))
    if layout == "yolox-raw":
        anchors = _static(list(output_shapes[0])[1])
        want = yolox_anchors(size, card["output"]["strides"])
        if anchors is not None and anchors != want:
            out.append(f"output.strides: the network has {anchors} anchors but {card['output']['strides']} at "
                       f"{size} make {want}; set the strides (and input.size) it was exported with")
    return out


# --- loading ---------------------------------------------------------------------------------
def _refuse(path: Path, problems: list[str]) -> DetectorCardError:
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return DetectorCardError(f"{path}: {problems[0]}{more}")


def load_card(model_path: str | Path) -> dict:
    """The card beside ``model_path`` (:func:`card_path`), checked; DetectorCardError naming the
    file, the key and the fix."""
    model_path = Path(model_path)
    path = card_path(model_path)
    if not path.is_file():
        raise DetectorCardError(f"{model_path}: no detector card {path.name} beside it; write one ({CARD_FORMAT}: "
                                f"family, input, output, labels), {CARD_HELP}")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DetectorCardError(f"{path}: not valid JSON ({exc}); fix the card, {CARD_HELP}") from None
    problems = card_problems(card)
    if problems:
        raise _refuse(path, problems)
    return card


def check_model(card: dict, model_path: str | Path, input_shape: Shape, output_shapes: Sequence[Shape]) -> None:
    """DetectorCardError (one line naming the card file, the key and the fix) when the loaded
    network at ``model_path`` does not fit its card (:func:`model_problems`)."""
    problems = model_problems(card, input_shape, output_shapes)
    if problems:
        raise _refuse(card_path(model_path), problems)
