"""Detector families: the pre- and post-processing around a network, chosen by its card.

One interface, :class:`Family`, and one adapter per ``family`` of a detector card
(yolo_worker/detector_card.py)::

    fam = family_for(card)                       # UltralyticsFamily, YoloxFamily or DetrFamily
    x, meta = fam.preprocess(frame)              # H x W x 3 BGR uint8 -> 1 x 3 x h x w float32
    raw = runtime(x)                             # the network: one output array, or all of them
    det = fam.postprocess(raw, meta, frame.shape, conf, iou, classes, max_det)
    # D x 6 float32: x1, y1, x2, y2 in frame pixels (clipped to the frame), conf, the weights'
    # own class id (the caller maps it onto the taxonomy, detector.class_lookup on fam.names)

The network runs outside (ONNX Runtime or OpenVINO, detector_runtime.py): the adapters are pure
numpy around it, so the runtime thread only computes.

* **ultralytics**: exactly detector_runtime.OnnxModel's steps (its letterbox, its NMS, its box
  scaling; the functions themselves, not copies).
* **yolox**: the frame resized by r = min(h / H, w / W) (bilinear) and pasted top-left on a
  canvas of 114 (YOLOX's own demo code), BGR 0..255; the raw head decoded on its grids
  (cx = (o0 + gx) * s, cy = (o1 + gy) * s, w = exp(o2) * s, h = exp(o3) * s), score = obj x cls;
  or the decoded variant as it comes.  NMS afterwards.
* **detr**: RT-DETR / D-FINE style set prediction, no NMS: each query's best class, the
  ``max_det`` best queries above ``conf``.

NMS is ultralytics' ``non_max_suppression``, class-agnostic, exactly as the ultralytics family
runs it (detector_runtime.OnnxModel._nms): the same thresholds (score > conf), the same class
filter before suppression, the same caps; switching a family changes the network, never what
"one box per vehicle" means (detector.py says why agnostic).  A numpy NMS would be a second
implementation to keep in step with it; this one costs 0.6-1 ms a frame, mostly the fixed cost of
its Python and torch calls.  It runs in torch: load the network through detector_runtime's
OnnxModel / OpenVinoModel, which keep torch on one thread (why: there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence, Union

import cv2
import numpy as np

from ..worker_utils.offline import ultralytics_offline
from . import detector_card as dc
from . import detector_runtime as rt

Raw = Union[np.ndarray, Sequence[np.ndarray]]  # the network's first output, or all its outputs in order


@dataclass(frozen=True)
class Placement:
    """How a frame was put on the network's canvas: ``input = frame * scale + pad`` per axis.

    ``input_hw`` the canvas (h, w); ``frame_hw`` the frame's (H, W); ``resized_hw`` the frame's size
    on the canvas; ``scale_x``/``scale_y`` input pixels per frame pixel (equal for a letterbox: r,
    which boxes are divided by, as YOLOX and ultralytics do); ``pad_x``/``pad_y`` the canvas offset
    of the frame's top-left corner, in input pixels (0 for top-left padding and for a stretch)."""

    input_hw: tuple[int, int]
    frame_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int


class Family(Protocol):
    """A detector family's adapter (one network at one input size)."""

    name: str                      # the card's family
    input_hw: tuple[int, int]      # the network input (h, w)
    names: dict[int, str]          # the weights' class id -> class name

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, Placement]:
        """One BGR ``H x W x 3`` uint8 frame -> (``1 x 3 x h x w`` float32 network input, placement)."""
        ...

    def postprocess(self, raw: Raw, meta: Placement, frame_shape: Sequence[int], conf: float, iou: float,
                    classes: Optional[Sequence[int]], max_det: int = 300) -> np.ndarray:
        """The network's raw output -> ``D x 6`` float32 (x1, y1, x2, y2 frame pixels, conf, class id),
        best first; only ``classes`` (class ids; None = all) take part."""
        ...


