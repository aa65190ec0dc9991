"""YAML recipes: ``train.py RECIPE.yaml [--key value …]`` → a :class:`Recipe`, and back (``run_config.yaml``).

One parser holds every key of every section (:mod:`.arguments`) as ``--key value``; the recipe's values are its
defaults (``parser.set_defaults``, as timm's train.py does with its YAML), so the command line wins.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import os
import re
import types
import typing

import yaml
from transformers.hf_argparser import string_to_bool

from ..cli import CommandParser, OneLineHelp
from ..data.augmentation import AugmentationConfig
from ..models.backbone import CLASSIFIER_STAGES, describe_backbone
from ..models.configuration_inat import InatConfig
from .arguments import (
    AUGMENTATION_FROM_MODEL,
    MODEL_FIELDS_FROM_CALIBRATION,
    MODEL_FIELDS_FROM_DATA,
    InatTrainingArguments,
    ModelRunArguments,
    TrainDataArguments,
)
from .mixing import MixingConfig
from .unfreezing import unfreezing_plan

RECIPE_FILE = "run_config.yaml"
_SECRET_FIELDS = ("hub_token", "push_to_hub_token")  # never written to disk
DATA_SOURCES = ("data_dir", "dataset_dir")  # one named on the command line replaces the recipe's (either kind)
_BAD_VALUE = (ValueError, TypeError, argparse.ArgumentTypeError)


class _RecipeLoader(yaml.SafeLoader):
    """YAML 1.2's booleans (``true``/``false`` only). PyYAML follows YAML 1.1, where ``on``, ``off``, ``yes``,
    ``no``, ``y`` and ``n`` are booleans too, so ``use_cpu: off`` would be false without a word. Here such a word is
    text, read as the command line reads it (``yes``/``no`` are booleans there, ``on``/``off`` are refused)."""


_RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class RecipeError(ValueError):
    """A recipe that cannot be used as written (unknown key, wrong value type): the command exits with 2."""


@dataclasses.dataclass
class Recipe:
    model: dict[str, typing.Any]  # InatConfig keyword arguments
    model_run: ModelRunArguments
    data: TrainDataArguments
    augmentation: AugmentationConfig
    mixing: MixingConfig
    training: InatTrainingArguments
    source: str | None = None  # the YAML file, if any
    overrides: list[str] = dataclasses.field(default_factory=list)  # the command-line arguments after it


# The first screen of `train.py --help`: what a user changes most, and a command that runs.
MOST_CHANGED = ("--dataset_dir", "--output_dir", "--backbone", "--pretrained_weights", "--image_size")
MOST_CHANGED += ("--num_train_epochs", "--learning_rate", "--per_device_train_batch_size", "--resume_from_checkpoint")
# (inherited TrainingArguments fields of MOST_CHANGED: the short help lists them too)
TRAINING_MOST = ("output_dir", "num_train_epochs", "per_device_train_batch_size", "resume_from_checkpoint")
EXAMPLE = "train.py configs/demo.yaml --dataset_dir runs/demo/prepared --output_dir runs/my_model --num_train_epochs 4"


def recipe_parser(help_all: bool = True) -> CommandParser:
    """``train.py``'s parser; ``help_all=False``: of ``TrainingArguments`` only the options this project declares or
    sets (``train.py --help``; ``--help_all`` shows all ~150)."""
    usage = "train.py [RECIPE.yaml] [--key value ...] [--help_all] [--traceback] | --list_stages BACKBONE"
    about = "Fine-tune on iNat 2021: RECIPE.yaml holds the sections below (configs/*.yaml), --key value wins over it."
    if not help_all:
        about = f"{about}\n\nMost changed:\n  {' '.join(MOST_CHANGED[:5])}\n  {' '.join(MOST_CHANGED[5:])}"
        about += f"\nExample:\n  {EXAMPLE}"
    parser = CommandParser([], prog="train.py", usage=usage, description=about, add_help=False,
                           error_class=RecipeError, debug_flag="--traceback",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter if help_all else OneLineHelp)  # fmt: skip
    parser.add_config(InatConfig, "model", "InatConfig's keyword arguments, then the weights",
                      MODEL_FIELDS_FROM_DATA + MODEL_FIELDS_FROM_CALIBRATION)  # fmt: skip
    parser.add_dataclass(ModelRunArguments, "model")
    parser.add_dataclass(TrainDataArguments, "data", "--data_dir or --dataset_dir replaces the recipe's source")
    parser.add_config(AugmentationConfig, "augmentation", "image_size/mean/std: the model's", AUGMENTATION_FROM_MODEL)
    parser.add_dataclass(MixingConfig, "mixing", "Mixup / CutMix")
    training = ("training", "TrainingArguments and the project's options (all ~150: --help_all)")
    if help_all:
        parser.add_dataclass(InatTrainingArguments, *training)
    else:  # the fields the project declares, and the TrainingArguments a user changes most
        parser.add_config(InatTrainingArguments, *training, also=TRAINING_MOST)
    return parser


def _typed(value: typing.Any, hint: typing.Any) -> typing.Any:
    """A YAML value as the option of annotation ``hint`` takes it, else ValueError. YAML types the values already;
    text (YAML 1.1 reads ``1e-4`` as text) is read as on the command line, and a lone value fills a list."""
    args, origin = typing.get_args(hint), typing.get_origin(hint) or hint
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        for member in members:
            with contextlib.suppress(*_BAD_VALUE):
                return _typed(value, member)
        return _typed(value, members[0])  # none takes it: the first one's error
    if value is None:
        raise ValueError("null is not a value of this key; leave the key out for its default")
    if origin is list:
        return [_typed(v, args[0]) for v in (value if isinstance(value, list) else [value])]
    if hint is typing.Any or not isinstance(origin, type):  # Literal (its dataclass checks the choice), Any
        return value
    if isinstance(value, origin) and (origin is bool or not isinstance(value, bool)):
        return value
    with contextlib.suppress(*_BAD_VALUE):
        if isinstance(value, int) and not isinstance(value, bool) and origin is float:
            return float(value)
        if isinstance(value, str) and origin is not str:
            return string_to_bool(value) if origin is bool else origin(value)
    raise ValueError(f"invalid {origin.__name__} value: {value!r}")


def _unknown_key_error(path: str, section: str | None, key: str, sections: dict[str, list[str]]) -> RecipeError:
    where = f"section {section!r} of {path}" if section else path
    owners = " or ".join(repr(s) for s, keys in sections.items() if key in keys)
    if owners:
        return RecipeError(f"Key {key!r} in {where} belongs in section {owners}.")
    valid = sorted(sections[section] if section else sections)
    hint = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else f". Valid keys: {', '.join(valid)}."
    return RecipeError(f"Unknown key {key!r} in {where}{suggestion}")


def load_recipe_file(path: str, parser: CommandParser | None = None) -> dict[str, typing.Any]:
    """A recipe YAML as ``{key: value}``, every key and the type of every value checked."""
    parser = parser or recipe_parser()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Recipe file not found: {path}")
    with open(path, encoding="utf-8") as f:
        raw = yaml.load(f, Loader=_RecipeLoader) or {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe maps sections {list(parser.sections)} to keys, not a list or text.")
    values: dict[str, typing.Any] = {}
    for section, items in raw.items():
        if section not in parser.sections:
            raise _unknown_key_error(path, None, section, parser.sections)
        if not isinstance(items, dict):
            raise RecipeError(f"{path}: section {section!r} must be a mapping, got {type(items).__name__}.")
        for key, value in items.items():
            if key not in parser.sections[section]:
                raise _unknown_key_error(path, section, key, parser.sections)
            try:
                values[key] = _typed(value, parser.options[key])
            except _BAD_VALUE as error:
                raise RecipeError(f"{path}: {section}.{key}: {error}") from None
    return values


def parse_recipe(argv: list[str]) -> Recipe:
    """``[RECIPE.yaml] [--key value …]`` → :class:`Recipe`; raises :class:`RecipeError` for any user mistake."""
    source = argv[0] if argv and not argv[0].startswith("-") and argv[0].endswith((".yaml", ".yml")) else None
    argv = list(argv[1:] if source else argv)
    parser = recipe_parser()
    if source:
        values = load_recipe_file(source, parser)
        if {arg.split("=")[0].lstrip("-").replace("-", "_") for arg in argv} & set(DATA_SOURCES):
            values = {k: v for k, v in values.items() if k not in DATA_SOURCES}
        parser.set_defaults(**values)
    model_run, data, mixing, training, extras = parser.parse(argv)
    model = parser.config_kwargs(InatConfig, extras)
    preprocessing = {a: model[m] for a, m in AUGMENTATION_FROM_MODEL.items() if model[m] is not None}
    try:
        if isinstance(model["model_args"], str):  # JSON text from the command line: keep the dict it stands for
            model["model_args"] = json.loads(model["model_args"] or "null")
        if model_run.init_checkpoint is None:  # else the checkpoint decides the architecture (checked when loaded)
            # Unknown backbones, bad model values and stage names fail here, not after the data is prepared.
            config = InatConfig(**model)
            preprocessing = {a: getattr(config, m) for a, m in AUGMENTATION_FROM_MODEL.items()}
            stages = describe_backbone(config.backbone, config.backbone_kwargs).stage_names
            unfreezing_plan(training.frozen_stages, training.unfreeze_schedule, (*stages, *CLASSIFIER_STAGES), stages)
        augmentation = AugmentationConfig(**parser.config_kwargs(AugmentationConfig, extras), **preprocessing)
    except ValueError as error:
        raise RecipeError(str(error)) from error
    return Recipe(model, model_run, data, augmentation, mixing, training, source=source, overrides=argv)


def recipe_to_dict(recipe: Recipe) -> dict[str, dict[str, typing.Any]]:
    sections, training = recipe_parser().sections, recipe.training.to_dict()
    augmentation = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(recipe.augmentation).items()}
    return {
        "model": {**recipe.model, **dataclasses.asdict(recipe.model_run)},
        "data": dataclasses.asdict(recipe.data),
        "augmentation": {k: augmentation[k] for k in sections["augmentation"]},
        "mixing": dataclasses.asdict(recipe.mixing),
        "training": {k: training[k] for k in sections["training"] if k not in _SECRET_FIELDS},
    }


def _redact(argv: list[str]) -> list[str]:
    secret = {f"--{name}" for name in _SECRET_FIELDS}
    hide = {arg: f"{arg.split('=')[0]}=<redacted>" for arg in argv if "=" in arg and arg.split("=")[0] in secret}
    return ["<redacted>" if prev in secret else hide.get(arg, arg) for prev, arg in zip(["", *argv], argv)]


def save_recipe(recipe: Recipe, output_dir: str) -> str:
    """Write the resolved recipe (every key, after overrides) to ``output_dir/run_config.yaml``."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, RECIPE_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# Resolved inat_hf training recipe: every key after command-line overrides.\n"
                f"# source: {recipe.source or '(command line only)'}\n"
                f"# overrides: {' '.join(_redact(recipe.overrides)) or '(none)'}\n"
                f"# rerun: python scripts/train.py {path}\n")  # fmt: skip
        yaml.safe_dump(recipe_to_dict(recipe), f, sort_keys=False, default_flow_style=False)
    return path
