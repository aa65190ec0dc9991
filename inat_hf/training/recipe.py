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
import dataclasses
import difflib
import os
import types
import typing
from typing import Any

import yaml
from transformers import HfArgumentParser

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


def _unknown_key_error(path: str, section: str | None, key: str, valid: set[str]) -> ValueError:
    where = f"section {section!r} of {path}" if section else path
    hint = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else f". Valid keys: {', '.join(sorted(valid))}."
    return ValueError(f"Unknown key {key!r} in {where}{suggestion}")


def load_recipe_file(path: str) -> dict[str, Any]:
    """Read a recipe YAML into ``{field: value}`` (flat), checking every key."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Recipe file not found: {path}")
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe is a mapping of sections {list(SECTIONS)}, got a {type(raw).__name__}.")
    owner = _section_of_key()
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ValueError(f"{path}: section {key!r} must be a mapping, got {type(value).__name__}.")
            valid = _field_names(SECTIONS[key])
            for name, item in value.items():
                if name not in valid:
                    raise _unknown_key_error(path, key, name, valid)
                flat[name] = item
        elif key in owner:
            flat[key] = value
        else:
            raise _unknown_key_error(path, None, key, set(owner) | set(SECTIONS))
    return flat


def _base_type(annotation: Any) -> Any:
    """``float | None`` → ``float``; ``list[int]`` → ``list[int]``; other unions → first non-None member."""
    if isinstance(annotation, str):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if args else annotation
    return annotation


def _coerce(value: Any, annotation: Any) -> Any:
    """Make YAML scalars fit the field type: PyYAML reads ``1e-4`` as a string (YAML 1.1 needs ``1.0e-4``)."""
    if value is None:
        return None
    kind = _base_type(annotation)
    origin = typing.get_origin(kind)
    if origin is list:
        (item_type,) = typing.get_args(kind) or (Any,)
        values = value if isinstance(value, list) else [value]
        return [_coerce(v, item_type) for v in values]
    if kind is float and isinstance(value, (str, int)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if kind is bool and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", "false", "no", "0"):
            return lowered in ("true", "yes", "1")
    return value


def _resolved_types(cls: type) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable forward references: fall back to the raw annotations
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls) if f.init}


def _explicit_cli_values(parser: HfArgumentParser, args: list[str]) -> dict[str, Any]:
    """Parse ``args`` and return only the options actually given (argparse applies the types)."""
    for action in parser._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS
            action.required = False
    return vars(parser.parse_args(args))


def parse_recipe(argv: list[str]) -> Recipe:
    """``[RECIPE.yaml] [--key value …]`` → :class:`Recipe`."""
    source = None
    if argv and not argv[0].startswith("-") and argv[0].endswith((".yaml", ".yml")):
        source, argv = argv[0], argv[1:]
    values = load_recipe_file(source) if source else {}
    overrides = _explicit_cli_values(HfArgumentParser(tuple(SECTIONS.values())), list(argv))
    values.update(overrides)
    parts = []
    for cls in SECTIONS.values():
        types_of = _resolved_types(cls)
        kwargs = {k: _coerce(v, types_of[k]) for k, v in values.items() if k in types_of}
        parts.append(cls(**kwargs))
    recipe = Recipe(*parts, source=source, overrides=list(argv))
    if recipe.model.init_checkpoint is None:  # else the checkpoint decides the architecture (checked when loaded)
        # Unknown backbones and stage names fail here, not after the data is prepared.
        stages = describe_backbone(recipe.model.backbone, recipe.model.model_args).stage_names
        recipe.training.unfreezing_plan((*stages, *CLASSIFIER_STAGES), stages)
    return recipe


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
        yaml.safe_dump(recipe_to_dict(recipe), f, sort_keys=False, default_flow_style=False)
    return path
