"""Main models: which format a file is, loading it with nothing in it run, and the start-up check.

:func:`load_bundle` chooses the format by what the file is (worker_utils/model_files.py reads
it; nothing is unpickled to find out):

* a ``.pt`` written by ``torch.save`` whose pickle references only tensors: loaded with
  ``torch.load(weights_only=True)``; a CVITX bundle (``cvitx-main-bundle/1``,
  formats/bundle.py) loads (and with ``runtime="openvino"`` runs from a cached ONNX export,
  formats/bundle_export.py), a bare state_dict is refused with the export commands to use;
* a ``.pt`` whose pickle references ultralytics' network classes: an ultralytics classify
  checkpoint with ``Type|Make|Model`` names (formats/ultralytics_cls.py), loaded the way
  ultralytics loads it only after every reference was checked to be a tensor or an nn.Module
  class of ``ultralytics.nn`` / ``torch.nn.modules``;
* any other pickle (a pickled nn.Module of another package, anything naming ``builtins.open``,
  ``os.system`` ...): refused before anything unpickles it, with the export commands;
* ONNX (``.onnx``), OpenVINO IR (``.xml`` + ``.bin``), ``torch.export`` (``.pt2`` layout) and
  TorchScript (``constants.pkl`` + ``code/`` layout): with the model card beside them
  (formats/card.py), run by formats/{onnx,openvino_ir,torch_export,torchscript}.py.

Every loaded model then passes :func:`startup_check`: one forward pass on a blank snapshot,
each head's size against its labels, the hierarchy decodable; any failure is a
:class:`BundleError` (code ``model_config``) naming the file, the key and the fix, and the
worker refuses to start (exit 2).
"""
from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..worker_utils.model_files import (FileKind, check_ultralytics_checkpoint, describe_globals, foreign_globals,
                                        is_ultralytics, sniff)
from .formats.bundle import FORMAT, IMAGENET_MEAN, IMAGENET_STD, Bundle, build_tinynet, save_bundle, to_tensor
from .formats.common import BLANK_VALUE, SNAPSHOT_SIZE, BundleError, one_line
from .formats.ultralytics_cls import UltralyticsHierBundle

__all__ = ["FORMAT", "IMAGENET_MEAN", "IMAGENET_STD", "Bundle", "BundleError", "UltralyticsHierBundle",
           "build_tinynet", "save_bundle", "to_tensor", "load_bundle", "startup_check", "summary", "EXPORT_HELP",
           "blank_snapshots", "head_problems", "not_probabilities", "median_ms"]
log = logging.getLogger(__name__)

EXPORT_HELP = ("export the network instead: torch.onnx.export(model.eval(), torch.zeros(2, 3, S, S), 'main.onnx', "
               "input_names=['images'], output_names=['type', 'make', 'model'], dynamic_axes={'images': {0: 'n'}}, "
               "dynamo=False), or torch.export.save(torch.export.export(model.eval(), (torch.zeros(2, 3, S, S),), "
               "dynamic_shapes=({0: torch.export.Dim('n', min=1, max=64)},)), 'main.pt2'); then write the model "
               "card main.json beside it (README, 'Bring your own models')")
CARD_FORMATS = {"onnx": "onnx", "openvino_ir": "openvino-ir", "torch_export": "torch.export", "torchscript": "torchscript"}


def _runner(kind: str, path: Path, ov_config: Optional[dict[str, str]] = None) -> Any:
    if kind == "onnx":
        from .formats.onnx import onnx_runner

        return onnx_runner(path, ov_config)
    if kind == "openvino_ir":
        from .formats.openvino_ir import OpenVinoRunner

        return OpenVinoRunner(path, ov_config)
    if kind == "torch_export":
        from .formats.torch_export import torch_export_runner

        return torch_export_runner(path)
    from .formats.torchscript import torchscript_runner

    return torchscript_runner(path)


