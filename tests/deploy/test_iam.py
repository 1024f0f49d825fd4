"""Issues 8 and 26: the IAM policies under deploy/iam/ are spec §6 (plus the documented extras)
and the workers never make an S3/SQS call their policy does not allow, on any path.

Three guards:

* static, on the policy files: each one grants exactly spec §6's actions on spec §6's
  resources plus the extras deploy/iam/README.md explains (GetQueueUrl, DLQ sends, the outage
  requeue's send to the worker's own queue); no wildcard actions, no Deny/NotAction tricks;
* static, on the code: every boto3 call site in the product is listed below as a worker call
  or an operator (setup/redrive/reconcile) call, so a new call cannot slip in unreviewed;
* dynamic, the real thing: the real ``run_poller`` processes of both workers (and the
  ``send-video`` command, the API's stand-in, and the operator's setup/redrive/reconcile) run
  end to end against the local stack with a botocore hook (tests/netguard/cvitx_aws_calls.py,
  loaded through the tests' sitecustomize) that logs every API call; each call is mapped to
  its IAM action and resource ARN and evaluated against the process's policy with IAM's
  matching rules (tests/iam_policies.py).  The failure message names the call, its action and
  resource and the policy that does not allow it.  That is the happy path (plus one bad
  message each); the fault suite's worker processes record their calls the same way and are
  checked against the same policies when each fault test ends (``make_rig`` in
  tests/faults/conftest.py): the outage requeue and release, a stall, the dead letters.
"""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import pytest

# The evaluator (policies, IAM matching, call -> action + ARN) is shared with the fault suite.
from iam_policies import (_SQS_BATCH, BUCKET, IAM, MOTO_ACCOUNT, POLICIES, RECORDER_ENV, REGION, REPO, allowed,
                          grants, iam_requests, load_policy, policy_names, read_calls, sent_to, violations)


