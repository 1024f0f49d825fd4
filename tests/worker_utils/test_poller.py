"""The generic poller in a real process against moto_server, with short timeouts from config."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import worker_env
from video_analysis.worker_utils.sqs_queue import SqsQueues

APP = Path(__file__).with_name("poller_app.py")
FAST = dict(visibility_timeout_s=4, heartbeat_s=1.0, receive_wait_s=1, stop_timeout_s=3.0,
            transient_backoff_base_s=0, transient_backoff_max_s=0)


@pytest.fixture
def fast(provisioned):
    from video_analysis.worker_utils.provision import run_setup

    s = provisioned.replace(**FAST)
    run_setup(s, skip_db=True)  # queues get the short visibility timeout too
    return s


class Worker:
    def __init__(self, stack, settings, tmp_path):
        self.log = tmp_path / "handled.log"
        self.log.touch()
        self.proc = subprocess.Popen([sys.executable, str(APP), str(self.log)], env=worker_env(stack, settings),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def events(self) -> list[tuple[str, str, int]]:
        return [(e, i, int(c)) for e, i, c in (l.split() for l in self.log.read_text().splitlines())]

    def wait_for(self, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.events()):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early ({self.proc.returncode}):\n{self.proc.stdout.read()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out; events so far: {self.events()}")

    def stop(self, timeout=15.0) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out


@pytest.fixture
def worker(stack, fast, tmp_path):
    w = Worker(stack, fast, tmp_path)
    yield w
    if w.proc.poll() is None:
        w.proc.kill()
        w.proc.wait()


def send(s, body) -> None:
    SqsQueues(s).send_raw(s.video_queue, body if isinstance(body, str) else json.dumps(body))


def drain(s, queue, wait_s=1) -> list:
    q = SqsQueues(s)
    out = []
    while True:
        got = q.receive(queue, 10, wait_s=wait_s, visibility_s=30)
        if not got:
            return out
        out.extend(got)


def test_heartbeat_keeps_a_long_job_invisible(fast, worker):
    # 3x the visibility timeout: without heartbeats it would be redelivered twice.
    send(fast, {"id": "long", "action": "sleep", "seconds": 3 * fast.visibility_timeout_s})
    worker.wait_for(lambda ev: ("end", "long", 1) in ev, timeout=40)
    time.sleep(fast.visibility_timeout_s + 1)  # a redelivery, if any, would have started by now
    assert [e for e in worker.events() if e[0] == "start"] == [("start", "long", 1)]
    assert drain(fast, fast.video_queue) == [] and drain(fast, fast.video_dlq) == []
    rc, out = worker.stop()
    assert rc == 0, out


def test_permanent_error_goes_to_dlq_after_one_receive(fast, worker):
    send(fast, {"id": "bad", "action": "permanent"})
    send(fast, {"id": "good", "action": "ok"})
    worker.wait_for(lambda ev: ("end", "good", 1) in ev)
    dlq = drain(fast, fast.video_dlq, wait_s=2)
    assert len(dlq) == 1 and json.loads(dlq[0].body)["id"] == "bad"
    attrs = {k: v["StringValue"] for k, v in dlq[0].message_attributes.items()}
    assert attrs["cvitx_error_reason"] == "scripted permanent failure of bad"
    assert attrs["cvitx_error_code"] == "permanent" and attrs["cvitx_receive_count"] == "1"
    assert attrs["cvitx_source_queue"] == fast.video_queue
    assert [e for e in worker.events() if e[1] == "bad"] == [("start", "bad", 1)]
    assert worker.stop()[0] == 0


def test_transient_error_retries_then_dlq_after_max_receives(fast, worker):
    send(fast, {"id": "flaky", "action": "transient"})
    worker.wait_for(lambda ev: len([e for e in ev if e[1] == "flaky"]) >= fast.max_receive_count, timeout=60)
    dlq = drain(fast, fast.video_dlq, wait_s=3)
    assert len(dlq) == 1
    reason = dlq[0].message_attributes["cvitx_error_reason"]["StringValue"]
    assert reason.startswith(f"gave up after {fast.max_receive_count} receives") and "flaky" in reason
    counts = [c for e, i, c in worker.events() if i == "flaky"]
    assert counts == list(range(1, fast.max_receive_count + 1))
    assert drain(fast, fast.video_queue) == []
    assert worker.stop()[0] == 0


def test_malformed_json_goes_to_dlq_and_serving_continues(fast, worker):
    send(fast, "{not json")
    send(fast, {"id": "after", "action": "ok"})
    worker.wait_for(lambda ev: ("end", "after", 1) in ev)
    dlq = drain(fast, fast.video_dlq, wait_s=2)
    assert [m.body for m in dlq] == ["{not json"]
    assert "not valid JSON" in dlq[0].message_attributes["cvitx_error_reason"]["StringValue"]
    assert worker.stop()[0] == 0


@pytest.mark.parametrize("action", ["sleep", "stubborn"])
def test_sigterm_mid_handler_exits_0_and_message_is_visible_again(fast, worker, action):
    send(fast, {"id": "inflight", "action": action, "seconds": 60})
    worker.wait_for(lambda ev: ("start", "inflight", 1) in ev)
    t0 = time.monotonic()
    rc, out = worker.stop(timeout=fast.stop_timeout_s + 10)
    took = time.monotonic() - t0
    assert rc == 0, out
    assert took < fast.stop_timeout_s + 5
    if action == "stubborn":
        assert "stop timeout reached" in out
    # released (visibility 0), not left hidden for the whole visibility timeout
    again = SqsQueues(fast).receive(fast.video_queue, 1, wait_s=2)
    assert [json.loads(m.body)["id"] for m in again] == ["inflight"]


def test_sigterm_during_long_poll_exits_promptly(fast, worker):
    time.sleep(2)  # idle: the worker sits in a long poll
    t0 = time.monotonic()
    rc, out = worker.stop()
    assert rc == 0, out
    assert time.monotonic() - t0 < fast.receive_wait_s + 5
    assert '"msg": "stopped"' in out


def test_backoff_table():
    from video_analysis.worker_utils.poller import backoff_s

    assert [backoff_s(n, 5, 120) for n in range(1, 8)] == [5, 10, 20, 40, 80, 120, 120]


def test_release_is_not_undone_by_a_late_heartbeat(fast):
    """A heartbeat in flight while the stop deadline releases the message must not hide it again.

    In-process, with a heartbeat every 20 ms so that a beat overlaps the release on most tries;
    before the fix this failed on a CI run with the 1 s heartbeat of the process test above.
    """
    import threading

    from video_analysis.worker_utils.poller import Poller, one_at_a_time

    s = fast.replace(heartbeat_s=0.02)
    entered, leave = threading.Event(), threading.Event()

    def handle(message, ctx):
        entered.set()
        leave.wait(30)  # stubborn: ignores the stop request

    for attempt in range(3):
        entered.clear(), leave.clear()
        send(s, {"id": f"held{attempt}", "action": "stubborn"})
        poller = Poller(s, s.video_queue, s.video_dlq, one_at_a_time(handle))
        serving = threading.Thread(target=poller.run, kwargs={"max_batches": 1}, daemon=True)
        serving.start()
        assert entered.wait(20)
        time.sleep(0.2)  # several beats have happened
        poller.release_in_hand()  # what the runner does at the stop deadline, before exiting
        time.sleep(0.3)  # a late beat, if any, lands now
        again = SqsQueues(s).receive(s.video_queue, 1, wait_s=1, visibility_s=30)
        assert [json.loads(m.body)["id"] for m in again] == [f"held{attempt}"]
        SqsQueues(s).delete(s.video_queue, again[0].receipt_handle)
        leave.set()
        serving.join(10)


def test_a_message_that_cannot_be_settled_is_logged_with_the_handler_outcome(fast, caplog):
    """SQS unreachable when the outcome is settled (often the same outage that failed the
    handler): the one warning says why the handler failed as well as why settling did."""
    import logging

    from video_analysis.worker_utils.errors import TransientError
    from video_analysis.worker_utils.local_stack import free_port
    from video_analysis.worker_utils.poller import Poller
    from video_analysis.worker_utils.sqs_queue import ReceivedMessage

    dead = fast.replace(sqs_endpoint_url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    poller = Poller(dead, dead.video_queue, dead.video_dlq, lambda msgs, ctx: [None] * len(msgs))
    msg = ReceivedMessage("m-1", "handle-1", "{}", receive_count=1)
    with caplog.at_level(logging.WARNING, logger="video_analysis.worker_utils.poller"):
        poller._settle(msg, TransientError("S3 put s3://b/k: endpoint unreachable; will retry"), 1.0)
        poller._settle(msg, None, 1.0)
    recs = [r for r in caplog.records if r.getMessage() == "could not settle message; it will be redelivered"]
    assert [r.handler_outcome for r in recs] == ["S3 put s3://b/k: endpoint unreachable; will retry", "ok"]
    assert all("endpoint unreachable" in r.error for r in recs)


def test_a_batchs_successes_are_deleted_together_and_its_failure_dead_lettered(fast, caplog):
    """One receive of three: two successes (deleted by one DeleteMessageBatch call) and a
    permanent failure (to the DLQ)."""
    import logging

    from video_analysis.worker_utils.errors import PermanentError
    from video_analysis.worker_utils.poller import Poller

    for i in ("a", "b", "bad"):
        send(fast, {"id": i})
    q = SqsQueues(fast)
    batch_deletes = []
    real_delete_many = q.delete_many
    q.delete_many = lambda queue, handles: batch_deletes.append(len(handles)) or real_delete_many(queue, handles)
    seen = []

    def handler(msgs, ctx):
        seen.append(len(msgs))
        return [PermanentError("bad one") if json.loads(m.body)["id"] == "bad" else None for m in msgs]

    poller = Poller(fast, fast.video_queue, fast.video_dlq, handler, batch_size=10, sqs=q)
    with caplog.at_level(logging.INFO, logger="video_analysis.worker_utils.poller"):
        poller.run(max_batches=1)
    assert seen == [3]  # moto hands out every visible message of the receive
    assert batch_deletes == [2] and poller.processed == 2
    assert [r.getMessage() for r in caplog.records].count("message done") == 2
    assert drain(fast, fast.video_queue) == []
    assert [json.loads(m.body)["id"] for m in drain(fast, fast.video_dlq, wait_s=2)] == ["bad"]


VID = "50651c85-90ab-471b-8707-adc0ef16f91f"


@pytest.mark.parametrize("body,ids", [
    (json.dumps({"event": "SNAPSHOT_READY", "video_id": VID, "track_id": 305}), {"video_id": VID, "track_id": 305}),
    (json.dumps({"event": "PROCESS_VIDEO", "video_id": VID}), {"video_id": VID}),
    ("{not json", {}),
    ("[1, 2]", {}),
    (json.dumps({"video_id": "a b;DROP TABLE", "track_id": "7"}), {}),  # never a value that is not an id
    (json.dumps({"video_id": VID, "track_id": True}), {"video_id": VID}),
])
def test_message_ids_come_from_the_body_where_they_are_ids(body, ids):
    from video_analysis.worker_utils.poller import message_ids

    assert message_ids(body) == ids


def test_poller_lines_carry_the_video_id_and_a_success_is_one_line_with_the_handlers_note(fast, caplog):
    """Grepping one video's lines finds its retries and dead letters too, even where the
    handler never ran; the handler's summary rides on the poller's one ``message done`` line."""
    import io
    import logging

    from video_analysis.worker_utils.errors import PermanentError
    from video_analysis.worker_utils.logs import JsonFormatter
    from video_analysis.worker_utils.poller import Poller

    send(fast, {"id": "ok", "video_id": VID, "track_id": 1})
    send(fast, {"id": "bad", "video_id": VID, "track_id": 2})

    def handler(msgs, ctx):
        out = []
        for m in msgs:
            if json.loads(m.body)["id"] == "bad":
                out.append(PermanentError("scripted"))
            else:
                ctx.note(m.message_id, analysis="done", type="SUV")
                out.append(None)
        return out

    poller = Poller(fast, fast.video_queue, fast.video_dlq, handler, batch_size=10)
    buf = io.StringIO()  # the JSON lines as journald would get them (log context included)
    out = logging.StreamHandler(buf)
    out.setFormatter(JsonFormatter())
    lg = logging.getLogger("video_analysis.worker_utils.poller")
    lg.addHandler(out)
    try:
        with caplog.at_level(logging.INFO, logger="video_analysis.worker_utils.poller"):
            poller.run(max_batches=1)
    finally:
        lg.removeHandler(out)
    by_msg = {r["msg"]: r for r in map(json.loads, buf.getvalue().splitlines())}
    done, dead = by_msg["message done"], by_msg["message sent to the DLQ"]
    assert (done["video_id"], done["track_id"], done["analysis"], done["type"]) == (VID, 1, "done", "SUV")
    assert (dead["video_id"], dead["track_id"]) == (VID, 2)
