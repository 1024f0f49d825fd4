"""The model card (``cvitx-model-card/1``) and the classifier built on it.

A team's own main model (ONNX, OpenVINO IR, ``torch.export`` .pt2, TorchScript) comes with a
JSON card beside it with the same stem (``main.onnx`` -> ``main.json``)::

    {"format": "cvitx-model-card/1", "model_name": "ournet", "version": "2026-11-30",
     "input": {"size": 224, "channel_order": "RGB", "scale": 0.00392156862745098,
               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
     "outputs": {"type": "type_logits", "make": 1, "model": 2},   # output name or index
     "activation": "logits",                                      # or "probabilities"
     "labels": {"type": [...taxonomy names], "make": [...], "model": [...]},
     "hierarchy": {"make_type": {make: type}, "model_make": {model: make}}}

pixel = (value * scale - mean) / std, value the 0..255 channel.  Instead of type/make/model a
model may have one ``path`` head over leaf labels ``"Type|Make|Model"`` (no hierarchy then);
``color_base``, ``finish`` and ``lightness`` heads are optional.  :func:`card_problems` is the
pure check (schemas/model_card.json plus what a schema cannot say: taxonomy names, every label
reachable); :class:`CardModel` runs a runner (``run(x) -> [(name, array)]``) with it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence

import numpy as np
from jsonschema.exceptions import best_match

from ...worker_config import TAXONOMY
from ...worker_utils.validation import schema_validator
from ...worker_utils.vocab import COLOR_BASES, COLOR_FINISHES, COLOR_LIGHTNESS
from .common import BundleError, LeafPaths, bad_paths, preprocess, softmax

CARD_FORMAT = "cvitx-model-card/1"
COLOR_VOCAB = {"color_base": COLOR_BASES, "finish": COLOR_FINISHES, "lightness": COLOR_LIGHTNESS}
CARD_HELP = "see README, 'Bring your own models', and main_worker/bundle/example/main.json"


class Runner(Protocol):
    """A model runtime: ``run(x)`` takes ``N x 3 x S x S`` float32 and returns every output as
    ``(name or None, N x C array)`` in the model's order."""

    runtime: str
    precision: str

    def run(self, x: np.ndarray) -> list[tuple[Optional[str], np.ndarray]]: ...


def card_path(model_path: Path) -> Path:
    """``main.onnx`` -> ``main.json``."""
    return model_path.with_suffix(".json")


def _schema_problem(card: Any) -> Optional[str]:
    err = best_match(schema_validator("model_card").iter_errors(card))
    if err is None:
        return None
    where = ".".join(str(p) for p in err.absolute_path) or "(card)"
    return f"{where}: {err.message}"


def card_problems(card: Any, types: Sequence[str] = TAXONOMY) -> list[str]:
    """Everything wrong with a card, as ``"key: problem; fix"`` lines (empty when it is good).
    The schema first (a card that fails it is not read further), then the meaning: outputs and
    labels name the same heads; either a ``path`` head or separate heads led by ``type``; types
    are taxonomy names; colours come from the colour vocabulary; the hierarchy reaches every
    label and names only labels the heads have."""
    schema = _schema_problem(card)
    if schema:
        return [f"{schema}; fix the card (schemas/model_card.json)"]
    labels: dict[str, list] = card["labels"]
    out: list[str] = []
    for head in sorted(set(labels) - set(card["outputs"])):
        out.append(f"outputs.{head}: labels.{head} has no output; add outputs.{head} (an output name or index)")
    for head in sorted(set(card["outputs"]) - set(labels)):
        out.append(f"labels.{head}: outputs.{head} has no labels; add labels.{head} or drop outputs.{head}")
    for head, values in labels.items():
        dup = sorted({str(v) for v in values if values.count(v) > 1})
        if dup:
            out.append(f"labels.{head}: {dup[:3]} appear more than once; each label once, in output order")
        if head in COLOR_VOCAB:
            bad = [v for v in values if v not in COLOR_VOCAB[head]]
            if bad:
                out.append(f"labels.{head}: {bad[:3]} are not in {list(COLOR_VOCAB[head])}; use those names")
        elif None in values:
            out.append(f"labels.{head}: null is only allowed in finish and lightness")
    separate = [h for h in ("type", "make", "model") if h in labels]
    if "path" in labels:
        if separate:
            out.append(f"labels.path: a path head replaces {separate}; drop those heads or the path head")
        bad = bad_paths(labels["path"], types)
        if bad:
            out.append(f"labels.path: {bad[:3]} are not 'Type|Make|Model' paths over the taxonomy {list(types)}")
        return out
    if "type" not in labels:
        return out + ["labels.type: no type head (and no path head); add labels.type and outputs.type"]
    return out + _hierarchy_problems(labels, card.get("hierarchy"), types)


