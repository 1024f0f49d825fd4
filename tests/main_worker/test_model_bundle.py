"""main_worker/model.py: the two bundle formats it loads, and clear errors for broken files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from video_analysis.main_worker.decoding import decode_paths
from video_analysis.main_worker.model import (BundleError, Bundle, UltralyticsHierBundle, build_tinynet,
                                              load_bundle, save_bundle, to_tensor)
from video_analysis.main_worker.worker import hierarchy_of, load_variants
from video_analysis.synth.catalogue import all_labels, hierarchy
from video_analysis.worker_utils.errors import ValidationFailed

RNG = np.random.default_rng(7)


def snapshots(n: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, (n, 640, 640, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small native bundle (width 4, input 32) with random weights, and its network."""
    torch.manual_seed(0)
    labels = all_labels()
    net = build_tinynet({h: len(v) for h, v in labels.items()}, width=4, input_size=32).eval()
    path = save_bundle(tmp_path_factory.mktemp("b") / "tiny.pt", net, labels, hierarchy(), model_name="tiny",
                       version="t1", width=4, input_size=32, metrics={"type_top1": 0.5})
    return path, net


def test_native_round_trip(tiny):
    path, net = tiny
    b = load_bundle(path)
    assert isinstance(b, Bundle)
    assert (b.model_name, b.version, b.metrics) == ("tiny", "t1", {"type_top1": 0.5})
    assert b.labels == {k: list(v) for k, v in all_labels().items()} and b.hierarchy == hierarchy()
    x = snapshots()
    p = b.predict(x)
    assert set(p) == set(all_labels())
    with torch.inference_mode():
        ref = {h: torch.softmax(v, 1).numpy() for h, v in net(to_tensor(x, b.mean, b.std, 640)).items()}
    for h in p:
        assert p[h].shape == (3, len(all_labels()[h]))
        np.testing.assert_allclose(p[h].sum(1), 1, atol=1e-5)
        # predict() area-downsamples in OpenCV instead of the net's avg-pool: equal up to uint8 rounding
        np.testing.assert_allclose(p[h], ref[h], atol=2e-3)
    np.testing.assert_array_equal(b.predict(x)["model"], p["model"])  # eval mode: deterministic
    hierarchy_of(b)  # the worker can decode it


