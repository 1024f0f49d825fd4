"""Command line: python -m video_analysis COMMAND [--help].

Commands share the worker settings (worker_config.py); inside a shell that ran
"source .stack/env" they talk to the local stack, otherwise to AWS.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..worker_config import ConfigError, get_settings, ignored_env_overrides, ignored_env_overrides_message
from ..worker_utils.errors import WorkerError
from ..worker_utils.local_stack import StackError
from .helptext import HelpFormatter

log = logging.getLogger("video_analysis.cli")

EPILOG = """The whole system on a generated clip, in one command (no AWS account needed):
  python -m video_analysis demo            # local stack, both workers, scores, HTML report in out/demo

By hand:
  python -m video_analysis stack up        # moto_server + throwaway Postgres under ./.stack
  source .stack/env                        # point every command and worker at it
  python -m video_analysis setup           # bucket, queues + DLQs, DB migrations
  python -m video_analysis.yolo_worker.run_poller &   # the two workers, as systemd runs them
  python -m video_analysis.main_worker.run_poller &
  python -m video_analysis send-video clip.mp4 --workspace-id UUID --workspace-code CTX1005 --camera-code CAM1
  python -m video_analysis status VIDEO_ID
  python -m video_analysis stack down

Operations: redrive (dead letters back to their queue), reconcile (rows whose message was lost).
"""

# status: exit codes a script can branch on
EXIT_DONE, EXIT_ERROR, EXIT_RUNNING, EXIT_NO_VIDEO, EXIT_STATUS_FAILED = 0, 1, 3, 4, 5
EXIT_INTERRUPTED = 130
STATUS_EPILOG = f"""exit status:
  {EXIT_DONE}  the video is done and every analysis of it is done
  {EXIT_ERROR}  the video is in error, or it is done and some analysis is in error
  {EXIT_RUNNING}  still running: the video, or an analysis of it, is uploaded, queued or processing
  {EXIT_NO_VIDEO}  no such video in the videos table
  {EXIT_STATUS_FAILED}  the status could not be read (database unreachable ...)
  2  configuration error
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


def status_exit_code(video_status: str, analysis_statuses: Sequence[str]) -> int:
    """The status command's exit code for a video and its analyses (see STATUS_EPILOG)."""
    if video_status == "error":
        return EXIT_ERROR
    if video_status != "done" or any(s in ("queued", "processing") for s in analysis_statuses):
        return EXIT_RUNNING
    return EXIT_ERROR if "error" in analysis_statuses else EXIT_DONE


def _cmd_status(args: argparse.Namespace) -> int:
    from ..worker_utils.db import Database
    from ..worker_utils.repository import get_video, list_analyses, segment_progress

    db = Database(get_settings())
    video = get_video(db, args.video_id)
    if video is None:
        if args.json:
            print(json.dumps({"video": None, "analyses": []}))
        print(f"no video {args.video_id} in the videos table", file=sys.stderr)
        return EXIT_NO_VIDEO
    analyses = list_analyses(db, args.video_id)
    segments = segment_progress(db, [args.video_id]).get(args.video_id)  # (done, planned) of a segmented video
    code = status_exit_code(video["status"], [a["status"] for a in analyses])
    if args.json:
        print(json.dumps({"video": video, "analyses": analyses,
                          "segments": None if segments is None else {"done": segments[0], "total": segments[1]}},
                         default=str, indent=2))
        return code
    print(f"video {video['id']}: {video['status']}" + (f" ({video['error']})" if video["error"] else "")
          + (f"; segments {segments[0]} of {segments[1]} done" if segments else ""))
    counts: dict[str, int] = {}
    for a in analyses:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    print(f"analyses: {len(analyses)} " + (json.dumps(counts) if counts else ""))
    for a in analyses:
        res = "; ".join(f"{r['variant']}: {r['type']}/{r['make']}/{r['model']}" for r in a["results"]) or "-"
        print(f"  track {a['track_id']:>6} @ {a['detected_in_ms']:>8} ms  {a['yolo_type']:<11} {a['status']:<10} {res}")
    return code


