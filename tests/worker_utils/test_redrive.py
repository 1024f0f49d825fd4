"""redrive: moves what was in the DLQ when it started (a count with --max), keeps permanent faults
unless named, counts its own moves per message and refuses past a limit, ends even with a worker
dead-lettering the same messages again, and stops cleanly on Ctrl-C with nothing duplicated.

The pure decisions are tested on their own; the rest against moto_server, through the CLI as an
operator runs it, and with a real yolo_worker process serving the queue."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import load_test_module, new_uuid, worker_env
from video_analysis.worker_utils.redrive import (REDRIVE_COUNT_ATTR, DeadLetter, RedrivePolicy, dead_letter, decide,
                                                 moved_during_run, redrive)
from video_analysis.worker_utils.sqs_queue import SqsQueues

faults = load_test_module("faults_rig", Path(__file__).parents[1] / "faults" / "conftest.py")


def letter(code="transient", redrives=0, original=None, sent_ms=1000) -> DeadLetter:
    return DeadLetter("m1", "{}", code, "why", 1, redrives, original, sent_ms)


# --- pure ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("code,policy,moves", [
    ("transient", RedrivePolicy(), True),
    ("unexpected", RedrivePolicy(), True),
    ("dependency_down", RedrivePolicy(), True),
    (None, RedrivePolicy(), True),  # SQS's own redrive policy moved it: no code, retryable
    ("invalid_message", RedrivePolicy(), False),
    ("bad_media", RedrivePolicy(), False),
    ("missing_object", RedrivePolicy(), False),
    ("permanent", RedrivePolicy(), False),
    ("db_constraint", RedrivePolicy(), False),
    ("bad_media", RedrivePolicy(codes=frozenset({"bad_media"})), True),  # named: moves
    ("transient", RedrivePolicy(codes=frozenset({"bad_media"})), False),  # --code selects only those
    ("transient", RedrivePolicy(exclude_codes=frozenset({"transient"})), False),
    ("bad_media", RedrivePolicy(codes=frozenset({"bad_media"}), exclude_codes=frozenset({"bad_media"})), False),
])
def test_decide_by_code(code, policy, moves):
    why = decide(letter(code), policy)
    assert (why is None) == moves, why
    if not moves:
        assert why and (code or "-") in why


@pytest.mark.parametrize("redrives,limit,moves", [(0, 3, True), (2, 3, True), (3, 3, False), (9, 3, False),
                                                  (3, 4, True), (1, 1, False)])
def test_decide_refuses_past_the_redrive_limit_even_when_named(redrives, limit, moves):
    policy = RedrivePolicy(codes=frozenset({"transient"}), redrive_limit=limit)
    why = decide(letter("transient", redrives), policy)
    assert (why is None) == moves
    if not moves:
        assert f"redriven {redrives} times" in why


def test_dead_letter_reads_the_pollers_attributes():
    d = dead_letter("id-1", "body", {"cvitx_error_code": "bad_media", "cvitx_error_reason": "corrupt",
                                     "cvitx_receive_count": "1", REDRIVE_COUNT_ATTR: "2",
                                     "cvitx_original_message_id": "src-9"}, {"SentTimestamp": "1700000000123"})
    assert d == DeadLetter("id-1", "body", "bad_media", "corrupt", 1, 2, "src-9", 1700000000123)
    bare = dead_letter("id-2", "b", {}, {})  # moved by SQS's own redrive policy: no attributes
    assert (bare.code, bare.receive_count, bare.redrive_count, bare.sent_ms) == (None, None, 0, None)
    assert dead_letter("x", "b", {REDRIVE_COUNT_ATTR: "junk"}, {}).redrive_count == 0


@pytest.mark.parametrize("original,sent_ms,started,new", [
    ("sent-by-this-run", 500, 1000, True),  # a copy this run moved, dead-lettered again
    ("other", 1500, 1000, True),  # dead-lettered after the run started
    ("other", 500, 1000, False),  # was there when the run started
    (None, None, 1000, False),
])
def test_moved_during_run(original, sent_ms, started, new):
    assert moved_during_run(letter(original=original, sent_ms=sent_ms), started, {"sent-by-this-run"}) is new


# --- against moto_server -----------------------------------------------------------------------
def dead(sqs: SqsQueues, dlq: str, body: str, code: str | None = "transient", **extra: str) -> None:
    """A message as the poller dead-letters it (its attributes), or as SQS's policy does (code None)."""
    attrs = {} if code is None else {"cvitx_error_code": code, "cvitx_error_reason": f"failed: {code}",
                                     "cvitx_receive_count": "5", **extra}
    sqs.send_raw(dlq, body, attrs)


def drain(sqs: SqsQueues, queue: str) -> list:
    out = []
    while batch := sqs.receive(queue, 10, wait_s=0, visibility_s=60):
        out += batch
    return out


def peek(sqs: SqsQueues, queue: str) -> list:
    """Every message of ``queue``, left there (visible again)."""
    out = drain(sqs, queue)
    if out:
        sqs.change_visibility(queue, [m.receipt_handle for m in out], 0)
    return out