def test_missing_file_is_a_bundle_error(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope.pt")


@pytest.mark.parametrize("content", [b"", b"not a model at all" * 100, "truncated"])
def test_corrupt_file_is_a_bundle_error(tiny, tmp_path, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(tiny[0].read_bytes()[:5000] if content == "truncated" else content)
    with pytest.raises(BundleError) as e:
        load_bundle(bad)
    assert str(bad) in e.value.reason and "neither a CVITX bundle" in e.value.reason
    assert e.value.code == "model_config"


@pytest.mark.parametrize("drop,says", [("labels", "lacks the 'labels' entry"), ("state_dict", "lacks the 'state_dict' entry"),
                                       ("arch", "unknown architecture None")])
def test_bundle_missing_a_key(tiny, tmp_path, drop, says):
    data = torch.load(str(tiny[0]), weights_only=True)
    del data[drop]
    bad = tmp_path / "missing.pt"
    torch.save(data, str(bad))
    with pytest.raises(BundleError, match=says):
        load_bundle(bad)


def test_weights_that_do_not_match_the_labels(tiny, tmp_path):
    data = torch.load(str(tiny[0]), weights_only=True)
    data["labels"]["make"] = data["labels"]["make"] + ["Extra"]
    bad = tmp_path / "edited.pt"
    torch.save(data, str(bad))
    with pytest.raises(BundleError, match="do not match the label maps"):
        load_bundle(bad)


def test_missing_bundle_stops_start_up(tiny, tmp_path):
    from video_analysis.worker_config import Settings

    s = Settings(main_model_path=str(tiny[0]), main_mode="compare", cmt_model_path=str(tmp_path / "none.pt"))
    with pytest.raises(ValidationFailed, match="none.pt \\(cmt\\) does not exist; set CVITX_CMT_MODEL_PATH"):
        load_variants(s)
    assert list(load_variants(s.replace(main_mode="single"))) == ["baseline"]


# --- format 2: an ultralytics classify checkpoint with Type|Make|Model class names -------------
LEAVES = ["Car|Toyota|Vios", "Car|Honda|City", "SUV|Toyota|Fortuner", "SUV|Ford|Everest",
          "Motorcycle|Honda|Click", "Van|Toyota", "E-Jeepney"]


def write_classify_checkpoint(path, names) -> None:
    """A tiny untrained yolov8n-cls built offline from ultralytics' own yaml and saved in the
    layout ultralytics writes ({'model': module, 'train_args': ...}); no download needed."""
    from video_analysis.worker_utils.offline import ultralytics_offline

    ultralytics_offline()
    import ultralytics
    from ultralytics.nn.tasks import ClassificationModel

    torch.manual_seed(0)
    m = ClassificationModel("yolov8n-cls.yaml", nc=len(names), verbose=False)
    m.names = dict(enumerate(names))
    m.args = {"task": "classify", "imgsz": 64}
    torch.save({"model": m.half(), "train_args": {"task": "classify", "imgsz": 64}, "epoch": -1,
                "version": ultralytics.__version__}, str(path))


@pytest.fixture(scope="module")
def classify_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("u") / "hier-cls.pt"
    write_classify_checkpoint(path, LEAVES)
    return path


def test_ultralytics_classify_checkpoint(classify_ckpt):
    b = load_bundle(classify_ckpt)
    assert isinstance(b, UltralyticsHierBundle)
    assert b.labels["make"] == ["Ford", "Honda", "Toyota"] and "Fortuner" in b.labels["model"]
    p = b.predict(snapshots(2))
    assert p["path"].shape == (2, len(LEAVES)) and p["type"].shape == (2, 8)
    for h in ("path", "type", "make", "model"):
        np.testing.assert_allclose(p[h].sum(1), 1, atol=1e-4)
    # the Type head is the leaf mass summed per type
    np.testing.assert_allclose(p["type"][:, 1], p["path"][:, 2] + p["path"][:, 3], atol=1e-4)

    h = hierarchy_of(b)
    onehot = lambda i: np.eye(len(LEAVES))[i] * 0.9 + 0.1 / len(LEAVES)  # noqa: E731
    # Toyota is under Car, SUV and Van: each leaf decodes to its own type
    assert (decode_paths(h, onehot(2)).type, decode_paths(h, onehot(2)).make,
            decode_paths(h, onehot(2)).model) == ("SUV", "Toyota", "Fortuner")
    assert (decode_paths(h, onehot(0)).type, decode_paths(h, onehot(0)).model) == ("Car", "Vios")
    d = decode_paths(h, onehot(5))
    assert (d.type, d.make, d.model, d.model_conf) == ("Van", "Toyota", None, None)
    d = decode_paths(h, onehot(6))
    assert (d.type, d.make, d.model) == ("E-Jeepney", None, None) and d.type_conf > 0.9


def test_classify_checkpoint_with_bad_names_is_refused(tmp_path):
    path = tmp_path / "flat.pt"
    write_classify_checkpoint(path, ["sedan", "suv"])
    with pytest.raises(BundleError, match="not 'Type|Make|Model' paths"):
        load_bundle(path)


def test_classify_checkpoint_serves_end_to_end(mw_settings, classify_ckpt):
    """The worker runs the second format too: results decoded over its leaves, colour from the
    classical estimator (the checkpoint has no colour head)."""
    from .conftest import Publisher, make_worker, serve_until
    from .test_bad_inputs import jpeg_of, snapshot_image

    s = mw_settings
    pub = Publisher(s)
    pub.publish(3, 1000, jpeg_of(snapshot_image()))
    serve_until(s, make_worker(s, {"baseline": load_bundle(classify_ckpt)}), lambda: pub.status_counts() == {"done": 1})
    (r,) = pub.results()
    leaf = "|".join(x for x in (r["type"], r["make"], r["model"]) if x)
    assert leaf in LEAVES and r["model_version"] == "ultralytics-classify"
    assert r["payload"]["colors_source"] == "classical" and r["colors"]
