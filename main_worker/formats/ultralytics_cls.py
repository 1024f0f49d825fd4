"""An ultralytics classify checkpoint (``yolov8n-cls.pt`` style) whose class names are
hierarchical paths ``"Type|Make|Model"`` (``"Type|Make"`` and ``"Type"`` allowed).

The leaf probabilities are summed into Type, Make and Model heads; the hierarchy comes from the
names.  No colour head: main_worker's classical estimator gives the colour.  The leaves
themselves are kept (``paths``, and a ``"path"`` entry in ``predict``'s output), and the worker
decodes over them: a make may sit under several types ("Car|Toyota|Vios", "SUV|Toyota|Fortuner")
and a path may stop at the type or make.

Ultralytics loads a checkpoint by unpickling it, which would run any code the file names; so
main_worker/model.py first reads the pickle's references (worker_utils/model_files.py,
nothing executed) and refuses a file that names anything but tensors, the nn.Module classes of
``ultralytics.nn`` / ``torch.nn.modules`` and plain training-record values.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import BundleError, LeafPaths, bad_paths


class UltralyticsHierBundle:
    """An ultralytics classify checkpoint with ``Type|Make|Model`` class names."""

    format_name, runtime, precision = "ultralytics-classify", "torch (ultralytics)", "f32"

    def __init__(self, path: Path):
        from ...worker_config import TAXONOMY
        from ...worker_utils.offline import ultralytics_offline

        ultralytics_offline()
        from ultralytics import YOLO

        self.path = path
        self.yolo = YOLO(str(path), task="classify")
        names = [self.yolo.names[i] for i in range(len(self.yolo.names))]
        bad = bad_paths(names, TAXONOMY)
        if bad:
            raise BundleError(f"{path}: class names {bad[:3]} are not 'Type|Make|Model' paths over the taxonomy "
                              f"{list(TAXONOMY)}")
        self.model_name, self.version = path.stem, "ultralytics-classify"
        if path.suffix.lower() == ".onnx":
            self.format_name, self.runtime = "ultralytics-classify (onnx)", "onnxruntime (ultralytics)"
        imgsz = self.yolo.overrides.get("imgsz") or 224
        self.input_size = int(imgsz[0] if isinstance(imgsz, (list, tuple)) else imgsz)
        self._leaves = LeafPaths(names, TAXONOMY)
        self.paths, self.labels, self.hierarchy = self._leaves.paths, self._leaves.labels, self._leaves.hierarchy

    def predict(self, batch_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """``{"path": N x leaves, "type"/"make"/"model": N x C}`` for N x 640 x 640 x 3 BGR uint8."""
        res = self.yolo.predict(list(batch_bgr), verbose=False, save=False)
        leaf = np.stack([r.probs.data.cpu().numpy() for r in res]).astype(np.float32)
        return self._leaves.heads(leaf)
