"""YAML recipes: ``train.py RECIPE.yaml [--key value …]`` → a :class:`Recipe`, and back to YAML.

A recipe has the sections ``model``, ``data``, ``augmentation``, ``mixing`` and ``training`` (what each is:
:mod:`inat_hf.training.arguments`). ``model`` and ``augmentation`` are read off ``InatConfig`` and
``AugmentationConfig`` themselves, so a new field there is at once a recipe key, a command-line option
``--key value`` (``--section.key`` for ``interpolation``, which both have), a line of ``run_config.yaml`` and of
``--help``. The recipe's values become the parser's defaults (``parser.set_defaults``, as timm's train.py does with
its YAML), so the command line wins. Unknown keys are errors with a suggestion. Rerunning the saved
``run_config.yaml`` (:func:`save_recipe`) reproduces the run.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import json
import os
import types
import typing
from typing import Any

import yaml
from transformers import TrainingArguments

from ..cli import CommandParser
from ..data.augmentation import AugmentationConfig
from ..models.backbone import CLASSIFIER_STAGES, describe_backbone
from ..models.configuration_inat import InatConfig
from .arguments import (
    AUGMENTATION_FROM_MODEL,
    MODEL_FIELDS_FROM_DATA,
    DataArguments,
    MixingConfig,
    ModelRunArguments,
    TrainingOptions,
    _help,
    recipe_knobs,
    shared_keys,
)

RECIPE_FILE = "run_config.yaml"
# Never written to disk: credentials.
_SECRET_FIELDS = ("hub_token", "push_to_hub_token")


@dataclasses.dataclass
class InatTrainingArguments(TrainingOptions, TrainingArguments):
    """``transformers.TrainingArguments`` plus :class:`~.arguments.TrainingOptions`, with the defaults this project
    needs: evaluation and checkpoints once per epoch, the best one restored at the end."""

    eval_strategy: str = _help("When to evaluate.", default="epoch")
    save_strategy: str = _help("When to save checkpoints.", default="epoch")
    logging_steps: float = _help("Log every N steps.", default=10)
    save_total_limit: int | None = _help("Keep at most N checkpoints (the best is always kept).", default=2)
    load_best_model_at_end: bool = _help("Restore the best checkpoint at the end.", default=True)
    metric_for_best_model: str | None = _help("Metric that picks the best checkpoint.", default="top1")
    dataloader_drop_last: bool = _help(
        "Drop the last incomplete training batch (mixup needs even batches; BatchNorm needs > 1).", default=True
    )
    dataloader_num_workers: int = _help("Data loading processes.", default=2)
    lr_scheduler_type: str = _help("LR schedule (transformers names).", default="cosine_with_restarts")
    logging_nan_inf_filter: bool = _help(
        "transformers' filter replaces NaN/Inf losses in the logs (a host sync on every step); off, since "
        "InatTrainer stops on the first non-finite loss anyway.",
        default=False,
    )

    def __post_init__(self):
        super().__post_init__()
        if self.label_smoothing_factor:
            raise ValueError(
                "Set label smoothing with the model's label_smoothing (the focal loss applies it); "
                f"label_smoothing_factor={self.label_smoothing_factor} would smooth the targets a second time."
            )
        self.check_options()


class RecipeError(ValueError):
    """A recipe file that cannot be used as written (unknown key, wrong value type): the command exits with 2."""


@dataclasses.dataclass
class Recipe:
    model: dict[str, Any]  # InatConfig keyword arguments
    model_run: ModelRunArguments
    data: DataArguments
    augmentation: AugmentationConfig
    mixing: MixingConfig
    training: InatTrainingArguments
    source: str | None = None  # the YAML file, if any
    overrides: list[str] = dataclasses.field(default_factory=list)  # the command-line arguments after it


# ---------------------------------------------------------------------------------------------- the sections
def _fields(cls: type, skip=()) -> list[dataclasses.Field]:
    own = inspect.get_annotations(cls) if cls is InatConfig else None  # not PreTrainedConfig's generic fields
    return [f for f in dataclasses.fields(cls) if f.init and f.name not in skip and (own is None or f.name in own)]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError:  # PreTrainedConfig's annotations name torch; InatConfig's own are real types
        return {f.name: f.type for f in dataclasses.fields(cls)}


# section -> the classes that hold its keys (parsed in this order); InatConfig and AugmentationConfig are read
# through generated parser dataclasses (their types are not all argparse types), the others as they are.
_SOURCES: dict[str, tuple[tuple[type, tuple[str, ...]], ...]] = {
    "model": ((InatConfig, MODEL_FIELDS_FROM_DATA), (ModelRunArguments, ())),
    "data": ((DataArguments, ()),),
    "augmentation": ((AugmentationConfig, tuple(AUGMENTATION_FROM_MODEL)),),
    "mixing": ((MixingConfig, ()),),
    "training": ((InatTrainingArguments, ()),),
}
_GENERATED = (InatConfig, AugmentationConfig)
SECTIONS: dict[str, dict[str, Any]] = {  # section -> {key: annotation}
    section: {f.name: _hints(cls)[f.name] for cls, skip in sources for f in _fields(cls, skip)}
    for section, sources in _SOURCES.items()
}
_SHARED = shared_keys(SECTIONS)


def _dest(section: str, key: str) -> str:
    """The parser's name of a key: the key itself, or ``section_key`` for a key two sections share."""
    return f"{section}_{key}" if key in _SHARED else key


