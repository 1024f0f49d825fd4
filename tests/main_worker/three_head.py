"""A tiny three-head PyTorch network (Type, Make, Model) as a team would bring it, exported to
each main-model format with its model card, and a payload whose unpickling would run code;
shared by the format, safety and check-model tests (exports take ~1-3 s)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from video_analysis.worker_config import TAXONOMY

SIZE = 32  # the card's input.size: predict resizes 640 -> 32
MAKE_TYPE = {"Toyota": "Car", "Honda": "Car", "Ford": "SUV", "Nissan": "Van", "Isuzu": "LightTruck",
             "Suzuki": "Utility", "Yamaha": "Motorcycle", "Hino": "CarouselBus", "Francisco": "E-Jeepney"}
MODEL_MAKE = {"Vios": "Toyota", "City": "Honda", "Everest": "Ford", "Urvan": "Nissan", "Elf": "Isuzu",
              "Carry": "Suzuki", "NMAX": "Yamaha"}
LABELS = {"type": list(TAXONOMY), "make": sorted(MAKE_TYPE), "model": sorted(MODEL_MAKE)}
OUTPUT_NAMES = ["type_logits", "make_logits", "model_logits"]


class Evil:
    """Unpickling this opens (creates) the marker file: ``torch.save`` it to make a model file
    whose loading would run code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def three_head_net(sizes: tuple[int, ...] = (8, 9, 7), as_dict: bool = False) -> Any:
    """Two stride-2 convs, global pool, one linear layer per head; ``forward(N x 3 x S x S)``
    gives a tuple of logits (or a dict ``{type_logits: ...}`` with ``as_dict``)."""
    import torch
    from torch import nn

    class ThreeHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.heads = nn.ModuleList([nn.Linear(16, n) for n in sizes])

        def forward(self, x):
            f = self.features(x)
            outs = [h(f) for h in self.heads]
            return dict(zip(OUTPUT_NAMES, outs)) if as_dict else tuple(outs)

    torch.manual_seed(0)
    return ThreeHead().eval()


def card(**changes: Any) -> dict:
    """A valid card for :func:`three_head_net` (outputs by ONNX name), with ``changes`` applied."""
    c = {"format": "cvitx-model-card/1", "model_name": "ournet", "version": "t1",
         "input": {"size": SIZE, "channel_order": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                   "std": [0.229, 0.224, 0.225]},
         "outputs": {"type": "type_logits", "make": "make_logits", "model": "model_logits"},
         "activation": "logits", "labels": {k: list(v) for k, v in LABELS.items()},
         "hierarchy": {"make_type": dict(MAKE_TYPE), "model_make": dict(MODEL_MAKE)}}
    c.update(changes)
    return c


def write_card(model_path: Path, c: dict) -> Path:
    path = Path(model_path).with_suffix(".json")
    path.write_text(json.dumps(c, indent=1))
    return path


def example(batch: int = 2) -> Any:
    import torch

    return torch.zeros(batch, 3, SIZE, SIZE)


def export_onnx(net: Any, path: Path, dynamic: bool = True) -> Path:
    import torch

    torch.onnx.export(net, (example(2 if dynamic else 1),), str(path), input_names=["images"],
                      output_names=OUTPUT_NAMES, dynamic_axes={"images": {0: "n"}} if dynamic else None,
                      dynamo=False)
    return path


def export_openvino(onnx_path: Path, xml_path: Path) -> Path:
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path))
    return xml_path


def export_pt2(net: Any, path: Path) -> Path:
    import torch

    ep = torch.export.export(net, (example(),), dynamic_shapes=({0: torch.export.Dim("n", min=1, max=64)},))
    torch.export.save(ep, str(path))
    return path


def export_torchscript(net: Any, path: Path) -> Path:
    import torch

    torch.jit.save(torch.jit.trace(net, example()), str(path))
    return path
