"""Train the demo main-model bundles (baseline ``main.pt`` and a second checkpoint ``cmt.pt``).

    python -m video_analysis.synth.train_main [--train 12000] [--epochs 12]

Snapshots are cut from generated scenes by the worker's own crop + letterbox code
(``synth.datasets.snapshot_samples``) and area-downsampled to the network's input size.
Heads: type, make, model, color_base, finish, lightness.  The baseline is a TinyNet of
width 16; the "CMT" checkpoint is a second, independently trained TinyNet (width 12,
another seed, label smoothing) so that compare mode has two genuinely different models to
put side by side.  Metrics (``eval.classifier``) are computed on snapshots of scenes from
``EVAL_SEEDS`` that were never trained on and written to ``main_worker/bundle/demo/metrics.json``.
Reproducible on 2 CPU cores in well under an hour; never part of the test command.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..worker_config import PACKAGE_DIR
from .catalogue import all_labels, hierarchy
from .datasets import EVAL_SEEDS, TRAIN_SEEDS, SnapshotSet, snapshot_samples

BUNDLE = PACKAGE_DIR / "main_worker" / "bundle" / "demo"
HEAD_WEIGHTS = {"type": 1.0, "make": 1.0, "model": 1.0, "color_base": 1.0, "finish": 0.3, "lightness": 0.3}


def cached_samples(path: Path, seeds, n: int, size: int) -> SnapshotSet:
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return SnapshotSet(z["images"], {k[4:]: z[k] for k in z.files if k.startswith("lab_")}, list(z["plates"]))
    s = snapshot_samples(seeds, n, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=s.images, plates=np.array(s.plates), **{f"lab_{k}": v for k, v in s.labels.items()})
    return s


def train_one(data: SnapshotSet, *, width: int, size: int, epochs: int, seed: int, smoothing: float,
              batch: int = 64, lr: float = 2e-3, log=print):
    import torch
    from torch import nn

    from ..main_worker.model import IMAGENET_MEAN, IMAGENET_STD, build_tinynet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    labels = all_labels()
    net = build_tinynet({h: len(v) for h, v in labels.items()}, width, size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    n = len(data.images)
    steps = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    ce = nn.CrossEntropyLoss(label_smoothing=smoothing)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    imgs = torch.from_numpy(data.images[..., ::-1].copy()).permute(0, 3, 1, 2).contiguous()  # N x 3 x S x S uint8 RGB
    labs = {h: torch.from_numpy(v) for h, v in data.labels.items()}
    for ep in range(epochs):
        net.train()
        order = rng.permutation(n)
        t0, total = time.time(), 0.0
        for s in range(0, n, batch):
            idx = torch.from_numpy(order[s:s + batch])
            x = imgs[idx].float().div_(255.0)
            # Augment: brightness/contrast (lighting), horizontal flip (direction of travel).
            b = x.shape[0]
            gain = torch.empty(b, 1, 1, 1).uniform_(0.75, 1.25)
            bias = torch.empty(b, 1, 1, 1).uniform_(-0.08, 0.08)
            x = (x * gain + bias).clamp_(0, 1)
            flip = torch.rand(b) < 0.5
            x[flip] = x[flip].flip(-1)
            x = (x - mean) / std
            out = net(x)
            loss = sum(HEAD_WEIGHTS[h] * ce(out[h], labs[h][idx]) for h in out)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * b
        log(f"epoch {ep + 1}/{epochs} loss {total / n:.4f} ({time.time() - t0:.0f} s)")
    net.eval()
    return net


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m video_analysis.synth.train_main", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="artifacts/train_main")
    ap.add_argument("--train", type=int, default=12000, help="training snapshots")
    ap.add_argument("--eval", type=int, default=2000, help="evaluation snapshots (unseen seeds)")
    ap.add_argument("--size", type=int, default=128, help="network input size (divides 640)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--cmt-epochs", type=int, default=8)
    ap.add_argument("--version", default=time.strftime("demo-%Y.%m.%d"))
    ap.add_argument("--out", default=str(BUNDLE))
    args = ap.parse_args(argv)

    import torch

    from ..eval.classifier import evaluate_bundle
    from ..main_worker.model import load_bundle, save_bundle

    t0 = time.time()
    work = Path(args.work)
    train = cached_samples(work / f"train_{args.train}_{args.size}.npz", TRAIN_SEEDS, args.train, args.size)
    test = cached_samples(work / f"eval_{args.eval}_{args.size}.npz", EVAL_SEEDS, args.eval, args.size)
    print(f"snapshots: train {len(train.images)}, eval {len(test.images)} ({time.time() - t0:.0f} s)", flush=True)
    out = Path(args.out)
    metrics = {}
    for variant, fname, width, seed, smoothing, epochs in (("baseline", "main.pt", 16, 0, 0.0, args.epochs),
                                                           ("cmt", "cmt.pt", 12, 1, 0.1, args.cmt_epochs)):
        t1 = time.time()
        net = train_one(train, width=width, size=args.size, epochs=epochs, seed=seed, smoothing=smoothing,
                        log=lambda m: print(f"[{variant}] {m}", flush=True))
        minutes = round((time.time() - t1) / 60, 1)
        path = save_bundle(out / fname, net, all_labels(), hierarchy(),
                           model_name=f"cvitx-tinynet{'-cmt' if variant == 'cmt' else ''}", version=args.version,
                           width=width, input_size=args.size)
        m = evaluate_bundle(load_bundle(path), test.images, test.labels)
        m["train"] = {"snapshots": len(train.images), "epochs": epochs, "width": width, "seed": seed,
                      "label_smoothing": smoothing, "minutes": minutes, "input_size": args.size}
        metrics[variant] = m
        # Store the figures inside the bundle too (informative).
        data = torch.load(str(path), weights_only=True)
        data["metrics"] = {k: v for k, v in m.items() if k.endswith("_top1")}
        torch.save(data, str(path))
        print(f"[{variant}] {json.dumps(m)}", flush=True)
    summary = {**{k: metrics["baseline"][k] for k in ("type_top1", "make_top1", "model_top1", "color_base_top1")},
               "eval": {"snapshots": len(test.images), "seeds": f"EVAL_SEEDS ({EVAL_SEEDS.start}..), never trained on",
                        "decoding": "hierarchy-consistent (main_worker.decoding)"},
               "variants": metrics}
    (out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