def arn_sqs(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:ACCOUNT_ID:{name}"


def arn_s3(path: str) -> str:
    return f"arn:aws:s3:::{BUCKET}/{path}"


RAW, SNAPS = arn_s3("demo_user/*/*/raw/*"), arn_s3("demo_user/*/*/snapshots/*")
CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes")
# Spec §6 verbatim, as (action, resource) grants.  The main worker's "/snapshots/*" is scoped
# to the same demo_user/<wid>/<vid>/snapshots/ shape the YOLO worker writes.
SPEC = {
    "yolo_worker": {("s3:GetObject", RAW), ("s3:PutObject", SNAPS), ("sqs:SendMessage", arn_sqs("cvitx-snapshot-tasks")),
                    *((a, arn_sqs("cvitx-video-tasks")) for a in CONSUME)},
    "main_worker": {("s3:GetObject", SNAPS), *((a, arn_sqs("cvitx-snapshot-tasks")) for a in CONSUME)},
    "api": {("s3:PutObject", RAW), ("sqs:SendMessage", arn_sqs("cvitx-video-tasks"))},
    "ops": set(),  # the spec names no operator role; setup and redrive need one (README)
}
QUEUES = ("cvitx-video-tasks", "cvitx-video-tasks-dlq", "cvitx-snapshot-tasks", "cvitx-snapshot-tasks-dlq")
DLQS = {"cvitx-video-tasks-dlq": "cvitx-video-tasks", "cvitx-snapshot-tasks-dlq": "cvitx-snapshot-tasks"}
# What the code needs beyond the spec, each explained in deploy/iam/README.md: queue URLs are
# looked up by name (GetQueueUrl), permanent failures go to the DLQ at once (the poller sends
# them there itself instead of burning five receives), and a message whose last receive meets
# an outage is replaced by a fresh copy on the worker's own queue (the poller's outage requeue,
# so that SQS's redrive does not dead-letter it for a database failover).
EXTRAS = {
    "yolo_worker": {("sqs:GetQueueUrl", arn_sqs("cvitx-video-tasks")), ("sqs:GetQueueUrl", arn_sqs("cvitx-snapshot-tasks")),
                    ("sqs:SendMessage", arn_sqs("cvitx-video-tasks-dlq")),
                    ("sqs:GetQueueUrl", arn_sqs("cvitx-video-tasks-dlq")),
                    ("sqs:SendMessage", arn_sqs("cvitx-video-tasks"))},  # the outage requeue
    "main_worker": {("sqs:GetQueueUrl", arn_sqs("cvitx-snapshot-tasks")),
                    ("sqs:SendMessage", arn_sqs("cvitx-snapshot-tasks-dlq")),
                    ("sqs:GetQueueUrl", arn_sqs("cvitx-snapshot-tasks-dlq")),
                    ("sqs:SendMessage", arn_sqs("cvitx-snapshot-tasks"))},  # the outage requeue
    "api": {("sqs:GetQueueUrl", arn_sqs("cvitx-video-tasks"))},
    # `setup` (create/verify bucket, queues, redrive policies) and `redrive` (DLQ -> queue:
    # StartMessageMoveTask, or receive/send/delete where that API is missing).  A move task
    # needs, besides StartMessageMoveTask, ReceiveMessage/DeleteMessage/GetQueueAttributes on
    # the DLQ and SendMessage on the destination: SQS moves the messages as the caller.
    "ops": {("s3:ListBucket", f"arn:aws:s3:::{BUCKET}"), ("s3:CreateBucket", f"arn:aws:s3:::{BUCKET}"),
            *((a, arn_sqs(q)) for q in QUEUES
              for a in ("sqs:GetQueueUrl", "sqs:CreateQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes")),
            *((a, arn_sqs(d)) for d in DLQS
              for a in ("sqs:StartMessageMoveTask", "sqs:ListMessageMoveTasks", "sqs:ReceiveMessage",
                        "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")),
            *(("sqs:SendMessage", arn_sqs(q)) for q in DLQS.values()),
            # `reconcile`: HeadObject on a stuck row's video or snapshot before sending its message again
            ("s3:GetObject", RAW), ("s3:GetObject", SNAPS)},
}


# --- static: the policy files are spec §6 plus the documented extras, nothing broader ----------
@pytest.mark.parametrize("role", list(POLICIES))
def test_policy_is_spec_section_6_plus_documented_extras(role):
    doc = load_policy(role)
    assert doc["Version"] == "2012-10-17"
    assert all(st["Effect"] == "Allow" for st in doc["Statement"])
    got = grants(role)
    assert not {a for a, _ in got if "*" in a or "?" in a}, "wildcard actions are never least privilege"
    assert got - SPEC[role] - EXTRAS[role] == set(), f"{POLICIES[role]} grants more than spec §6 + the extras"
    assert SPEC[role] - got == set(), f"{POLICIES[role]} lacks grants spec §6 asks for"
    assert EXTRAS[role] - got == set(), "an extra listed here is no longer granted: drop it from EXTRAS and the README"


def test_readme_documents_the_extras_and_the_db_and_logging_access():
    text = (IAM / "README.md").read_text()
    for needle in ("sqs:GetQueueUrl", "cvitx-video-tasks-dlq", "cvitx-snapshot-tasks-dlq", "ops-policy.json",
                   "GRANT", "journald", "ACCOUNT_ID", "RequeueLastReceiveDuringOutage", "_settle_outage"):
        assert needle in text, needle


def test_settings_name_the_resources_the_policies_name():
    from video_analysis.worker_config import Settings

    s = Settings()
    assert (s.bucket, s.region, s.user_prefix) == (BUCKET, REGION, "demo_user")
    assert (s.video_queue, s.video_dlq, s.snapshot_queue, s.snapshot_dlq) == (
        "cvitx-video-tasks", "cvitx-video-tasks-dlq", "cvitx-snapshot-tasks", "cvitx-snapshot-tasks-dlq")


W, V = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "50651c85-90ab-471b-8707-adc0ef16f91f"
RAW_OBJ = arn_s3(f"demo_user/{W}/{V}/raw/clip.mp4")
SNAP_OBJ = arn_s3(f"demo_user/{W}/{V}/snapshots/CTX1005_CAM1_000305_002272.jpg")


@pytest.mark.parametrize("role,action,resource,ok", [
    ("yolo_worker", "s3:GetObject", RAW_OBJ, True),
    ("yolo_worker", "s3:getobject", RAW_OBJ, True),  # actions match case-insensitively
    ("yolo_worker", "s3:GetObject", SNAP_OBJ, False),
    ("yolo_worker", "s3:PutObject", SNAP_OBJ, True),
    ("yolo_worker", "s3:PutObject", RAW_OBJ, False),  # never overwrites an upload
    ("yolo_worker", "s3:PutObject", arn_s3("other_user/x/y/snapshots/a.jpg"), False),
    ("yolo_worker", "s3:GetObject", arn_s3(f"Demo_User/{W}/{V}/raw/clip.mp4"), False),  # resources are case-sensitive
    ("yolo_worker", "s3:GetObject", f"arn:aws:s3:::other-bucket/demo_user/{W}/{V}/raw/clip.mp4", False),
    ("yolo_worker", "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", False),
    ("yolo_worker", "s3:DeleteObject", SNAP_OBJ, False),
    ("yolo_worker", "sqs:SendMessage", arn_sqs("cvitx-snapshot-tasks"), True),
    ("yolo_worker", "sqs:SendMessage", arn_sqs("cvitx-video-tasks"), True),  # the outage requeue (README)
    ("yolo_worker", "sqs:SendMessage", arn_sqs("cvitx-video-tasks-other"), False),  # the exact queue only
    ("yolo_worker", "sqs:SendMessage", arn_sqs("cvitx-video-tasks-dlq"), True),
    ("yolo_worker", "sqs:SendMessage", arn_sqs("cvitx-snapshot-tasks-dlq"), False),
    ("yolo_worker", "sqs:ReceiveMessage", arn_sqs("cvitx-snapshot-tasks"), False),
    ("yolo_worker", "sqs:ReceiveMessage", arn_sqs("cvitx-video-tasks-dlq"), False),  # redrive is ops' job
    ("yolo_worker", "sqs:PurgeQueue", arn_sqs("cvitx-video-tasks"), False),
    ("yolo_worker", "sqs:CreateQueue", arn_sqs("cvitx-video-tasks"), False),
    ("main_worker", "s3:GetObject", SNAP_OBJ, True),
    ("main_worker", "s3:GetObject", RAW_OBJ, False),
    ("main_worker", "s3:PutObject", SNAP_OBJ, False),
    ("main_worker", "sqs:DeleteMessage", arn_sqs("cvitx-snapshot-tasks"), True),
    ("main_worker", "sqs:SendMessage", arn_sqs("cvitx-snapshot-tasks"), True),  # the outage requeue (README)
    ("main_worker", "sqs:SendMessage", arn_sqs("cvitx-video-tasks"), False),  # cannot enqueue videos
    ("main_worker", "sqs:SendMessage", arn_sqs("cvitx-video-tasks-dlq"), False),
    ("main_worker", "sqs:SendMessage", arn_sqs("cvitx-snapshot-tasks-dlq"), True),
    ("main_worker", "sqs:ReceiveMessage", arn_sqs("cvitx-video-tasks"), False),
    ("api", "s3:PutObject", RAW_OBJ, True),
    ("api", "s3:PutObject", SNAP_OBJ, False),
    ("api", "s3:GetObject", RAW_OBJ, False),
    ("api", "sqs:SendMessage", arn_sqs("cvitx-video-tasks"), True),
    ("api", "sqs:SendMessage", arn_sqs("cvitx-snapshot-tasks"), False),
    ("api", "sqs:SendMessage", "arn:aws:sqs:us-east-1:ACCOUNT_ID:cvitx-video-tasks", False),
])
def test_policy_verdicts(role, action, resource, ok):
    assert allowed(load_policy(role), action, resource) is ok


def test_evaluator_wildcards_and_deny():
    doc = {"Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/a?c/*"},
                         {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/abc/secret/*"}]}
    assert allowed(doc, "s3:GetObjectTagging", "arn:aws:s3:::b/abc/x/y.jpg")
    assert not allowed(doc, "s3:GetObject", "arn:aws:s3:::b/ac/x")
    assert not allowed(doc, "s3:GetObject", "arn:aws:s3:::b/abc/secret/k")
    assert not allowed(doc, "s3:PutObject", "arn:aws:s3:::b/abc/x")
    assert not allowed({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/[ab]"}]},
                       "s3:GetObject", "arn:aws:s3:::b/a")  # brackets are literal in IAM


def test_calls_map_to_actions_and_arns():
    url = "http://127.0.0.1:5000/123456789012/q-video"
    assert iam_requests({"service": "sqs", "operation": "ChangeMessageVisibilityBatch", "params": {"QueueUrl": url}},
                        "ap-southeast-2") == [("sqs:ChangeMessageVisibility", "arn:aws:sqs:ap-southeast-2:123456789012:q-video")]
    assert iam_requests({"service": "s3", "operation": "HeadObject", "params": {"Bucket": "b", "Key": "k/x"}}, "r") == [
        ("s3:GetObject", "arn:aws:s3:::b/k/x")]
    assert iam_requests({"service": "s3", "operation": "ListObjectsV2", "params": {"Bucket": "b", "Prefix": "p/"}},
                        "r") == [("s3:ListBucket", "arn:aws:s3:::b")]


@pytest.mark.parametrize("role,queue", [("yolo_worker", "cvitx-video-tasks"), ("main_worker", "cvitx-snapshot-tasks")])
def test_a_policy_without_the_requeue_grant_is_reported_with_call_action_resource_and_policy(role, queue):
    """What the fault suite's check (tests/faults/conftest.py) says when a worker's policy lacks
    the outage requeue's send to its own queue."""
    from video_analysis.worker_config import Settings

    call = {"pid": 1, "service": "sqs", "operation": "SendMessage",
            "params": {"QueueUrl": f"http://127.0.0.1:5000/{MOTO_ACCOUNT}/{queue}"}}
    names = policy_names(Settings())
    assert violations([call], role, REGION, names) == []
    doc = load_policy(role)
    without = {**doc, "Statement": [st for st in doc["Statement"] if st["Sid"] != "RequeueLastReceiveDuringOutage"]}
    assert len(without["Statement"]) == len(doc["Statement"]) - 1
    assert violations([call], role, REGION, names, policy=without) == [
        f'sqs.SendMessage({{"QueueUrl": "http://127.0.0.1:5000/{MOTO_ACCOUNT}/{queue}"}}) needs sqs:SendMessage on '
        f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:{queue}, which deploy/iam/{POLICIES[role]} does not allow"]


# --- static: every boto3 call site in the product, classified ---------------------------------
# (file, function, boto3 method) -> who makes it.  "worker": reachable from a worker process, so
# it must be allowed by the worker policies (the dynamic test below proves it for real runs);
# "ops": only the operator's commands (setup, redrive, send-video's stand-in for the API,
# local-stack helpers), covered by ops-policy.json; "api": send-video, the API's stand-in
# (api-policy.json).
CALL_SITES = {
    ("worker_utils/s3_store.py", "S3Store.head", "head_object"): "worker",
    ("worker_utils/s3_store.py", "S3Store.download_to_file", "get_object"): "worker",
    ("worker_utils/s3_store.py", "S3Store.get_bytes", "get_object"): "worker",
    ("worker_utils/s3_store.py", "S3Store.put_bytes", "put_object"): "worker",
    ("worker_utils/s3_store.py", "S3Store.upload_file", "upload_file"): "ops",
    ("worker_utils/s3_store.py", "S3Store.list_keys", "get_paginator"): "ops",
    ("worker_utils/sqs_queue.py", "SqsQueues.url", "get_queue_url"): "worker",
    ("worker_utils/sqs_queue.py", "SqsQueues.receive", "receive_message"): "worker",
    ("worker_utils/sqs_queue.py", "SqsQueues.delete", "delete_message"): "worker",
    ("worker_utils/sqs_queue.py", "SqsQueues.delete_many", "delete_message_batch"): "worker",
    ("worker_utils/sqs_queue.py", "SqsQueues.change_visibility", "change_message_visibility_batch"): "worker",
    ("worker_utils/sqs_queue.py", "SqsQueues.send_raw", "send_message"): "worker",
    ("worker_utils/sqs_queue.py", "SqsQueues.ensure_queue", "get_queue_url"): "ops",
    ("worker_utils/sqs_queue.py", "SqsQueues.ensure_queue", "create_queue"): "ops",
    ("worker_utils/sqs_queue.py", "SqsQueues.ensure_queue", "get_queue_attributes"): "ops",
    ("worker_utils/sqs_queue.py", "SqsQueues.ensure_queue", "set_queue_attributes"): "ops",
    ("worker_utils/sqs_queue.py", "SqsQueues.attributes", "get_queue_attributes"): "ops",
    # start-up checks and outage probes: one ranged GetObject inside the worker's own scope,
    # GetQueueAttributes on the queue it consumes (spec §6 grants both)
    ("worker_utils/s3_store.py", "S3Store.probe", "get_object"): "worker",
    ("bench/soak.py", "Soak.submit_all", "upload_file"): "api",  # the soak's stand-in for the API's upload
    ("worker_utils/sqs_queue.py", "SqsQueues.probe", "get_queue_attributes"): "worker",
    ("worker_utils/provision.py", "ensure_bucket", "head_bucket"): "ops",
    ("worker_utils/provision.py", "ensure_bucket", "create_bucket"): "ops",
    ("worker_utils/redrive.py", "redrive", "start_message_move_task"): "ops",
    ("worker_utils/submit.py", "submit_video", "upload_file"): "api",  # S3Store.upload_file: the API's upload
}
# The worker calls as IAM actions (boto3 method -> action), checked against the worker policies.
WORKER_ACTIONS = {"head_object": "s3:GetObject", "get_object": "s3:GetObject", "put_object": "s3:PutObject",
                  "get_queue_attributes": "sqs:GetQueueAttributes",
                  "get_queue_url": "sqs:GetQueueUrl", "receive_message": "sqs:ReceiveMessage",
                  "delete_message": "sqs:DeleteMessage", "delete_message_batch": "sqs:DeleteMessage",
                  "change_message_visibility_batch": "sqs:ChangeMessageVisibility", "send_message": "sqs:SendMessage"}
# Modules the worker processes may import: an "ops" call site must not live in a function that
# code under these directories calls.
WORKER_DIRS = ("yolo_worker", "main_worker")
SKIP_DIRS = {".venv", "tests", "artifacts", "__pycache__", ".git", "out", ".stack"}


@lru_cache(maxsize=None)
def boto3_methods() -> frozenset[str]:
    import boto3

    names = {"upload_file", "upload_fileobj", "download_file", "download_fileobj", "get_paginator", "get_waiter",
             "generate_presigned_url", "generate_presigned_post"}
    for service in ("s3", "sqs"):
        client = boto3.session.Session().client(service, region_name=REGION, aws_access_key_id="x",
                                                aws_secret_access_key="x")
        names |= set(client.meta.method_to_api_mapping)
    return frozenset(names)


def product_files() -> list[Path]:
    return sorted(p for p in REPO.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(REPO).parts))


def boto3_call_sites() -> dict[tuple[str, str, str], int]:
    """(file, enclosing function, method) -> line, for every ``<expr>.<boto3 method>(...)`` call."""
    methods, out = boto3_methods(), {}
    for path in product_files():
        tree = ast.parse(path.read_text(), str(path))

        def walk(node, scope):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    walk(child, scope + [child.name])
                    continue
                if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                        and child.func.attr in methods):
                    key = (path.relative_to(REPO).as_posix(), ".".join(scope) or "<module>", child.func.attr)
                    out.setdefault(key, child.lineno)
                walk(child, scope)

        walk(tree, [])
    return out


def test_every_boto3_call_site_is_classified():
    found = boto3_call_sites()
    new = sorted(f"{f}:{line} {fn}() calls .{m}(...)" for (f, fn, m), line in found.items() if (f, fn, m) not in CALL_SITES)
    assert not new, ("new boto3 call sites: list each in CALL_SITES as 'worker' (and grant it in the worker's "
                     "deploy/iam policy) or 'ops' (operator commands only):\n  " + "\n  ".join(new))
    stale = sorted(set(CALL_SITES) - set(found))
    assert not stale, f"CALL_SITES lists calls that no longer exist: {stale}"


def test_worker_call_sites_are_granted_to_a_worker():
    for (f, fn, m), who in CALL_SITES.items():
        if who != "worker":
            continue
        assert m in WORKER_ACTIONS, f"{f} {fn}: map .{m}() to its IAM action in WORKER_ACTIONS"
        action = WORKER_ACTIONS[m]
        assert any(a == action for role in ("yolo_worker", "main_worker") for a, _ in grants(role)), (
            f"{f} {fn}() calls .{m}() ({action}), which no worker policy grants")


def test_worker_packages_never_reach_ops_calls_directly():
    """The worker packages call the adapters' worker methods only (not setup/redrive/listing)."""
    ops = {fn.split(".")[-1] for (f, fn, m), who in CALL_SITES.items() if who != "worker"} - {
        fn.split(".")[-1] for (f, fn, m), who in CALL_SITES.items() if who == "worker"}
    ops |= {"run_setup", "redrive"}
    bad = []
    for path in product_files():
        rel = path.relative_to(REPO)
        if rel.parts[0] not in WORKER_DIRS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                if name in ops or name in boto3_methods():
                    bad.append(f"{rel}:{node.lineno} calls {name}()")
    assert not bad, "worker code calls operator-only or raw boto3 methods:\n  " + "\n  ".join(bad)


# --- dynamic: record every AWS call of the real worker processes --------------------------------
CLIP = dict(seed=500303, duration_s=6.0, width=640, height=360, fps=12.5)
def _start(module: str, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen, timeout: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@pytest.fixture(scope="module")
def recorded(stack, clip_factory, tmp_path_factory):
    """Both workers' real ``run_poller`` processes serve one good video, its snapshots and one
    bad message each (DLQ path); ``send-video`` (the API's stand-in) submits the video.  Every
    AWS call of each process is logged to its own file."""
    from conftest import DETECTOR, MAIN_BUNDLE
    from helpers import WID, worker_env
    from video_analysis.worker_utils.db import Database
    from video_analysis.worker_utils.sqs_queue import SqsQueues

    out = tmp_path_factory.mktemp("iam")
    s = _fresh_settings(stack).replace(main_model_path=str(MAIN_BUNDLE), main_mode="single", plate_enabled=False,
                                       detector_path=str(DETECTOR), device="cpu", receive_wait_s=1)
    clip = clip_factory(**CLIP)

    def env(role: str) -> dict:
        e = worker_env(stack, s)
        e[RECORDER_ENV] = str(out / f"{role}.jsonl")
        return e

    def cli(role: str, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "video_analysis", *args], env=env(role), capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    cli("ops", "setup")  # creates the bucket and the four queues: the operator's role
    sqs, db = SqsQueues(s), Database(s)
    sqs.send_raw(s.video_queue, "{not json: yolo DLQ path")
    sqs.send_raw(s.snapshot_queue, "{not json: main DLQ path")

    vid = cli("api", "send-video", str(clip.video), "--workspace-id", WID, "--workspace-code", "CTX1005",
              "--camera-code", "CAM1", "--frame-stride", "2").strip().split()[-1]

    procs = {"yolo_worker": _start("video_analysis.yolo_worker.run_poller", env("yolo_worker"), out / "yolo.log"),
             "main_worker": _start("video_analysis.main_worker.run_poller", env("main_worker"), out / "main.log")}
    try:
        deadline = time.monotonic() + 150
        while True:
            video = db.fetchone("SELECT status FROM videos WHERE id = %s", (vid,))
            rows = db.fetchall("SELECT status FROM image_analyses WHERE video_id = %s", (vid,))
            dlq = [sqs.attributes(q)["ApproximateNumberOfMessages"] for q in (s.video_dlq, s.snapshot_dlq)]
            if video["status"] == "done" and rows and all(r["status"] == "done" for r in rows) and dlq == ["1", "1"]:
                break
            for role, p in procs.items():
                assert p.poll() is None, f"{role} exited: " + (out / f"{role.split('_')[0]}.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (video, rows, dlq, (out / "yolo.log").read_text()[-2000:])
            time.sleep(0.5)
    finally:
        codes = {role: _stop(p, s.stop_timeout_s + 15) for role, p in procs.items()}
    assert codes == {"yolo_worker": 0, "main_worker": 0}, codes
    # the operator moves the dead letters back (after a fix; a permanent code must be named)
    cli("ops", "redrive", "video", "--code", "invalid_message")
    cli("ops", "redrive", "snapshot", "--code", "invalid_message", "--dry-run")
    cli("ops", "redrive", "snapshot", "--code", "invalid_message")
    # ... or with SQS's move task, which moto lacks: the call is made (and recorded), then refused
    r = subprocess.run([sys.executable, "-m", "video_analysis", "redrive", "snapshot", "--move-task"], env=env("ops"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "StartMessageMoveTask is not available" in r.stdout + r.stderr, r.stdout + r.stderr
    # ... and resends the messages of rows that look lost: a snapshot row made to look stuck (its
    # video done: SNAPSHOT_READY again, after a HeadObject on the snapshot), then the video
    # (PROCESS_VIDEO again, after a HeadObject on the upload)
    db.execute("UPDATE image_analyses SET status = 'queued' WHERE id = (SELECT id FROM image_analyses "
               "WHERE video_id = %s ORDER BY track_id LIMIT 1)", (vid,))
    assert "SNAPSHOT_READY" in cli("ops", "reconcile", "--video", vid, "--apply")
    db.execute("UPDATE videos SET status = 'queued' WHERE id = %s", (vid,))
    assert "PROCESS_VIDEO" in cli("ops", "reconcile", "--video", vid, "--apply")
    return s, {role: read_calls(out / f"{role}.jsonl") for role in POLICIES}


def _fresh_settings(stack):
    """This module's own database (cloned from the migrated template), bucket and queue names;
    nothing created yet in S3/SQS (the recorded ``setup`` does that)."""
    import psycopg2

    from video_analysis.worker_config import build_settings

    name = f"iam{os.getpid()}"
    conn = psycopg2.connect(stack.pg.url_for("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE cvitx_template')
    conn.close()
    return build_settings({}, s3_endpoint_url=stack.moto.endpoint, sqs_endpoint_url=stack.moto.endpoint,
                          db_url=stack.pg.url_for(name), bucket=f"b-{name}", video_queue=f"{name}-video",
                          video_dlq=f"{name}-video-dlq", snapshot_queue=f"{name}-snap", snapshot_dlq=f"{name}-snap-dlq")


@pytest.mark.parametrize("role", list(POLICIES))
def test_every_aws_call_of_a_real_run_is_allowed_by_its_policy(recorded, role):
    s, calls = recorded
    assert calls[role], f"no AWS call of {role} was recorded: is the recorder loaded?"
    bad = violations(calls[role], role, s.region, policy_names(s))
    assert not bad, (f"{role} made AWS calls that deploy/iam/{POLICIES[role]} does not allow (least privilege: "
                     "grant them there, with a reason in deploy/iam/README.md, or remove the call):\n  "
                     + "\n  ".join(bad))


# Each run must exercise what the policy is for; otherwise a silently skipped path passes.
EXPECTED = {
    "yolo_worker": {("s3", "GetObject"), ("s3", "PutObject"), ("sqs", "ReceiveMessage"), ("sqs", "DeleteMessage"),
                    ("sqs", "SendMessage"), ("sqs", "GetQueueUrl")},
    "main_worker": {("s3", "GetObject"), ("sqs", "ReceiveMessage"), ("sqs", "DeleteMessage"), ("sqs", "SendMessage"),
                    ("sqs", "GetQueueUrl")},
    "api": {("sqs", "SendMessage"), ("sqs", "GetQueueUrl")},
    "ops": {("s3", "CreateBucket"), ("sqs", "CreateQueue"), ("sqs", "GetQueueAttributes"), ("sqs", "ReceiveMessage"),
            ("sqs", "SendMessage"), ("sqs", "DeleteMessage"), ("s3", "HeadObject"), ("sqs", "StartMessageMoveTask")},
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_the_runs_exercised_every_path(recorded, role):
    s, calls = recorded
    # a batch call exercises the grant of its single-message action (DeleteMessageBatch: DeleteMessage)
    seen = {(c["service"], _SQS_BATCH.get(c["operation"], c["operation"]) if c["service"] == "sqs"
             else c["operation"]) for c in calls[role]}
    assert EXPECTED[role] <= seen, EXPECTED[role] - seen
    if role == "api":
        assert {c["operation"] for c in calls[role] if c["service"] == "s3"} & {"PutObject", "CreateMultipartUpload"}
    sent = sent_to(calls[role])
    if role in ("yolo_worker", "main_worker"):  # the next-hop queue (yolo) and the DLQ (both) were written to
        # (a happy path: no outage requeue to the own queue; the fault suite records that one)
        assert sent == ({s.snapshot_queue, s.video_dlq} if role == "yolo_worker" else {s.snapshot_dlq}), sent
    if role == "ops":  # redrive and reconcile sent to both source queues
        assert sent == {s.video_queue, s.snapshot_queue}, sent
        heads = {c["params"]["Key"].split("/")[3] for c in calls[role] if c["operation"] == "HeadObject"}
        assert heads == {"raw", "snapshots"}, heads  # reconcile checked an upload and a snapshot