def _stop_on_signals() -> tuple[threading.Event, Callable[[], None]]:
    """An event set by SIGINT/SIGTERM (instead of KeyboardInterrupt), and the undo."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return stop, restore


def _cmd_redrive(args: argparse.Namespace) -> int:
    from ..worker_utils.redrive import RedriveItem, RedrivePolicy, redrive
    from ..worker_utils.sqs_queue import SqsQueues

    s = get_settings()
    source, dlq = ((s.video_queue, s.video_dlq) if args.queue == "video" else (s.snapshot_queue, s.snapshot_dlq))
    if args.move_task and (args.max is not None or args.code or args.exclude_code or args.dry_run):
        print("redrive: --move-task moves the whole DLQ; it cannot be combined with --max, --code, --exclude-code "
              "or --dry-run", file=sys.stderr)
        return 2
    policy = RedrivePolicy(codes=frozenset(args.code or ()), exclude_codes=frozenset(args.exclude_code or ()),
                           redrive_limit=args.redrive_limit)

    def show(item: RedriveItem) -> None:
        d = item.letter
        print(f"{item.action:<10} {d.message_id}  code={d.code or '-'} receives={d.receive_count or '-'} "
              f"redrives={d.redrive_count}  {d.reason or '(no reason recorded)'}"
              + (f"  -- kept: {item.why}" if item.why else ""), flush=True)

    stop, restore = _stop_on_signals()
    try:
        result = redrive(SqsQueues(s), dlq, source, args.max, use_move_task=args.move_task, policy=policy,
                         dry_run=args.dry_run, stop=stop, on_item=show)
    finally:
        restore()
    if result.method == "move-task":
        print(f"started an SQS message move task {dlq} -> {source} (handle {result.task_handle}); it moves every "
              "message, permanent ones included")
        return 0
    verb = "would move" if args.dry_run else "moved"
    print(f"{verb} {result.moved} message(s) {dlq} -> {source}; {len(result.kept)} kept in the DLQ")
    if result.stopped:
        print("stopped on request between messages: every message is in exactly one queue", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from ..worker_utils.reconcile import parse_duration, reconcile

    try:
        older_than = parse_duration(args.older_than)
    except ValueError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 2
    report = reconcile(get_settings(), older_than_s=older_than, video_id=args.video, apply=args.apply)
    for q, d in report.queue_depths.items():
        print(f"queue {q}: {d['visible']} waiting, {d['in_flight']} in flight")
    outcomes = {id(a): o for a, o in report.applied}
    for a in report.actions:
        what = a.message["event"] if a.kind == "resend" else "error" if a.kind == "error" else "-"
        line = (f"{a.kind:<8} {a.table:<14} {a.row_id} ({a.status}, idle {a.idle_s / 60:.0f} min) {what}: {a.why}")
        print(line + (f"  -> {outcomes[id(a)]}" if id(a) in outcomes else ""))
    n = len(report.actions)
    if not n:
        print("nothing to reconcile")
    elif not args.apply:
        print(f"{n} row(s) to reconcile; nothing changed (run again with --apply)")
    else:
        print(f"{n} row(s) reconciled")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m video_analysis", description=__doc__,
                                formatter_class=HelpFormatter, epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, formatter_class=HelpFormatter, **kw)

    s = command("stack", help="start/stop the local stack (moto_server + throwaway PostgreSQL)",
                description="Start or stop the embedded default: moto_server on 127.0.0.1 (S3/SQS) and a throwaway "
                            "PostgreSQL cluster, with state under --root, and write ROOT/env with the environment "
                            "overrides for workers and commands (source ROOT/env).")
    s.add_argument("action", choices=["up", "down"])
    s.add_argument("--root", default=".stack", help="state directory")
    s.set_defaults(func=_cmd_stack)

    s = command("setup", help="create the bucket, queues + DLQs and DB tables (idempotent)",
                description="Create or update the S3 bucket, both SQS queues and their DLQs with the spec's "
                            "attributes (VisibilityTimeout, retention, long-poll wait, redrive maxReceiveCount) and "
                            "apply the DB migrations. Safe to run again: it changes nothing the second time.")
    s.add_argument("--skip-db", action="store_true", help="leave the database alone (AWS resources only)")
    s.set_defaults(func=_cmd_setup)

    s = command("send-video", help="register an MP4, upload it and send PROCESS_VIDEO (spec section 7 smoke test)",
                description="Insert the videos row as queued, upload FILE to demo_user/<wid>/<vid>/raw/<name>.mp4 "
                            "and send PROCESS_VIDEO to the video queue, in that order. Prints the video id. A "
                            "failing step says what was left behind and how to finish or undo it.")
    s.add_argument("file", help="path of an .mp4 file")
    s.add_argument("--workspace-id", required=True, help="workspace UUID (lower case)")
    s.add_argument("--workspace-code", required=True, help="e.g. CTX1005")
    s.add_argument("--camera-code", required=True, help="e.g. CAM1")
    s.add_argument("--frame-stride", type=int, default=None,
                   help="process every N-th frame (default: default_frame_stride of the settings)")
    s.add_argument("--recorded-at", default=None, help="ISO-8601 wall-clock start of the recording (optional)")
    s.add_argument("--video-id", default=None, help="video UUID (default: a new one)")
    s.add_argument("--db-fallback", action="store_true", help="send the minimal PROCESS_VIDEO_DB message instead")
    s.set_defaults(func=_cmd_send_video)

    s = command("status", help="a video's status and its analyses (exit status: 0 done, 1 error, 3 running)",
                description="Print the videos row and every image_analyses row (with results) of VIDEO_ID.",
                epilog=STATUS_EPILOG)
    s.add_argument("video_id")
    s.add_argument("--json", action="store_true", help="machine-readable output (same exit status)")
    s.set_defaults(func=_cmd_status, failure_exit=EXIT_STATUS_FAILED)

    s = command("redrive", help="move dead letters back to their queue after fixing the cause",
                description="Move the messages that are in a DLQ when the command starts back to its source queue, "
                            "one at a time (receive, send, delete), then end. Messages whose cvitx_error_code is "
                            "permanent (invalid_message, bad_media, missing_object, permanent, db_constraint ...) "
                            "stay unless named with --code; only transient and unexpected failures (and messages "
                            "without a code) move by default. Each move adds one to the message attribute "
                            "cvitx_redrive_count; a message moved --redrive-limit times stays. Messages the workers "
                            "dead-letter again while it runs stay too. Ctrl-C stops between two messages: every "
                            "message is then in exactly one queue. Exit status 130 when stopped that way.")
    s.add_argument("queue", choices=["video", "snapshot"], help="which queue's DLQ to redrive")
    s.add_argument("--max", type=int, default=None, metavar="N", help="move at most N messages (a count)")
    s.add_argument("--code", action="append", metavar="CODE",
                   help="move only messages with this cvitx_error_code (repeatable; names permanent codes too)")
    s.add_argument("--exclude-code", action="append", metavar="CODE",
                   help="never move messages with this cvitx_error_code (repeatable)")
    s.add_argument("--dry-run", action="store_true",
                   help="list what would move, with each message's reason and receive count; move nothing")
    s.add_argument("--redrive-limit", type=int, default=3, metavar="N",
                   help="refuse to move a message that earlier redrives moved N times")
    s.add_argument("--move-task", action="store_true",
                   help="hand the whole DLQ to SQS StartMessageMoveTask instead (AWS only): server-side and fast, "
                        "but it moves every message, permanent ones included, and keeps no redrive count")
    s.add_argument("--copy", action="store_true", help=argparse.SUPPRESS)  # the default since the move task is opt-in
    s.set_defaults(func=_cmd_redrive)

    s = command("reconcile", help="find rows whose message was lost and send it again (or mark them error)",
                description="Find videos still uploaded, queued or processing and analyses still queued or "
                            "processing that have no message in flight, and print what to do with each. With "
                            "--apply: send PROCESS_VIDEO or SNAPSHOT_READY again (rebuilt from the rows, validated "
                            "against the schemas; the workers are idempotent, so a resend is safe), or mark the row "
                            "error with a reason when its S3 object is gone. "
                            "In flight is judged by time, since SQS cannot be asked about one row: a row counts as "
                            "stuck when nothing touched it for --older-than (a video: its row's updated_at and its "
                            "newest snapshot row). Pick a value above the longest time a video takes. The queues' "
                            "depths are printed first: an empty queue with nothing in flight means no row has a "
                            "message.")
    which = s.add_mutually_exclusive_group()
    which.add_argument("--video", metavar="ID", help="only this video and its analyses, whatever their age")
    which.add_argument("--older-than", default="30m", metavar="AGE",
                       help="idle time that counts as stuck: 90s, 30m, 2h, 1d (default: 30m)")
    s.add_argument("--apply", action="store_true", help="do it (without: print the plan and change nothing)")
    s.set_defaults(func=_cmd_reconcile)

    for register in _extra_commands():
        register(sub)
    return p


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    from . import analyze, check_model, demo, evaluate

    return [demo.register, analyze.register, check_model.register, evaluate.register]


def _run(args: argparse.Namespace) -> int:
    from ..worker_utils.logs import setup_logging

    try:
        settings = get_settings()
        ignored = ignored_env_overrides()
        if ignored:
            print(f"warning: {ignored_env_overrides_message(ignored)}", file=sys.stderr)
        # demo/analyze print their own step lines; the workers' JSON logs go to files under --out.
        setup_logging("WARNING" if args.command in ("demo", "analyze", "eval") else settings.log_level)
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (WorkerError, StackError) as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        return getattr(args, "failure_exit", 1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args: Optional[argparse.Namespace] = None
    try:
        try:
            args = build_parser().parse_args(argv)  # --help exits here (SystemExit)
            return _run(args)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
    except BrokenPipeError:
        # The reader went away (status ... | head -1): stop writing, quietly.  Point stdout at
        # /dev/null so the interpreter's own flush at exit does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe
    except KeyboardInterrupt:
        print(f"{args.command if args else 'command'} interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
