"""Detector families (yolo_worker/families.py) on real networks.

* YOLOX: the real YOLOX-Nano (COCO, Apache-2.0, yolo_worker/bundle/coco/) in ONNX Runtime and in
  OpenVINO on frames of a real MIT-licensed clip (an overpass over a dual carriageway): it finds
  the hand-boxed vehicles with boxes on them; its input is YOLOX's own pre-processing to the
  pixel; the padding is read back from where it was placed.
* ultralytics: the same steps as detector_runtime.OnnxModel, on the demo detector's export.
* DETR: an ultralytics RT-DETR built from its yaml (random weights), exported to ONNX here; the
  adapter gives what ultralytics' own RT-DETR predictor gives on the same frame.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DETECTOR, REPO
from video_analysis.eval.metrics import iou_matrix
from video_analysis.yolo_worker import detector_card as dc
from video_analysis.yolo_worker import detector_runtime as rt
from video_analysis.yolo_worker import families as fm

YOLOX = REPO / "yolo_worker" / "bundle" / "coco" / "yolox_nano.onnx"
REAL_DIRS = (REPO / "tests" / "data" / "real", Path("/work/shared/real"))  # the clip, MIT (LICENSE beside it)
CLIP = next((d / "abhishek_highway.mp4" for d in REAL_DIRS if (d / "abhishek_highway.mp4").is_file()), None)
needs_clip = pytest.mark.skipif(CLIP is None, reason="the real clip abhishek_highway.mp4 is not in tests/data/real")
VEHICLES = [dc.COCO80.index(n) for n in ("car", "motorcycle", "bus", "truck")]
CONF, IOU = 0.3, 0.45
BOXED = (120, 150, 180, 210, 240, 270, 300, 330, 340)  # frames where the ground truth boxes 7 or more vehicles


def yolox_card(**input_changes) -> dict:
    card = dc.load_card(YOLOX)
    card["input"].update(input_changes)
    assert dc.card_problems(card) == []
    return card


@pytest.fixture(scope="module")
def frames() -> dict[int, np.ndarray]:
    """The clip's frames used here, ``{index: 360 x 640 x 3 BGR}``."""
    if CLIP is None:
        pytest.skip("the real clip abhishek_highway.mp4 is not in tests/data/real")
    want = set(BOXED) | {170}
    cap = cv2.VideoCapture(str(CLIP))
    out, i = {}, 0
    while i <= max(want):
        if i in want:
            ok, frame = cap.read()
            assert ok, f"frame {i} of {CLIP}"
            out[i] = frame
        else:
            cap.grab()
        i += 1
    cap.release()
    return out


