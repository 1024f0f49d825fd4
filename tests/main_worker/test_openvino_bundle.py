"""The CVITX bundle run by OpenVINO (issue 18): exported once to ONNX, cached in the detector's
cache folder, and the same classifier as the PyTorch bundle on real snapshots.

Snapshots: vehicles of two unseen scenes (evaluation seeds), cut by the worker's own crop +
letterbox code from rendered, JPEG-compressed frames (synth.datasets.snapshot_samples).  Real
OpenVINO and real PyTorch; nothing is mocked.

Tolerances, measured on an Intel Xeon with AMX (2026-11): OpenVINO forced to float32 differs
from PyTorch by < 1e-6 in any probability, so the strict check is 1e-4 and every decoded answer
identical; OpenVINO's own choice there is bfloat16, which moved probabilities by up to 0.011 and
flipped one near-tie finish head out of 44 snapshots, so that check allows 0.05 and 1 snapshot
in 20 per field; on an AMD EPYC with AVX-512 BF16 (2026-12) bfloat16 moved them by up to 0.011
too.  Each check asks for the precision it tests (issue 23): float32 strictly on every CPU,
bfloat16 with its own tolerance where the CPU has it, skipped where it has not.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest

from conftest import CMT_BUNDLE, MAIN_BUNDLE
from video_analysis.main_worker.formats.bundle import Bundle
from video_analysis.main_worker.formats.bundle_export import (EXPORT_TAG, OpenVinoBundle, cache_name, choose_runtime,
                                                              disagreement, file_digest, precision_config)
from video_analysis.main_worker.decoding import decode_output
from video_analysis.main_worker.model import load_bundle
from video_analysis.main_worker.results import colors_of
from video_analysis.main_worker.variants import bundle_runtime, hierarchy_of, load_variants
from video_analysis.worker_config import Settings
from video_analysis.worker_utils.runtimes import cpu_capabilities

F32 = {"INFERENCE_PRECISION_HINT": "f32"}
SEEDS = (500011, 500023)  # evaluation range: never trained on


@pytest.fixture(scope="module")
def snaps() -> np.ndarray:
    """~44 real 640x640 BGR snapshots (about 1.5 s to render)."""
    from video_analysis.synth.datasets import snapshot_samples

    return snapshot_samples(SEEDS, 60, size=640, every_s=1.0, duration_s=20.0).images


@pytest.fixture(scope="module")
def torch_bundle() -> Bundle:
    return load_bundle(MAIN_BUNDLE)


@pytest.fixture(scope="module")
def reference(torch_bundle, snaps) -> dict[str, np.ndarray]:
    return torch_bundle.predict(snaps)


def answers(model, p: dict[str, np.ndarray], images: np.ndarray) -> list[tuple]:
    """What the worker stores for each snapshot: the decoded Type/Make/Model path and the colour
    (finish, base, lightness of the first colour)."""
    h = hierarchy_of(model)
    out = []
    for i, img in enumerate(images):
        one = {k: v[i] for k, v in p.items()}
        dec = decode_output(h, one, 3)
        col = colors_of(model, one, img)[0][0]
        out.append((dec.type, dec.make, dec.model, col["finish"], col["base"], col["lightness"]))
    return out


def compile_configs(monkeypatch) -> list:
    """The ``config`` each OpenVinoRunner is built with from now on (it still compiles for real)."""
    from video_analysis.main_worker.formats.openvino_ir import OpenVinoRunner

    seen: list = []
    real = OpenVinoRunner.__init__

    def recording(self, path, config=None):
        seen.append(config)
        real(self, path, config)

    monkeypatch.setattr(OpenVinoRunner, "__init__", recording)
    return seen


def ready_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "main model ready"]


def test_runtime_choice():
    assert choose_runtime("auto", cuda=False, openvino=True) == "openvino"
    assert choose_runtime("auto", cuda=True, openvino=True) == "torch"
    assert choose_runtime("auto", cuda=False, openvino=False) == "torch"
    assert choose_runtime("torch", cuda=False, openvino=True) == "torch"
    assert choose_runtime("openvino", cuda=True, openvino=True) == "openvino"
    assert bundle_runtime(Settings(device="cpu")) == "openvino"
    assert bundle_runtime(Settings(device="cuda", main_runtime="auto")) == "torch"
    assert bundle_runtime(Settings(device="cpu", main_runtime="torch")) == "torch"
    assert cache_name("main", "abc", 128) == f"main-abc-128x128-{EXPORT_TAG}.onnx"


def test_float32_openvino_gives_the_pytorch_answers(tmp_path, snaps, torch_bundle, reference, caplog):
    caplog.set_level("INFO")
    m = load_bundle(MAIN_BUNDLE, runtime="openvino", cache_dir=tmp_path, ov_config=F32)
    assert isinstance(m, OpenVinoBundle) and (m.runtime, m.precision) == ("openvino (CPU)", "f32")
    ready = ready_lines(caplog)
    assert len(ready) == 1 and (ready[0].format, ready[0].runtime, ready[0].precision) == (
        "cvitx-bundle", "openvino (CPU)", "f32")
    assert (m.model_name, m.version, m.labels, m.hierarchy, m.input_size) == (
        torch_bundle.model_name, torch_bundle.version, torch_bundle.labels, torch_bundle.hierarchy,
        torch_bundle.input_size)
    assert len(snaps) >= 40
    p = m.predict(snaps)
    assert set(p) == set(reference) == set(torch_bundle.labels)
    for head, ref in reference.items():
        assert p[head].shape == ref.shape
        np.testing.assert_allclose(p[head], ref, atol=1e-4, err_msg=head)
    assert answers(m, p, snaps) == answers(torch_bundle, reference, snaps)
    one = m.predict(snaps[:1])  # batch of one, as a single message: the same numbers
    for head, ref in reference.items():
        np.testing.assert_allclose(one[head], ref[:1], atol=1e-4, err_msg=head)


@pytest.mark.skipif("BF16" not in cpu_capabilities(), reason="this CPU has no bfloat16 (AMX / AVX-512 BF16): "
                    "OpenVINO cannot run bf16 here, float32 is checked strictly above")
def test_bfloat16_openvino_agrees_with_pytorch_within_its_measured_tolerance(tmp_path, snaps, torch_bundle,
                                                                              reference):
    """bfloat16 asked for (``main_precision=bf16``), on every CPU that has it.  The tolerances are
    bfloat16's own, measured (module docstring): up to 0.011 in a probability and one near-tie
    flip in 44 snapshots on an Intel Xeon with AMX; allowed 0.05 and 1 snapshot in 20 per field."""
    m = load_bundle(MAIN_BUNDLE, runtime="openvino", cache_dir=tmp_path, ov_config={"INFERENCE_PRECISION_HINT": "bf16"})
    assert m.precision == "bf16"
    p = m.predict(snaps)
    worst = max(float(np.abs(p[h] - ref).max()) for h, ref in reference.items())
    print(f"bf16 vs PyTorch: worst probability difference {worst:.4f}")
    assert worst <= 0.05, worst
    ours, theirs = answers(m, p, snaps), answers(torch_bundle, reference, snaps)
    fields = ("type", "make", "model", "finish", "base", "lightness")
    for k, field in enumerate(fields):
        differ = sum(a[k] != b[k] for a, b in zip(ours, theirs))
        assert differ <= len(snaps) // 20, (field, differ)


def test_export_is_cached_per_bundle_and_reused(tmp_path, caplog):
    """Through the worker's own loading path (settings): compare mode exports main.pt and cmt.pt
    once each into detector_cache_dir; a second start loads them without exporting."""
    caplog.set_level("INFO")
    s = Settings(device="cpu", main_runtime="auto", main_mode="compare", main_model_path=str(MAIN_BUNDLE),
                 cmt_model_path=str(CMT_BUNDLE), detector_cache_dir=str(tmp_path))
    first = load_variants(s)
    assert {n: (type(v), v.runtime) for n, v in first.items()} == {
        n: (OpenVinoBundle, "openvino (CPU)") for n in ("baseline", "cmt")}
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(cache_name(b.stem, file_digest(b), 128) for b in (MAIN_BUNDLE, CMT_BUNDLE))
    assert [r.getMessage() for r in caplog.records].count("main model exported") == 2
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    caplog.clear()
    again = load_variants(s)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamps
    assert "main model exported" not in [r.getMessage() for r in caplog.records]
    assert {n: v.export for n, v in again.items()} == {n: v.export for n, v in first.items()}
    assert {r.precision for r in ready_lines(caplog)} == {again["baseline"].precision}


def test_a_damaged_cache_file_is_exported_again(tmp_path, snaps, reference, caplog):
    target = tmp_path / cache_name(MAIN_BUNDLE.stem, file_digest(MAIN_BUNDLE), 128)
    target.write_bytes(b"\x08\x07 not an onnx graph" * 50)  # what a full disk or a copy cut short leaves
    caplog.set_level("INFO")
    m = load_bundle(MAIN_BUNDLE, runtime="openvino", cache_dir=tmp_path, ov_config=F32)
    assert isinstance(m, OpenVinoBundle) and m.export == target
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == ["cached main-model export is damaged; exporting it again"]
    assert "main model exported" in [r.getMessage() for r in caplog.records]
    assert target.stat().st_size > 10_000 and [p.name for p in tmp_path.iterdir()] == [target.name]
    np.testing.assert_allclose(m.predict(snaps[:4])["type"], reference["type"][:4], atol=1e-4)


def test_a_foreign_graph_under_the_cache_name_is_exported_again(tmp_path, caplog):
    """A file that OpenVINO loads but that is not this bundle (another bundle's export copied
    over it) disagrees on the blank snapshot and is replaced."""
    cmt = load_bundle(CMT_BUNDLE, runtime="openvino", cache_dir=tmp_path, check=False)
    target = tmp_path / cache_name(MAIN_BUNDLE.stem, file_digest(MAIN_BUNDLE), 128)
    target.write_bytes(cmt.export.read_bytes())
    caplog.set_level("INFO")
    m = load_bundle(MAIN_BUNDLE, runtime="openvino", cache_dir=tmp_path)
    assert isinstance(m, OpenVinoBundle) and target.read_bytes() != cmt.export.read_bytes()
    assert "cached main-model export is damaged; exporting it again" in [r.getMessage() for r in caplog.records]


def test_main_runtime_torch_runs_pytorch_and_exports_nothing(tmp_path, caplog):
    caplog.set_level("INFO")
    s = Settings(device="cpu", main_runtime="torch", main_model_path=str(MAIN_BUNDLE),
                 detector_cache_dir=str(tmp_path / "cache"))
    m = load_variants(s)["baseline"]
    assert type(m) is Bundle and (m.runtime, m.precision) == ("torch", "f32")
    assert [(r.runtime, r.precision) for r in ready_lines(caplog)] == [("torch", "f32")]
    assert not (tmp_path / "cache").exists()


def test_an_export_that_cannot_be_written_warns_once_and_runs_pytorch(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    caplog.set_level("INFO")
    m = load_bundle(MAIN_BUNDLE, runtime="openvino", cache_dir=blocker / "cache")
    assert type(m) is Bundle and m.runtime == "torch"
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].getMessage() == (
        "main model runs in PyTorch: the OpenVINO export is not available")
    assert "not writable" in warned[0].error and "detector_cache_dir" in warned[0].error
    assert [r.runtime for r in ready_lines(caplog)] == ["torch"]


def test_disagreement_names_the_head():
    a = {"type": np.array([[0.9, 0.1]], np.float32)}
    assert disagreement(a, {"type": np.array([[0.89, 0.11]], np.float32)}) is None
    far = {"type": np.array([[0.49, 0.51]], np.float32)}
    assert disagreement(a, far) == "head type: probabilities differ by up to 0.410"
    assert "shape" in disagreement(a, {})


@pytest.mark.parametrize("requested, caps, config, warns", [
    ("auto", ("FP32", "BF16"), None, False),                          # OpenVINO's own choice
    ("f32", ("FP32", "BF16", "INT8"), {"INFERENCE_PRECISION_HINT": "f32"}, False),
    ("bf16", ("FP32", "BF16", "FP16", "INT8"), {"INFERENCE_PRECISION_HINT": "bf16"}, False),  # a Xeon with AMX
    ("bf16", ("FP32", "INT8"), None, True),                           # an AVX2-only EPYC: a warning, the default
    ("f16", ("FP32", "BF16"), None, True),
])
def test_main_precision_config(requested, caps, config, warns):
    got, warning = precision_config(requested, caps)
    assert got == config and bool(warning) == warns
    if warns:
        assert f"main_precision={requested}" in warning and "not supported by this CPU" in warning


def test_an_unknown_main_precision_is_refused():
    with pytest.raises(ValueError, match="main_precision"):
        precision_config("int8", ("FP32", "INT8"))
    with pytest.raises(ValueError, match="main_precision"):
        Settings(main_precision="int8")


@pytest.mark.parametrize("requested", ["f32", "bf16"])
def test_main_precision_reaches_the_compiled_main_model(tmp_path, requested, caplog, monkeypatch):
    """Through the worker's own loading path: the precision OpenVINO compiled is the one asked for
    where the CPU offers it; elsewhere one warning and OpenVINO's own choice."""
    caplog.set_level("INFO")
    configs = compile_configs(monkeypatch)
    s = Settings(device="cpu", main_precision=requested, main_model_path=str(MAIN_BUNDLE),
                 detector_cache_dir=str(tmp_path))
    m = load_variants(s)["baseline"]
    offered = {"f32": "FP32", "bf16": "BF16"}[requested] in cpu_capabilities()
    # what OpenVINO was asked for, on any CPU (where bf16 is not offered, nothing is asked)
    assert configs == [{"INFERENCE_PRECISION_HINT": requested} if offered else None]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert isinstance(m, OpenVinoBundle)
    if offered:
        assert m.precision == requested and not warned
    else:
        assert m.precision == "f32" and len(warned) == 1 and "main_precision=bf16" in warned[0]
    assert [r.precision for r in ready_lines(caplog)] == [m.precision]


@pytest.mark.parametrize("requested, warns", [("auto", False), ("f32", False), ("bf16", True), ("f16", True)])
def test_main_precision_without_openvino_asks_nothing(monkeypatch, caplog, requested, warns):
    """Without the openvino package the main model runs in PyTorch / ONNX Runtime (float32): a
    half precision asked for says so once; auto and f32 say nothing."""
    from video_analysis.main_worker.variants import openvino_config
    from video_analysis.worker_utils import runtimes

    monkeypatch.setattr(runtimes, "openvino_available", lambda: False)
    caplog.set_level("INFO")
    assert openvino_config(Settings(main_precision=requested)) is None
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == int(warns)
    if warns:
        assert f"main_precision={requested}" in warned[0] and "openvino package is not installed" in warned[0]
