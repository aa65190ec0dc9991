"""The commands' argument parser: ``HfArgumentParser`` with the behaviour a command line needs.

* Boolean flags take no value (``--tta`` / ``--no_tta``), so ``predict.py --tta photos/`` works in any order
  (``HfArgumentParser`` gives them an optional value, which swallows the next argument).
* A user mistake -- an unknown option, a bad value, a failed check in a dataclass's ``__post_init__`` -- prints one
  ``error:`` line plus a hint and exits 2; an unknown option gets the closest valid one as a suggestion, as unknown
  recipe keys do. Options must be spelled out (no abbreviations), so a typo is never taken for another option.
* ``--debug`` shows the traceback of an error instead of the one-line message.

Only the public ``argparse`` API is used: every option passes through :meth:`add_argument` (also inside argument
groups), where the flag kind is decided from the keyword arguments ``HfArgumentParser`` passes for ``bool`` fields
(checked against transformers 5.24/5.25; ``tests/commands/test_cli.py`` fails if that changes).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable, Iterable

from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

ERROR_EXIT = 2


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only where it says something: not for None/False/[], nor where the help has its own."""

    def _get_help_string(self, action):
        text = action.help or ""
        quiet = action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS)
        if quiet or "default" in text.lower():
            return text
        return super()._get_help_string(action)


class CommandParser(HfArgumentParser):
    def __init__(self, dataclass_types, *, prog: str | None = None, description: str | None = None, **kwargs):
        self.option_strings: list[str] = []
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(dataclass_types, prog=prog, description=description, allow_abbrev=False, **kwargs)
        self.add_argument("--debug", action="store_true", help="Show the full traceback of an error.")

    # -- every option passes through here (argument groups included) -------------------------------------------
    def _flag_kwargs(self, names: Iterable[str], kwargs: dict) -> dict:
        self.option_strings.extend(n for n in names if n.startswith("--"))
        if kwargs.get("type") is string_to_bool and kwargs.get("nargs") == "?":
            # `--flag` / `--flag true`: make it a plain flag that consumes nothing.
            kwargs = {k: v for k, v in kwargs.items() if k not in ("type", "nargs", "const")}
            kwargs["action"] = "store_true"
        elif kwargs.get("action") == "store_false" and any(n.startswith("--no") for n in names):
            # The `--no_X` twin of a `--X` flag that is on by default: its own help; the default is the flag's.
            kwargs = {**kwargs, "help": f"Turn off --{kwargs['dest']}.", "default": argparse.SUPPRESS}
        return kwargs

    def add_argument(self, *names, **kwargs):
        return super().add_argument(*names, **self._flag_kwargs(names, kwargs))

    def add_argument_group(self, *args, **kwargs):
        group = super().add_argument_group(*args, **kwargs)
        add = group.add_argument
        group.add_argument = lambda *names, **kw: add(*names, **self._flag_kwargs(names, kw))
        return group

    # -- errors ------------------------------------------------------------------------------------------------
    def suggestion(self, option: str) -> str | None:
        match = difflib.get_close_matches(option, self.option_strings, n=1, cutoff=0.6)
        return match[0] if match else None

    def error(self, message: str):
        unknown = re.search(r"unrecognized arguments?: (\S+)", message)
        if unknown:
            option = unknown.group(1).split("=")[0]
            if option.startswith("-"):
                close = self.suggestion(option)
                message = f"unknown option {option}" + (f"; did you mean {close}?" if close else "")
            else:
                message = f"unexpected argument {option!r}"
        hint = f"\n(`{self.prog} --help` lists the options)"
        self.exit(ERROR_EXIT, f"{self.prog}: error: {message}{hint}\n")

    def parse(self, argv: list[str] | None):
        """``argv`` → ``(dataclasses…, extras)``; ``extras`` holds ``debug`` and any plain ``add_argument``."""
        try:
            *parsed, extras, unknown = self.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
        except ValueError as err:  # a __post_init__ check: a user mistake, not a bug
            if "--debug" in (sys.argv[1:] if argv is None else argv):
                raise
            self.error(str(err))
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return (*parsed, extras)


def summary_line(doc: str) -> str:
    """A module docstring's first paragraph as plain terminal text (no RST markup)."""
    return " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "")


def run_command(body: Callable[[], int], *, user_errors: tuple[type[BaseException], ...], debug: bool) -> int:
    """``body()``; a user error (bad data, missing file, unreadable checkpoint) → one ``error:`` line, exit 2."""
    try:
        return body()
    except user_errors as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return ERROR_EXIT