@pytest.fixture(scope="module")
def truth() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{frame: (N x 4 hand-drawn boxes, N countable?)}`` at the :data:`BOXED` frames (a note
    starting "hard" marks a vehicle not counted: tiny, far, half out of view)."""
    path = REAL_DIRS[0] / "abhishek_highway.gt.json"
    gt = json.loads(path.read_text()) if path.is_file() else []
    if not any("boxes" in g for g in gt):
        pytest.skip(f"no hand-drawn boxes in {path}")
    out = {}
    for f in BOXED:
        rows = [(g["boxes"][str(f)], not g["note"].startswith("hard")) for g in gt if str(f) in g.get("boxes", {})]
        out[f] = (np.array([r[0] for r in rows], np.float32), np.array([r[1] for r in rows]))
    return out


@pytest.fixture(scope="module")
def runtimes() -> dict[str, rt.OnnxModel]:
    """YOLOX-Nano loaded by the project's own runtimes (2 threads; OpenVINO picks its precision:
    bfloat16 on a CPU with AVX-512 BF16 or AMX).  Only ``infer`` is used: the network alone."""
    return {name: cls(YOLOX, (416, 416), threads=2) for name, cls in rt.RUNTIMES.items()}


def detect(family: fm.Family, model: rt.OnnxModel, frame: np.ndarray, conf: float = CONF,
           classes=VEHICLES) -> np.ndarray:
    x, meta = family.preprocess(frame)
    return family.postprocess(model.infer(x), meta, frame.shape, conf, IOU, classes)


# --- YOLOX on real footage ----------------------------------------------------------------------------
@needs_clip
@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_yolox_nano_finds_the_vehicles_on_a_real_highway(frames, truth, runtimes, runtime):
    """Against the hand-drawn boxes (IoU >= 0.5): 85 % of the countable vehicles found and 96 % of
    the boxes on a vehicle when this was written (2026-12-04); floors 75 % and 85 %, and every
    frame at least 60 % and 5 vehicles.  Boxes inside the frame and vehicle-sized (the clip's
    vehicles are 25-80 px)."""
    family = fm.family_for(yolox_card())
    found = countable = on_vehicle = boxes = 0
    for f in BOXED:
        det = detect(family, runtimes[runtime], frames[f])
        gt, counted = truth[f]
        assert det.dtype == np.float32 and det.shape[1] == 6
        assert (det[:, :4] >= 0).all() and (det[:, [0, 2]] <= 640).all() and (det[:, [1, 3]] <= 360).all()
        w, h = det[:, 2] - det[:, 0], det[:, 3] - det[:, 1]
        assert ((w > 12) & (w < 130) & (h > 8) & (h < 110)).all(), det
        assert set(det[:, 5].astype(int)) <= set(VEHICLES) and (np.diff(det[:, 4]) <= 0).all()  # best first
        iou = iou_matrix(gt, det[:, :4]) if len(det) else np.zeros((len(gt), 0))
        hit = iou.max(1) >= 0.5 if len(det) else np.zeros(len(gt), bool)
        assert len(det) >= 5 and hit[counted].sum() >= 0.6 * counted.sum(), (f, det)
        found, countable = found + hit[counted].sum(), countable + counted.sum()
        on_vehicle, boxes = on_vehicle + (iou.max(0) >= 0.5).sum(), boxes + len(det)
    assert found >= 0.75 * countable and on_vehicle >= 0.85 * boxes, (found, countable, on_vehicle, boxes)


@needs_clip
def test_onnx_runtime_and_openvino_agree(frames, runtimes):
    """The same boxes in both runtimes: OpenVINO's bfloat16 (where the CPU has it) moves
    confidences by a few hundredths, so only boxes clear of the threshold must be in both."""
    family = fm.family_for(yolox_card())
    for f in (170, 240, 330):
        a, b = (detect(family, runtimes[n], frames[f]) for n in ("onnx", "openvino"))
        iou = iou_matrix(a[:, :4], b[:, :4])
        clear = a[:, 4] > CONF + 0.05
        assert clear.sum() >= 5
        j = iou.argmax(1)
        assert (iou.max(1)[clear] > 0.9).all(), (a, b)
        assert np.abs(a[clear, 4] - b[j[clear], 4]).max() < 0.04 and (a[clear, 5] == b[j[clear], 5]).all()


def yolox_reference_input(frame: np.ndarray) -> np.ndarray:
    """YOLOX's own ``preproc`` (yolox/data/data_augment.py, its ONNX demo): resize by r, paste
    top-left on 114, BGR 0..255, no normalisation."""
    padded = np.ones((416, 416, 3), np.uint8) * 114
    r = min(416 / frame.shape[0], 416 / frame.shape[1])
    resized = cv2.resize(frame, (int(frame.shape[1] * r), int(frame.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)


@pytest.mark.parametrize("w,h", [(640, 360), (1280, 720), (1920, 1080), (360, 640), (416, 416)])
def test_yolox_input_is_yolox_own_preprocessing(w, h):
    frame = np.random.default_rng(w * h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    x, meta = fm.family_for(yolox_card()).preprocess(frame)
    assert x.dtype == np.float32 and x.shape == (1, 3, 416, 416)
    np.testing.assert_array_equal(x, yolox_reference_input(frame))
    assert (meta.pad_x, meta.pad_y) == (0, 0) and meta.scale_x == meta.scale_y == min(416 / h, 416 / w)


def yolox_reference_detections(raw: np.ndarray, r: float, conf: float, iou: float) -> np.ndarray:
    """YOLOX's ``demo_postprocess`` decoding written out stride by stride, then torchvision's
    NMS, class-agnostic: the adapter's decoding checked against an independent one."""
    import torch
    import torchvision

    out, start = raw[0].copy(), 0
    for s in (8, 16, 32):
        n = 416 // s
        ys, xs = np.divmod(np.arange(n * n), n)
        cell = out[start:start + n * n]
        cell[:, 0] = (cell[:, 0] + xs) * s
        cell[:, 1] = (cell[:, 1] + ys) * s
        cell[:, 2:4] = np.exp(cell[:, 2:4]) * s
        start += n * n
    scores = out[:, 4:5] * out[:, 5:]
    cls, best = scores.argmax(1), scores.max(1)
    boxes = np.stack([out[:, 0] - out[:, 2] / 2, out[:, 1] - out[:, 3] / 2,
                      out[:, 0] + out[:, 2] / 2, out[:, 1] + out[:, 3] / 2], 1) / r
    k = best > conf
    keep = torchvision.ops.nms(torch.from_numpy(boxes[k]), torch.from_numpy(best[k]), iou).numpy()
    return np.concatenate([boxes[k][keep], best[k][keep, None], cls[k][keep, None]], 1).astype(np.float32)


