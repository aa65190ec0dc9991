"""YAML recipes: ``train.py RECIPE.yaml [--key value …]`` → the four argument dataclasses, and back to YAML.

A recipe has up to four sections, each the fields of one dataclass (a flat file without sections works too)::

    model:        {backbone: resnet50, attn_layer: se, …}              # ModelArguments
    data:         {dataset_dir: …, eval_split: val, …}                 # DataArguments
    augmentation: {image_size: 224, mixup_alpha: 0.2, …}               # AugmentationArguments
    training:     {learning_rate: 1.0e-4, num_train_epochs: 30, …}     # InatTrainingArguments (TrainingArguments+)

Command-line ``--key value`` overrides win over the file. Unknown keys are errors (with a suggestion): a typo must
never be silently ignored. The resolved recipe is written next to the run's outputs by :func:`save_recipe`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import enum
import functools
import os
import re
import types
import typing
from typing import Any

import yaml
from transformers import TrainingArguments

from ..cli import CommandParser
from ..models.configuration_inat import CLASSIFIER_STAGES, describe_backbone
from .arguments import AugmentationArguments, DataArguments, InatTrainingArguments, ModelArguments

SECTIONS: dict[str, type] = {
    "model": ModelArguments,
    "data": DataArguments,
    "augmentation": AugmentationArguments,
    "training": InatTrainingArguments,
}
RECIPE_FILE = "run_config.yaml"
# Never written to disk: credentials.
_SECRET_FIELDS = ("hub_token", "push_to_hub_token")


class RecipeError(ValueError):
    """A recipe file that cannot be used as written (unknown key, wrong value type): the command exits with 2."""


@dataclasses.dataclass
class Recipe:
    model: ModelArguments
    data: DataArguments
    augmentation: AugmentationArguments
    training: InatTrainingArguments
    source: str | None = None  # the YAML file, if any
    overrides: list[str] = dataclasses.field(default_factory=list)  # the command-line arguments after it


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


def _section_of_key() -> dict[str, str]:
    owner: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for name in _field_names(cls):
            if name in owner:  # would make flat recipes ambiguous
                raise RuntimeError(f"Field {name!r} is defined in both {owner[name]!r} and {section!r}.")
            owner[name] = section
    return owner


def _unknown_key_error(path: str, section: str | None, key: str, valid: set[str]) -> RecipeError:
    where = f"section {section!r} of {path}" if section else path
    hint = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else f". Valid keys: {', '.join(sorted(valid))}."
    return RecipeError(f"Unknown key {key!r} in {where}{suggestion}")


def load_recipe_file(path: str) -> dict[str, Any]:
    """Read a recipe YAML into ``{field: value}`` (flat), checking every key and the type of every value."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Recipe file not found: {path}")
    with open(path, encoding="utf-8") as f:
        raw = yaml.load(f, Loader=_RecipeLoader) or {}  # noqa: S506 - a SafeLoader subclass
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections {list(SECTIONS)}, got a {type(raw).__name__}.")
    owner = _section_of_key()
    flat: dict[str, Any] = {}

    def add(section: str | None, name: str, value: Any) -> None:
        annotation = _resolved_types(SECTIONS[section or owner[name]])[name]
        try:
            flat[name] = _check_value(value, annotation)
        except _Mismatch as e:
            raise _type_error(path, section, name, value, e.args[0]) from None

    for key, value in raw.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise RecipeError(f"{path}: section {key!r} must be a mapping, got {type(value).__name__}.")
            valid = _field_names(SECTIONS[key])
            for name, item in value.items():
                if name not in valid:
                    raise _unknown_key_error(path, key, name, valid)
                add(key, name, item)
        elif key in owner:
            add(None, key, value)
        else:
            raise _unknown_key_error(path, None, key, set(owner) | set(SECTIONS))
    return flat


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-4`` as a float as YAML 1.2 does (YAML 1.1 needs ``1.0e-4``): a number
    written the usual way must not become a string, since strings are never accepted where a number is expected."""


class _RecipeDumper(yaml.SafeDumper):
    """Writes what :class:`_RecipeLoader` reads back identically (a string ``"1e-4"`` gets quotes)."""


for _cls in (_RecipeLoader, _RecipeDumper):
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )

_TYPE_NAMES = {float: "float", int: "int", bool: "bool", str: "str", dict: "mapping", list: "list"}


class _Mismatch(Exception):
    pass


def _check_value(value: Any, annotation: Any) -> Any:
    """``value`` (as YAML read it) if it fits ``annotation``, converted where that loses nothing (int → float);
    raises :class:`_Mismatch` otherwise. Strict like the command line: no string is a number or a boolean."""
    if isinstance(annotation, str) or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        if value is None and type(None) in members:
            return None
        # exact type matches first (a bool stays a bool in `str | bool`), then the lossless conversions
        for member in members:
            if member is not type(None) and type(value) is member:
                return value
        for member in members:
            if member is type(None):
                continue
            with contextlib.suppress(_Mismatch):
                return _check_value(value, member)
        raise _Mismatch(next(m for m in members if m is not type(None)))
    if origin is typing.Literal:
        if value not in typing.get_args(annotation):
            raise _Mismatch(annotation)
        return value
    if origin is list or annotation is list:
        (item_type,) = typing.get_args(annotation) or (Any,)
        values = value if isinstance(value, list) else [value]
        return [_check_value(v, item_type) for v in values]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise _Mismatch(dict)
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise _Mismatch(bool)
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch(int)
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Mismatch(float)
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise _Mismatch(str)
        return value
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            raise _Mismatch(annotation) from None
    return value  # other types (e.g. accelerate's ParallelismConfig): the dataclass validates them


def _type_error(path: str, section: str | None, key: str, value: Any, expected: Any) -> RecipeError:
    where = f"section {section!r} of {path}" if section else path
    if typing.get_origin(expected) is typing.Literal:
        wanted = ", ".join(map(repr, typing.get_args(expected)))
        return RecipeError(f"{where}: {key}: invalid choice: {value!r} (choose from {wanted}).")
    name = _TYPE_NAMES.get(expected, getattr(expected, "__name__", str(expected)))
    hints = {
        "float": " Write a number, e.g. 1.0e-4 (quoted, it is a string).",
        "int": " Write a whole number, e.g. 8.",
        "bool": " Write true or false, unquoted.",
    }
    return RecipeError(f"{where}: {key}: invalid {name} value: {value!r}.{hints.get(name, '')}")


@functools.cache
def _resolved_types(cls: type) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable forward references: fall back to the raw annotations
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls) if f.init}


# The data source named on the command line replaces the recipe's (either kind: a raw root or a prepared folder).
DATA_SOURCES = ("data_dir", "dataset_dir")


def recipe_parser() -> CommandParser:
    """The command line of ``train.py``: every field of the four sections as ``--key value``."""
    return CommandParser(tuple(SECTIONS.values()), prog="train.py", error_class=RecipeError, add_help=False)


def _given_on_command_line(argv: list[str], name: str) -> bool:
    options = (f"--{name}", f"--{name.replace('_', '-')}")
    return any(arg in options or arg.startswith(tuple(f"{o}=" for o in options)) for arg in argv)


def parse_recipe(argv: list[str]) -> Recipe:
    """``[RECIPE.yaml] [--key value …]`` → :class:`Recipe`; raises :class:`RecipeError` for any user mistake.

    The recipe's values become the parser's defaults (``parser.set_defaults``, as timm's train.py does with its
    YAML), so the command line wins and argparse applies the same types and checks to both.
    """
    source = None
    if argv and not argv[0].startswith("-") and argv[0].endswith((".yaml", ".yml")):
        source, argv = argv[0], argv[1:]
    values = load_recipe_file(source) if source else {}
    if any(_given_on_command_line(argv, name) for name in DATA_SOURCES):
        for name in DATA_SOURCES:
            values.pop(name, None)
    parser = recipe_parser()
    parser.set_defaults(**values)
    *parts, _extras = parser.parse(list(argv))
    recipe = Recipe(*parts, source=source, overrides=list(argv))
    if recipe.model.init_checkpoint is None:  # else the checkpoint decides the architecture (checked when loaded)
        # Unknown backbones and stage names fail here, not after the data is prepared.
        stages = describe_backbone(recipe.model.backbone, recipe.model.model_args).stage_names
        recipe.training.unfreezing_plan((*stages, *CLASSIFIER_STAGES), stages)
    return recipe


def recipe_help() -> str:
    """``train.py --help``: the project's own options by recipe section; TrainingArguments' generic ones are left
    to ``--help_all`` (they are ~150, and would bury these)."""
    from ..cli import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="train.py",
        usage="train.py [RECIPE.yaml] [--key value ...] [--help_all] [--traceback]",
        description="Fine-tune on iNat 2021 (one CPU, one GPU, or many under accelerate launch / torchrun). "
        "RECIPE.yaml holds the sections below (configs/*.yaml); a --key value on the command line wins over it. "
        "A data source given on the command line (--data_dir or --dataset_dir) replaces the recipe's. Any timm "
        "backbone works (--backbone convnext_tiny); `train.py --list_stages BACKBONE` prints its stage names for "
        "frozen_stages / unfreeze_schedule / layer_decay.",
        formatter_class=HelpFormatter,
        add_help=False,
    )
    generic = _field_names(TrainingArguments)
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"recipe section '{section}'")
        own = vars(cls).get("__annotations__", {})
        for field in dataclasses.fields(cls):
            if not field.init or (cls is InatTrainingArguments and field.name in generic and field.name not in own):
                continue
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            group.add_argument(
                f"--{field.name}", metavar=str(field.type), default=default, help=field.metadata.get("help")
            )
    parser.add_argument_group(
        "and every transformers.TrainingArguments option",
        "output_dir, num_train_epochs, per_device_train_batch_size, bf16, seed, report_to, push_to_hub, …: "
        "`train.py --help_all` lists all of them.",
    )
    return parser.format_help()


def recipe_to_dict(recipe: Recipe) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        args = getattr(recipe, section)
        values = args.to_dict() if isinstance(args, InatTrainingArguments) else dataclasses.asdict(args)
        out[section] = {k: v for k, v in values.items() if k not in _SECRET_FIELDS and k in _field_names(type(args))}
    return out


def _redact(argv: list[str]) -> list[str]:
    out, hide = [], False
    for arg in argv:
        out.append("<redacted>" if hide else arg)
        hide = arg.lstrip("-").split("=")[0] in _SECRET_FIELDS
        if hide and "=" in arg:
            out[-1], hide = arg.split("=")[0] + "=<redacted>", False
    return out


def save_recipe(recipe: Recipe, output_dir: str) -> str:
    """Write the resolved recipe (every field, after overrides) to ``output_dir/run_config.yaml``."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, RECIPE_FILE)
    header = [
        "# Resolved inat_hf training recipe: every field after command-line overrides.",
        f"# source: {recipe.source or '(command line only)'}",
        f"# overrides: {' '.join(_redact(recipe.overrides)) or '(none)'}",
        f"# rerun: python scripts/train.py {path}",
    ]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(header) + "\n")
        yaml.dump(recipe_to_dict(recipe), f, Dumper=_RecipeDumper, sort_keys=False, default_flow_style=False)
    return path