def test_moves_retryable_keeps_permanent_and_releases_what_it_kept(provisioned):
    s = provisioned
    sqs = SqsQueues(s)
    for i in range(12):
        dead(sqs, s.video_dlq, f'{{"n": {i}}}', "transient")
    dead(sqs, s.video_dlq, '{"n": "u"}', "unexpected")
    dead(sqs, s.video_dlq, '{"n": "sqs"}', None)
    for code in ("bad_media", "invalid_message", "missing_object"):
        dead(sqs, s.video_dlq, f'{{"n": "{code}"}}', code)
    seen = []
    result = redrive(sqs, s.video_dlq, s.video_queue, on_item=seen.append)
    assert result.method == "copy" and result.moved == 14 and not result.stopped
    assert sorted(i.letter.code for i in result.kept) == ["bad_media", "invalid_message", "missing_object"]
    assert seen == result.items
    got = drain(sqs, s.video_queue)
    assert sorted(json.loads(m.body)["n"] for m in got if isinstance(json.loads(m.body)["n"], int)) == list(range(12))
    assert len(got) == 14
    # the copy starts fresh: no failure attributes, one redrive counted
    assert all(m.string_attributes == {REDRIVE_COUNT_ATTR: "1"} for m in got)
    # the kept ones were released at once, not hidden for the hold time
    assert sorted(json.loads(m.body)["n"] for m in drain(sqs, s.video_dlq)) == [
        "bad_media", "invalid_message", "missing_object"]


def test_max_is_a_count(provisioned):
    s = provisioned
    sqs = SqsQueues(s)
    for i in range(5):
        dead(sqs, s.snapshot_dlq, str(i))
    assert [redrive(sqs, s.snapshot_dlq, s.snapshot_queue, max_messages=2).moved for _ in range(4)] == [2, 2, 1, 0]
    assert len(drain(sqs, s.snapshot_queue)) == 5


def test_redrive_count_grows_and_the_limit_stops_it(provisioned):
    s = provisioned
    sqs = SqsQueues(s)
    dead(sqs, s.video_dlq, "poison", "transient")
    for n in (1, 2):
        assert redrive(sqs, s.video_dlq, s.video_queue, policy=RedrivePolicy(redrive_limit=2)).moved == 1
        [m] = drain(sqs, s.video_queue)
        assert m.string_attributes[REDRIVE_COUNT_ATTR] == str(n)
        # the poller dead-letters it again and carries the count onto the DLQ copy
        dead(sqs, s.video_dlq, m.body, "transient", **{REDRIVE_COUNT_ATTR: m.string_attributes[REDRIVE_COUNT_ATTR]})
        sqs.delete(s.video_queue, m.receipt_handle)
    third = redrive(sqs, s.video_dlq, s.video_queue, policy=RedrivePolicy(redrive_limit=2))
    assert third.moved == 0 and "redriven 2 times already (limit 2)" in third.kept[0].why
    assert len(drain(sqs, s.video_dlq)) == 1 and drain(sqs, s.video_queue) == []


