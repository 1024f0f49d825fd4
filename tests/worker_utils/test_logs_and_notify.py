import io
import json
import logging
import socket

import pytest

from video_analysis.worker_utils.logs import log_context, log_stage, redact, setup_logging
from video_analysis.worker_utils.sd_notify import Notifier
from video_analysis.worker_utils.timeutil import detected_at


@pytest.mark.parametrize("text,secret", [
    ("https://b.s3.amazonaws.com/k.jpg?X-Amz-Credential=AKIAXX%2F2026&X-Amz-Signature=abcdef0123", "abcdef0123"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"),
    ("postgresql://cvitx:hunter2@db.example:5432/cvitx", "hunter2"),
    ("key AKIAIOSFODNN7EXAMPLE in use", "IOSFODNN7EXAMPLE"),
    ("password: s3cr3t", "s3cr3t"),
    # issue 8: whole presigned queries (v4 and v2), Authorization headers, botocore signing debug lines
    ("GET https://h/b/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261125T000000Z&X-Amz-Expires=60 ok",
     "AWS4-HMAC"),
    ("https://h/b/k.jpg?AWSAccessKeyId=testing&Signature=zZ9%2Fabc&Expires=1795587159", "zZ9"),
    ("{'Authorization': b'AWS4-HMAC-SHA256 Credential=testing/2026/r/s3/aws4_request, SignedHeaders=host, "
     "Signature=" + "ab" * 32 + "'}", "ab" * 32),
    ("Signature:\n" + "cd" * 32, "cd" * 32),
    ("{'X-Amz-Security-Token': b'FwoGZXIvYXdzEtoken'}", "FwoGZXIvYXdzEtoken"),
    ("StringToSign:\nGET\nx-amz-security-token:FwoGZXIvYXdzEtoken\n/b/k", "FwoGZXIvYXdzEtoken"),
])
def test_redaction(text, secret):
    assert secret not in redact(text) and "[REDACTED]" in redact(text)


def test_json_lines_carry_context_and_stage():
    buf = io.StringIO()
    setup_logging("INFO", buf)
    log = logging.getLogger("t")
    with log_context(message_id="m-1", video_id="v-1"):
        with log_stage(log, "detect", frames=3):
            pass
        log.info("url %s", "https://x/y?X-Amz-Signature=deadbeef")
    lines = [json.loads(l) for l in buf.getvalue().splitlines()]
    assert lines[0]["stage"] == "detect" and lines[0]["frames"] == 3 and lines[0]["duration_ms"] >= 0
    assert all(l["message_id"] == "m-1" and l["video_id"] == "v-1" for l in lines)
    assert "deadbeef" not in lines[1]["msg"]
    setup_logging("INFO")


def test_sd_notify_sends_datagrams(tmp_path):
    path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    n = Notifier(path)
    n.ready("serving q")
    n.watchdog()
    n.stopping()
    got = [srv.recv(1024).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=serving q", "WATCHDOG=1", "STOPPING=1"]
    srv.close()
    Notifier(None).ready()  # no socket: a no-op
    Notifier(str(tmp_path / "gone.sock")).ready()  # broken socket: logged, never raised


@pytest.mark.parametrize("recorded,offset,expected", [
    (None, 2272, None),
    ("2026-11-24T10:00:00Z", 2272, "2026-11-24T10:00:02.272Z"),
    ("2026-11-24T10:00:00+08:00", 1_234_567, "2026-11-24T02:20:34.567Z"),
    ("2026-11-24T23:59:59.500", 600, "2026-11-25T00:00:00.100Z"),
])
def test_detected_at(recorded, offset, expected):
    assert detected_at(recorded, offset) == expected
