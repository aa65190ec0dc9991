"""The recipe's sections (``configs/*.yaml``) and the project's own run options, free of torch and transformers.

``model`` is ``InatConfig``'s keyword arguments (less :data:`MODEL_FIELDS_FROM_DATA`) plus
:class:`ModelRunArguments`; ``augmentation`` is ``AugmentationConfig`` (less :data:`AUGMENTATION_FROM_MODEL`: one
``image_size``, mean and std for training and evaluation, the model's); ``data`` is :class:`DataArguments`;
``mixing`` is :class:`MixingConfig`; ``training`` is ``TrainingArguments`` plus :class:`TrainingOptions`
(``inat_hf.training.recipe.InatTrainingArguments``). Nothing here imports torch, so ``train.py --help``
(:func:`recipe_help`) renders at once: it reads ``InatConfig`` from its source file with :mod:`ast` (a test
checks the reading against the class's signature).
"""

from __future__ import annotations

import argparse
import ast
import collections
import dataclasses
import functools
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ..data.augmentation import AugmentationConfig
from ..data.source import DataArguments as SourceArguments

# Set from the prepared dataset (label set, rank, class frequencies), never from the recipe.
MODEL_FIELDS_FROM_DATA = ("label_rank", "taxonomy", "focal_alpha")
# AugmentationConfig field -> the InatConfig field that sets it: the train crop and the eval preprocessing share them.
AUGMENTATION_FROM_MODEL = {"image_size": "image_size", "mean": "image_mean", "std": "image_std"}
CONFIGURATION_INAT = Path(__file__).resolve().parents[1] / "models" / "configuration_inat.py"

# How to see a backbone's stage names (they come from timm's group_matcher: stem, layer1..layer4 for ResNets).
LIST_STAGES_HINT = "list a backbone's stages with `python scripts/train.py --list_stages BACKBONE`"


def _help(text: str, **kwargs):
    return dataclasses.field(metadata={"help": text}, **kwargs)


@dataclasses.dataclass
class ModelRunArguments:
    """The ``model`` section's keys that are not part of the saved model config: where the weights start from."""

    pretrained_weights: str | None = _help(
        "ImageNet backbone weights: a local .safetensors/.pth file, or a timm/Hub name (needs the network "
        "or the HF cache). None = random init.",
        default=None,
    )
    init_checkpoint: str | None = _help(
        "Start from this saved inat_hf checkpoint (dir or Hub id) instead of a fresh head.", default=None
    )
    ignore_mismatched_sizes: bool = _help(
        "With --init_checkpoint: re-create the classifier if the checkpoint's label set differs.", default=False
    )
    class_weights: Literal["none", "inverse_sqrt_frequency", "inverse_frequency"] = _help(
        "Focal-loss alpha (InatConfig.focal_alpha) from the training label counts, normalised to mean 1.",
        default="none",
    )


@dataclasses.dataclass
class DataArguments(SourceArguments):
    """Where the data comes from (:class:`inat_hf.data.source.DataArguments`) and what of it the run uses."""

    train_split: str = _help("Split to train on.", default="train")
    eval_split: str | None = _help("Split to evaluate on ('none': no evaluation).", default="val")
    max_train_samples: int | None = _help("Use only the first N training images (quick runs).", default=None)
    max_eval_samples: int | None = _help("Use only the first N evaluation images.", default=None)
    dataset_name: str | None = _help(
        "What the data is, for the model card (e.g. 'iNaturalist 2021 (Animalia, train_mini)'); the card names "
        "iNaturalist 2021 only when this says so.",
        default=None,
    )

    def __post_init__(self):
        super().__post_init__()
        if self.eval_split is not None and self.eval_split.strip().lower() in ("", "none"):
            self.eval_split = None  # `--eval_split none` on the command line
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive number of images, got {value}.")