@needs_clip
def test_yolox_decoding_matches_an_independent_one(frames, runtimes):
    family = fm.family_for(yolox_card())
    frame = frames[170]
    x, meta = family.preprocess(frame)
    raw = runtimes["onnx"].infer(x)
    ours = family.postprocess(raw, meta, frame.shape, CONF, IOU, None)
    ref = yolox_reference_detections(raw, 0.65, CONF, IOU)
    ref[:, [0, 2]] = ref[:, [0, 2]].clip(0, 640)
    ref[:, [1, 3]] = ref[:, [1, 3]].clip(0, 360)
    assert len(ours) >= 6 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-3)


@needs_clip
def test_the_decoded_and_the_logit_variants_give_the_same_detections(frames, runtimes):
    """``yolox-decoded`` (decoding in the graph) and ``scores: logits`` read the same network the
    same way: fed the raw head decoded by hand, or with its sigmoids undone."""
    raw_card = yolox_card()
    frame = frames[240]
    family = fm.family_for(raw_card)
    x, meta = family.preprocess(frame)
    raw = runtimes["onnx"].infer(x)
    want = family.postprocess(raw, meta, frame.shape, CONF, IOU, VEHICLES)
    decoded = fm.decode_yolox(raw[0], *fm.yolox_grid((416, 416), [8, 16, 32]))[None]
    dec_card = copy.deepcopy(raw_card)
    dec_card["output"] = {"layout": "yolox-decoded", "scores": "sigmoid-applied"}
    logit_card = copy.deepcopy(raw_card)
    logit_card["output"]["scores"] = "logits"
    logits = raw.copy()
    p = np.clip(raw[..., 4:], 1e-7, 1 - 1e-7)
    logits[..., 4:] = np.log(p / (1 - p))
    assert len(want) >= 5
    np.testing.assert_allclose(fm.family_for(dec_card).postprocess([decoded], meta, frame.shape, CONF, IOU, VEHICLES),
                               want, atol=1e-3)
    np.testing.assert_allclose(fm.family_for(logit_card).postprocess(logits, meta, frame.shape, CONF, IOU, VEHICLES),
                               want, atol=1e-3)


@needs_clip
def test_the_padding_is_read_back_from_where_it_was_placed(frames, truth, runtimes):
    """A centred card places the 640 x 360 frame 91 px down the 416 x 416 canvas and reads the
    boxes back from there: the fully convolutional YOLOX then finds the same vehicles (so the
    padding cannot be checked by what it finds, only by where it is read back).  Read back as if
    top-left (YOLOX's demo code, boxes / r, on a centred canvas) every box lands 91 / 0.65 = 140 px
    too low, off its vehicle."""
    top_left, centred = fm.family_for(yolox_card()), fm.family_for(yolox_card(padding="center"))
    frame = frames[330]
    x, meta = centred.preprocess(frame)
    assert (meta.pad_x, meta.pad_y, meta.resized_hw) == (0, 91, (234, 416))
    assert (x[0, :, :91] == 114).all() and (x[0, :, 91 + 234:] == 114).all() and (x[0, :, 91:91 + 234] != 114).any()
    x_tl, _ = top_left.preprocess(frame)
    np.testing.assert_array_equal(x[0, :, 91:91 + 234], x_tl[0, :, :234])  # the same pixels, moved

    raw = runtimes["onnx"].infer(x)
    right = centred.postprocess(raw, meta, frame.shape, CONF, IOU, VEHICLES)
    wrong = top_left.postprocess(raw, top_left.preprocess(frame)[1], frame.shape, CONF, IOU, VEHICLES)
    gt, counted = truth[330]
    assert (iou_matrix(gt[counted], right[:, :4]).max(1) >= 0.5).mean() >= 0.75
    unclipped = wrong[:, 3] < 360
    assert unclipped.sum() >= 3
    np.testing.assert_allclose(wrong[unclipped, 1] - right[unclipped, 1], 140, atol=0.01)
    assert (iou_matrix(gt[counted], wrong[:, :4]).max(1) >= 0.5).mean() <= 0.2