def _load_pickle(path: Path, found: FileKind) -> Any:
    """A ``torch.save`` archive: a CVITX bundle, an ultralytics checkpoint or a refusal."""
    import torch

    if is_ultralytics(found.globals) and not found.unresolved:
        check_ultralytics_checkpoint(path, found, BundleError)
        return _ultralytics(path)
    foreign = foreign_globals(found.globals)
    if foreign or found.unresolved:
        what = describe_globals(foreign) if foreign else "objects it names indirectly"
        raise BundleError(f"{path}: refused, not loaded: a pickled Python object that references {what}; unpickling "
                          f"it would import and run that code (a pickled nn.Module?); {EXPORT_HELP}")
    try:  # tensors only: the safe loader cannot run anything either
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated or damaged
        raise BundleError(f"{path} is neither a CVITX bundle ({FORMAT}) nor any model format this worker knows: "
                          f"{one_line(exc)}") from None
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return _bundle(data, path)
    raise BundleError(f"{path}: refused: a state_dict (weights without the network), which no worker can run; "
                      f"{EXPORT_HELP}")


def _ultralytics(path: Path) -> UltralyticsHierBundle:
    try:
        return UltralyticsHierBundle(path)
    except BundleError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BundleError(f"{path}: ultralytics cannot load this checkpoint as a classifier with 'Type|Make|Model' "
                          f"names: {one_line(exc)}") from None


def _bundle(data: dict, path: Path) -> Bundle:
    try:
        return Bundle(data, path)
    except KeyError as exc:
        raise BundleError(f"{path}: bundle lacks the {exc} entry (see README, main-model bundle format)") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{path}: malformed {FORMAT} bundle ({one_line(exc)}); see README, "
                          "main-model bundle format") from None


def load_bundle(path: str | Path, *, check: bool = True, runtime: str = "torch", cache_dir: Optional[Path] = None,
                ov_config: Optional[dict[str, str]] = None) -> Any:
    """Load a main-model file in whichever format it is (see the module docstring) and, with
    ``check``, run :func:`startup_check` on it; BundleError says what is wrong and how to fix it.

    ``runtime`` (``"torch"`` or ``"openvino"``, resolved from ``main_runtime`` by
    formats/bundle_export.py's ``choose_runtime``) applies to a CVITX bundle only: ``openvino``
    runs its network from an ONNX export cached in ``cache_dir`` (PyTorch, with one warning,
    where that fails); ``ov_config`` adds OpenVINO compile properties to that export and to an
    OpenVINO IR or an ONNX model OpenVINO runs (``main_precision``: variants.openvino_config).
    Every other format runs as it is."""
    from .formats.card import CardModel, card_path, load_card
    from .formats.onnx import is_ultralytics_classify, onnx_metadata

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"main model bundle {path} does not exist or is not a file")
    try:
        found = sniff(path)
    except Exception as exc:  # noqa: BLE001 - unreadable, or a damaged archive or pickle
        raise BundleError(f"{path}: cannot be read as a model file ({one_line(exc)}); is it damaged?") from None
    if found.kind == "torch_pickle":
        model = _load_pickle(path, found)
        if isinstance(model, Bundle):
            from .formats.bundle_export import with_runtime

            model = with_runtime(model, runtime, cache_dir, ov_config)
    elif found.kind == "onnx" and not card_path(path).is_file() and is_ultralytics_classify(onnx_metadata(path)):
        model = _ultralytics(path)  # an ultralytics classify export: its names are its card
    elif found.kind in CARD_FORMATS:
        card = load_card(path)  # the card first: a model without one is refused before it is loaded
        model = CardModel(path, card, _runner(found.kind, path, ov_config), CARD_FORMATS[found.kind])
    else:
        raise BundleError(f"{path} is neither a CVITX bundle ({FORMAT}) nor an ultralytics classify checkpoint, ONNX "
                          "(.onnx), OpenVINO IR (.xml), torch.export (.pt2) or TorchScript archive; "
                          f"{EXPORT_HELP}")
    if check:
        startup_check(model)
        log.info("main model ready", extra={"path": str(path), **summary(model)})
    return model


def blank_snapshots(n: int = 1) -> np.ndarray:
    """``n x 640 x 640 x 3`` BGR uint8 letterbox grey: what the start-up check feeds a model."""
    return np.full((n, SNAPSHOT_SIZE, SNAPSHOT_SIZE, 3), BLANK_VALUE, np.uint8)