def _cli_type(annotation: Any) -> Any:
    """An annotation of the config classes as ``HfArgumentParser`` takes it (X, X | None, list[X], Literal): a tuple
    is a list on the command line, a mapping is JSON text, ``float | tuple[float, ...]`` is a list of floats."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        sequences = [m for m in members if typing.get_origin(m) in (list, tuple)]
        if any(m is dict or typing.get_origin(m) is dict for m in members):
            cli = str
        else:
            cli = _cli_type(sequences[0] if sequences else members[0])
        return cli | None if len(members) < len(args) else cli
    if origin is tuple:
        return list[args[0]]
    if origin is dict or annotation is dict:
        return str
    return annotation


def _from_cli(key: str, value: Any, annotation: Any) -> Any:
    """Undo :func:`_cli_type` on a command-line value (a recipe's value passes unchanged)."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    members = typing.get_args(annotation) if union else (annotation,)
    if isinstance(value, str) and any(m is dict or typing.get_origin(m) is dict for m in members):
        try:
            value = json.loads(value) if value.strip() else None
        except json.JSONDecodeError as error:
            raise RecipeError(f"--{key} must be a JSON object, e.g. '{{\"img_size\": 64}}'; got {value!r}.") from error
    if isinstance(value, list) and len(value) == 1 and any(m in (int, float) for m in members):
        value = value[0]  # `--color_jitter 0.3`: the scalar form of `float | tuple[float, ...]`
    return value


def _parser_dataclass(section: str, cls: type, skip: tuple[str, ...]) -> type:
    helps, specs = {k.name: k.help for k in recipe_knobs()[section]}, []
    for f in _fields(cls, skip):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        cli = _cli_type(_hints(cls)[f.name])
        metadata = {"help": helps.get(f.name, ""), "aliases": [f"--{section}.{f.name}"]}
        # HfArgumentParser takes a list option's default only from a factory, a boolean's only from a default
        factory = functools.partial(lambda d: list(d) if isinstance(d, tuple) else d, default)
        kwargs = {"default_factory": factory} if typing.get_origin(cli) is list else {"default": default}
        specs.append((_dest(section, f.name), cli, dataclasses.field(metadata=metadata, **kwargs)))
    return dataclasses.make_dataclass(f"{cls.__name__}Recipe", specs)


def _parser_classes() -> list[tuple[str, type, type]]:
    """(section, source class, the class the parser fills) in parsing order."""
    return [
        (section, cls, _parser_dataclass(section, cls, skip) if cls in _GENERATED else cls)
        for section, sources in _SOURCES.items()
        for cls, skip in sources
    ]


def _unknown_key_error(path: str, section: str | None, key: str, valid: set[str]) -> RecipeError:
    where = f"section {section!r} of {path}" if section else path
    owners = " or ".join(repr(s) for s, keys in SECTIONS.items() if key in keys)
    if owners:
        return RecipeError(f"Key {key!r} in {where} belongs in section {owners}.")
    hint = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else f". Valid keys: {', '.join(sorted(valid))}."
    return RecipeError(f"Unknown key {key!r} in {where}{suggestion}")


def load_recipe_file(path: str) -> dict[str, Any]:
    """Read a recipe YAML into ``{parser name: value}``, checking every key (the values: :func:`parse_recipe`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Recipe file not found: {path}")
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections {list(SECTIONS)}, got a {type(raw).__name__}.")
    values: dict[str, Any] = {}
    for section, items in raw.items():
        if section not in SECTIONS:
            raise _unknown_key_error(path, None, section, set(SECTIONS))
        if not isinstance(items, dict):
            raise RecipeError(f"{path}: section {section!r} must be a mapping, got {type(items).__name__}.")
        for key, value in items.items():
            if key not in SECTIONS[section]:
                raise _unknown_key_error(path, section, key, set(SECTIONS[section]))
            values[_dest(section, key)] = value
    return values


class _RecipeDumper(yaml.SafeDumper):
    """Writes AugmentationConfig's ``(min, max)`` pairs as lists."""


_RecipeDumper.add_representer(tuple, yaml.SafeDumper.represent_list)


def _as_arguments(values: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """A recipe's values as command-line arguments, so that argparse converts and checks them exactly as it does the
    command line's; what no argument can spell (None, an empty list) is returned apart, as parser defaults."""

    def text(value: Any) -> str:
        return (
            json.dumps(value)
            if isinstance(value, dict)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )

    argv, defaults = [], {}
    for dest, value in values.items():
        if value is None or value == []:
            defaults[dest] = value
        elif isinstance(value, list):
            argv += [f"--{dest}", *map(text, value)]
        else:
            argv.append(f"--{dest}={text(value)}")  # `=`: a value that starts with '-' is not an option
    return argv, defaults


# The data source named on the command line replaces the recipe's (either kind: a raw root or a prepared folder).
DATA_SOURCES = ("data_dir", "dataset_dir")


def recipe_parser() -> CommandParser:
    """The command line of ``train.py``: every key of every section as ``--key value``."""
    classes = tuple(parser_cls for _, _, parser_cls in _parser_classes())
    return CommandParser(classes, prog="train.py", error_class=RecipeError, add_help=False)


def _given_on_command_line(argv: list[str], name: str) -> bool:
    options = (f"--{name}", f"--{name.replace('_', '-')}")
    return any(arg in options or arg.startswith(tuple(f"{o}=" for o in options)) for arg in argv)


def parse_recipe(argv: list[str]) -> Recipe:
    """``[RECIPE.yaml] [--key value …]`` → :class:`Recipe`; raises :class:`RecipeError` for any user mistake."""
    source = None
    if argv and not argv[0].startswith("-") and argv[0].endswith((".yaml", ".yml")):
        source, argv = argv[0], argv[1:]
    for key in _SHARED:
        if _given_on_command_line(argv, key):
            spelled = " or ".join(f"--{s}.{key}" for s, keys in SECTIONS.items() if key in keys)
            raise RecipeError(f"--{key} is a key of two sections: write {spelled}.")
    values = load_recipe_file(source) if source else {}
    if any(_given_on_command_line(argv, name) for name in DATA_SOURCES):
        for name in DATA_SOURCES:
            values.pop(name, None)
    parser = recipe_parser()
    recipe_argv, defaults = _as_arguments(values)
    parser.set_defaults(**defaults)
    try:  # the recipe's values become the defaults of the command line, converted and checked as it is
        parser.set_defaults(**vars(parser.parse_args(recipe_argv)))
    except RecipeError as error:
        raise RecipeError(f"{source}: {error}") from None
    *parsed, _extras = parser.parse(list(argv))
    objects = {cls: filled for (_, cls, _), filled in zip(_parser_classes(), parsed, strict=True)}
    model, augmentation = (
        {k: _from_cli(k, getattr(objects[cls], _dest(s, k)), _hints(cls)[k]) for k in SECTIONS[s] if k in _hints(cls)}
        for s, cls in (("model", InatConfig), ("augmentation", AugmentationConfig))
    )
    model_run = objects[ModelRunArguments]
    preprocessing = {a: model[m] for a, m in AUGMENTATION_FROM_MODEL.items() if model[m] is not None}
    try:
        if model_run.init_checkpoint is None:  # else the checkpoint decides the architecture (checked when loaded)
            # Unknown backbones, bad model values and stage names fail here, not after the data is prepared.
            config = InatConfig(**model)
            preprocessing = {a: getattr(config, m) for a, m in AUGMENTATION_FROM_MODEL.items()}
            stages = describe_backbone(config.backbone, config.backbone_kwargs).stage_names
            objects[InatTrainingArguments].unfreezing_plan((*stages, *CLASSIFIER_STAGES), stages)
        augmentation = AugmentationConfig(**augmentation, **preprocessing)
    except ValueError as error:
        raise RecipeError(str(error)) from error
    return Recipe(
        model=model,
        model_run=model_run,
        data=objects[DataArguments],
        augmentation=augmentation,
        mixing=objects[MixingConfig],
        training=objects[InatTrainingArguments],
        source=source,
        overrides=list(argv),
    )


def recipe_to_dict(recipe: Recipe) -> dict[str, dict[str, Any]]:
    augmentation = dataclasses.asdict(recipe.augmentation)
    training = recipe.training.to_dict()
    return {
        "model": {**recipe.model, **dataclasses.asdict(recipe.model_run)},
        "data": dataclasses.asdict(recipe.data),
        "augmentation": {k: augmentation[k] for k in SECTIONS["augmentation"]},
        "mixing": dataclasses.asdict(recipe.mixing),
        "training": {k: training[k] for k in SECTIONS["training"] if k not in _SECRET_FIELDS},
    }


def _redact(argv: list[str]) -> list[str]:
    out, hide = [], False
    for arg in argv:
        out.append("<redacted>" if hide else arg)
        hide = arg.lstrip("-").split("=")[0] in _SECRET_FIELDS
        if hide and "=" in arg:
            out[-1], hide = arg.split("=")[0] + "=<redacted>", False
    return out


def save_recipe(recipe: Recipe, output_dir: str) -> str:
    """Write the resolved recipe (every key, after overrides) to ``output_dir/run_config.yaml``."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, RECIPE_FILE)
    header = [
        "# Resolved inat_hf training recipe: every key after command-line overrides.",
        f"# source: {recipe.source or '(command line only)'}",
        f"# overrides: {' '.join(_redact(recipe.overrides)) or '(none)'}",
        f"# rerun: python scripts/train.py {path}",
    ]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(header) + "\n")
        yaml.dump(recipe_to_dict(recipe), f, Dumper=_RecipeDumper, sort_keys=False, default_flow_style=False)
    return path
