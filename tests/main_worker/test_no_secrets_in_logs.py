"""Issue 8: logs never carry credentials or presigned URLs.

The real main_worker serves good and bad SNAPSHOT_READY messages through the real poller, in
this process, with known fake AWS credentials (access key, secret, session token) in the
environment and a password in the database URL; every log record goes through the product's
JSON formatter into a buffer that must contain none of them, and no signing material.  The
second test is the worst case: botocore and urllib3 forced to DEBUG (they log request headers
and signing steps), where the formatter's redaction is what stands between them and the journal.
"""
from __future__ import annotations

import io
import json
import logging
import re
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config

from video_analysis.worker_utils.errors import TransientError
from video_analysis.worker_utils.logs import setup_logging

from .conftest import Publisher, make_worker, serve_until
from .test_bad_inputs import jpeg_of, snapshot_image

FAKE = {"AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE1234", "AWS_SECRET_ACCESS_KEY": "fAkE/SeCrEt+KeY0123456789abcdefghijKLMNOP",
        "AWS_SESSION_TOKEN": "FaKeSeSsIoNtOkEn0123456789zzz"}
DB_PASSWORD = "db-Pa55word-fake"


def _with_password(url: str) -> str:
    u = urlsplit(url)
    return urlunsplit(u._replace(netloc=f"{u.username or 'postgres'}:{DB_PASSWORD}@{u.hostname}:{u.port}"))


def _secrets() -> list[str]:
    return [*FAKE.values(), FAKE["AWS_ACCESS_KEY_ID"][4:], DB_PASSWORD]


def _run(mw_settings, variants, monkeypatch, library_debug: bool) -> str:
    for k, v in FAKE.items():
        monkeypatch.setenv(k, v)
    s = mw_settings.replace(db_url=_with_password(mw_settings.db_url), log_level="DEBUG")
    buf = io.StringIO()
    setup_logging("DEBUG", buf)
    if library_debug:
        for name in ("botocore", "boto3", "urllib3", "s3transfer"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        pub = Publisher(s)
        good = pub.publish(1, 1000, jpeg_of(snapshot_image()))
        pub.publish(2, 2000, None)  # missing object: an error path with the key in its reason
        pub.send("{not json")
        serve_until(s, make_worker(s, variants), lambda: pub.status_counts().get("done") == 1 and pub.sqs.attributes(
            s.snapshot_dlq)["ApproximateNumberOfMessages"] == "2")
        # what a careless log line or error message could carry: a presigned URL, the DB URL, a
        # botocore exception text
        log = logging.getLogger("video_analysis.main_worker.worker")
        key = good["snapshot_s3_key"].split("/", 3)[3]
        v4 = boto3.session.Session().client("s3", endpoint_url=s.s3_endpoint_url, region_name=s.region,
                                            config=Config(signature_version="s3v4"))
        url = v4.generate_presigned_url("get_object", Params={"Bucket": s.bucket, "Key": key}, ExpiresIn=60)
        v2 = pub.s3.client.generate_presigned_url("get_object", Params={"Bucket": s.bucket, "Key": key}, ExpiresIn=60)
        assert "X-Amz-Signature=" in url and FAKE["AWS_ACCESS_KEY_ID"] in url and "Signature=" in v2
        log.info("snapshot at %s", url, extra={"url": url, "v2": v2, "db": s.db_url})
        try:
            raise TransientError(f"S3 get {url}: timed out; aws_secret_access_key={FAKE['AWS_SECRET_ACCESS_KEY']}")
        except TransientError:
            log.exception("fetch failed")
    finally:
        setup_logging("INFO")
    out = buf.getvalue()
    assert out.count("\n") >= 5 and all(json.loads(line) for line in out.splitlines())
    return out


def test_worker_logs_carry_no_credentials_or_presigned_urls(mw_settings, variants, monkeypatch):
    out = _run(mw_settings, variants, monkeypatch, library_debug=False)
    for secret in _secrets():
        assert secret not in out, f"{secret!r} reached the log"
    for needle in ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "AWS4-HMAC", "Signature="):
        assert needle not in out, f"{needle!r} reached the log"
    assert "message sent to the DLQ" in out and "?[REDACTED]" in out  # the paths ran and the URL was cut


def test_even_library_debug_logs_are_redacted(mw_settings, variants, monkeypatch):
    out = _run(mw_settings, variants, monkeypatch, library_debug=True)
    assert "Sending http request" in out or "Making request" in out, "botocore debug output expected here"
    for secret in _secrets():
        assert secret not in out, f"{secret!r} reached the log"
    assert not re.search(r"Signature=(?!\[REDACTED\])", out)
    assert not re.search(r"Signature:(?:\s|\\n)*[0-9a-f]{64}", out)
    assert not re.search(r"X-Amz-(?:Signature|Credential|Security-Token)=(?!\[REDACTED\])", out)
    assert "AWS4-HMAC-SHA256 Credential" not in out
