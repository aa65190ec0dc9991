"""The commands' argument parser: ``HfArgumentParser`` with the behaviour a command line needs.

* A boolean flag never swallows the next argument: ``--tta`` alone means true, so ``predict.py --tta photos/``
  works in any order (``HfArgumentParser`` gives booleans an optional value, which would take ``photos/``). An
  explicit ``--flag true`` / ``--flag false`` (as transformers' own examples write) still works, and so does
  ``--no_flag`` for flags that are on by default.
* A user mistake -- an unknown option, a bad value, a failed check in a dataclass's ``__post_init__`` -- is one
  ``error:`` line plus a hint, exit status 2; an unknown option gets the closest valid one as a suggestion, as unknown
  recipe keys do. Options must be spelled out (no abbreviations), so a typo is never taken for another option.
  With ``error_class`` the parser raises that exception with the same message instead (for library callers).
* ``--debug`` shows the traceback of an error instead of the one-line message (``--traceback`` for ``train.py``,
  where ``--debug`` is a ``TrainingArguments`` option).

Only the public ``argparse`` API is used: every option passes through :meth:`add_argument` (also inside argument
groups), where the boolean options are recognised by the keyword arguments ``HfArgumentParser`` passes for ``bool``
fields (checked against transformers 5.24/5.25; ``tests/commands/test_cli.py`` fails if that changes).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import inspect
import re
import sys
from collections.abc import Callable, Iterable

from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

ERROR_EXIT = 2
_BOOL_WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n", "1", "0"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only where it says something: not for None/False/[], nor where the help has its own."""

    def _get_help_string(self, action):
        text = action.help or ""
        quiet = action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS)
        if quiet or "default" in text.lower():
            return text
        return super()._get_help_string(action)


class CommandParser(HfArgumentParser):
    def __init__(
        self,
        dataclass_types,
        *,
        prog: str | None = None,
        description: str | None = None,
        error_class: type[Exception] | None = None,
        **kwargs,
    ):
        self.option_strings: list[str] = []
        self.bool_options: set[str] = set()
        self.error_class = error_class
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(dataclass_types, prog=prog, description=description, allow_abbrev=False, **kwargs)
        # `--debug`, unless a dataclass has that option (TrainingArguments does): then `--traceback`.
        self.debug_flag = "--traceback" if "--debug" in self.option_strings else "--debug"
        self.add_argument(
            self.debug_flag, dest="show_traceback", action="store_true", help="Show the full traceback of an error."
        )

    # -- every option passes through here (argument groups included) -------------------------------------------
    def _flag_kwargs(self, names: Iterable[str], kwargs: dict) -> dict:
        long_names = [n for n in names if n.startswith("--")]
        self.option_strings.extend(long_names)
        if kwargs.get("type") is string_to_bool and kwargs.get("nargs") == "?":
            self.bool_options.update(long_names)
            kwargs = {**kwargs, "metavar": "true|false"}
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

    # TEMP (datageo): the parser engineer's add_config/config_kwargs, same interface; take parser's cli.py at merge.
    def add_config(self, cls: type, title: str, description: str | None = None, skip=()) -> None:
        own = inspect.get_annotations(cls, eval_str=True)
        group = self.add_argument_group(title, description)
        for field in dataclasses.fields(cls):
            if field.name in own and field.name not in skip:
                field = copy.copy(field)
                field.type = own[field.name]
                HfArgumentParser._parse_dataclass_field(group, field)

    def config_kwargs(self, cls: type, extras) -> dict:
        return {f.name: getattr(extras, f.name) for f in dataclasses.fields(cls) if hasattr(extras, f.name)}

    # -- errors ------------------------------------------------------------------------------------------------
    def suggestion(self, option: str) -> str | None:
        match = difflib.get_close_matches(option, self.option_strings, n=1, cutoff=0.6)
        return match[0] if match else None

    def error(self, message: str):
        message = re.sub(r"^argument (--[\w.]+)(/--[\w.-]+)*:", r"\1:", message)  # one spelling of the option
        unknown = re.search(r"unrecognized arguments?: (\S+)", message)
        if unknown:
            option = unknown.group(1).split("=")[0]
            if option.startswith("-"):
                close = self.suggestion(option)
                message = f"unknown option {option}" + (f"; did you mean {close}?" if close else "")
            else:
                message = f"unexpected argument {option!r}"
        if self.error_class is not None:
            raise self.error_class(message)
        self.exit(ERROR_EXIT, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists the options)\n")

    # -- parsing -----------------------------------------------------------------------------------------------
    def _bool_flags_explicit(self, argv: list[str]) -> list[str]:
        """``--flag`` not followed by a boolean word → ``--flag=true``, so that it consumes nothing else."""
        out = []
        for i, arg in enumerate(argv):
            follows = argv[i + 1].lower() if i + 1 < len(argv) else None
            out.append(f"{arg}=true" if arg in self.bool_options and follows not in _BOOL_WORDS else arg)
        return out

    def parse(self, argv: list[str] | None):
        """``argv`` → ``(dataclasses…, extras)``; ``extras`` holds ``show_traceback`` and any plain ``add_argument``."""
        argv = list(sys.argv[1:] if argv is None else argv)
        try:
            *parsed, extras, unknown = self.parse_args_into_dataclasses(
                args=self._bool_flags_explicit(argv), return_remaining_strings=True
            )
        except ValueError as err:  # a __post_init__ check: a user mistake, not a bug
            if self.debug_flag in argv or (self.error_class is not None and isinstance(err, self.error_class)):
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