# --- pure geometry ---------------------------------------------------------------------------------
def placement(frame_hw: Sequence[int], input_hw: Sequence[int], resize: str, padding: str) -> Placement:
    """Where a ``frame_hw`` frame lands on an ``input_hw`` canvas.

    ``letterbox``: aspect kept, r = min(h / H, w / W), the frame ``round(W * r) x round(H * r)``
    (at least 1 px; ultralytics' LetterBox rounding), placed ``center`` (ultralytics' split:
    top = round(dh / 2 - 0.1)) or ``top-left``.  YOLOX's demo truncates (``int``) where this
    rounds: one row or column at most, and none at 640x360, 1280x720 or 1920x1080 into 416x416.
    ``stretch``: both sides scaled to the canvas."""
    fh, fw = (int(v) for v in frame_hw[:2])
    h, w = (int(v) for v in input_hw)
    if resize == "stretch":
        return Placement((h, w), (fh, fw), (h, w), w / fw, h / fh, 0, 0)
    r = min(h / fh, w / fw)
    new_w, new_h = max(round(fw * r), 1), max(round(fh * r), 1)
    if padding == "center":
        pad_x, pad_y = round((w - new_w) / 2 - 0.1), round((h - new_h) / 2 - 0.1)
    else:
        pad_x = pad_y = 0
    return Placement((h, w), (fh, fw), (new_h, new_w), r, r, int(pad_x), int(pad_y))


def place(frame: np.ndarray, where: Placement, pad_value: int) -> np.ndarray:
    """The ``h x w x 3`` uint8 canvas: ``frame`` resized (bilinear) and pasted as ``where`` says,
    the rest ``pad_value``."""
    h, w = where.input_hw
    fh, fw = where.frame_hw
    new_h, new_w = where.resized_hw
    im = frame if (new_h, new_w) == (fh, fw) else cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if (new_h, new_w) == (h, w):
        return np.ascontiguousarray(im)
    canvas = np.full((h, w, 3), pad_value, np.uint8)
    canvas[where.pad_y:where.pad_y + new_h, where.pad_x:where.pad_x + new_w] = im
    return canvas


