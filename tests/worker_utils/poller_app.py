"""A worker process for the poller tests: the real Poller with a scripted handler.

Each message body is JSON {"id": str, "action": "ok"|"sleep"|"stubborn"|"permanent"|"transient",
"seconds": float}; every start and end of handling is appended to the log file given as
argv[1] as "<event> <id> <receive_count>".  Non-JSON bodies fail validation (permanent).
"""
import sys
import time

from video_analysis.worker_config import get_settings
from video_analysis.worker_utils.errors import PermanentError, TransientError
from video_analysis.worker_utils.logs import setup_logging
from video_analysis.worker_utils.poller import Poller, one_at_a_time
from video_analysis.worker_utils.runner import serve
from video_analysis.worker_utils.validation import parse_body

LOG = sys.argv[1]


def record(event, msg_id, count):
    with open(LOG, "a") as fh:
        fh.write(f"{event} {msg_id} {count}\n")


def handle(message, ctx):
    body = parse_body(message.body)
    mid, action = body["id"], body["action"]
    record("start", mid, message.receive_count)
    if action == "sleep":  # cooperative: checks for shutdown
        deadline = time.monotonic() + body["seconds"]
        while time.monotonic() < deadline:
            ctx.check_cancelled()
            ctx.progress()
            time.sleep(0.1)
    elif action == "stubborn":  # ignores shutdown: the stop deadline must release it
        time.sleep(body["seconds"])
    elif action == "permanent":
        raise PermanentError(f"scripted permanent failure of {mid}")
    elif action == "transient":
        raise TransientError(f"scripted transient failure of {mid}")
    record("end", mid, message.receive_count)


if __name__ == "__main__":
    s = get_settings()
    setup_logging("INFO")
    sys.exit(serve(Poller(s, s.video_queue, s.video_dlq, one_at_a_time(handle), name="poller-test"), s))