def head_problems(sizes: dict[str, tuple[int, ...]], labels: dict[str, list], n: int) -> list[tuple[str, str]]:
    """``(head, problem)`` for each labelled head whose output is missing or not ``n x len(labels)``
    (pure: ``sizes`` are the output shapes of one forward pass of ``n`` snapshots)."""
    out = []
    for head, values in labels.items():
        shape = sizes.get(head)
        if shape is None:
            out.append((head, "the model gives no output for it"))
        elif tuple(shape) != (n, len(values)):
            out.append((head, f"the output has {shape[1] if len(shape) == 2 else list(shape)} scores per snapshot "
                              f"but labels.{head} lists {len(values)} labels"))
    return out


def not_probabilities(heads: dict[str, np.ndarray], tol: float = 1e-2) -> list[str]:
    """Heads whose ``N x C`` rows are not probability distributions (pure)."""
    return sorted(h for h, v in heads.items()
                  if np.any(v < -tol) or np.any(v > 1 + tol) or np.any(np.abs(v.sum(axis=1) - 1) > tol))


def startup_check(model: Any) -> None:
    """One forward pass on a blank snapshot: every head present, its size equal to its labels',
    finite scores, and a hierarchy the worker can decode; BundleError naming the file and key."""
    from .variants import hierarchy_of

    path = getattr(model, "path", "the main model")
    where = getattr(model, "card_path", path)
    raw = getattr(model, "raw_heads", None)
    labels = getattr(model, "card_labels", None) or model.labels
    try:
        heads = raw(blank_snapshots()) if raw else model.predict(blank_snapshots())
    except KeyError as exc:  # an output the card names is not there
        raise BundleError(f"{where}: outputs: {exc.args[0]}; name an output the model has") from None
    except Exception as exc:  # noqa: BLE001 - the model cannot run on a 640x640 snapshot
        raise BundleError(f"{path}: the start-up forward pass on a blank 640x640 snapshot failed "
                          f"({one_line(exc)}); check input.size and the export") from None
    problems = head_problems({h: np.shape(v) for h, v in heads.items()}, labels, 1)
    if problems:
        head, problem = problems[0]
        raise BundleError(f"{where}: labels.{head}: {problem}; make labels.{head} match the model's output "
                          f"(or outputs.{head} name the right one)")
    bad = sorted(h for h, v in heads.items() if h in labels and not np.all(np.isfinite(v)))
    if bad:
        raise BundleError(f"{path}: head {bad[0]} gives NaN or infinite scores on a blank snapshot; check the export")
    card = getattr(model, "card", None)
    if card is not None and card["activation"] == "probabilities":
        odd = not_probabilities(heads)
        if odd:
            raise BundleError(f"{where}: activation: the card says probabilities but output {odd[0]} is not a "
                              "probability distribution (values in 0..1 summing to 1); set activation to logits")
    try:
        hierarchy_of(model)
    except ValueError as exc:
        raise BundleError(f"{where}: hierarchy: {exc}; map every make to a type and every model to a make") from None


def summary(model: Any, *, latency_runs: int = 0) -> dict[str, Any]:
    """What check-model prints and the worker logs at start-up: format, runtime, precision,
    input size, heads with label counts, hierarchy size (paths), and with ``latency_runs`` the
    median milliseconds per snapshot of a batch of one."""
    from .variants import hierarchy_of

    out: dict[str, Any] = {"model_name": model.model_name, "version": model.version,
                           "format": getattr(model, "format_name", type(model).__name__),
                           "runtime": getattr(model, "runtime", "?"), "precision": getattr(model, "precision", "?"),
                           "input_size": getattr(model, "input_size", None),
                           "heads": {h: len(v) for h, v in model.labels.items()},
                           "hierarchy_paths": int(len(hierarchy_of(model).path_type))}
    if latency_runs:
        x = blank_snapshots()
        out["median_ms"] = round(median_ms(lambda: model.predict(x), latency_runs), 2)
    return out


def median_ms(fn: Callable[[], Any], runs: int, per: int = 1) -> float:
    """Median wall milliseconds of ``fn()`` over ``runs`` calls after one warm-up call, divided
    by ``per`` (the images one call handles)."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3 / per)
    return statistics.median(times)