# --- ultralytics: the runtime's own steps -------------------------------------------------------------
@needs_clip
def test_the_ultralytics_family_is_what_onnx_model_does(tmp_path, frames):
    size = (192, 320)
    path = rt.export_onnx(DETECTOR, size, tmp_path)
    model = rt.OnnxModel(path, size, threads=2)
    names = ["Car", "SUV", "Van", "LightTruck", "Utility", "Motorcycle", "CarouselBus", "E-Jeepney"]
    card = {"format": dc.CARD_FORMAT, "family": "ultralytics",
            "input": {"size": list(size), "channel_order": "RGB", "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1],
                      "resize": "letterbox", "padding": "center", "pad_value": 114},
            "output": {"layout": "ultralytics", "scores": "sigmoid-applied"}, "labels": names}
    assert dc.card_problems(card) == [] and dc.model_problems(card, [1, 3, *size], [model.output_shape]) == []
    family = fm.family_for(card)
    for f in (170, 330):
        frame = frames[f]
        x, meta = family.preprocess(frame)
        np.testing.assert_array_equal(x, model.input_for(frame))
        assert meta.pad_y == 6 and meta.scale_x == 0.5  # ultralytics' letterbox: 320 x 180 centred on 192
        for conf, classes in ((0.01, None), (0.2, [0, 1])):
            want = model.predict(frame, conf, 0.7, classes)
            got = family.postprocess(model.infer(x), meta, frame.shape, conf, 0.7, classes)
            assert len(want) > 0 and np.array_equal(got, want)


# --- DETR: against ultralytics' own RT-DETR predictor --------------------------------------------------
RTDETR_SIZE = 320  # a small export: the test's cost is the export and ultralytics' predictor


@pytest.fixture(scope="module")
def rtdetr(tmp_path_factory, frames):
    """``(model, onnx path, frame)``: an ultralytics RT-DETR-L from its yaml with random weights,
    exported to ONNX at 320 x 320 (ultralytics >= 8.4 puts the top-k in the graph: [1, 300, 6]).

    Random weights score every query alike (0.0427-0.0429: near-ties that ONNX Runtime and torch
    order differently); the final score head is rescaled on this frame so that the queries' scores
    spread out (a deviation of one logit per standard deviation), which changes no box."""
    import torch

    from video_analysis.worker_utils import offline

    offline.ultralytics_offline()
    from ultralytics import RTDETR

    frame = frames[170]
    attempts = len(offline.ATTEMPTS)  # refused downloads so far in this process (other tests provoke some)
    torch.manual_seed(0)
    model = RTDETR("rtdetr-l.yaml")
    net = model.model.eval()
    x, _ = fm.family_for(detr_card()).preprocess(frame)
    with torch.no_grad():
        logits = net(torch.from_numpy(x))[1][1][0, 0]  # (y, (dec_bboxes, dec_scores, ...)): Q x C
        mu, sd = logits.mean(0), (logits - logits.mean(0)).std()
        head = net.model[-1].dec_score_head[-1]
        head.weight.mul_(1 / sd)
        head.bias.copy_((head.bias - mu) / sd - 4.0)
    out = tmp_path_factory.mktemp("rtdetr")
    cwd = os.getcwd()
    os.chdir(out)  # a model built from a yaml exports into the working directory
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = model.export(format="onnx", imgsz=RTDETR_SIZE, device="cpu", batch=1, dynamic=False,
                                simplify=False, verbose=False)
    finally:
        os.chdir(cwd)
    assert offline.ATTEMPTS[attempts:] == []  # building and exporting asked for nothing (fonts, weights, pip)
    return model, out / Path(path).name, frame


