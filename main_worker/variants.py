"""Model loading: the variants a MainWorker runs (``baseline``, and ``cmt`` in compare mode),
each behind one small interface (:class:`Classifier`), with the hierarchy it is decoded over.

The formats themselves (CVITX bundle, ultralytics classify, ONNX, OpenVINO IR, ``.pt2``,
TorchScript, each with its model card) live in ``main_worker/formats/``; ``model.load_bundle``
tells them apart and runs the start-up check.
"""
from __future__ import annotations

import logging
from typing import Optional, Protocol

import numpy as np

from ..worker_config import Settings
from ..worker_utils.errors import ValidationFailed
from .decoding import Hierarchy

log = logging.getLogger(__name__)


class Classifier(Protocol):
    """What a loaded main model offers, whatever its format."""

    model_name: str
    version: str
    labels: dict[str, list]
    hierarchy: dict[str, dict[str, str]]

    def predict(self, batch_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """N x 640 x 640 x 3 uint8 BGR snapshots -> {head: N x C probabilities}."""
        ...


def hierarchy_of(bundle: Classifier) -> Hierarchy:
    """The bundle's valid paths: its explicit leaf ``paths`` when it has them (ultralytics
    ``Type|Make|Model`` checkpoints, a card's ``path`` head), else built from the label maps
    and ``hierarchy``."""
    if getattr(bundle, "paths", None):
        return Hierarchy.from_paths(bundle.labels["type"], bundle.paths)  # type: ignore[attr-defined]
    lab = bundle.labels
    return Hierarchy.build(lab["type"], lab.get("make", []), lab.get("model", []),
                           bundle.hierarchy.get("make_type", {}), bundle.hierarchy.get("model_make", {}))


def bundle_runtime(settings: Settings) -> str:
    """``"torch"`` or ``"openvino"``: where a CVITX bundle runs under ``settings.main_runtime``
    (``auto`` = OpenVINO on a CPU host with the openvino package, PyTorch on CUDA)."""
    from ..worker_utils.runtimes import openvino_available
    from .formats.bundle_export import choose_runtime

    cuda = settings.device.startswith("cuda")
    if settings.device == "auto" and settings.main_runtime == "auto":
        import torch

        cuda = torch.cuda.is_available()
    return choose_runtime(settings.main_runtime, cuda, openvino_available())


def openvino_config(settings: Settings) -> Optional[dict[str, str]]:
    """OpenVINO's compile properties for the main model under ``settings.main_precision`` (None =
    its own choice); a precision this CPU does not offer logs one WARNING and sets none."""
    from ..worker_utils.runtimes import cpu_capabilities, openvino_available
    from .formats.bundle_export import precision_config

    if not openvino_available():
        if settings.main_precision not in ("auto", "f32"):  # PyTorch / ONNX Runtime run f32: nothing to say
            log.warning(f"main_precision={settings.main_precision} applies where OpenVINO runs the main model, and "
                        "the openvino package is not installed: the main model runs in float32")
        return None
    config, warning = precision_config(settings.main_precision, cpu_capabilities())
    if warning:
        log.warning(warning)
    return config


def load_variants(settings: Settings) -> dict[str, Classifier]:
    """single: {'baseline': main}; compare: {'baseline': main, 'cmt': cmt}. Missing files fail start-up.
    A CVITX bundle runs where :func:`bundle_runtime` says, its export cached beside the detector's."""
    from .model import load_bundle

    paths = {"baseline": settings.main_model_path}
    if settings.main_mode == "compare":
        paths["cmt"] = settings.cmt_model_path
    out: dict[str, Classifier] = {}
    runtime, config = bundle_runtime(settings), openvino_config(settings)
    for name, p in paths.items():
        path = settings.resolve_path(p)
        if not path.exists():
            raise ValidationFailed(f"main model bundle {path} ({name}) does not exist; set "
                                   f"{'CVITX_MAIN_MODEL_PATH' if name == 'baseline' else 'CVITX_CMT_MODEL_PATH'}",
                                   code="model_config")
        out[name] = load_bundle(path, runtime=runtime, cache_dir=settings.detector_cache_path(), ov_config=config)
    return out
