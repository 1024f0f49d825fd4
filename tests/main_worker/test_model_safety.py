"""No code runs when a model file is loaded (issue 15, deliverable 4).

Every refused file here would create a marker file if it were unpickled; the tests check both
the refusal (one line naming the file and the fix) and that the marker was never written."""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from video_analysis.worker_utils.model_files import (FileKind, foreign_globals, pickle_globals, pt2_problems, sniff,
                                                      unexpected_ultralytics_globals)
from video_analysis.main_worker.model import BundleError, UltralyticsHierBundle, load_bundle

from .test_model_bundle import LEAVES, write_classify_checkpoint
from .three_head import Evil, card, export_pt2, three_head_net, write_card

MARKER_ENV = "CVITX_TEST_MARKER"


class MarkerNet(torch.nn.Module):
    """A pickled nn.Module of another package whose unpickling writes the marker (its
    ``__setstate__`` runs this file's code)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def __setstate__(self, state):
        Path(os.environ[MARKER_ENV]).write_text("code ran")
        super().__setstate__(state)


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "code-ran.txt"
    monkeypatch.setenv(MARKER_ENV, str(path))
    return path


def refused(path: Path, marker: Path, *says: str) -> str:
    with pytest.raises(BundleError) as e:
        load_bundle(path)
    assert not marker.exists(), "loading the file ran its code"
    reason = e.value.reason
    assert e.value.code == "model_config" and str(path) in reason and "\n" not in reason
    for s in says:
        assert s in reason, reason
    return reason


@pytest.mark.parametrize("payload", ["bare", "in a dict", "beside a state_dict"])
def test_a_pickle_that_would_run_code_is_refused_unread(tmp_path, marker, payload):
    obj = {"bare": lambda: Evil(marker), "in a dict": lambda: {"model": Evil(marker), "epoch": 3},
           "beside a state_dict": lambda: {"state_dict": OrderedDict(w=torch.zeros(2)), "x": Evil(marker)}}[payload]()
    path = tmp_path / "main.pt"
    torch.save(obj, str(path))
    refused(path, marker, "refused, not loaded", "open", "torch.onnx.export(", "torch.export.export(", "main.json")


def test_a_pickled_module_of_another_package_is_refused_with_the_export_commands(tmp_path, marker):
    path = tmp_path / "ournet.pt"
    torch.save(MarkerNet(), str(path))
    reason = refused(path, marker, "refused, not loaded", "MarkerNet", "torch.onnx.export(", "torch.export.save(")
    assert "pickled nn.Module" in reason


def test_a_state_dict_is_refused_with_the_export_commands(tmp_path, marker):
    path = tmp_path / "weights.pth"
    torch.save(three_head_net().state_dict(), str(path))
    refused(path, marker, "a state_dict", "torch.onnx.export(", "dynamo=False", "torch.export.export(", "card")


def test_an_ultralytics_checkpoint_carrying_extra_code_is_refused(tmp_path, marker):
    """A real classify checkpoint loads (test_model_bundle.py); the same with one foreign object
    in it is refused before ultralytics unpickles it."""
    path = tmp_path / "cls.pt"
    write_classify_checkpoint(path, LEAVES)
    ckpt = torch.load(str(path), weights_only=False)  # our own file, written just above
    ckpt["extra"] = Evil(marker)
    torch.save(ckpt, str(path))
    assert sniff(path).kind == "torch_pickle"
    refused(path, marker, "looks like an ultralytics checkpoint", "open", "which unpickling would run")


def test_an_ultralytics_checkpoint_is_checked_then_loaded(tmp_path):
    """As a trainer writes it: numpy scalars and arrays, paths and dtypes in its training record."""
    import numpy as np

    path = tmp_path / "cls.pt"
    write_classify_checkpoint(path, LEAVES)
    ckpt = torch.load(str(path), weights_only=False)  # our own file, written just above
    ckpt.update(best_fitness=np.float64(0.93), train_metrics={"top1": np.arange(3)}, save_dir=Path("/runs/x"),
                dtype=torch.float16)
    torch.save(ckpt, str(path))
    found = sniff(path)
    assert ("ultralytics.nn.tasks", "ClassificationModel") in found.globals and not found.unresolved
    assert isinstance(load_bundle(path), UltralyticsHierBundle)


# --- the pure pieces ---------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_globals_reads_every_reference_without_running_it(tmp_path, protocol):
    marker = tmp_path / "m"
    data = pickle.dumps([OrderedDict(a=1), Evil(marker), Evil(marker), OrderedDict()], protocol=protocol)
    globs, unresolved = pickle_globals(data)
    assert not unresolved and not marker.exists()
    assert {g[1] for g in globs} == {"OrderedDict", "open"}  # memoised STACK_GLOBAL names (protocol 4+) too
    assert [g[1] for g in foreign_globals(globs)] == ["open"]


ULTRA_CLASSES = {("ultralytics.nn.tasks", "ClassificationModel"), ("torch.nn.modules.conv", "Conv2d")}


@pytest.mark.parametrize("globs,bad", [
    ({("ultralytics.nn.tasks", "ClassificationModel"), ("torch._utils", "_rebuild_tensor_v2"), ("torch", "HalfStorage"),
      ("__builtin__", "set"), ("collections", "OrderedDict")}, []),
    ({("ultralytics.nn.tasks", "ClassificationModel"), ("builtins", "open")}, [("builtins", "open")]),
    ({("ultralytics.nn.tasks", "ClassificationModel"), ("os", "system")}, [("os", "system")]),
    # a function (not an nn.Module class) inside an allowed package is still refused
    ({("ultralytics.nn.tasks", "torch_safe_load")}, [("ultralytics.nn.tasks", "torch_safe_load")]),
    ({("torch.nn.modules.conv", "Conv2d"), ("torch", "load")}, [("torch", "load")]),
])
def test_unexpected_ultralytics_globals(globs, bad):
    assert unexpected_ultralytics_globals(globs, lambda m, n: (m, n) in ULTRA_CLASSES) == bad


def test_real_module_classes_are_told_from_functions():
    from video_analysis.worker_utils.model_files import is_module_class

    assert is_module_class("ultralytics.nn.tasks", "ClassificationModel")
    assert is_module_class("torch.nn.modules.conv", "Conv2d")
    assert not is_module_class("ultralytics.nn.tasks", "torch_safe_load")
    assert not is_module_class("ultralytics.nn.nope", "X")


def test_a_damaged_pickle_inside_an_archive_is_a_clear_refusal(tmp_path):
    path = tmp_path / "damaged.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("damaged/data.pkl", b"\x80\x02}q\x00(X\x05\x00\x00")  # cut off mid-pickle
    with pytest.raises(BundleError, match=r"damaged.pt: cannot be read as a model file \(.*\); is it damaged\?"):
        load_bundle(path)


@pytest.mark.parametrize("content,kind", [(b"\x08\x07hello", "unknown"), (b"", "unknown")])
def test_unknown_files(tmp_path, content, kind):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    assert sniff(path) == FileKind(kind)


# --- torch.export archives: what torch.export.load would unpickle is checked first ------------
@pytest.fixture(scope="module")
def pt2(tmp_path_factory) -> Path:
    path = export_pt2(three_head_net(), tmp_path_factory.mktemp("pt2") / "main.pt2")
    assert pt2_problems(path) == []
    return path


def rewrite(src: Path, dst: Path, replace: dict[str, bytes]) -> Path:
    """A copy of the zip ``src`` with the entries ending in each key replaced."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = next((v for k, v in replace.items() if info.filename.endswith(k)), None)
            zout.writestr(info, zin.read(info) if data is None else data)
    return dst


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_a_pt2_with_a_pickled_weight_or_sample_input_is_refused_unread(pt2, tmp_path, marker):
    with zipfile.ZipFile(pt2) as z:
        cfg_name = next(n for n in z.namelist() if n.endswith("_weights_config.json"))
        cfg = json.loads(z.read(cfg_name))
    first = next(iter(cfg["config"].values()))
    first["use_pickle"] = True
    cases = {"weight": {cfg_name.split("/", 1)[1]: json.dumps(cfg).encode(), f"/{first['path_name']}": saved(Evil(marker))},
             "sample input": {"sample_inputs/model.pt": saved(((Evil(marker),), {}))}}
    for case, replace in cases.items():
        bad = rewrite(pt2, tmp_path / f"{case.replace(' ', '_')}.pt2", replace)
        write_card(bad, card(outputs={"type": 0, "make": 1, "model": 2}))
        reason = refused(bad, marker, "refused, not loaded", "open")
        assert ("weights" if case == "weight" else "sample_inputs") in reason
