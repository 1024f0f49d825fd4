"""Per-snapshot latency of each main-model format, side by side on this machine:
``python -m video_analysis.bench.main_formats [--runs N]`` (JSON on stdout).

The built-in CVITX bundle (the demo main.pt) in PyTorch and in OpenVINO (its cached ONNX export,
``main_runtime=openvino``: the worker's default on CPU; OpenVINO's own precision, bfloat16 where
the CPU has AMX / AVX-512 BF16), an ultralytics classify checkpoint as ``.pt`` and
as its ``.onnx`` export (yolov8n-cls at 224, ``Type|Make|Model`` names), and a team's own
three-head network (a ResNet-18 backbone at 224 with Type/Make/Model heads, random weights: the
figures are about cost, not accuracy) as ONNX in OpenVINO and in ONNX Runtime, ``torch.export``
``.pt2`` and TorchScript.  Each is loaded with ``load_bundle`` as the worker loads it (start-up
check included); the figure is the median over ``runs`` forward passes of one snapshot
(batch 1, what a worker pays per snapshot when messages arrive one at a time) and of a batch of
10 divided by 10 (a full receive).  Everything is built in a temporary directory.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..worker_config import PACKAGE_DIR, TAXONOMY
from .common import emit, log, machine

LEAVES = ["Car|Toyota|Vios", "Car|Honda|City", "SUV|Toyota|Fortuner", "SUV|Ford|Everest", "Van|Nissan|Urvan",
          "LightTruck|Isuzu|Elf", "Utility|Suzuki|Carry", "Motorcycle|Yamaha|NMAX", "CarouselBus|Hino",
          "E-Jeepney|Francisco"]
SIZE = 224


def _three_head_resnet() -> Any:
    """ResNet-18 features + one linear layer per head (8 types, 9 makes, 8 models)."""
    import torch
    from torch import nn
    from torchvision.models import resnet18

    class OurNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            body = resnet18(weights=None)
            body.fc = nn.Identity()
            self.body = body
            self.heads = nn.ModuleList([nn.Linear(512, 8), nn.Linear(512, 9), nn.Linear(512, 8)])  # type, make, model

        def forward(self, x):
            f = self.body(x)
            return tuple(h(f) for h in self.heads)

    torch.manual_seed(0)
    return OurNet().eval()


def _card() -> dict:
    parts = [leaf.split("|") for leaf in LEAVES]
    make_type = {p[1]: p[0] for p in parts}
    model_make = {p[2]: p[1] for p in parts if len(p) > 2}
    return {"format": "cvitx-model-card/1", "model_name": "ournet-resnet18", "version": "bench",
            "input": {"size": SIZE, "channel_order": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                      "std": [0.229, 0.224, 0.225]},
            "outputs": {"type": 0, "make": 1, "model": 2}, "activation": "logits",
            "labels": {"type": list(TAXONOMY), "make": sorted(make_type), "model": sorted(model_make)},
            "hierarchy": {"make_type": make_type, "model_make": model_make}}


def build(d: Path) -> dict[str, Path]:
    """Every compared model file under ``d`` (each card-format file with its card)."""
    import torch
    import ultralytics
    from ultralytics import YOLO
    from ultralytics.nn.tasks import ClassificationModel

    main = PACKAGE_DIR / "main_worker" / "bundle" / "demo" / "main.pt"
    out = {"cvitx bundle (demo main.pt, PyTorch)": main, "cvitx bundle (demo main.pt, OpenVINO)": main}
    cls = ClassificationModel("yolov8n-cls.yaml", nc=len(LEAVES), verbose=False)
    cls.names = dict(enumerate(LEAVES))
    cls.args = {"task": "classify", "imgsz": SIZE}
    torch.save({"model": cls.half(), "train_args": {"task": "classify", "imgsz": SIZE}, "epoch": -1,
                "version": ultralytics.__version__}, str(d / "cls.pt"))
    out["ultralytics classify .pt"] = d / "cls.pt"
    out["ultralytics classify .onnx"] = Path(YOLO(str(d / "cls.pt")).export(format="onnx", imgsz=SIZE, dynamic=True,
                                                                            simplify=False, verbose=False))
    net, x = _three_head_resnet(), torch.zeros(2, 3, SIZE, SIZE)
    torch.onnx.export(net, (x,), str(d / "ournet.onnx"), input_names=["images"], dynamic_axes={"images": {0: "n"}},
                      dynamo=False)
    ep = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("n", min=1, max=64)},))
    torch.export.save(ep, str(d / "ournet.pt2"))
    torch.jit.save(torch.jit.trace(net, x), str(d / "ournet_ts.pt"))
    for name in ("ournet.onnx", "ournet.pt2", "ournet_ts.pt"):
        (d / name).with_suffix(".json").write_text(json.dumps(_card()))
    out["three-head ONNX (OpenVINO)"] = d / "ournet.onnx"
    out["three-head ONNX (ONNX Runtime)"] = d / "ournet.onnx"
    out["three-head .pt2 (torch.export)"] = d / "ournet.pt2"
    out["three-head TorchScript"] = d / "ournet_ts.pt"
    return out


def _load(name: str, path: Path, cache_dir: Path) -> Any:
    from ..main_worker.formats.card import CardModel, load_card
    from ..main_worker.formats.onnx import OrtRunner
    from ..main_worker.model import load_bundle, startup_check

    if "ONNX Runtime" in name:  # the fallback the worker uses where OpenVINO is not installed
        model = CardModel(path, load_card(path), OrtRunner(path), "onnx")
        startup_check(model)
        return model
    if name.startswith("cvitx bundle") and "OpenVINO" in name:  # exported into this run's own cache
        return load_bundle(path, runtime="openvino", cache_dir=cache_dir)
    return load_bundle(path)


def bench_formats(runs: int = 20) -> dict[str, Any]:
    from ..main_worker.model import median_ms
    from ..worker_utils.offline import ultralytics_offline

    ultralytics_offline()
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 640, 640, 3), dtype=np.uint8)
    ten = rng.integers(0, 256, (10, 640, 640, 3), dtype=np.uint8)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cvitx-bench-formats-") as tmp:
        for name, path in build(Path(tmp)).items():
            log(f"main-model formats: {name}")
            m = _load(name, path, Path(tmp) / "cache")
            rows[name] = {"format": getattr(m, "format_name", "?"), "runtime": getattr(m, "runtime", "?"),
                          "precision": getattr(m, "precision", "?"), "input_size": getattr(m, "input_size", None),
                          "ms_per_snapshot_batch1": round(median_ms(lambda: m.predict(one), runs), 2),
                          "ms_per_snapshot_batch10": round(median_ms(lambda: m.predict(ten), max(3, runs // 4), 10),
                                                           2)}
    return {"machine": machine(), "runs": runs, "formats": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m video_analysis.bench.main_formats", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="timed forward passes per format (default 20)")
    emit(bench_formats(ap.parse_args(argv).runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
