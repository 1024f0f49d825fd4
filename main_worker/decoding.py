"""Hierarchy-consistent Type -> Make -> Model decoding (pure numpy).

Three independent argmaxes can produce impossible answers ("Car / Isuzu / Elf truck").
Instead every *valid path* (model -> its make -> its type) is scored with the product of the
three heads' probabilities, ``p(type) * p(make) * p(model)``, the path scores are normalised
over all valid paths, and the best path wins.  Reported confidences are marginals of that
path posterior, so they nest: ``model_conf <= make_conf <= type_conf``.  The top-k
alternatives are the next best paths.

Makes with no model in the label map still form a path ``(type, make, None)`` scored with
``p(type) * p(make)``; this keeps a bundle without a model head usable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class Hierarchy:
    """Index arrays describing every valid path through the three label maps."""

    types: tuple[str, ...]
    makes: tuple[str, ...]
    models: tuple[str, ...]
    path_type: np.ndarray  # P, index into types
    path_make: np.ndarray  # P, index into makes
    path_model: np.ndarray  # P, index into models or -1 (make without models)

    @classmethod
    def build(cls, types: Sequence[str], makes: Sequence[str], models: Sequence[str],
              make_type: Mapping[str, str], model_make: Mapping[str, str]) -> "Hierarchy":
        t_idx = {t: i for i, t in enumerate(types)}
        m_idx = {m: i for i, m in enumerate(makes)}
        pt, pm, pmo = [], [], []
        makes_with_models = set()
        for j, model in enumerate(models):
            make = model_make.get(model)
            if make is None or make not in m_idx:
                raise ValueError(f"model {model!r} has no make in the hierarchy")
            typ = make_type.get(make)
            if typ is None or typ not in t_idx:
                raise ValueError(f"make {make!r} has no type in the hierarchy")
            pt.append(t_idx[typ]); pm.append(m_idx[make]); pmo.append(j)
            makes_with_models.add(make)
        for make in makes:
            if make in makes_with_models:
                continue
            typ = make_type.get(make)
            if typ is None or typ not in t_idx:
                raise ValueError(f"make {make!r} has no type in the hierarchy")
            pt.append(t_idx[typ]); pm.append(m_idx[make]); pmo.append(-1)
        return cls(tuple(types), tuple(makes), tuple(models), np.array(pt), np.array(pm), np.array(pmo))


    @classmethod
    def from_paths(cls, types: Sequence[str], paths: Sequence[Sequence[Optional[str]]]) -> "Hierarchy":
        """Explicit leaf paths ``(type, make|None, model|None)``, e.g. from an ultralytics
        checkpoint's ``Type|Make|Model`` class names.  Unlike :meth:`build`, a make may appear
        under several types (Toyota makes cars and SUVs) and a path may stop at the type."""
        makes = sorted({p[1] for p in paths if len(p) > 1 and p[1]})
        models = sorted({p[2] for p in paths if len(p) > 2 and p[2]})
        t_idx = {t: i for i, t in enumerate(types)}
        pt, pm, pmo = [], [], []
        for p in paths:
            typ, make, model = (list(p) + [None, None])[:3]
            if typ not in t_idx:
                raise ValueError(f"path {p!r}: type {typ!r} is not one of {list(types)}")
            if model and not make:
                raise ValueError(f"path {p!r} names a model without a make")
            pt.append(t_idx[typ]); pm.append(makes.index(make) if make else -1)
            pmo.append(models.index(model) if model else -1)
        return cls(tuple(types), tuple(makes), tuple(models), np.array(pt), np.array(pm), np.array(pmo))


@dataclass(frozen=True)
class Decoded:
    type: str
    type_conf: float
    make: Optional[str]
    make_conf: Optional[float]
    model: Optional[str]
    model_conf: Optional[float]
    alternatives: tuple[dict, ...]  # top-k paths: {"type", "make", "model", "conf"}


def decode(h: Hierarchy, p_type: np.ndarray, p_make: Optional[np.ndarray], p_model: Optional[np.ndarray],
           topk: int = 3) -> Decoded:
    """Best valid path for one sample; ``p_*`` are 1-D probability vectors (heads may be None)."""
    eps = 1e-12
    score = np.log(np.asarray(p_type, np.float64)[h.path_type] + eps)
    if p_make is not None:
        pk = np.asarray(p_make, np.float64)
        # (a type-only path, possible in Hierarchy.from_paths, is scored like a make-only one below)
        score = score + np.where(h.path_make >= 0, np.log(pk[np.maximum(h.path_make, 0)] + eps), np.log(eps))
    if p_model is not None:
        pm = np.asarray(p_model, np.float64)
        # A make-only path has no model probability: it competes with its own best model path
        # on type and make alone, times the share of model mass left for "none" (eps).
        score = score + np.where(h.path_model >= 0, np.log(pm[np.maximum(h.path_model, 0)] + eps), np.log(eps))
    post = np.exp(score - score.max())
    post /= post.sum()
    return _decoded(h, post, topk, with_make=p_make is not None, with_model=p_model is not None)


def decode_paths(h: Hierarchy, p_path: np.ndarray, topk: int = 3) -> Decoded:
    """Best leaf for one sample when the model scores whole paths (``p_path`` over ``h``'s paths,
    in order).  Confidences are marginals of the leaf distribution, so they nest as in
    :func:`decode`; a path that stops at the type or make reports None below it."""
    post = np.asarray(p_path, np.float64)
    return _decoded(h, post / max(float(post.sum()), 1e-12), topk)


def decode_output(h: Hierarchy, p: Mapping[str, np.ndarray], topk: int = 3) -> Decoded:
    """One sample's model output ``{head: 1-D probabilities}``: decoded over whole paths when the
    model scores them (a ``"path"`` head matching ``h``'s paths), else over the separate heads."""
    path = p.get("path")
    if path is not None and len(path) == len(h.path_type):
        return decode_paths(h, path, topk)
    return decode(h, p["type"], p.get("make"), p.get("model"), topk)


def _decoded(h: Hierarchy, post: np.ndarray, topk: int, with_make: bool = True, with_model: bool = True) -> Decoded:
    """The best path of the path posterior ``post`` (P, sums to 1), its marginal confidences
    (nested: the make's within the chosen type) and the top-k alternatives."""
    best = int(np.argmax(post))
    t, m, mo = int(h.path_type[best]), int(h.path_make[best]), int(h.path_model[best])
    same_type = h.path_type == t
    has_make, has_model = with_make and m >= 0, with_model and mo >= 0
    type_conf = float(post[same_type].sum())
    make_conf = float(post[same_type & (h.path_make == m)].sum()) if has_make else None
    model_conf = float(post[best]) if has_model else None
    order = np.argsort(-post, kind="stable")[:topk]
    alts = tuple({"type": h.types[h.path_type[i]], "make": h.makes[h.path_make[i]] if h.path_make[i] >= 0 else None,
                  "model": h.models[h.path_model[i]] if h.path_model[i] >= 0 else None,
                  "conf": round(float(post[i]), 4)} for i in order)
    return Decoded(h.types[t], type_conf, h.makes[m] if has_make else None, make_conf,
                   h.models[mo] if has_model else None, model_conf, alts)
