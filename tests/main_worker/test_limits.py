"""Issue 8: the main_worker refuses a snapshot object over snapshot_max_bytes (before decoding
it) with a reason naming the setting: the analysis row says error, the message goes to the DLQ
after one receive, and a snapshot within the limit is served."""
from __future__ import annotations

import json

import numpy as np

from video_analysis.worker_utils.imaging import encode_jpeg

from .conftest import Publisher, make_worker, serve_until


def test_snapshot_over_snapshot_max_bytes_goes_to_the_dlq(mw_settings, variants):
    noisy = encode_jpeg((np.random.default_rng(8).random((640, 640, 3)) * 255).astype(np.uint8), 95)
    flat = encode_jpeg(np.full((640, 640, 3), 90, np.uint8), 90)
    assert len(flat) < 20_000 < len(noisy)
    s = mw_settings.replace(snapshot_max_bytes=20_000)
    pub = Publisher(s)
    bad = pub.publish(2, 2000, noisy)
    good = pub.publish(1, 1000, flat)
    serve_until(s, make_worker(s, variants), lambda: pub.status_counts().get("done") == 1 and pub.sqs.attributes(
        s.snapshot_dlq)["ApproximateNumberOfMessages"] == "1")
    (dead,) = pub.drain(s.snapshot_dlq)
    assert json.loads(dead.body) == bad
    reason = dead.message_attributes["cvitx_error_reason"]["StringValue"]
    assert f"is {len(noisy)} bytes, over the 20000-byte limit (snapshot_max_bytes)" in reason, reason
    assert dead.message_attributes["cvitx_receive_count"]["StringValue"] == "1"
    rows = {a["snapshot_s3_key"]: a for a in pub.analyses()}
    assert rows[bad["snapshot_s3_key"]]["status"] == "error" and "snapshot_max_bytes" in rows[bad["snapshot_s3_key"]]["error"]
    assert rows[good["snapshot_s3_key"]]["status"] == "done"
