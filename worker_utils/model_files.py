"""What a model file is, found by reading it, never by running it (both workers' model loaders).

A ``.pt``/``.pth`` is a zip archive written by ``torch.save``, ``torch.jit.save`` or
``torch.export.save``; each has its own layout.  A ``torch.save`` archive holds one pickle
(``data.pkl``) whose GLOBAL / STACK_GLOBAL opcodes name every Python object unpickling it would
import and call: :func:`pickle_globals` reads them with ``pickletools.genops`` (which decodes
opcodes and executes nothing), so a checkpoint can be judged before anything unpickles it.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import pickletools
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .errors import PermanentError, ValidationFailed

Global = tuple[str, str]  # (module, name)

log = logging.getLogger(__name__)

# Every prefix an export's private folder takes (export_workdir's callers): the sweep knows them all.
EXPORT_PREFIXES = (".export-", ".int8-")
# An export's folder untouched for this long belongs to an export that was killed (SIGKILL, OOM,
# a power cut: its ``finally`` never ran).  The longest export measured, YOLOv8m to INT8 on a
# 2-core AMD EPYC, took minutes and writes files all along, so an hour cannot be a live one.
STALE_EXPORT_S = 3600.0


def file_digest(path: str | Path, length: int = 12) -> str:
    """First ``length`` hex digits of the sha256 of the file's bytes (read 1 MiB at a time): the key
    of the exported models' caches (detector, INT8 export, main-model bundle)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


class ExportFailed(RuntimeError):
    """A model could not be exported (ONNX, INT8), or its export not loaded; the message says why."""


def last_touched(folder: Path) -> float:
    """The newest mtime (epoch s) of ``folder`` and everything below it (symlinks not followed)."""
    newest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:  # removed while we looked: it was being written, or swept
                continue
    return newest


def sweep_stale_exports(cache_dir: str | Path, now: float | None = None,
                        max_age_s: float = STALE_EXPORT_S) -> list[Path]:
    """Remove the export folders (:data:`EXPORT_PREFIXES`) in ``cache_dir`` that nothing has
    written to for ``max_age_s``: left by an export that was killed.  Returns what it removed;
    a folder that vanishes or cannot be read meanwhile is skipped (another worker's sweep)."""
    now = time.time() if now is None else now
    removed = []
    for folder in sorted(Path(cache_dir).glob(".*")):
        try:
            if not (folder.name.startswith(EXPORT_PREFIXES) and folder.is_dir() and not folder.is_symlink()
                    and now - last_touched(folder) > max_age_s):
                continue
            shutil.rmtree(folder, onerror=_gone_is_fine)
        except OSError:
            continue
        removed.append(folder)
    return removed


def _gone_is_fine(func, path, exc_info) -> None:
    """shutil.rmtree's error hook: what another worker's sweep removed first is not an error."""
    if not issubclass(exc_info[0], FileNotFoundError):
        raise exc_info[1]


def move_into_place(src: Path, target: Path) -> None:
    """``os.replace`` an export from its private folder to its cache name: atomic on one file
    system, so a racing worker sees no file or a complete one; ExportFailed when it cannot."""
    try:
        os.replace(src, target)
    except OSError as exc:
        raise ExportFailed(f"cannot move the export {src.name} into {target.parent} "
                           f"({type(exc).__name__}: {exc}); set detector_cache_dir (CVITX_DETECTOR_CACHE_DIR) "
                           "to a folder this service can write") from exc


def export_workdir(cache_dir: str | Path, prefix: str = EXPORT_PREFIXES[0]) -> Path:
    """A private temporary folder inside ``cache_dir`` (made if missing) for an export to be
    written in, then moved into place with ``os.replace``: same file system, so a racing worker
    sees no file or a complete one.  The caller removes it; folders that killed exports left
    behind are swept first (:func:`sweep_stale_exports`)."""
    if not prefix.startswith(EXPORT_PREFIXES):
        raise ValueError(f"export folder prefix {prefix!r} is not one of EXPORT_PREFIXES: the sweep would miss it")
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        removed = sweep_stale_exports(cache_dir)
        if removed:
            log.info(f"removed {len(removed)} export folder(s) left by killed exports",
                     extra={"cache_dir": str(cache_dir), "folders": [p.name for p in removed]})
        return Path(tempfile.mkdtemp(prefix=prefix, dir=cache_dir))
    except OSError as exc:
        raise ExportFailed(f"cache directory {cache_dir} is not writable ({type(exc).__name__}: {exc}); "
                           "set detector_cache_dir (CVITX_DETECTOR_CACHE_DIR)") from exc