def detr_card(layout: str = "detr", scores: str = "logits") -> dict:
    """ultralytics' RT-DETR pre-processing: stretched to the square (its predictor's scale_fill), RGB 0..1."""
    return {"format": dc.CARD_FORMAT, "family": "detr",
            "input": {"size": [RTDETR_SIZE, RTDETR_SIZE], "channel_order": "RGB", "scale": 1 / 255,
                      "mean": [0, 0, 0], "std": [1, 1, 1], "resize": "stretch", "padding": "center", "pad_value": 114},
            "output": {"layout": layout, "scores": scores}, "labels": "coco80"}


def predictor_reference(model, frame: np.ndarray) -> tuple[np.ndarray, float]:
    """``(ultralytics' RT-DETR predictor's boxes at a conf clear of every near-tie, that conf)``:
    its rows above conf, boxes clipped to the frame, and of rows sharing one query (the same
    box; its top-k runs over query-class pairs) the first, the best."""
    res = model.predict(frame, imgsz=RTDETR_SIZE, conf=0.0, verbose=False, save=False)[0]
    rows = res.boxes.data.cpu().numpy().astype(np.float32)
    s = np.sort(rows[:, 4])[::-1]
    gap = 10 + int(np.argmax(s[10:100] - s[11:101]))  # the widest gap below the tenth best score
    conf = float(s[gap] + s[gap + 1]) / 2
    rows = rows[rows[:, 4] > conf]
    _, first = np.unique(rows[:, :4], axis=0, return_index=True)
    assert len(first) < len(rows), "no query with two classes: the dedupe is untested"
    rows = rows[np.sort(first)]
    rows[:, [0, 2]] = rows[:, [0, 2]].clip(0, frame.shape[1])
    rows[:, [1, 3]] = rows[:, [1, 3]].clip(0, frame.shape[0])
    return rows, conf


def _canonical(det: np.ndarray, score_atol: float) -> np.ndarray:
    """Rows ordered by score (rounded to the tolerance, best first), then by box: detections whose
    scores tie within float noise come out in either order (oneDNN under ONEDNN_MAX_CPU_ISA=AVX2 swapped
    two such rows of random-weight RT-DETR), which is not a difference in what was detected."""
    key = np.round(det[:, 4] / max(score_atol, 1e-9) / 10)
    order = np.lexsort((det[:, 3], det[:, 2], det[:, 1], det[:, 0], -key))
    return det[order]


def assert_same_detections(got: np.ndarray, want: np.ndarray, score_atol: float):
    assert len(want) >= 8 and got.shape == want.shape, (got, want)
    got, want = _canonical(got, score_atol), _canonical(want, score_atol)
    np.testing.assert_allclose(got[:, :4], want[:, :4], atol=1.0)  # within a pixel
    np.testing.assert_allclose(got[:, 4], want[:, 4], atol=score_atol)
    np.testing.assert_array_equal(got[:, 5], want[:, 5])


def test_detr_topk_export_gives_what_ultralytics_predictor_gives(rtdetr):
    """ultralytics' ONNX export ([1, 300, 6]) in ONNX Runtime through the ``detr-topk`` layout."""
    import onnxruntime as ort

    model, path, frame = rtdetr
    want, conf = predictor_reference(model, frame)
    card = detr_card("detr-topk", "sigmoid-applied")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shapes = [o.shape for o in session.get_outputs()]
    assert shapes == [[1, 300, 6]] and dc.card_problems(card) == []
    dc.check_model(card, path, session.get_inputs()[0].shape, shapes)
    family = fm.family_for(card)
    x, meta = family.preprocess(frame)
    got = family.postprocess(session.run(None, {session.get_inputs()[0].name: x}), meta, frame.shape, conf, 0.7, None)
    assert_same_detections(got, want, 1e-4)


