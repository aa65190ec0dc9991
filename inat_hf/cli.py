"""The commands' argument parser: ``HfArgumentParser`` plus what a command line needs.

A boolean option never swallows the next argument (``--tta photos/``); ``--flag false`` and ``--no_flag`` work too. A
user mistake (unknown option, bad value, a failed ``__post_init__`` check) is one ``error:`` line with a suggestion,
exit 2 (or ``error_class`` raised); no abbreviations. ``--debug`` (``--traceback`` where ``debug`` is an option) shows
the traceback. :meth:`CommandParser.add_config` makes a config class's keyword arguments options (``InatConfig``)."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import inspect
import re
import shutil
import sys
import typing
from collections.abc import Callable

from transformers import HfArgumentParser

ERROR_EXIT = 2
_BOOL_WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n", "1", "0"}


def option(default, help: str, **metadata):
    """A dataclass field with its ``--help`` text (HfArgumentParser reads ``metadata``); a list default is copied
    for each instance."""
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"help": help, **metadata})
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


class OneLineHelp(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` as one line per option where the terminal allows: the option's one spelling (no ``--dash-form``
    alias, no metavar, no separate ``--no_flag`` line), then its help and its default unless that is None. The
    description is printed as written (its lines are laid out by hand)."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=min(max(shutil.get_terminal_size().columns, 100), 140))

    def _format_action_invocation(self, action):
        return action.option_strings[0] if action.option_strings else super()._format_action_invocation(action)

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)

    def _format_action(self, action):
        if action.option_strings and action.option_strings[0].startswith("--no_"):
            return ""  # the flag's own line says it all: --head_batch_norm false
        return super()._format_action(action)


class CommandParser(HfArgumentParser):
    def __init__(self, dataclass_types, *, prog=None, description=None, error_class=None, debug_flag=None, **kwargs):
        self.error_class = error_class
        self.options: dict[str, typing.Any] = {}  # option name -> its annotation
        self.sections, self._groups = {}, {}  # argument group title -> its option names, the group
        self.configs: dict[type, list[str]] = {}  # add_config's classes -> their option names
        super().__init__(dataclass_types, prog=prog, description=description, allow_abbrev=False, **kwargs)
        for dtype in self.dataclass_types:
            hints = typing.get_type_hints(dtype)
            self.options.update({f.name: hints[f.name] for f in dataclasses.fields(dtype) if f.init})
        self.debug_flag = debug_flag or ("--traceback" if "debug" in self.options else "--debug")
        self.add_argument(self.debug_flag, dest="show_traceback", action="store_true", help="Show error tracebacks.")

    def _add_fields(self, title: str, description: str | None, fields: list[dataclasses.Field], hints: dict) -> None:
        if title not in self._groups:
            self._groups[title], self.sections[title] = self.add_argument_group(title, description), []
        for field in fields:
            field = copy.copy(field)
            field.type = hints[field.name]
            self.options[field.name] = field.type  # (before HfArgumentParser narrows it to the argparse type)
            # HfArgumentParser's own per-field step (types, nargs, choices, bool flags): no public API adds one field
            HfArgumentParser._parse_dataclass_field(self._groups[title], field)
            self.sections[title].append(field.name)

    def add_dataclass(self, dtype: type, title: str, description: str | None = None) -> None:
        """Every field of ``dtype`` as an option in group ``title``; :meth:`parse` returns a filled ``dtype``."""
        self._add_fields(
            title, description, [f for f in dataclasses.fields(dtype) if f.init], typing.get_type_hints(dtype)
        )
        self.dataclass_types.append(dtype)

    def add_config(self, cls: type, title: str, description: str | None = None, skip=(), also=()) -> None:
        """The fields ``cls`` declares in its own body (less ``skip``, plus the inherited ones named in ``also``) as
        options in group ``title``: a config class's keyword arguments, read back with :meth:`config_kwargs`. A
        ``PreTrainedConfig`` cannot be a dataclass of ``HfArgumentParser``: its generic fields (id2label, dtype, ...)
        are not options, and their annotations name torch, which transformers imports for type checkers only."""
        own = inspect.get_annotations(cls, eval_str=True)
        if also:
            own |= {name: typing.get_type_hints(cls)[name] for name in also}
        fields = [f for f in dataclasses.fields(cls) if f.name in own and f.name not in skip]
        self._add_fields(title, description, fields, own)
        self.configs[cls] = [f.name for f in fields]

    def config_kwargs(self, cls: type, extras) -> dict[str, typing.Any]:
        """``cls``'s keyword arguments from the ``extras`` that :meth:`parse` returns."""
        return {name: getattr(extras, name) for name in self.configs[cls]}

    def error(self, message: str):
        message = re.sub(r"^argument (--[\w.]+)(/--[\w.-]+)*:", r"\1:", message)  # one spelling of the option
        unknown = re.search(r"unrecognized arguments?: (\S+)", message)
        if unknown:
            option = unknown.group(1).split("=")[0]
            if option.startswith("-"):
                close = difflib.get_close_matches(option, [f"--{name}" for name in self.options], n=1, cutoff=0.6)
                message = f"unknown option {option}" + (f"; did you mean {close[0]}?" if close else "")
            else:
                message = f"unexpected argument {option!r}"
        if self.error_class is not None:
            raise self.error_class(message)
        self.exit(ERROR_EXIT, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists the options)\n")

    def _bool_flags_explicit(self, argv: list[str]) -> list[str]:
        """``--flag`` not followed by a boolean word → ``--flag=true``, so that it consumes nothing else."""
        flags = {f"--{name}" for name, annotation in self.options.items() if annotation in (bool, bool | None)}
        after = [arg.lower() for arg in argv[1:]] + [""]
        return [f"{arg}=true" if "--" + arg[2:].replace("-", "_") in flags and nxt not in _BOOL_WORDS else arg
                for arg, nxt in zip(argv, after)]  # fmt: skip

    def parse(self, argv: list[str] | None):
        """``argv`` → ``(dataclasses…, extras)``: ``show_traceback``, :meth:`add_config`'s and other plain options."""
        argv = list(sys.argv[1:] if argv is None else argv)
        try:
            *parsed, extras, unknown = self.parse_args_into_dataclasses(
                args=self._bool_flags_explicit(argv), return_remaining_strings=True, look_for_args_file=False
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


def quiet_weight_loading() -> None:
    """transformers draws a "Loading weights" bar per ``from_pretrained``: a one-second bar that tells a command's
    user nothing. Every other bar (downloads, datasets, training) is left as it is."""
    from transformers.utils import logging as transformers_logging

    def hook(factory, args, kwargs):
        if kwargs.get("desc") == "Loading weights":
            kwargs = {**kwargs, "disable": True}
        return factory(*args, **kwargs)

    transformers_logging.set_tqdm_hook(hook)


def run_command(body: Callable[[], int], *, user_errors: tuple[type[BaseException], ...], debug: bool) -> int:
    """``body()``; a user error (bad data, missing file, unreadable checkpoint) → one ``error:`` line, exit 2."""
    quiet_weight_loading()
    try:
        return body()
    except user_errors as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return ERROR_EXIT
