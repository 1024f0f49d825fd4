"""A team's own main model through the real main_worker (issue 15): an ONNX three-head model
with its card writes real result rows through the real poller; a model whose card does not fit
stops the worker process at start-up with exit 2 and one line naming the file, the key and the fix."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import CMT_BUNDLE
from helpers import worker_env
from video_analysis.main_worker.worker import MainWorker

from .conftest import Publisher, serve_until
from .three_head import LABELS, card, export_onnx, three_head_net, write_card


def jpeg(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 256, (640, 640, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def test_an_onnx_three_head_model_writes_rows_through_the_real_worker(mw_settings, tmp_path):
    """Compare mode with two formats side by side: the team's ONNX model as the baseline, the
    demo CVITX bundle as the CMT variant."""
    path = export_onnx(three_head_net(), tmp_path / "main.onnx")
    write_card(path, card())
    s = mw_settings.replace(main_model_path=str(path), main_mode="compare", cmt_model_path=str(CMT_BUNDLE))
    pub = Publisher(s)
    for i in range(3):
        pub.publish(i + 1, 1000 * (i + 1), jpeg(i))
    worker = MainWorker(s)  # the start-up path: load_variants -> load_bundle -> start-up check
    assert {n: v.format_name for n, v in worker.variants.items()} == {"baseline": "onnx", "cmt": "cvitx-bundle"}
    serve_until(s, worker, lambda: pub.status_counts().get("done", 0) == 3, timeout_s=90)
    rows = pub.results()
    assert sorted(r["variant"] for r in rows) == ["baseline"] * 3 + ["cmt"] * 3
    assert {r["model_name"] for r in rows if r["variant"] == "cmt"} != {"ournet"}
    for r in (r for r in rows if r["variant"] == "baseline"):
        assert (r["model_name"], r["model_version"]) == ("ournet", "t1")
        assert r["type"] in LABELS["type"] and (r["make"] is None or r["make"] in LABELS["make"])
        heads = r["payload"]["heads"]
        assert [len(heads[h]) for h in ("type", "make", "model")] == [8, 9, 7]  # heads of <= 10 labels in full
        assert {x["label"] for x in heads["type"]} == set(LABELS["type"])


BAD = [
    ("head size", lambda c: c["labels"]["make"].append("Kia") or c["hierarchy"]["make_type"].update(Kia="Car"),
     "main.json: labels.make: the output has 9 scores per snapshot but labels.make lists 10 labels"),
    ("missing card", None, "main.onnx: no model card main.json beside it"),
]


@pytest.mark.parametrize("edit,says", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_model_stops_the_worker_process_at_start_up(stack, mw_settings, tmp_path, edit, says):
    path = export_onnx(three_head_net(), tmp_path / "main.onnx")
    if edit is not None:
        c = card()
        edit(c)
        write_card(path, c)
    env = worker_env(stack, mw_settings, main_model_path=str(path), main_mode="single")
    proc = subprocess.run([sys.executable, "-m", "video_analysis.main_worker.run_poller"], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if "cannot start:" in ln and not ln.startswith("{")]
    assert len(lines) == 1 and says in lines[0] and str(tmp_path) in lines[0], proc.stderr[-2000:]
