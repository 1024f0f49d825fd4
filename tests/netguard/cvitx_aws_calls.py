"""Test-only recorder of every AWS API call a process makes (tests/deploy/test_iam.py, and every
worker process of the fault suite, tests/faults/conftest.py; both evaluate the calls with
tests/iam_policies.py).

``sitecustomize.py`` beside this file imports it when ``TESTS_AWS_CALL_LOG`` names a file;
from then on every botocore session the process creates gets a ``before-parameter-build``
hook that appends one JSON line per API call to that file::

    {"pid": 123, "service": "s3", "operation": "PutObject", "params": {"Bucket": "...", "Key": "..."}}

Only the parameters that name a resource are kept (Bucket, Key, QueueUrl, QueueName, ...),
never bodies.  The hook only records: the call goes on to the real endpoint unchanged.
"""
from __future__ import annotations

import json
import os

RESOURCE_PARAMS = ("Bucket", "Key", "CopySource", "Prefix", "QueueUrl", "QueueName", "SourceArn",
                   "DestinationArn", "TaskHandle")
_PATH = os.environ.get("TESTS_AWS_CALL_LOG")


def _record(params=None, model=None, **_kwargs):
    if model is None:
        return
    kept = {k: params[k] for k in RESOURCE_PARAMS if isinstance(params, dict) and isinstance(params.get(k), str)}
    if isinstance(params, dict) and isinstance(params.get("CopySource"), dict):
        kept["CopySource"] = "{Bucket}/{Key}".format(**params["CopySource"])
    line = json.dumps({"pid": os.getpid(), "service": model.service_model.service_name, "operation": model.name,
                       "params": kept}) + "\n"
    fd = os.open(_PATH, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())  # one write per line: lines from threads/processes never interleave
    finally:
        os.close(fd)


def install() -> None:
    import botocore.session

    if getattr(botocore.session.Session, "_cvitx_recording", False):
        return
    original = botocore.session.Session.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.register("before-parameter-build", _record, unique_id="cvitx-aws-call-recorder")

    botocore.session.Session.__init__ = __init__
    botocore.session.Session._cvitx_recording = True


if _PATH:
    install()
