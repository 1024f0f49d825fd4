"""A CVITX bundle (formats/bundle.py) run by OpenVINO: its TinyNet exported once to ONNX, cached,
and compiled for the CPU by the runner every OpenVINO main model uses (formats/openvino_ir.py).

Pure helpers first (which runtime, the cache file name), then the adapters (export, load, run).

* **Which runtime** (setting ``main_runtime``): ``auto`` = OpenVINO on CPU when the ``openvino``
  package is importable, PyTorch on CUDA or without it; ``openvino`` / ``torch`` as named.
* **Cache.**  ``<cache_dir>/<stem>-<sha256[:12] of the bundle file>-<S>x<S>-<EXPORT_TAG>.onnx``
  in the detector's cache folder (``settings.detector_cache_path()``): new weights, a new input
  size or a changed export give a new file; unchanged ones are exported once per host.  The
  export is written in a private temporary directory inside the cache folder and renamed into
  place (``os.replace``), so workers racing on one host converge on one complete file.
* **Never worse than PyTorch.**  A cache file OpenVINO cannot load, or whose scores on a blank
  snapshot disagree with PyTorch's, is re-exported once; when the export or its second load
  fails, one WARNING names the reason and the bundle runs in PyTorch (the worker still starts).
* **Same classifier.**  :class:`OpenVinoBundle` keeps the PyTorch bundle's labels, hierarchy,
  metrics and pre-processing (INTER_AREA 640 -> S, RGB, mean/std); only the network runs in
  OpenVINO (its own choice: bfloat16 where the CPU has AMX / AVX-512 BF16, else float32; or
  ``main_precision``'s), and
  its logits go through the same softmax.
"""
from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ...worker_utils.model_files import ExportFailed, export_workdir, file_digest, move_into_place
from ...worker_utils.runtimes import float_hint
from .bundle import Bundle
from .common import BundleError, one_line, preprocess, softmax

log = logging.getLogger(__name__)

# Part of the cache file name: bump it when export_onnx changes the graph it writes (opset,
# output order, ...), so that hosts with an old cache file export again instead of loading it.
EXPORT_TAG = "ov1"
# The load-time agreement check on a blank snapshot: OpenVINO's probabilities against
# PyTorch's.  bfloat16 on AMX moved them by up to 0.007 (the demo bundles on a Xeon); another
# bundle's graph by far more.
AGREE_ATOL = 0.05




# --- pure helpers --------------------------------------------------------------------------
def choose_runtime(requested: str, cuda: bool, openvino: bool) -> str:
    """``"torch"`` or ``"openvino"`` for a CVITX bundle: ``auto`` = OpenVINO on a CPU host with
    the ``openvino`` package, PyTorch on CUDA or without it; ``torch``/``openvino`` as asked
    (an ``openvino`` request without the package falls back to PyTorch later, with a warning)."""
    if requested not in ("auto", "torch", "openvino"):
        raise ValueError(f"main_runtime must be auto, torch or openvino, not {requested!r}")
    if requested == "auto":
        return "openvino" if openvino and not cuda else "torch"
    return requested


def cache_name(stem: str, digest: str, input_size: int) -> str:
    """``<stem>-<digest>-<S>x<S>-<EXPORT_TAG>.onnx``: the export of one bundle file at one input size."""
    return f"{stem}-{digest}-{int(input_size)}x{int(input_size)}-{EXPORT_TAG}.onnx"


def disagreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> Optional[str]:
    """Why two ``{head: N x C probabilities}`` results disagree (a head missing, another shape,
    a difference over :data:`AGREE_ATOL`), or None when they agree (pure).  Not the top-1: a
    blank snapshot gives near ties (0.388 vs 0.387) that bfloat16 rounding may swap."""
    for head, pa in a.items():
        pb = b.get(head)
        if pb is None or pb.shape != pa.shape:
            return f"head {head}: shape {None if pb is None else pb.shape} instead of {pa.shape}"
        if not np.all(np.isfinite(pb)):
            return f"head {head}: NaN or infinite scores"
        diff = float(np.max(np.abs(pa - pb))) if pa.size else 0.0
        if diff > AGREE_ATOL:
            return f"head {head}: probabilities differ by up to {diff:.3f}"
    return None


# --- export --------------------------------------------------------------------------------
def _heads_module(bundle: Bundle) -> Any:
    """The bundle's TinyNet returning its heads' logits as a tuple in ``labels`` order (an ONNX
    graph has positional outputs; each is also named after its head)."""
    import torch

    heads = list(bundle.labels)

    class Heads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = bundle.net

        def forward(self, x: "torch.Tensor") -> tuple:
            out = self.net(x)
            return tuple(out[h] for h in heads)

    return Heads().eval()