@pytest.mark.parametrize("outputs", ["boxes and logits", "one tensor of probabilities"])
def test_detr_queries_give_what_ultralytics_predictor_gives(rtdetr, outputs):
    """The ``detr`` layout, the network's queries before any top-k (RT-DETR / D-FINE exported
    without their post-processor): each query's best class is the predictor's first row of it."""
    import torch

    model, _, frame = rtdetr
    want, conf = predictor_reference(model, frame)
    card = detr_card("detr", "logits" if outputs == "boxes and logits" else "sigmoid-applied")
    family = fm.family_for(card)
    x, meta = family.preprocess(frame)
    with torch.no_grad():
        _, (boxes, logits, *_rest) = model.model.eval()(torch.from_numpy(x))
    boxes, logits = boxes[0].numpy(), logits[0].numpy()  # 1 x Q x 4 (cx, cy, w, h of 0..1), 1 x Q x C
    raw = [logits, boxes] if outputs == "boxes and logits" else [np.concatenate([boxes, fm.sigmoid(logits)], -1)]
    assert dc.model_problems(card, [1, 3, RTDETR_SIZE, RTDETR_SIZE], [r.shape for r in raw]) == []
    got = family.postprocess(raw, meta, frame.shape, conf, 0.7, None)
    assert_same_detections(got, want, 1e-4)


# --- DETR: the rules, on made-up outputs ----------------------------------------------------------------
def made_up_queries() -> np.ndarray:
    """Four queries over three classes, ``1 x 4 x (4 + 3)``: boxes normalised, scores sigmoid-applied."""
    return np.array([[[0.5, 0.5, 0.2, 0.2, 0.10, 0.90, 0.80],    # class 1 (and nearly 2)
                      [0.2, 0.2, 0.1, 0.1, 0.70, 0.05, 0.05],    # class 0
                      [0.8, 0.8, 0.1, 0.2, 0.05, 0.05, 0.40],    # class 2
                      [0.1, 0.9, 0.1, 0.1, 0.20, 0.01, 0.01]]], np.float32)  # below 0.3


@pytest.mark.parametrize("classes,max_det,want", [
    (None, 300, [(1, 0.9), (0, 0.7), (2, 0.4)]),      # one box per query, its best class, best first
    ([2], 300, [(2, 0.8), (2, 0.4)]),                # other classes take no place: query 0 is a 2
    ([0, 2], 1, [(2, 0.8)]),
    (None, 2, [(1, 0.9), (0, 0.7)]),
    ([5], 300, []),
])
def test_detr_queries_rules(classes, max_det, want):
    card = detr_card("detr", "sigmoid-applied")
    card["input"]["size"] = [100, 200]
    family = fm.family_for(card)
    frame = np.zeros((50, 400, 3), np.uint8)  # stretched onto 100 x 200
    _, meta = family.preprocess(frame)
    got = family.postprocess(made_up_queries(), meta, frame.shape, 0.3, 0.7, classes, max_det)
    assert [(int(c), round(float(s), 2)) for c, s in got[:, 5:3:-1]] == want
    if classes is None and max_det == 300:
        np.testing.assert_allclose(got[0, :4], [160, 20, 240, 30], atol=1e-4)  # (0.4..0.6) x 400, (0.4..0.6) x 50


def test_detr_topk_rows_rules():
    """Rows above conf, of ``classes``; a query's second class (the same box) dropped."""
    rows = np.array([[[0.5, 0.5, 0.2, 0.2, 0.90, 1],
                      [0.5, 0.5, 0.2, 0.2, 0.80, 2],      # the same query again
                      [0.2, 0.2, 0.1, 0.1, 0.70, 0],
                      [0.8, 0.8, 0.1, 0.2, 0.40, 2],
                      [0.1, 0.9, 0.1, 0.1, 0.20, 0]]], np.float32)
    card = detr_card("detr-topk", "sigmoid-applied")
    family = fm.family_for(card)
    frame = np.zeros((320, 320, 3), np.uint8)
    _, meta = family.preprocess(frame)
    run = lambda classes: [(int(c), round(float(s), 2)) for c, s in  # noqa: E731
                           family.postprocess(rows, meta, frame.shape, 0.3, 0.7, classes)[:, 5:3:-1]]
    assert run(None) == [(1, 0.9), (0, 0.7), (2, 0.4)]
    assert run([2]) == [(2, 0.8), (2, 0.4)]