def _hierarchy_problems(labels: dict[str, list], hierarchy: Optional[dict], types: Sequence[str]) -> list[str]:
    """Separate heads: types in the taxonomy, and every make and model on a path to a type."""
    out = []
    bad = [t for t in labels["type"] if t not in types]
    if bad:
        out.append(f"labels.type: {bad[:3]} are not taxonomy names; use {list(types)}")
    makes, models = labels.get("make", []), labels.get("model", [])
    if models and not makes:
        out.append("labels.model: a model head needs a make head (add labels.make and hierarchy.model_make)")
    if not makes:
        return out
    if hierarchy is None:
        return out + ["hierarchy: separate make/model heads need hierarchy.make_type and hierarchy.model_make; "
                      "add them (each make -> its type, each model -> its make)"]
    make_type, model_make = hierarchy["make_type"], hierarchy["model_make"]
    for key, mapping, domain, targets, what in (("make_type", make_type, makes, labels["type"], "type"),
                                                ("model_make", model_make, models, makes, "make")):
        lost = [v for v in domain if mapping.get(v) not in targets]
        if lost:
            out.append(f"hierarchy.{key}: {lost[:3]} have no {what} in labels.{what} and can never be the answer; "
                       f"map each to one of labels.{what}")
        extra = sorted(set(mapping) - set(domain))
        if extra:
            out.append(f"hierarchy.{key}: {extra[:3]} are not in labels.{'make' if key == 'make_type' else 'model'}; "
                       "drop them or add the labels")
    unreachable = [t for t in labels["type"] if t not in set(make_type.get(m) for m in makes)]
    if unreachable:
        out.append(f"labels.type: {unreachable[:3]} have no make in hierarchy.make_type and can never be the answer; "
                   "give each a make or drop it from labels.type")
    return out


def load_card(model_path: Path) -> dict:
    """The card beside ``model_path``, checked; BundleError naming the file, the key and the fix."""
    path = card_path(model_path)
    if not path.is_file():
        raise BundleError(f"{model_path}: no model card {path.name} beside it; write one ({CARD_FORMAT}: input, "
                          f"outputs, activation, labels, hierarchy), {CARD_HELP}")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc}); fix the card, {CARD_HELP}") from None
    problems = card_problems(card)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BundleError(f"{path}: {problems[0]}{more}")
    return card


def pick_output(outputs: list[tuple[Optional[str], np.ndarray]], spec: int | str) -> np.ndarray:
    """The output the card names (by index or name); KeyError naming what the model has."""
    if isinstance(spec, int):
        if spec < len(outputs):
            return outputs[spec][1]
    else:
        for name, value in outputs:
            if name == spec:
                return value
    raise KeyError(f"the model has no output {spec!r}; its outputs are "
                   f"{[n if n is not None else i for i, (n, _) in enumerate(outputs)]}")


class CardModel:
    """A main model in one of the card formats: ``predict`` pre-processes as the card says, runs
    the runner and turns the named outputs into ``{head: N x C probabilities}``."""

    def __init__(self, path: Path, card: dict, runner: Runner, format_name: str):
        self.path, self.card, self.runner, self.format_name = path, card, runner, format_name
        self.card_path = card_path(path)
        self.model_name, self.version = card["model_name"], card["version"]
        self.runtime, self.precision = runner.runtime, runner.precision
        inp = card["input"]
        self.input_size = int(inp["size"])
        self._pre = (self.input_size, inp["channel_order"], float(inp["scale"]), inp["mean"], inp["std"])
        self.card_labels: dict[str, list] = card["labels"]
        colours = {h: list(v) for h, v in card["labels"].items() if h in COLOR_VOCAB}
        self._leaves: Optional[LeafPaths] = None
        if "path" in card["labels"]:
            self._leaves = LeafPaths(card["labels"]["path"], TAXONOMY)
            self.paths = self._leaves.paths
            self.labels = {**self._leaves.labels, **colours}
            self.hierarchy = self._leaves.hierarchy
        else:
            self.labels = {h: list(v) for h, v in card["labels"].items()}
            self.hierarchy = card.get("hierarchy", {"make_type": {}, "model_make": {}})

    def raw_heads(self, batch_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """Each card head's output for the batch as ``N x C`` scores, before the activation."""
        outs = self.runner.run(preprocess(batch_bgr, *self._pre))
        return {head: np.asarray(pick_output(outs, spec), np.float32).reshape(len(batch_bgr), -1)
                for head, spec in self.card["outputs"].items()}

    def predict(self, batch_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """``{head: N x C probabilities}`` for N x 640 x 640 x 3 BGR uint8 snapshots (a path head
        gives ``path`` and the type/make/model heads summed from it)."""
        logits = self.card["activation"] == "logits"
        out = {}
        for head, v in self.raw_heads(batch_bgr).items():
            p = softmax(v) if logits else v
            out.update(self._leaves.heads(p) if head == "path" and self._leaves else {head: p})
        return out
