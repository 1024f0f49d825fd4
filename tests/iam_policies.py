"""The IAM evaluator of the tests: the policies under deploy/iam/, IAM's matching rules, and the
AWS calls a process recorded (tests/netguard/cvitx_aws_calls.py) mapped to the (action,
resource ARN) pairs IAM authorises.

Shared by tests/deploy/test_iam.py (the static guards and the happy-path run) and
tests/faults/conftest.py (every fault test's worker processes record their calls, and the
``make_rig`` fixture evaluates them against the worker's policy when the test ends).
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
IAM = REPO / "deploy" / "iam"
POLICIES = {"yolo_worker": "yolo-worker-policy.json", "main_worker": "main-worker-policy.json",
            "api": "api-policy.json", "ops": "ops-policy.json"}
BUCKET = "cvitx-uploads-dev-jdfirme"
REGION = "ap-southeast-2"
MOTO_ACCOUNT = "123456789012"  # the account moto_server answers as (queue URLs and ARNs carry it)
RECORDER_ENV = "TESTS_AWS_CALL_LOG"  # not CVITX_*: worker_config refuses unknown CVITX_ names


# --- a small IAM evaluator (identity policies: Allow/Deny, Action, Resource) --------------------
def _wild(pattern: str, value: str, case: bool) -> bool:
    """IAM wildcard match: ``*`` any run of characters (``/`` included), ``?`` one character."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, 0 if case else re.IGNORECASE) is not None


def _list(v) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


@lru_cache(maxsize=None)
def load_policy(role: str) -> dict:
    doc = json.loads((IAM / POLICIES[role]).read_text())
    for st in doc["Statement"]:
        unsupported = set(st) - {"Sid", "Effect", "Action", "Resource"}
        assert not unsupported, f"{POLICIES[role]}: {unsupported} is not handled by this test's evaluator"
    return doc


def allowed(policy: dict, action: str, resource: str, names: Optional[dict[str, str]] = None) -> bool:
    """Whether ``policy`` allows ``action`` on ``resource``: some Allow matches and no Deny does.

    ``names`` maps the policy's production names (bucket, queues, ACCOUNT_ID, region) to the
    ones of the deployment under test, the way the policy is instantiated per environment."""
    def inst(r: str) -> str:
        if names and r.startswith("arn:aws:sqs:"):
            _, _, _, region, account, name = r.split(":", 5)
            return ":".join(["arn", "aws", "sqs", names.get(region, region), names.get(account, account),
                             names.get(name, name)])
        if names and r.startswith("arn:aws:s3:::"):
            bucket, slash, rest = r[13:].partition("/")
            return f"arn:aws:s3:::{names.get(bucket, bucket)}{slash}{rest}"
        return r

    verdict = False
    for st in policy["Statement"]:
        if not any(_wild(a, action, case=False) for a in _list(st["Action"])):
            continue
        if not any(_wild(inst(r), resource, case=True) for r in _list(st["Resource"])):
            continue
        if st["Effect"] == "Deny":
            return False
        verdict = True
    return verdict


def grants(role: str) -> set[tuple[str, str]]:
    return {(a, r) for st in load_policy(role)["Statement"] if st["Effect"] == "Allow"
            for a in _list(st["Action"]) for r in _list(st["Resource"])}


# --- botocore operation -> IAM action + resource ------------------------------------------------
_S3_ACTIONS = {
    "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload", "CopyObject": "s3:PutObject",
    "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket", "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions", "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "DeleteObject": "s3:DeleteObject", "DeleteObjects": "s3:DeleteObject", "ListBuckets": "s3:ListAllMyBuckets",
}
_SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


def iam_requests(call: dict, region: str, account: str = MOTO_ACCOUNT) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs IAM authorises for one recorded botocore call
    (``account``: the caller's, which owns a queue named without an owner)."""
    op, p = call["operation"], call["params"]
    if call["service"] == "s3":
        action = _S3_ACTIONS.get(op, f"s3:{op}")
        bucket_arn = f"arn:aws:s3:::{p.get('Bucket', '*')}"
        out = [(action, f"{bucket_arn}/{p['Key']}" if "Key" in p and action != "s3:ListBucket" else bucket_arn)]
        if op == "CopyObject":
            out.append(("s3:GetObject", f"arn:aws:s3:::{p['CopySource']}"))
        return out
    if call["service"] == "sqs":
        action = "sqs:" + _SQS_BATCH.get(op, op)
        if "QueueUrl" in p:
            account, name = urlparse(p["QueueUrl"]).path.strip("/").split("/")[-2:]
            return [(action, f"arn:aws:sqs:{region}:{account}:{name}")]
        if "QueueName" in p:
            return [(action, f"arn:aws:sqs:{region}:{p.get('QueueOwnerAWSAccountId', account)}:{p['QueueName']}")]
        if "SourceArn" in p:
            return [(action, p["SourceArn"])]
        return [(action, "*")]
    return [(f"{call['service']}:{op}", "*")]


def violations(calls: Iterable[dict], role: str, region: str, names: dict[str, str],
               policy: Optional[dict] = None) -> list[str]:
    """One line per recorded call that ``role``'s policy (or ``policy``, a variant of it) does
    not allow: the call with its resource parameters, the IAM action, the resource ARN and
    the policy file."""
    policy, out = policy or load_policy(role), []
    for call in calls:
        for action, resource in iam_requests(call, region, names["ACCOUNT_ID"]):
            if not allowed(policy, action, resource, names):
                out.append(f"{call['service']}.{call['operation']}({json.dumps(call['params'])}) needs {action} on "
                           f"{resource}, which deploy/iam/{POLICIES[role]} does not allow")
    return sorted(set(out))


# --- recordings -----------------------------------------------------------------------------
def read_calls(path: Path) -> list[dict]:
    """The calls a process recorded (one JSON line each); a last line still being written (the
    process was killed mid-write) is left out."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


def queue_name(call: dict) -> Optional[str]:
    """The queue an SQS call addresses (by URL or name), else None."""
    p = call.get("params", {})
    if "QueueUrl" in p:
        return urlparse(p["QueueUrl"]).path.rstrip("/").rsplit("/", 1)[-1]
    return p.get("QueueName")


def sent_to(calls: Iterable[dict]) -> set[str]:
    """The queues these calls sent messages to."""
    return {queue_name(c) for c in calls if c["service"] == "sqs" and c["operation"] in ("SendMessage", "SendMessageBatch")}


def policy_names(settings) -> dict[str, str]:
    """Production name -> the name ``settings`` use (the policy instantiated for a test
    deployment: its bucket, queues, region and moto's account)."""
    from video_analysis.worker_config import Settings

    prod = Settings()
    return {prod.bucket: settings.bucket, prod.video_queue: settings.video_queue, prod.video_dlq: settings.video_dlq,
            prod.snapshot_queue: settings.snapshot_queue, prod.snapshot_dlq: settings.snapshot_dlq,
            "ACCOUNT_ID": MOTO_ACCOUNT, prod.region: settings.region}