# What a plain tensor container (a state_dict, a CVITX bundle) references.
TENSOR_GLOBALS: frozenset[Global] = frozenset({
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"), ("torch", "Size"), ("torch", "device"),
})
STORAGE_MODULES = ("torch", "torch.storage")
# Besides tensors, an ultralytics checkpoint pickles its network: nn.Module classes of these
# packages (checked to be classes by the caller), a set (nn.Module's non-persistent buffers),
# torch dtypes, and in its training record numpy scalars/arrays (best_fitness), paths and bytes;
# the constructors below build only those values (torch's own weights_only loader allows them).
ULTRALYTICS_CLASS_MODULES = ("ultralytics.nn.", "torch.nn.modules.")
ULTRALYTICS_EXTRA: frozenset[Global] = frozenset({
    ("__builtin__", "set"), ("builtins", "set"), ("ultralytics.utils", "IterableSimpleNamespace"),
    ("_codecs", "encode"), ("numpy", "dtype"), ("numpy", "ndarray"), ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"), *((m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                                  for n in ("scalar", "_reconstruct")),
    *(("torch", t) for t in ("float16", "float32", "float64", "bfloat16", "int8", "uint8", "int16", "int32",
                             "int64", "bool")),
})
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_SILENT_OPS = {"PROTO", "FRAME", "STOP", "POP", "POP_MARK"}


@dataclass(frozen=True)
class FileKind:
    """``kind``: ``onnx``, ``openvino_ir``, ``torch_export``, ``torchscript``, ``torch_pickle``
    (a ``torch.save`` archive; ``globals`` are its pickle's references) or ``unknown``."""

    kind: str
    globals: frozenset[Global] = field(default_factory=frozenset)
    unresolved: bool = False  # a STACK_GLOBAL whose names are not plain strings: treat as unsafe


def pickle_globals(data: bytes) -> tuple[frozenset[Global], bool]:
    """The ``(module, name)`` pairs a pickle's GLOBAL / INST / STACK_GLOBAL opcodes reference,
    and whether some STACK_GLOBAL's operands could not be read as strings.  Decodes opcodes only."""
    found: set[Global] = set()
    pushed: list[object] = []  # what each opcode pushed (a string, or None for anything else)
    memo: dict[int, object] = {}
    unresolved = False
    for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
        name = op.name
        if name in ("GLOBAL", "INST"):
            mod, _, attr = str(arg).partition(" ")
            found.add((mod, attr))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            mod, attr = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
            if isinstance(mod, str) and isinstance(attr, str):
                found.add((mod, attr))
            else:
                unresolved = True
            pushed.append(None)
        elif name in _STRING_OPS:
            pushed.append(str(arg))
        elif name in _GET_OPS:
            pushed.append(memo.get(int(arg)))
        elif name in _PUT_OPS:
            memo[int(arg)] = pushed[-1] if pushed else None
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name not in _SILENT_OPS:
            pushed.append(None)
    return frozenset(found), unresolved


def is_tensor_global(g: Global) -> bool:
    return g in TENSOR_GLOBALS or (g[0] in STORAGE_MODULES and g[1].endswith("Storage"))


def foreign_globals(globs: Iterable[Global]) -> list[Global]:
    """The references of a pickle that are not plain tensor plumbing, sorted."""
    return sorted(g for g in globs if not is_tensor_global(g))


def is_ultralytics(globs: Iterable[Global]) -> bool:
    """True when the pickle references ultralytics' network classes (``ultralytics.nn.tasks``)."""
    return any(m == "ultralytics" or m.startswith("ultralytics.") for m, _ in globs)


def unexpected_ultralytics_globals(globs: Iterable[Global], is_module_class: Callable[[str, str], bool]) -> list[Global]:
    """References an ultralytics checkpoint may not hold: anything but tensor plumbing, a set
    and nn.Module classes of ``ultralytics.nn`` / ``torch.nn.modules`` (``is_module_class``
    tells whether ``module.name`` is one)."""
    return sorted(g for g in globs if not (is_tensor_global(g) or g in ULTRALYTICS_EXTRA or (
        g[0].startswith(ULTRALYTICS_CLASS_MODULES) and is_module_class(*g))))


def describe_globals(globs: Iterable[Global], limit: int = 5) -> str:
    gs = [f"{m}.{n}" for m, n in globs]
    return ", ".join(gs[:limit]) + (f" and {len(gs) - limit} more" if len(gs) > limit else "")


