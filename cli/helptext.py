"""Help formatting shared by every command: one-line paragraphs are wrapped to the terminal,
paragraphs written on several lines (examples, tables) are kept as written, and an option's
default is shown once, only where it says something (not None, not a flag's False) and its
help text does not already name a default."""
from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.HelpFormatter):
    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for para in text.strip("\n").split("\n\n"):
            if "\n" in para.strip("\n"):
                paragraphs.append("\n".join(indent + line for line in para.strip("\n").splitlines()))
            else:
                paragraphs.append(textwrap.fill(" ".join(para.split()), width, initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs) + "\n"

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text.lower() or action.default in (None, False, argparse.SUPPRESS)
                or not action.option_strings or action.nargs == 0):
            return text
        return text + " (default: %(default)s)"
