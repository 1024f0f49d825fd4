"""`eval ...`: the evaluation commands (``python -m video_analysis.eval``) under the main CLI,
so that ``python -m video_analysis eval real VIDEO GT.json`` works as the README says."""
from __future__ import annotations

import argparse

from .helptext import HelpFormatter


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..eval.__main__ import main

    return main(args.eval_args)


def register(sub: argparse._SubParsersAction) -> None:
    # No options of its own (add_help=False, and a prefix no argument starts with): every argument,
    # --help included, goes to the eval parser.
    s = sub.add_parser("eval", help="quality figures: generated data (classifier, detector, tracking) and real clips "
                                    "against a hand-made ground truth (real, sheets)",
                       description="python -m video_analysis eval WHAT ...: the same command as python -m "
                                   "video_analysis.eval (see eval --help).",
                       formatter_class=HelpFormatter, add_help=False, prefix_chars="\x00")
    s.add_argument("eval_args", nargs="*", help="what to evaluate and its options (eval --help)")
    s.set_defaults(func=_cmd_eval)
