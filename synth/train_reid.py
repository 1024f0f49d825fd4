"""Train the demo re-ID encoder: the appearance half of the yolo_worker's BoT-SORT tracker.

    python -m video_analysis.synth.train_reid [--scenes 240] [--epochs 10]

The tracker (``yolo_worker/tracking.py``) hands BoT-SORT the detector's boxes enlarged by
``BOX_BUFFER`` on each side, and BoT-SORT crops exactly those boxes for its encoder
(ultralytics ``ReID``: RGB in [0, 1], resized to the model's input size).  So the training crops
here are the same: ground-truth boxes of generated scenes, jittered like a detector's boxes,
enlarged by ``BOX_BUFFER`` (and by ultralytics' own crop margin, x1.02 + 10 px), cut from the
JPEG-degraded frame and resized to ``INPUT_HW``.

Identity = one vehicle of one scene (``TRAIN_SEEDS`` from ``--first-scene``, a range the
detector never used); the network learns an embedding with a cosine-softmax over identities
(normalised features and class weights, a margin), which is what BoT-SORT compares: cosine
distance between a track's smoothed feature and a detection's.

Evaluation, on unseen scenes (``EVAL_SEEDS``): for each vehicle, its crops half a second apart
form *same* pairs; crops of two different vehicles of the same scene form *different* pairs.  Reported:
mean cosine similarity of each, and how often each passes BoT-SORT's appearance gate
(similarity >= 0.6 = 1 - 2 x (1 - appearance_thresh 0.8)): the first should be high, the
second low.  Output: ``yolo_worker/bundle/demo/reid.onnx`` (embedding only, dynamic batch) and
``reid_metrics.json`` beside it.  Never part of the test command.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from ..worker_config import PACKAGE_DIR
from .datasets import EVAL_SEEDS, TRAIN_SEEDS, _jpeg_roundtrip, _scene_frames, random_config

BUNDLE = PACKAGE_DIR / "yolo_worker" / "bundle" / "demo"
INPUT_HW = (48, 96)  # height, width: vehicles are wider than tall from a CCTV pole
EMBED_DIM = 128
GATE = 0.6  # BoT-SORT: emb_dist / 2 <= 1 - appearance_thresh (0.8)  <=>  cosine similarity >= 0.6


def reid_crops(seeds: Iterable[int], every_s: float = 0.5, min_visibility: float = 0.6, duration_s: float = 20.0,
               jitter: float = 0.06, buffer: float | None = None):
    """``(crops N x H x W x 3 uint8 RGB, identity N int64, scene N int64, time N float32)``."""
    from ..yolo_worker.tracking import BOX_BUFFER

    buffer = BOX_BUFFER if buffer is None else buffer
    crops, ids, scenes, times = [], [], [], []
    identity: dict[tuple[int, int], int] = {}
    for seed in seeds:
        cfg = random_config(seed, duration_s=duration_s)
        rng = np.random.default_rng(seed + 17)
        for k, (img, objs, scene) in enumerate(_scene_frames(cfg, every_s, warmup_s=0.5)):
            frame = cv2.cvtColor(_jpeg_roundtrip(img, int(rng.integers(60, 92))), cv2.COLOR_BGR2RGB)
            H, W = frame.shape[:2]
            for o in objs:
                if o.visibility < min_visibility or o.truncated:
                    continue
                x1, y1, x2, y2 = o.box
                w, h = x2 - x1, y2 - y1
                if w < 8 or h < 8:
                    continue
                dx, dy, sw, sh = rng.normal(0, jitter, 4)
                cx, cy = (x1 + x2) / 2 + dx * w, (y1 + y2) / 2 + dy * h
                # what ultralytics' ReID crops: the buffered box, then save_one_box's gain 1.02 + 10 px
                w = w * (1 + sw) * (1 + 2 * buffer) * 1.02 + 10
                h = h * (1 + sh) * (1 + 2 * buffer) * 1.02 + 10
                a, b = int(max(0, cx - w / 2)), int(max(0, cy - h / 2))
                c, d = int(min(W, cx + w / 2)), int(min(H, cy + h / 2))
                if c - a < 4 or d - b < 4:
                    continue
                crops.append(cv2.resize(frame[b:d, a:c], INPUT_HW[::-1], interpolation=cv2.INTER_LINEAR))
                ids.append(identity.setdefault((seed, o.vehicle_id), len(identity)))
                scenes.append(seed)
                times.append(k * every_s)
    return (np.stack(crops), np.asarray(ids, np.int64), np.asarray(scenes, np.int64), np.asarray(times, np.float32))


def build_net(dim: int = EMBED_DIM):
    """A small CNN: N x 3 x 48 x 96 RGB in [0, 1] -> N x ``dim`` embedding (about 0.9 M weights, 3.5 MB)."""
    import torch.nn as nn

    def block(cin: int, cout: int, stride: int) -> list:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    layers: list = []
    cin = 3
    for cout in (32, 64, 128, 192):
        layers += block(cin, cout, 2) + block(cout, cout, 1)
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, dim), nn.BatchNorm1d(dim))


def embed(net, crops: np.ndarray, batch: int = 512) -> np.ndarray:
    """L2-normalised embeddings (N x dim) of RGB uint8 crops (N x H x W x 3)."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(crops), batch):
            x = torch.from_numpy(crops[s:s + batch]).permute(0, 3, 1, 2).float() / 255.0
            out.append(torch.nn.functional.normalize(net(x), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, EMBED_DIM), np.float32)