@dataclasses.dataclass
class MixingConfig:
    """Mixup / CutMix (timm ``Mixup``, on the device inside the Trainer) with a scheduled probability."""

    mixup_alpha: float = _help("Mixup beta(α, α); 0 = no mixup.", default=0.2)
    cutmix_alpha: float = _help("CutMix beta(α, α); 0 = no cutmix.", default=1.0)
    mix_prob: float = _help("Probability that a batch is mixed at the start of training.", default=1.0)
    mix_switch_prob: float = _help("Probability of cutmix rather than mixup when both are on.", default=0.5)
    mix_schedule: Literal["constant", "linear", "cosine"] = _help(
        "How the mix probability moves from mix_prob to mix_prob_final over training.", default="linear"
    )
    mix_prob_final: float = _help("Mix probability at the end of the schedule.", default=0.3)
    mix_off_epochs: int = _help("Turn mixing off for the last N epochs (clean fine-tuning).", default=2)

    def __post_init__(self):
        for name in ("mix_prob", "mix_prob_final", "mix_switch_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name} is a probability in [0, 1], got {value}.")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError(f"mixup_alpha/cutmix_alpha must be >= 0, got {self.mixup_alpha}/{self.cutmix_alpha}.")
        if self.mix_off_epochs < 0:
            raise ValueError(f"--mix_off_epochs must be >= 0, got {self.mix_off_epochs}.")
        if self.mix_schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"mix_schedule must be constant, linear or cosine, got {self.mix_schedule!r}.")

    @property
    def enabled(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and max(self.mix_prob, self.mix_prob_final) > 0


@dataclasses.dataclass
class TrainingOptions:
    """The project's training options; ``InatTrainingArguments`` adds them to ``transformers.TrainingArguments``."""

    learning_rate: float = _help("Learning rate of the head and attention (the classifier LR).", default=1e-4)
    backbone_learning_rate: float = _help(
        "Learning rate of the deepest backbone stage (layer4 of a ResNet).", default=1e-5
    )
    layer_decay: float = _help(
        "Layer-wise LR decay: backbone stage k below the deepest gets backbone_learning_rate × layer_decay^k "
        "(1 = flat).",
        default=1.0,
    )
    weight_decay: float = _help("AdamW weight decay (never on norm weights and biases).", default=0.05)
    frozen_stages: list[str] = _help(
        "Stages frozen at the start: stage names of the backbone (timm's groups: stem, layer1..layer4 for a ResNet, "
        "stem, stages.0..3 for a ConvNeXt; " + LIST_STAGES_HINT + "), attention, head, 'backbone' (every backbone "
        "stage) or an index into the backbone stages (-1 = deepest). Those not in unfreeze_schedule stay frozen.",
        default_factory=lambda: ["backbone"],
    )
    unfreeze_schedule: str = _help(
        "Progressive unfreezing 'stage:epoch,…' (epochs count from 0; stages as in frozen_stages, 'backbone' = every "
        "frozen backbone stage not named before), e.g. '-1:1,-2:2,-3:3' (= layer4:1,layer3:2,layer2:3 on a ResNet).",
        default="-1:1,-2:2,-3:3",
    )
    channels_last: bool = _help("Use channels_last memory format (faster convs with bf16/AMP).", default=False)
    early_stopping_patience: int | None = _help(
        "Stop after this many evaluations without improvement of metric_for_best_model (None = off).", default=None
    )
    early_stopping_threshold: float = _help("Minimum improvement that counts for early stopping.", default=0.0)
    ema_decay: float = _help("EMA of weights (timm ModelEmaV3) with this decay; 0 = off.", default=0.0)
    eval_tta_views: int = _help("Views of test-time augmentation during evaluation (1 = plain).", default=1)
    augmentation_seed: int | None = _help(
        "Seed of per-image augmentation (a function of seed, epoch, index: exact resumes); None = seed.", default=None
    )
    geo_prior: str | None = _help(
        "A location/date prior (scripts/train_geo_prior.py): evaluations also log fused metrics, as evaluate.py "
        "--geo_prior (eval_fused_top1, …, eval_prior_top1, …).",
        default=None,
    )

    def check_options(self) -> None:
        if self.backbone_learning_rate < 0 or not 0 < self.layer_decay <= 1:
            raise ValueError(
                f"Need backbone_learning_rate >= 0 and 0 < layer_decay <= 1, got {self.backbone_learning_rate} and "
                f"{self.layer_decay}."
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}.")
        if self.eval_tta_views < 1:
            raise ValueError(f"eval_tta_views must be >= 1, got {self.eval_tta_views}.")
        self.parsed_unfreeze_schedule()  # raises on syntax errors / unknown stages

    def parsed_unfreeze_schedule(self) -> dict[str, int]:
        """``'layer4:1,-2:2'`` → ``{"layer4": 1, "-2": 2}``: syntax only; stage references are resolved against the
        model's stages by :meth:`unfreezing_plan`."""
        schedule: dict[str, int] = {}
        text = (self.unfreeze_schedule or "").strip()
        if text.lower() in ("", "none"):
            return schedule
        for term in text.split(","):
            stage, sep, epoch = term.strip().partition(":")
            if not sep or not stage.strip() or not epoch.strip().lstrip("-").isdigit():
                raise ValueError(
                    f"Invalid unfreeze_schedule term {term!r}: expected 'stage:epoch', e.g. 'layer4:1,layer3:2'."
                )
            stage = stage.strip()
            if int(epoch) < 0:
                raise ValueError(f"unfreeze_schedule epoch for {stage!r} must be >= 0, got {epoch}.")
            schedule[stage] = int(epoch)
        return schedule

    def unfreezing_plan(
        self, stage_names: Sequence[str], backbone_stages: Sequence[str]
    ) -> tuple[list[str], dict[str, int]]:
        """``frozen_stages`` and ``unfreeze_schedule`` as stage names of a model (``model.stage_names``).

        A reference is a stage name, ``'backbone'`` (every backbone stage) or an integer index into the backbone
        stages (``-1`` = the deepest), so one recipe fits every backbone. In the schedule, ``backbone:E`` unfreezes
        at epoch E every frozen backbone stage that no other term names.
        """
        valid = (
            f"valid: {', '.join(stage_names)}, 'backbone' (every backbone stage) or an index into the "
            f"{len(backbone_stages)} backbone stages (-1 = {backbone_stages[-1]!r}); {LIST_STAGES_HINT}"
        )

        def resolve(ref: str) -> list[str] | None:
            ref = str(ref).strip()
            if ref == "backbone":
                return list(backbone_stages)
            if re.fullmatch(r"-?\d+", ref):
                index = int(ref)
                return [backbone_stages[index]] if -len(backbone_stages) <= index < len(backbone_stages) else None
            return [ref] if ref in stage_names else None

        frozen: list[str] = []
        unknown = []
        for ref in self.frozen_stages:
            names = resolve(ref)
            if names is None:
                unknown.append(ref)
            else:
                frozen.extend(n for n in names if n not in frozen)
        if unknown:
            raise ValueError(f"Unknown stage name(s) {unknown} in frozen_stages; {valid}.")
        schedule: dict[str, int] = {}
        rest_epoch = None
        for ref, epoch in self.parsed_unfreeze_schedule().items():
            if ref == "backbone":
                rest_epoch = epoch
                continue
            names = resolve(ref)
            if names is None:
                raise ValueError(f"Unknown stage name {ref!r} in unfreeze_schedule; {valid}.")
            (stage,) = names
            if stage not in frozen:
                raise ValueError(f"unfreeze_schedule unfreezes {ref!r}, which is not in frozen_stages {frozen}.")
            schedule[stage] = epoch
        if rest_epoch is not None:
            for stage in frozen:
                if stage in backbone_stages and stage not in schedule:
                    schedule[stage] = rest_epoch
        return frozen, schedule


# ---------------------------------------------------------------------------------------------- the help
class Knob(NamedTuple):
    """One recipe key as ``--help`` shows it: annotation and default as written (None: not worth showing), help."""

    name: str
    type: str
    default: str | None
    help: str


def docstring_entries(doc: str, heading: str) -> dict[str, str]:
    """``{name: text}`` of the ``heading`` block (``Args:`` / ``Attributes:``) of a Google / transformers style
    docstring, each text on one line without markup. ``name (`type`, ...):`` and ``name: text`` both work."""
    lines = textwrap.dedent("\n".join(doc.splitlines()[1:])).splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.strip() == heading), len(lines))
    entries: dict[str, str] = {}
    indent = None
    for line in filter(str.strip, lines[start:]):
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        if depth < indent:
            break
        match = re.match(r"(\w+)(?: \(.*\))?:(.*)$", line.strip()) if depth == indent else None
        if match:
            entries[match.group(1)] = match.group(2)
        elif entries:
            entries[next(reversed(entries))] += " " + line
    return {name: " ".join(re.sub(r":\w+:|`", "", text).split()) for name, text in entries.items()}