def export_onnx(bundle: Bundle, cache_dir: str | Path, digest: Optional[str] = None) -> Path:
    """The cached ONNX export of ``bundle``'s network (input ``N x 3 x S x S`` normalised RGB
    float32, ``N`` dynamic; one ``N x C`` logits output per head, named after it), exporting it
    when missing."""
    import torch

    cache_dir = Path(cache_dir)
    target = cache_dir / cache_name(bundle.path.stem, digest or file_digest(bundle.path), bundle.input_size)
    if target.is_file():
        return target
    tmp = export_workdir(cache_dir)
    try:
        out = tmp / target.name
        s, heads = bundle.input_size, list(bundle.labels)
        try:
            with warnings.catch_warnings(), torch.inference_mode(False):  # the tracer's chatter: not ours to act on
                warnings.simplefilter("ignore")
                torch.onnx.export(_heads_module(bundle), (torch.zeros(2, 3, s, s),), str(out), input_names=["images"],
                                  output_names=heads, dynamic_axes={"images": {0: "n"}, **{h: {0: "n"} for h in heads}},
                                  dynamo=False)
        except Exception as exc:  # noqa: BLE001 - any exporter failure is reported the same way
            raise ExportFailed(f"ONNX export of {bundle.path.name} failed: {one_line(exc)}") from exc
        if not out.is_file():
            raise ExportFailed(f"ONNX export of {bundle.path.name} produced no file")
        move_into_place(out, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("main model exported", extra={"bundle": str(bundle.path), "export": str(target),
                                            "input_size": f"{s}x{s}"})
    return target


def precision_config(requested: str, capabilities: Sequence[str]) -> tuple[Optional[dict[str, str]], Optional[str]]:
    """``(OpenVINO compile properties or None, warning or None)`` for ``main_precision`` on a CPU
    with OpenVINO's ``capabilities``: a float hint where asked and offered (worker_utils/runtimes.py)."""
    hint, warning = float_hint(requested, capabilities, "main_precision")
    return ({"INFERENCE_PRECISION_HINT": hint} if hint else None), warning


# --- run -----------------------------------------------------------------------------------
class OpenVinoBundle:
    """A CVITX bundle whose network runs in OpenVINO; to the worker it is the same classifier
    as ``bundle`` (same attributes, ``predict`` gives the same heads and probabilities up to
    the runtime's rounding)."""

    format_name = Bundle.format_name
    runtime = "openvino (CPU)"

    def __init__(self, bundle: Bundle, export: Path, config: Optional[dict[str, str]] = None):
        from .openvino_ir import OpenVinoRunner

        self.torch_bundle, self.export = bundle, export
        self.path, self.model_name, self.version = bundle.path, bundle.model_name, bundle.version
        self.labels, self.hierarchy, self.metrics = bundle.labels, bundle.hierarchy, bundle.metrics
        self.mean, self.std, self.input_size = bundle.mean, bundle.std, bundle.input_size
        self.runner = OpenVinoRunner(export, config)  # BundleError: the file cannot be compiled
        self.precision = self.runner.precision  # what OpenVINO chose (bf16 on AMX), not what was asked
        self.heads = list(bundle.labels)

    def predict(self, batch_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """``{head: N x C probabilities}`` for N x 640 x 640 x 3 BGR uint8 snapshots."""
        x = preprocess(batch_bgr, self.input_size, "RGB", 1 / 255, self.mean, self.std)  # to_tensor's numbers
        outs = self.runner.run(x)
        by_name = {name: v for name, v in outs if name}
        # the export names each output after its head; positions are the fallback
        return {h: softmax(by_name[h] if h in by_name else outs[i][1]) for i, h in enumerate(self.heads)}


def _compile_checked(bundle: Bundle, export: Path, config: Optional[dict[str, str]]) -> OpenVinoBundle:
    """The export compiled and checked against PyTorch on a blank snapshot; BundleError when
    OpenVINO cannot load it or its scores disagree (a damaged or foreign cache file)."""
    from .common import BLANK_VALUE, SNAPSHOT_SIZE

    model = OpenVinoBundle(bundle, export, config)
    blank = np.full((1, SNAPSHOT_SIZE, SNAPSHOT_SIZE, 3), BLANK_VALUE, np.uint8)
    try:
        why = disagreement(bundle.predict(blank), model.predict(blank))
    except Exception as exc:  # noqa: BLE001 - a graph with other inputs/outputs than the export writes
        why = one_line(exc)
    if why:
        raise BundleError(f"{export}: disagrees with the PyTorch bundle on a blank snapshot ({why})")
    return model


def openvino_bundle(bundle: Bundle, cache_dir: str | Path, config: Optional[dict[str, str]] = None) -> OpenVinoBundle:
    """``bundle`` run by OpenVINO from its cached export (exported when missing; a cache file
    that cannot be loaded or disagrees with PyTorch is exported again, once); ExportFailed
    with the reason otherwise."""
    export = export_onnx(bundle, cache_dir)
    try:
        return _compile_checked(bundle, export, config)
    except BundleError as exc:
        log.warning("cached main-model export is damaged; exporting it again",
                    extra={"export": str(export), "error": exc.reason})
    try:
        export.unlink(missing_ok=True)  # a racing worker may have replaced it already: fine either way
    except OSError as exc:
        raise ExportFailed(f"cannot remove the damaged export {export} ({one_line(exc)})") from exc
    export = export_onnx(bundle, cache_dir)
    try:
        return _compile_checked(bundle, export, config)
    except BundleError as exc:
        raise ExportFailed(f"the fresh export does not run either: {exc.reason}") from None


def with_runtime(bundle: Bundle, runtime: str, cache_dir: Optional[str | Path],
                 config: Optional[dict[str, str]] = None) -> Bundle | OpenVinoBundle:
    """``bundle`` in the resolved ``runtime`` (``"torch"`` or ``"openvino"``, see
    :func:`choose_runtime`).  Never raises for OpenVINO's sake: a missing package, an unwritable
    cache or a failed export log one WARNING with the reason and keep the PyTorch bundle."""
    from ...worker_utils.runtimes import openvino_available

    if runtime != "openvino":
        return bundle
    if not openvino_available():
        why = "the openvino package is not installed"
    elif cache_dir is None:
        why = "no cache directory to export into"
    else:
        try:
            return openvino_bundle(bundle, cache_dir, config)
        except ExportFailed as exc:
            why = str(exc)
        except Exception as exc:  # noqa: BLE001 - any other surprise costs speed, never the worker
            why = one_line(exc)
    log.warning("main model runs in PyTorch: the OpenVINO export is not available",
                extra={"path": str(bundle.path), "error": why})
    return bundle
