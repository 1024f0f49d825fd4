"""Command line: ``python -m video_analysis <command> [--help]``.

Commands share the worker settings (``worker_config``); inside a shell that ran
``source .stack/env`` they talk to the local stack, otherwise to AWS.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..worker_config import ConfigError, get_settings
from ..worker_utils.errors import WorkerError
from ..worker_utils.local_stack import StackError

log = logging.getLogger("video_analysis.cli")

EPILOG = """The whole system on a generated clip, in one command (no AWS account needed):
  python -m video_analysis demo            # local stack, both workers, scores, HTML report in out/demo

By hand:
  python -m video_analysis stack up        # moto_server + throwaway Postgres under ./.stack
  source .stack/env                        # point every command and worker at it
  python -m video_analysis setup           # bucket, queues + DLQs, DB migrations
  python -m video_analysis send-video clip.mp4 --workspace-id UUID --workspace-code CTX1005 --camera-code CAM1
  python -m video_analysis status VIDEO_ID
  python -m video_analysis stack down
"""


def _cmd_stack(args: argparse.Namespace) -> int:
    from ..worker_utils.local_stack import stack_down, stack_up

    root = Path(args.root)
    if args.action == "up":
        state = stack_up(root)
        print(f"local stack up: moto_server {state.moto.endpoint}, postgres {state.pg.url}")
        print(f"next: source {root / 'env'} && python -m video_analysis setup")
    else:
        print("local stack stopped" if stack_down(root) else f"no local stack under {root}")
    return 0


def _cmd_setup(args: argparse.Namespace) -> int:
    from ..worker_utils.provision import run_setup

    report = run_setup(get_settings(), skip_db=args.skip_db)
    for item in report.changed:
        print(f"created/updated: {item}")
    for item in report.unchanged:
        print(f"unchanged:       {item}")
    print("setup done" + ("" if report.changed else " (nothing to change)"))
    return 0


def _cmd_send_video(args: argparse.Namespace) -> int:
    from ..worker_utils.submit import submit_video

    video_id = submit_video(get_settings(), Path(args.file), workspace_id=args.workspace_id,
                            workspace_code=args.workspace_code, camera_code=args.camera_code,
                            frame_stride=args.frame_stride, recorded_at=args.recorded_at, video_id=args.video_id,
                            db_fallback=args.db_fallback)
    print(video_id)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ..worker_utils.db import Database
    from ..worker_utils.repository import get_video, list_analyses

    db = Database(get_settings())
    video = get_video(db, args.video_id)
    if video is None:
        print(f"no video {args.video_id} in the videos table")
        return 1
    analyses = list_analyses(db, args.video_id)
    if args.json:
        print(json.dumps({"video": video, "analyses": analyses}, default=str, indent=2))
        return 0
    print(f"video {video['id']}: {video['status']}" + (f" ({video['error']})" if video["error"] else ""))
    counts: dict[str, int] = {}
    for a in analyses:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    print(f"analyses: {len(analyses)} " + (json.dumps(counts) if counts else ""))
    for a in analyses:
        res = "; ".join(f"{r['variant']}: {r['type']}/{r['make']}/{r['model']}" for r in a["results"]) or "-"
        print(f"  track {a['track_id']:>6} @ {a['detected_in_ms']:>8} ms  {a['yolo_type']:<11} {a['status']:<10} {res}")
    return 0


def _cmd_redrive(args: argparse.Namespace) -> int:
    from ..worker_utils.redrive import redrive
    from ..worker_utils.sqs_queue import SqsQueues

    s = get_settings()
    source, dlq = ((s.video_queue, s.video_dlq) if args.queue == "video" else (s.snapshot_queue, s.snapshot_dlq))
    result = redrive(SqsQueues(s), dlq, source, args.max, use_move_task=not args.copy)
    if result.method == "move-task":
        print(f"started an SQS message move task {dlq} -> {source} (handle {result.task_handle})")
    else:
        print(f"moved {result.moved} message(s) {dlq} -> {source}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m video_analysis", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("stack", help="start/stop the local stack (moto_server + throwaway PostgreSQL)",
                       description="Start or stop the embedded default: moto_server on 127.0.0.1 (S3/SQS) and a "
                                   "throwaway PostgreSQL cluster, with state under --root, and write ROOT/env with "
                                   "the environment overrides for workers and commands (`source ROOT/env`).")
    s.add_argument("action", choices=["up", "down"])
    s.add_argument("--root", default=".stack", help="state directory (default: ./.stack)")
    s.set_defaults(func=_cmd_stack)

    s = sub.add_parser("setup", help="create the bucket, queues + DLQs and DB tables (idempotent)",
                       description="Create or update the S3 bucket, both SQS queues and their DLQs with the spec's "
                                   "attributes (VisibilityTimeout, retention, long-poll wait, redrive maxReceiveCount) "
                                   "and apply the DB migrations. Safe to run again: it changes nothing the second time.")
    s.add_argument("--skip-db", action="store_true", help="leave the database alone (AWS resources only)")
    s.set_defaults(func=_cmd_setup)

    s = sub.add_parser("send-video", help="upload an MP4, register it and send PROCESS_VIDEO (spec §7 smoke test)",
                       description="Upload FILE to demo_user/<wid>/<vid>/raw/<name>.mp4, insert the videos row as "
                                   "queued and send PROCESS_VIDEO to the video queue. Prints the video id.")
    s.add_argument("file", help="path of an .mp4 file")
    s.add_argument("--workspace-id", required=True, help="workspace UUID (lower case)")
    s.add_argument("--workspace-code", required=True, help="e.g. CTX1005")
    s.add_argument("--camera-code", required=True, help="e.g. CAM1")
    s.add_argument("--frame-stride", type=int, default=None, help="process every N-th frame (default from config)")
    s.add_argument("--recorded-at", default=None, help="ISO-8601 wall-clock start of the recording (optional)")
    s.add_argument("--video-id", default=None, help="video UUID (default: a new one)")
    s.add_argument("--db-fallback", action="store_true", help="send the minimal PROCESS_VIDEO_DB message instead")
    s.set_defaults(func=_cmd_send_video)

    s = sub.add_parser("status", help="a video's status and its analyses",
                       description="Print the videos row and every image_analyses row (with results) of VIDEO_ID.")
    s.add_argument("video_id")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=_cmd_status)

    s = sub.add_parser("redrive", help="move DLQ messages back to their queue after fixing the cause",
                       description="Move the messages of a DLQ back to its source queue: an SQS message move task "
                                   "on AWS (StartMessageMoveTask), or receive/send/delete where that API is missing.")
    s.add_argument("queue", choices=["video", "snapshot"], help="which queue's DLQ to redrive")
    s.add_argument("--max", type=int, default=None, help="move at most this many messages")
    s.add_argument("--copy", action="store_true", help="skip the move task; copy message by message")
    s.set_defaults(func=_cmd_redrive)

    for register in _extra_commands():
        register(sub)
    return p


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    from . import analyze, demo

    return [demo.register, analyze.register]


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ..worker_utils.logs import setup_logging

    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
        # demo/analyze print their own step lines; the workers' JSON logs go to files under --out.
        setup_logging("WARNING" if args.command in ("demo", "analyze") else settings.log_level)
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (WorkerError, StackError) as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        return 1