def run_cli(*args, env, timeout=120):
    return subprocess.run([sys.executable, "-m", "video_analysis", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_cli_dry_run_lists_reason_and_receive_count_and_moves_nothing(stack, provisioned):
    s = provisioned
    sqs = SqsQueues(s)
    dead(sqs, s.video_dlq, "a", "transient")
    dead(sqs, s.video_dlq, "b", "bad_media")
    r = run_cli("redrive", "video", "--dry-run", env=worker_env(stack, s))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[:2]].count("would") == 1 and any(ln.startswith("kept") for ln in lines)
    assert any("code=transient receives=5 redrives=0  failed: transient" in ln for ln in lines)
    assert any("code=bad_media" in ln and "name it with --code bad_media" in ln for ln in lines)
    assert lines[-1].startswith("would move 1 message(s)")
    assert drain(sqs, s.video_queue) == [] and len(drain(sqs, s.video_dlq)) == 2  # nothing moved, all released


def test_cli_codes_and_move_task(stack, provisioned):
    s = provisioned
    sqs = SqsQueues(s)
    env = worker_env(stack, s)
    for code in ("transient", "unexpected", "bad_media"):
        dead(sqs, s.video_dlq, code, code)
    r = run_cli("redrive", "video", "--code", "bad_media", "--code", "unexpected", "--exclude-code", "unexpected",
                env=env)
    assert r.returncode == 0 and "moved 1 message(s)" in r.stdout, r.stdout + r.stderr
    assert [m.body for m in drain(sqs, s.video_queue)] == ["bad_media"]
    bad = run_cli("redrive", "video", "--move-task", "--max", "2", env=env)
    assert bad.returncode == 2 and "cannot be combined" in bad.stderr
    moto = run_cli("redrive", "video", "--move-task", env=env)  # moto has no StartMessageMoveTask
    assert moto.returncode == 1 and "without --move-task" in moto.stderr and "Traceback" not in moto.stderr
    assert len(drain(sqs, s.video_dlq)) == 2


def test_ctrl_c_stops_between_messages_with_nothing_duplicated(stack, provisioned):
    s = provisioned
    sqs = SqsQueues(s)
    bodies = {f"m{i:03d}" for i in range(150)}
    for b in sorted(bodies):
        dead(sqs, s.video_dlq, b)
    env = {**worker_env(stack, s), "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "video_analysis", "redrive", "video"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    moved_lines = 0
    while moved_lines < 5:
        line = p.stdout.readline()
        assert line, p.stderr.read()
        moved_lines += line.startswith("moved ")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    assert "Traceback" not in err and "exactly one queue" in err
    [summary] = [ln for ln in out.splitlines() if "message(s)" in ln]
    n = int(summary.split()[1])
    reported = 5 + sum(ln.startswith("moved ") for ln in out.splitlines() if ln != summary)
    assert 5 <= n < 150 and n == reported  # it stopped early, and every move it made was reported
    in_queue, in_dlq = drain(sqs, s.video_queue), drain(sqs, s.video_dlq)  # the DLQ's were released at once
    assert len(in_queue) == n
    both = [m.body for m in in_queue + in_dlq]
    assert sorted(both) == sorted(bodies)  # every message in exactly one queue: none lost, none duplicated


# --- with a real worker serving the queue ----------------------------------------------------------
@pytest.fixture
def rig(stack, settings, tmp_path, clip_factory):
    s = settings.replace(**{**faults.FAULT_SETTINGS, "max_receive_count": 2})
    faults.run_setup(s)
    r = faults.Rig(stack, s, tmp_path, clip_factory)
    yield r
    r.close()


def test_redrive_ends_while_a_worker_fails_the_same_messages_again(stack, rig):
    """The issue's case: poison in the video DLQ and a yolo_worker running.  A permanent fault
    named with --code goes back once per run and fails again at once; the run still ends, each
    message moved once, and the next attempt carries the count.  After the cause is fixed (the
    missing upload made), the same command brings the video through."""
    s, c = rig.s, rig.client
    worker = rig.start("yolo")
    good = rig.submit(rig.clip(**faults.SHORT, seed=12), frame_stride=2)
    missing = new_uuid()
    c.register(missing, frame_stride=2)
    c.send(c.message(missing, frame_stride=2))  # never uploaded: missing_object, dead-lettered on receive 1
    poison = [json.dumps(c.message(new_uuid(), frame_stride="three")) for _ in range(25)]  # schema violations
    for body in poison:
        c.send(body)
    # The worker logs "message sent to the DLQ" just after the send: wait for the 26th line too, or
    # the count can be read between the two (seen once: 25 lines with 26 in the DLQ).
    rig.wait(lambda: rig.queue_depth(s.video_dlq) == 26 and rig.video_statuses().get(good) == "done"
             and len(worker.events("message sent to the DLQ")) >= 26, 120,
             "the poison dead-lettered, each logged, and the good video done")
    first_dlq_lines = len(worker.events("message sent to the DLQ"))
    assert first_dlq_lines == 26

    env = worker_env(stack, s)
    r = run_cli("redrive", "video", env=env)  # default: every one of them is permanent
    assert r.returncode == 0 and "moved 0 message(s)" in r.stdout and "26 kept" in r.stdout, r.stdout + r.stderr

    t0 = time.monotonic()
    r = run_cli("redrive", "video", "--code", "invalid_message", env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "moved 25 message(s)" in r.stdout and time.monotonic() - t0 < 30
    rig.wait(lambda: len(worker.events("message sent to the DLQ")) == first_dlq_lines + 25
             and rig.queue_depth(s.video_queue) == 0, 60, "the moved poison dead-lettered again")
    time.sleep(2)  # nothing cycles: no further dead-lettering once the run has ended
    assert len(worker.events("message sent to the DLQ")) == first_dlq_lines + 25
    again = {m.body: m.string_attributes for m in peek(c.sqs, s.video_dlq)}
    assert sorted(b for b in again if b in poison) == sorted(poison)
    assert {a.get(REDRIVE_COUNT_ATTR) for b, a in again.items() if b in poison} == {"1"}

    # fix the cause of the missing object, then name its code: the video goes through
    c.upload(rig.clip(**faults.SHORT, seed=13), missing)
    r = run_cli("redrive", "video", "--code", "missing_object", "--redrive-limit", "1", env=env)
    assert "moved 1 message(s)" in r.stdout, r.stdout + r.stderr
    rig.wait(lambda: rig.video_statuses().get(missing) == "done", 120, "the fixed video done")
    # the poison keeps its count: with a limit of 1 it is refused now
    r = run_cli("redrive", "video", "--code", "invalid_message", "--redrive-limit", "1", "--dry-run", env=env)
    assert "would move 0 message(s)" in r.stdout and r.stdout.count("redriven 1 times already") == 25
    assert worker.alive()