def to_tensor(canvas: np.ndarray, channel_order: str, scale: float, mean: Sequence[float],
              std: Sequence[float]) -> np.ndarray:
    """``h x w x 3`` BGR uint8 canvas -> ``1 x 3 x h x w`` float32, channels in ``channel_order``,
    value = (pixel * scale - mean) / std per channel."""
    im = canvas[:, :, ::-1] if channel_order == "RGB" else canvas
    x = im.transpose(2, 0, 1)[None].astype(np.float32)
    x *= np.float32(scale)
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if m.any() or (s != 1).any():  # most detectors: plain scaling, skip two passes over the image
        x = (x - m.reshape(1, 3, 1, 1)) / s.reshape(1, 3, 1, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def unplace(boxes: np.ndarray, where: Placement) -> np.ndarray:
    """``N x 4`` x1, y1, x2, y2 in input pixels -> frame pixels, clipped to the frame (float32)."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    b[:, [0, 2]] = (b[:, [0, 2]] - where.pad_x) / where.scale_x
    b[:, [1, 3]] = (b[:, [1, 3]] - where.pad_y) / where.scale_y
    fh, fw = where.frame_hw
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, fw)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, fh)
    return b


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, float32, without overflow for large negative logits."""
    return np.exp(-np.logaddexp(0, -np.asarray(x, np.float32))).astype(np.float32)


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    """``N x 4`` cx, cy, w, h -> x1, y1, x2, y2 (same units)."""
    b = np.asarray(b, np.float32)
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def _outputs(raw: Raw) -> list[np.ndarray]:
    return [np.asarray(raw)] if isinstance(raw, np.ndarray) else [np.asarray(r) for r in raw]


def _empty() -> np.ndarray:
    return np.zeros((0, 6), np.float32)


# --- YOLOX ----------------------------------------------------------------------------------------
def yolox_grid(input_hw: Sequence[int], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(A x 2 cell x, y; A x 1 stride)`` of a raw YOLOX head: each stride's grid row-major, in
    ``strides`` order (YOLOX's ``demo_postprocess``)."""
    cells, steps = [], []
    for s in strides:
        gh, gw = int(input_hw[0]) // s, int(input_hw[1]) // s
        gy, gx = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij")
        cells.append(np.stack([gx, gy], axis=-1).reshape(-1, 2))
        steps.append(np.full((gh * gw, 1), s, np.float32))
    return np.concatenate(cells), np.concatenate(steps)


def decode_yolox(raw: np.ndarray, grid: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``A x (5 + C)`` raw head -> ``A x (5 + C)`` with cx, cy, w, h in input pixels."""
    out = np.array(raw, np.float32, copy=True)
    out[:, :2] = (out[:, :2] + grid) * steps
    out[:, 2:4] = np.exp(out[:, 2:4]) * steps
    return out


def nms(pred_xywh: np.ndarray, scores: np.ndarray, conf: float, iou: float, classes: Optional[Sequence[int]],
        max_det: int) -> np.ndarray:
    """``A x 4`` cx, cy, w, h and ``A x C`` class scores (input pixels) -> ``D x 6`` x1, y1, x2, y2,
    conf, class in input pixels: the ultralytics family's NMS (detector_runtime.OnnxModel._nms,
    class-agnostic), fed in ultralytics' ``1 x (4 + C) x A`` layout (its Python and torch calls
    cost about 0.6 ms a frame whatever the count: handing it only the anchors above ``conf`` saved
    nothing measurable)."""
    pred = np.concatenate([pred_xywh, scores], axis=1).T[None]
    det = rt.OnnxModel._nms(np.ascontiguousarray(pred, np.float32), conf, iou,
                            list(classes) if classes is not None else None, max_det)
    return det[:, :6].numpy().astype(np.float32).reshape(-1, 6)


# --- the adapters --------------------------------------------------------------------------------
class _CardFamily:
    """What every adapter takes from its card."""

    name = ""

    def __init__(self, card: dict):
        self.card = card
        self.input_hw = (int(card["input"]["size"][0]), int(card["input"]["size"][1]))
        self.names = dict(enumerate(dc.labels_of(card)))
        self.layout = card["output"]["layout"]
        self.logits = card["output"]["scores"] == "logits"

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, Placement]:
        inp = self.card["input"]
        where = placement(frame.shape, self.input_hw, inp["resize"], inp["padding"])
        canvas = place(frame, where, int(inp["pad_value"]))
        return to_tensor(canvas, inp["channel_order"], float(inp["scale"]), inp["mean"], inp["std"]), where


class UltralyticsFamily(_CardFamily):
    """An ultralytics export (``[1, 4 + C, A]``): detector_runtime.OnnxModel's own steps, reused."""

    name = "ultralytics"
    # OnnxModel.detections (NMS + ultralytics' scale_boxes) as a method of this class: the very
    # function, whose only use of ``self`` is the static ``_nms`` bound here too.
    _nms = staticmethod(rt.OnnxModel._nms)
    detections = rt.OnnxModel.detections

    def __init__(self, card: dict):
        super().__init__(card)
        self.letterbox = rt.letterboxer(self.input_hw)

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, Placement]:
        x = rt.to_input(self.letterbox, frame)
        return x, placement(frame.shape, self.input_hw, "letterbox", "center")

    def postprocess(self, raw: Raw, meta: Placement, frame_shape: Sequence[int], conf: float, iou: float,
                    classes: Optional[Sequence[int]], max_det: int = 300) -> np.ndarray:
        return self.detections(_outputs(raw)[0], meta.input_hw, frame_shape, conf, iou,
                               list(classes) if classes is not None else None, max_det)


class YoloxFamily(_CardFamily):
    """YOLOX: ``[1, A, 5 + C]`` raw (decoded here on the card's strides) or decoded in the graph."""

    name = "yolox"

    def __init__(self, card: dict):
        super().__init__(card)
        ultralytics_offline()  # its NMS imports ultralytics: never with downloads enabled
        self.grid = yolox_grid(self.input_hw, card["output"]["strides"]) if self.layout == "yolox-raw" else None

    def postprocess(self, raw: Raw, meta: Placement, frame_shape: Sequence[int], conf: float, iou: float,
                    classes: Optional[Sequence[int]], max_det: int = 300) -> np.ndarray:
        out = _outputs(raw)[0]
        out = out.reshape(out.shape[-2], out.shape[-1])
        if self.grid is not None:
            if len(out) != len(self.grid[0]):
                raise ValueError(f"the network gave {len(out)} anchors; input {list(self.input_hw)} with strides "
                                 f"{self.card['output']['strides']} make {len(self.grid[0])}")
            out = decode_yolox(out, *self.grid)
        obj, cls = out[:, 4:5], out[:, 5:]
        if self.logits:
            obj, cls = sigmoid(obj), sigmoid(cls)
        det = nms(out[:, :4], obj * cls, conf, iou, classes, max_det)
        if len(det):
            det[:, :4] = unplace(det[:, :4], meta)
        return det


class DetrFamily(_CardFamily):
    """RT-DETR / D-FINE style set prediction: no NMS.

    ``detr`` (``[1, Q, 4 + C]``, or boxes ``[1, Q, 4]`` + scores ``[1, Q, C]``): each query's best
    class among ``classes``, the ``max_det`` best queries scoring above ``conf``.  One box per query
    rather than RT-DETR's top-k over every (query, class) pair, which gives a query unsure between
    car and truck two identical boxes (two tracks, two snapshots: the twin detector.py's agnostic
    NMS exists to avoid); the other classes are filtered out before the choice, so they take no place.

    ``detr-topk`` (``[1, K, 6]``, top-k over the pairs already taken in the graph, ultralytics
    >= 8.4): rows above ``conf`` of ``classes``, and of rows sharing one query (bit-identical boxes,
    gathered from one row) only the best; the first ``max_det``.  Otherwise what ultralytics'
    RTDETRPredictor.postprocess returns.

    Boxes are normalised to the network input (so a stretch maps them straight onto the frame)."""

    name = "detr"

    def postprocess(self, raw: Raw, meta: Placement, frame_shape: Sequence[int], conf: float, iou: float,
                    classes: Optional[Sequence[int]], max_det: int = 300) -> np.ndarray:
        outs = _outputs(raw)
        if self.layout == "detr-topk":
            return self._topk_rows(outs[0].reshape(-1, outs[0].shape[-1]), meta, conf, classes, max_det)
        box_at, problem = dc.detr_outputs([o.shape for o in outs])
        if problem:
            raise ValueError(problem)
        if box_at is None:
            pred = outs[0].reshape(-1, outs[0].shape[-1])
            boxes, scores = pred[:, :4], pred[:, 4:]
        else:
            boxes = outs[box_at].reshape(-1, 4)
            scores = outs[1 - box_at].reshape(len(boxes), -1)
        scores = sigmoid(scores) if self.logits else np.asarray(scores, np.float32)
        if classes is not None:
            keep = np.zeros(scores.shape[1], bool)
            keep[[c for c in classes if 0 <= c < len(keep)]] = True
            scores = np.where(keep, scores, -np.inf)
        cls = scores.argmax(1)
        best = scores[np.arange(len(scores)), cls]
        order = np.argsort(-best, kind="stable")[:max_det]
        order = order[best[order] > conf]
        return self._rows(boxes[order], best[order], cls[order], meta)

    def _topk_rows(self, pred: np.ndarray, meta: Placement, conf: float, classes: Optional[Sequence[int]],
                   max_det: int) -> np.ndarray:
        score = sigmoid(pred[:, 4]) if self.logits else pred[:, 4].astype(np.float32)
        order = np.argsort(-score, kind="stable")  # the graph's top-k is sorted; an export's may not be
        pred, score = pred[order], score[order]
        mask = score > conf
        if classes is not None:
            mask &= np.isin(pred[:, 5].astype(np.int64), np.asarray(list(classes), np.int64))
        pred, score = pred[mask], score[mask]
        _, first = np.unique(pred[:, :4], axis=0, return_index=True)  # one row per query: its best class
        first = np.sort(first)[:max_det]
        return self._rows(pred[first, :4], score[first], pred[first, 5].astype(np.int64), meta)

    def _rows(self, boxes_norm: np.ndarray, score: np.ndarray, cls: np.ndarray, meta: Placement) -> np.ndarray:
        if not len(score):
            return _empty()
        h, w = meta.input_hw
        b = xywh_to_xyxy(np.asarray(boxes_norm, np.float32)) * np.array([w, h, w, h], np.float32)
        return np.concatenate([unplace(b, meta), np.asarray(score, np.float32)[:, None],
                               np.asarray(cls, np.float32)[:, None]], axis=1)


FAMILIES: dict[str, type[_CardFamily]] = {"ultralytics": UltralyticsFamily, "yolox": YoloxFamily,
                                          "detr": DetrFamily}


def family_for(card: dict) -> Family:
    """The adapter for a checked card (detector_card.load_card)."""
    return FAMILIES[card["family"]](card)
