"""``torch.export`` main models (``.pt2``, ``torch.export.save``).

``torch.export.load`` unpickles some parts of an archive with ``weights_only=False`` (pickled
weights or constants, custom objects, a sample input that the safe loader refuses) and loads
AOTInductor's native code; :func:`worker_utils.model_files.pt2_problems` refuses such an archive before it is
loaded, so a plain exported program (JSON graph + raw tensor bytes) is all that loads."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .common import BundleError, one_line, TorchRunner
from ...worker_utils.model_files import pt2_problems


def program_batch(ep: object) -> Optional[int]:
    """The exported program's batch size when export fixed it (no ``Dim`` for axis 0), else None."""
    sig = ep.graph_signature  # type: ignore[attr-defined]
    user = set(sig.user_inputs)
    for node in ep.graph.nodes:  # type: ignore[attr-defined]
        if node.op == "placeholder" and node.name in user:
            dim = node.meta["val"].shape[0]
            return dim if isinstance(dim, int) else None
    return None


def torch_export_runner(path: Path) -> TorchRunner:
    import torch

    problems = pt2_problems(path)
    if problems:
        raise BundleError(f"{path}: refused, not loaded: {problems[0]}"
                          f"{f' (+{len(problems) - 1} more)' if len(problems) > 1 else ''}, which loading would "
                          "unpickle or run; save a plain program (torch.export.save of torch.export.export(model))")
    try:
        ep = torch.export.load(str(path))
        module = ep.module()
    except Exception as exc:  # noqa: BLE001 - corrupt archive, newer format
        raise BundleError(f"{path}: torch.export cannot load it ({one_line(exc)}); "
                          f"re-export it with this torch ({torch.__version__})") from None
    return TorchRunner(module, fixed_batch=program_batch(ep))
