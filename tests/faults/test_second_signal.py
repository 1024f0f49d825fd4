"""A second SIGTERM (an impatient operator, systemd's stop escalating) during a handler, during
a long poll and during the release at the stop deadline: the process exits 0 within a second,
releases the messages in hand where SQS answers, and never hangs.  Each case runs a few times
in a row: a hang that needs an unlucky moment shows up in a loop, not in a single try.

The process is the real poller with the real runner (tests/worker_utils/poller_app.py, a
scripted handler) so that each start costs a second, not a model load."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import worker_env

# Run alone, after the parallel part of `make test`: it times an exit to within a second.
pytestmark = pytest.mark.serial

APP = Path(__file__).parents[1] / "worker_utils" / "poller_app.py"
ROUNDS = 3
EXIT_WITHIN_S = 1.0


class App:
    def __init__(self, rig, tmp: Path, n: int, **changes):
        self.handled = tmp / f"handled{n}.log"
        self.handled.touch()
        self.out = tmp / f"app{n}.log"
        env = worker_env(rig.stack, rig.s, **changes)
        with open(self.out, "w") as fh:
            self.proc = subprocess.Popen([sys.executable, str(APP), str(self.handled)], env=env, stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, what: str, timeout_s: float = 30.0, source: str = "log") -> None:
        deadline = time.monotonic() + timeout_s
        while what not in (self.text() if source == "log" else self.handled.read_text()):
            assert self.proc.poll() is None, f"exited early ({self.proc.returncode}):\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {what!r} after {timeout_s:.0f}s:\n{self.text()[-3000:]}"
            time.sleep(0.02)

    def second_signal(self) -> tuple[int, float]:
        """SIGTERM now (the second one); returns (exit status, seconds until the process was gone)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"still running 15 s after the second SIGTERM:\n{self.text()[-3000:]}")
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _send(rig, body: dict) -> None:
    rig.client.sqs.send_raw(rig.s.video_queue, json.dumps(body))


@pytest.mark.parametrize("moment", ["handler", "long poll", "release"])
def test_a_second_sigterm_exits_within_a_second(make_rig, tmp_path, moment):
    rig = make_rig(stop_timeout_s=2.0, receive_wait_s=3, visibility_timeout_s=30, heartbeat_s=0.5)
    changes = {}
    if moment == "release":  # SQS through a proxy the test freezes: the release hangs
        changes["sqs_endpoint_url"] = rig.proxy_up().endpoint
    for n in range(ROUNDS):
        app = App(rig, tmp_path, n, **changes)
        try:
            app.wait_for('"msg": "serving"')
            if moment == "long poll":
                time.sleep(0.5)  # idle, in a long poll
                app.proc.send_signal(signal.SIGTERM)
                time.sleep(0.2)
            else:
                _send(rig, {"id": f"held{n}", "action": "stubborn", "seconds": 60})
                # (a release round's message that its hung release left hidden may come back and
                # be taken instead: any stubborn message in the handler will do)
                app.wait_for("start held", source="handled")
                if moment == "release":
                    rig.proxy.freeze()
                app.proc.send_signal(signal.SIGTERM)
                if moment == "release":
                    app.wait_for("stop timeout reached: releasing messages in hand and exiting", timeout_s=10)
                    time.sleep(0.2)  # inside the (hung) release
                else:
                    time.sleep(0.3)  # inside the handler, which ignores the stop
            rc, took = app.second_signal()
            assert rc == 0, app.text()[-3000:]
            assert took < EXIT_WITHIN_S, f"{moment}: exited {took:.2f} s after the second signal"
            if moment == "handler":  # released at once (visibility 0), not after 30 s
                assert "second stop signal: releasing messages in hand and exiting now" in app.text()
                again = rig.client.sqs.receive(rig.s.video_queue, 1, wait_s=2, visibility_s=30)
                assert [json.loads(m.body)["id"] for m in again] == [f"held{n}"], app.text()[-2000:]
                rig.client.sqs.delete(rig.s.video_queue, again[0].receipt_handle)
            if moment == "release":
                rig.proxy.thaw()
                assert "Traceback" not in app.text()
        finally:
            app.kill()
            if rig.proxy is not None:
                rig.proxy.thaw()
    if moment == "release":  # what the hung release could not make visible comes back after its timeout
        for m in rig.client.drain(rig.s.video_queue, wait_s=0):
            rig.client.sqs.delete(rig.s.video_queue, m.receipt_handle)