def _shown(default: str) -> str | None:
    return None if default in ("None", "False", "()", "[]") else default


def inat_config_knobs() -> list[Knob]:
    """``InatConfig``'s own fields (annotation and default from the class body, help from its docstring), read from
    the source file: importing it would import transformers and torch."""
    source = CONFIGURATION_INAT.read_text(encoding="utf-8")
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "InatConfig")
    helps = docstring_entries(ast.get_docstring(cls, clean=False) or "", "Args:")
    text = functools.partial(ast.get_source_segment, source)
    fields = [n for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    return [Knob(n.target.id, text(n.annotation), _shown(text(n.value)), helps.get(n.target.id, "")) for n in fields]


def dataclass_knobs(cls: type, helps: dict[str, str] | None = None) -> list[Knob]:
    def default(f: dataclasses.Field) -> Any:
        return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default

    return [
        Knob(f.name, str(f.type), _shown(repr(default(f))), f.metadata.get("help") or (helps or {}).get(f.name, ""))
        for f in dataclasses.fields(cls)
    ]


def recipe_knobs() -> dict[str, list[Knob]]:
    """The project's recipe keys by section (``training`` also takes every ``TrainingArguments`` field)."""
    augmentation = dataclass_knobs(AugmentationConfig, docstring_entries(AugmentationConfig.__doc__, "Attributes:"))
    return {
        "model": [k for k in inat_config_knobs() if k.name not in MODEL_FIELDS_FROM_DATA]
        + dataclass_knobs(ModelRunArguments),
        "data": dataclass_knobs(DataArguments),
        "augmentation": [k for k in augmentation if k.name not in AUGMENTATION_FROM_MODEL],
        "mixing": dataclass_knobs(MixingConfig),
        "training": dataclass_knobs(TrainingOptions),
    }


def shared_keys(sections: dict[str, Sequence[str]]) -> set[str]:
    """Keys that more than one section has: on the command line they are written ``--section.key``."""
    counts = collections.Counter(key for keys in sections.values() for key in keys)
    return {key for key, count in counts.items() if count > 1}


def _metavar(annotation: str) -> str:
    """A short ``--help`` metavar: ``list[int] | tuple[int, ...]`` → ``list[int]``; ``Literal['a', 'b']`` → ``{a,b}``;
    a ``(min, max)`` pair → ``MIN MAX``."""
    if re.fullmatch(r"tuple\[(\w+), \1\]", annotation):
        return "MIN MAX"
    text = re.sub(r"\s*\|\s*(None|tuple\[[^\]]*\])", "", annotation)
    literal = re.fullmatch(r"Literal\[(.*)\]", text)
    return "{" + ",".join(v.strip(" '\"") for v in literal.group(1).split(",")) + "}" if literal else text


def recipe_help() -> str:
    """``train.py --help``: the recipe's keys by section; TrainingArguments' ~150 generic options are left to
    ``--help_all``. Plain argparse, not ``inat_hf.cli`` (which imports transformers)."""
    parser = argparse.ArgumentParser(
        prog="train.py",
        usage="train.py [RECIPE.yaml] [--key value ...] [--help_all] [--traceback]",
        description="Fine-tune on iNat 2021 (one CPU, one GPU, or many under accelerate launch / torchrun). "
        "RECIPE.yaml holds the sections below (configs/*.yaml); --key value wins over it (--section.key for a key "
        "two sections share), and --data_dir / --dataset_dir replaces the recipe's data source. "
        "`train.py --list_stages BACKBONE` prints a backbone's stage names.",
        add_help=False,
    )
    titles = {
        "model": "InatConfig keyword arguments (config.json); where the weights start",
        "data": "where the images come from",
        "augmentation": "AugmentationConfig; its image_size, mean and std are the model's",
        "mixing": "Mixup / CutMix",
        "training": "the project's options, and every TrainingArguments option",
    }
    knobs = recipe_knobs()
    shared = shared_keys({s: [k.name for k in ks] for s, ks in knobs.items()})
    for section, section_knobs in knobs.items():
        group = parser.add_argument_group(f"recipe section '{section}'", titles[section])
        for knob in section_knobs:
            flag = f"--{section}.{knob.name}" if knob.name in shared else f"--{knob.name}"
            shown = knob.default is not None and "default" not in knob.help.lower()
            group.add_argument(
                flag, metavar=_metavar(knob.type), help=knob.help + (f" (default: {knob.default})" if shown else "")
            )
    parser.add_argument_group(
        "and every transformers.TrainingArguments option",
        "output_dir, num_train_epochs, per_device_train_batch_size, bf16, seed, report_to, push_to_hub, …: "
        "`train.py --help_all` lists all of them.",
    )
    return parser.format_help()
