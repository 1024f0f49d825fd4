"""The CVITX bundle (format 1): ``torch.save`` of a plain dict with TinyNet weights, loaded
with ``torch.load(weights_only=True)`` (no code runs on load)::

    {"format": "cvitx-main-bundle/1",
     "model_name": str, "version": str,
     "arch": {"name": "tinynet", "width": 16, "input_size": 128},
     "state_dict": {...},                      # TinyNet weights
     "input": {"size": 640, "channel_order": "RGB", "mean": [3 floats], "std": [3 floats]},
     "labels": {"type": [...8 taxonomy names], "make": [...], "model": [...],
                "color_base": [...], "finish": [null, "Matte", "Metallic"], "lightness": [null, "Light"]},
     "hierarchy": {"make_type": {make: type}, "model_make": {model: make}},
     "metrics": {...}}                         # optional, informative

Input: a batch of 640x640 BGR uint8 snapshots; converted to RGB, scaled to 0..1 and
normalised with ``mean``/``std``.  TinyNet's first layer area-averages 640 -> ``input_size``
(an exact integer factor), so :meth:`Bundle.predict` does that step with OpenCV's
INTER_AREA before building the tensor (identical up to uint8 rounding, 25x less memory).
Heads missing from ``labels`` are simply absent (a Type-only bundle works).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .common import BundleError

FORMAT = "cvitx-main-bundle/1"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

def build_tinynet(heads: dict[str, int], width: int = 16, input_size: int = 128, src_size: int = 640) -> Any:
    """A small CNN: area-pool 640 -> ``input_size``, a stride-2 stem and three stride-2 stages of
    two 3x3 convs (``width`` .. 8x``width`` channels; about 45 M multiply-adds at 128 px and
    width 16), global average pool, one linear layer per head.
    ``forward(x)`` takes N x 3 x S x S normalised RGB (S = 640 or ``input_size``) and
    returns ``{head: N x C logits}``."""
    import torch
    from torch import nn

    if src_size % input_size:
        raise ValueError(f"input_size {input_size} must divide {src_size}")

    def block(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class TinyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = src_size // input_size
            self.input_size = input_size
            w = width
            stem = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
            self.features = nn.Sequential(stem, block(w, 2 * w, 2), block(2 * w, 4 * w, 2), block(4 * w, 8 * w, 2),
                                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2))
            # "h_" prefix: ModuleDict keys may not shadow Module attributes ("type" does).
            self.heads = nn.ModuleDict({f"h_{h}": nn.Linear(8 * w, n) for h, n in heads.items()})

        def forward(self, x: "torch.Tensor") -> dict[str, "torch.Tensor"]:
            if x.shape[-1] != self.input_size:
                x = torch.nn.functional.avg_pool2d(x, self.pool)
            f = self.features(x)
            return {h[2:]: head(f) for h, head in self.heads.items()}

    return TinyNet()


def to_tensor(batch_bgr: np.ndarray, mean, std, size: int) -> Any:
    """N x 640 x 640 x 3 BGR uint8 -> N x 3 x size x size normalised RGB float32 tensor."""
    import torch

    if batch_bgr.ndim != 4 or batch_bgr.shape[-1] != 3:
        raise ValueError(f"expected N x H x W x 3 BGR images, got {batch_bgr.shape}")
    if batch_bgr.shape[1] != size:
        batch_bgr = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in batch_bgr])
    x = torch.from_numpy(np.ascontiguousarray(batch_bgr[..., ::-1])).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


class Bundle:
    """A loaded CVITX bundle (format 1)."""

    format_name, runtime, precision = "cvitx-bundle", "torch", "f32"

    def __init__(self, data: dict, path: Path):
        import torch

        self.path = path
        self.model_name = str(data.get("model_name", path.stem))
        self.version = str(data.get("version", "unknown"))
        self.labels: dict[str, list] = {k: list(v) for k, v in data["labels"].items()}
        self.hierarchy: dict[str, dict[str, str]] = data.get("hierarchy", {})
        self.metrics = data.get("metrics", {})
        inp = data.get("input", {})
        self.mean, self.std = inp.get("mean", IMAGENET_MEAN), inp.get("std", IMAGENET_STD)
        arch = data.get("arch", {})
        if arch.get("name") != "tinynet":
            raise BundleError(f"{path}: unknown architecture {arch.get('name')!r} (this version knows 'tinynet')")
        self.input_size = int(arch.get("input_size", 128))
        self.net = build_tinynet({h: len(v) for h, v in self.labels.items()}, int(arch.get("width", 16)),
                                 self.input_size, int(inp.get("size", 640)))
        try:
            missing, unexpected = self.net.load_state_dict(data["state_dict"], strict=False)
        except RuntimeError as exc:  # tensor shapes differ from what the label maps imply
            first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc)[:200])
            raise BundleError(f"{path}: weights do not match the label maps ({first}); was the bundle edited "
                              "by hand?") from None
        if missing or unexpected:
            raise BundleError(f"{path}: weights do not match the label maps (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}); was the bundle edited by hand?")
        self.net.eval()
        self._torch = torch

    def predict(self, batch_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """``{head: N x C probabilities}`` for N x 640 x 640 x 3 BGR uint8 snapshots."""
        torch = self._torch
        with torch.inference_mode():
            logits = self.net(to_tensor(batch_bgr, self.mean, self.std, self.input_size))
        return {h: torch.softmax(v, dim=1).numpy() for h, v in logits.items()}


def save_bundle(path: str | Path, net: Any, labels: dict, hierarchy: dict, *, model_name: str, version: str,
                width: int, input_size: int, metrics: dict | None = None) -> Path:
    """Write a CVITX bundle (format 1) for a TinyNet; weights stored as float32."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "model_name": model_name, "version": version,
            "arch": {"name": "tinynet", "width": width, "input_size": input_size},
            "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            "input": {"size": 640, "channel_order": "RGB", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
            "labels": labels, "hierarchy": hierarchy, "metrics": metrics or {}}
    torch.save(data, str(path))
    return path