def pair_metrics(emb: np.ndarray, ids: np.ndarray, scenes: np.ndarray, times: np.ndarray) -> dict:
    """Same-vehicle pairs one step apart vs different vehicles of the same scene (see the module doc)."""
    same, diff = [], []
    for sc in np.unique(scenes):
        m = np.flatnonzero(scenes == sc)
        e, i, t = emb[m], ids[m], times[m]
        sim = e @ e.T
        for a in range(len(m)):
            later = np.flatnonzero((i == i[a]) & (t > t[a]))
            if len(later):
                same.append(sim[a, later[np.argmin(t[later])]])
            others = np.flatnonzero((i != i[a]) & (np.abs(t - t[a]) <= 1.0))
            diff.extend(sim[a, others].tolist())
    same_a, diff_a = np.asarray(same), np.asarray(diff)
    return {"same_pairs": len(same_a), "different_pairs": len(diff_a),
            "same_mean_similarity": round(float(same_a.mean()), 4), "different_mean_similarity": round(float(diff_a.mean()), 4),
            "same_pass_gate": round(float((same_a >= GATE).mean()), 4),
            "different_pass_gate": round(float((diff_a >= GATE).mean()), 4), "gate_similarity": GATE}


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(prog="python -m video_analysis.synth.train_reid", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=240)
    ap.add_argument("--first-scene", type=int, default=20000, help="offset into TRAIN_SEEDS (detector: below 600)")
    ap.add_argument("--val-scenes", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--out", default=str(BUNDLE / "reid.onnx"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    t0 = time.time()
    seeds = TRAIN_SEEDS[args.first_scene:args.first_scene + args.scenes]
    crops, ids, _sc, _t = reid_crops(seeds)
    val = reid_crops(EVAL_SEEDS[200:200 + args.val_scenes])
    print(f"{len(crops)} training crops of {ids.max() + 1} vehicles, {len(val[0])} validation crops "
          f"({time.time() - t0:.0f} s)", flush=True)

    net = build_net()
    n_ids = int(ids.max()) + 1
    weight = torch.nn.Parameter(torch.randn(n_ids, EMBED_DIM) * 0.01)
    opt = torch.optim.AdamW([*net.parameters(), weight], lr=args.lr, weight_decay=5e-4)
    steps = args.epochs * int(np.ceil(len(crops) / args.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    scale, margin = 16.0, 0.2  # cosine softmax with an additive margin (CosFace)
    x_all, y_all = torch.from_numpy(crops), torch.from_numpy(ids)
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(crops))
        total = 0.0
        for s in range(0, len(perm), args.batch):
            idx = perm[s:s + args.batch]
            if len(idx) < 2:
                continue  # BatchNorm cannot train on a single crop
            x = x_all[idx].permute(0, 3, 1, 2).float() / 255.0
            # photometric jitter: the same vehicle under a passing cloud, another camera's gain
            x = (x * torch.empty(len(x), 1, 1, 1).uniform_(0.75, 1.25)
                 + torch.empty(len(x), 3, 1, 1).uniform_(-0.06, 0.06)).clamp(0, 1)
            f = torch.nn.functional.normalize(net(x), dim=1)
            logits = f @ torch.nn.functional.normalize(weight, dim=1).T
            logits = scale * (logits - margin * torch.nn.functional.one_hot(y_all[idx], n_ids))
            loss = torch.nn.functional.cross_entropy(logits, y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        m = pair_metrics(embed(net, val[0]), *val[1:])
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / len(perm):.3f}, same {m['same_pass_gate']}, "
              f"different {m['different_pass_gate']} ({time.time() - t0:.0f} s)", flush=True)

    net.eval()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 3, *INPUT_HW), str(out), input_names=["images"], output_names=["embedding"],
                      dynamic_axes={"images": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=17, dynamo=False)
    metrics = {"input_hw": list(INPUT_HW), "embedding": EMBED_DIM, "validation": pair_metrics(embed(net, val[0]), *val[1:]),
               "validation_seeds": f"EVAL_SEEDS[200:{200 + args.val_scenes}] (never trained on)",
               "train": {"scenes": args.scenes, "seeds": f"TRAIN_SEEDS[{args.first_scene}:{args.first_scene + args.scenes}]",
                         "crops": int(len(crops)), "vehicles": n_ids, "epochs": args.epochs,
                         "minutes": round((time.time() - t0) / 60, 1)}}
    (out.parent / "reid_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics, indent=1))
    print(f"-> {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
