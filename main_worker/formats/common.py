"""What the format modules share: the error type, pre-processing, softmax and leaf paths."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from ...worker_utils.errors import ValidationFailed

SNAPSHOT_SIZE = 640
BLANK_VALUE = 114  # the letterbox padding grey: a blank snapshot


class BundleError(ValidationFailed):
    """A main-model file (or its card) that no worker can run; ``reason`` names the file, the
    key and the fix.  Permanent: the worker refuses to start (exit 2)."""

    code = "model_config"


def preprocess(batch_bgr: np.ndarray, size: int, channel_order: str, scale: float,
               mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``N x 640 x 640 x 3`` BGR uint8 -> ``N x 3 x size x size`` float32, channels in
    ``channel_order``, pixel = (value * scale - mean) / std per channel (area resize first)."""
    if batch_bgr.ndim != 4 or batch_bgr.shape[-1] != 3:
        raise ValueError(f"expected N x H x W x 3 BGR images, got {batch_bgr.shape}")
    if batch_bgr.shape[1:3] != (size, size):
        batch_bgr = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in batch_bgr])
    x = batch_bgr[..., ::-1] if channel_order == "RGB" else batch_bgr
    x = x.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(scale)
    m = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((x - m) / s)


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of an ``N x C`` array (float32)."""
    z = np.asarray(x, np.float32)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def normalised(p: np.ndarray) -> np.ndarray:
    """Rows of ``N x C`` non-negative scores scaled to sum to 1."""
    return p / np.clip(p.sum(axis=1, keepdims=True), 1e-9, None)


class LeafPaths:
    """Leaf labels ``Type|Make|Model`` (``Type|Make`` and ``Type`` allowed) and how their
    probabilities sum into Type, Make and Model heads."""

    def __init__(self, names: Sequence[str], types: Sequence[str]):
        parts = [n.split("|") for n in names]
        self.paths = [tuple(p + [None] * (3 - len(p))) for p in parts]
        makes = sorted({p[1] for p in parts if len(p) > 1})
        models = sorted({p[2] for p in parts if len(p) > 2})
        self.labels = {"type": list(types), "make": makes, "model": models}
        # make_type is one type per make (informative: the worker decodes over ``paths``)
        self.hierarchy = {"make_type": {p[1]: p[0] for p in parts if len(p) > 1},
                          "model_make": {p[2]: p[1] for p in parts if len(p) > 2}}
        self.maps: dict[str, np.ndarray] = {}  # head -> leaves x labels 0/1 matrix
        for head, pos in (("type", 0), ("make", 1), ("model", 2)):
            vocab = self.labels[head]
            if not vocab:
                continue
            m = np.zeros((len(names), len(vocab)), np.float32)
            for i, p in enumerate(parts):
                if len(p) > pos:
                    m[i, vocab.index(p[pos])] = 1.0
            self.maps[head] = m

    def heads(self, leaf: np.ndarray) -> dict[str, np.ndarray]:
        """``N x leaves`` probabilities -> ``{"path": N x leaves, head: N x C}`` (each normalised)."""
        out = {"path": normalised(leaf)}
        for head, m in self.maps.items():
            out[head] = normalised(leaf @ m)
        return out


def bad_paths(names: Sequence[str], types: Sequence[str]) -> list[str]:
    """Leaf labels that are not ``Type|Make|Model`` paths over ``types`` (pure)."""
    return [n for n in names if not isinstance(n, str) or n.split("|")[0] not in types or len(n.split("|")) > 3
            or any(not part for part in n.split("|"))]


def run_batched(run: Callable[[np.ndarray], list[np.ndarray]], x: np.ndarray,
                fixed_batch: Optional[int]) -> list[np.ndarray]:
    """``run(x)`` for a runtime whose input batch is dynamic (``fixed_batch`` None); for one
    fixed at B, ``x`` in chunks of B (the last one padded) and the outputs concatenated."""
    if not fixed_batch or len(x) == fixed_batch:
        return run(x)
    parts: list[list[np.ndarray]] = []
    for i in range(0, len(x), fixed_batch):
        chunk = x[i:i + fixed_batch]
        n = len(chunk)
        if n < fixed_batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed_batch - n, axis=0)])
        parts.append([o[:n] for o in run(chunk)])
    return [np.concatenate(outs) for outs in zip(*parts)]


def named_outputs(result: object) -> list[tuple[Optional[str], np.ndarray]]:
    """A torch module's result (a tensor, a tuple/list of them or a dict name -> tensor) as
    ``[(name or None, array)]`` in order."""
    def arr(t: object) -> np.ndarray:
        return t.detach().float().cpu().numpy()  # type: ignore[attr-defined]

    if isinstance(result, dict):
        return [(str(k), arr(v)) for k, v in result.items()]
    if isinstance(result, (tuple, list)):
        return [(None, arr(v)) for v in result]
    return [(None, arr(result))]


class TorchRunner:
    """A loaded torch module (TorchScript or a torch.export program) run under inference mode."""

    runtime = "torch (CPU)"

    def __init__(self, module: object, precision: str = "f32", fixed_batch: Optional[int] = None):
        self.module, self.precision, self.fixed_batch = module, precision, fixed_batch

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            self._names, arrays = zip(*named_outputs(self.module(torch.from_numpy(x))))  # type: ignore[operator]
        return list(arrays)

    def run(self, x: np.ndarray) -> list[tuple[Optional[str], np.ndarray]]:
        arrays = run_batched(self._run, x, self.fixed_batch)
        return list(zip(self._names, arrays))


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of an exception on one line (runtimes raise multi-line texts), cut at ``limit``."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
