"""TorchScript main models (``torch.jit.save``; deprecated upstream, still common).

``torch.jit.load`` reads the archive with TorchScript's own unpickler, which builds only
TorchScript objects: no Python code of the file runs (the model's TorchScript code runs in the
TorchScript interpreter when it is called)."""
from __future__ import annotations

from pathlib import Path

from .common import BundleError, one_line, TorchRunner


def torchscript_runner(path: Path) -> TorchRunner:
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 - corrupt archive, unknown ops
        raise BundleError(f"{path}: TorchScript cannot load it ({one_line(exc)}); "
                          "re-export it (torch.jit.trace + torch.jit.save, or better torch.export)") from None
    return TorchRunner(module)