def _zip_layout(names: list[str]) -> tuple[str, set[str]]:
    """(the archive's top folder, the entry names below it)."""
    top = names[0].split("/", 1)[0] if names else ""
    return top, {n.split("/", 1)[1] for n in names if "/" in n}


def sniff(path: Path) -> FileKind:
    """What ``path`` is (see :class:`FileKind`); reads it, runs nothing."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return FileKind("onnx")
    if suffix == ".xml":
        with open(path, "rb") as f:
            return FileKind("openvino_ir" if b"<net" in f.read(4096) else "unknown")
    if not zipfile.is_zipfile(path):
        return FileKind("unknown")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        top, rel = _zip_layout(names)
        if "archive_format" in rel or any(r.startswith("models/") and r.endswith(".json") for r in rel):
            return FileKind("torch_export")
        if "constants.pkl" in rel or any(r.startswith("code/") for r in rel):
            return FileKind("torchscript")
        if "data.pkl" in rel:
            globs, unresolved = pickle_globals(z.read(f"{top}/data.pkl"))
            return FileKind("torch_pickle", globs, unresolved)
    return FileKind("unknown")


def _nested_pickle_problem(name: str, data: bytes) -> str | None:
    """Why a ``torch.save`` archive nested in a .pt2 is not plain tensors (None when it is)."""
    if not data.startswith(b"PK\x03\x04"):
        return f"{name} is a raw pickle"
    with zipfile.ZipFile(io.BytesIO(data)) as inner:
        pkl = [n for n in inner.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            return f"{name} is not a torch.save archive"
        globs, unresolved = pickle_globals(inner.read(pkl[0]))
    foreign = foreign_globals(globs)
    if foreign or unresolved:
        return f"{name} references {describe_globals(foreign) or 'unreadable globals'}"
    return None


def pt2_problems(path: Path) -> list[str]:
    """What in a ``torch.export`` archive ``torch.export.load`` would unpickle beyond plain
    tensors (pickled weights or constants that are not tensor-only ``torch.save`` archives,
    custom or opaque objects, a sample input that needs ``weights_only=False``) or would run as
    native code (AOTInductor); empty when loading it runs nothing of the file's."""
    import json

    problems: list[str] = []
    with zipfile.ZipFile(path) as z:
        top, rel = _zip_layout(z.namelist())
        for r in sorted(rel):
            full = f"{top}/{r}"
            if r.startswith("data/aotinductor/"):
                problems.append(f"{r} is compiled native code (AOTInductor)")
            elif r.startswith("data/sample_inputs/") or (r.startswith(("data/weights/", "data/constants/"))
                                                          and r.endswith(".pt")):
                problem = _nested_pickle_problem(r, z.read(full))
                problems += [problem] if problem else []
            elif r.endswith("_config.json") and r.startswith(("data/weights/", "data/constants/")):
                folder = r.rsplit("/", 1)[0]
                for fqn, meta in json.loads(z.read(full)).get("config", {}).items():
                    name = str(meta.get("path_name", ""))
                    if folder.endswith("constants") and not name.startswith("tensor_"):
                        problems.append(f"constant {fqn} is a pickled object ({name})")
                    elif meta.get("use_pickle"):
                        problem = _nested_pickle_problem(f"{folder}/{name}", z.read(f"{top}/{folder}/{name}"))
                        problems += [problem] if problem else []
    return problems


def is_module_class(module: str, name: str) -> bool:
    """True when ``module.name`` is an nn.Module subclass (imports that trusted module only)."""
    import importlib

    import torch

    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


class ModelFileRefused(ValidationFailed):
    """A model file that loading would run code from (or cannot be told apart from one)."""

    code = "model_config"


def check_ultralytics_checkpoint(path: Path, found: FileKind,
                                 error: type[PermanentError] = ModelFileRefused) -> None:
    """Refuse (``error``, one line) a ``torch.save`` archive that ultralytics would unpickle but
    that is not an ultralytics checkpoint, or whose pickle names anything beyond what one holds:
    unpickling it would run that."""
    if found.unresolved or not is_ultralytics(found.globals):
        raise error(f"{path}: refused, not loaded: not an ultralytics checkpoint (its pickle names no ultralytics "
                    "network class); export the model with ultralytics")
    bad = unexpected_ultralytics_globals(found.globals, is_module_class)
    if bad:
        raise error(f"{path}: refused, not loaded: it looks like an ultralytics checkpoint but its pickle also "
                    f"references {describe_globals(bad)}, which unpickling would run; export the model to ONNX "
                    "instead (README, 'Bring your own models')")
