"""Configuration of the iNat classifier: any timm backbone + channel attention + MLP head + focal loss.

The config is the single source of truth for the architecture, the loss and the evaluation preprocessing. It is
saved as ``config.json`` next to the weights and shipped, with this file, for ``trust_remote_code`` loading, so this
module only imports torch/timm/transformers and its sibling ``backbone.py`` (no ``inat_hf`` imports).
"""

import dataclasses
import json
import math
from typing import Any

from transformers import PreTrainedConfig
from transformers.utils import logging

from .backbone import BackboneInfo, check_backbone, describe_backbone

logger = logging.get_logger(__name__)

# Taxonomic ranks from coarse to fine, in the order the iNaturalist 2021 metadata lists them: the copy this shipped
# file needs (the library's owner is inat_hf/data/taxonomy.py; tests/data/test_taxonomy.py checks they agree).
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
ATTN_LAYERS = ("se", "eca", "cbam", "none")
INTERPOLATIONS = ("bicubic", "bilinear")


def choice(choices: tuple[str, ...], what: str = "is not supported") -> tuple:
    return (lambda v: v in choices), f"{what}; valid choices: {', '.join(choices)}"


# field -> (test, what a valid value is). A test that raises TypeError (a value of the wrong type) fails too.
# Fix-it messages only: huggingface_hub's @strict type checks raise no ValueError and refuse an int for a float
# (`focal_gamma: 2` in a recipe), so the config keeps these.
_RULES = {
    "drop_path_rate": (lambda v: v is None or 0 <= v < 1, "must be in [0, 1) (None: timm's default)"),
    "attn_layer": choice(ATTN_LAYERS),
    "rd_ratio": (lambda v: 0 < v <= 1, "must be a number in (0, 1], e.g. 1/16"),
    "head_hidden_sizes": (
        lambda v: isinstance(v, list) and all(isinstance(h, int) and h > 0 for h in v),
        "must be a list of positive integers (an empty list gives a linear classifier)",
    ),
    "drop_rate": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "head_batch_norm": (lambda v: isinstance(v, bool), "must be True or False"),
    "focal_gamma": (lambda v: v >= 0, "must be >= 0 (0 gives plain cross-entropy)"),
    "focal_alpha": (
        lambda v: v is None or isinstance(v, list) and all(a >= 0 for a in v),
        "must be a list of non-negative weights, one per label, or None",
    ),
    "label_smoothing": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "label_rank": choice(RANKS, "is not a taxonomic rank"),
    "image_size": (lambda v: isinstance(v, int) and v > 0, "must be a positive integer (pixels)"),
    "crop_pct": (lambda v: 0 < v <= 1, "must be in (0, 1], e.g. 0.875 (timm's default) or 1.0"),
    "interpolation": choice(INTERPOLATIONS),
    "image_mean": (lambda v: len(v) == 3 and all(math.isfinite(x) for x in v), "must be a list of 3 numbers (RGB)"),
    "image_std": (lambda v: len(v) == 3 and all(x > 0 for x in v), "must be a list of 3 positive numbers (RGB)"),
    "temperature": (lambda v: math.isfinite(v) and v > 0, "must be a positive number (1: the logits as trained)"),
    "fusion_weight": (lambda v: v is None or math.isfinite(v) and v >= 0, "must be a number >= 0 or None"),
    "taxonomy": (
        lambda v: v is None or isinstance(v, dict) and isinstance(v.get("ranks", {}), dict),
        "must be None or a dict like {'rank': 'species', 'ranks': {rank: [one name per label]}, ...}",
    ),
}


class InatConfig(PreTrainedConfig):
    r"""
    Configuration for [`InatForImageClassification`]; each field's `help` (below) is its `train.py --help` line.

    - `backbone`: any timm architecture, an optional pretrained tag (`resnet50.a1_in1k`) picks timm's preprocessing
      (and the weights `from_backbone_pretrained` fetches); `model_args` go to `timm.create_model`. `attn_layer`
      (timm's `create_attn`) needs an NCHW feature map (a CNN): token backbones (ViT, EVA) take `"none"`.
    - Head: per `head_hidden_sizes` entry Linear -> BatchNorm1d -> ReLU -> Dropout, then Linear; focal loss, whose
      `label_smoothing` smooths class-index labels only (soft mixup targets are used as given).
    - `taxonomy`: the dict `inat_hf.data.Taxonomy.to_dict()` writes, one entry per label in each list; it is
      validated by `Taxonomy.from_config`. Labels use the standard `id2label` / `num_labels` arguments.
    - `temperature` T and `fusion_weight` w are fitted after training by `calibrate.py` (minimum NLL on a held-out
      split): inference divides each view's logits by T, and fuses a location prior with weight w. Training ignores
      both.
    - Evaluation resizes the shortest edge to `floor(image_size / crop_pct)` and center-crops `image_size` (timm's
      way). Preprocessing fields left at `None` take timm's values for the backbone (a ViT gets its own mean/std;
      `image_size` follows `model_args["img_size"]`); a saved config holds the resolved values.

    Example:

    ```python
    >>> from inat_hf.models import InatConfig
    >>> config = InatConfig(backbone="resnet18", id2label={0: "Apis mellifera", 1: "Bombus terrestris"}, crop_pct=0.875)
    >>> config.num_labels, config.resize_shortest_edge
    (2, 256)
    >>> InatConfig(backbone="vit_tiny_patch16_224", attn_layer="none").image_mean  # timm's cfg for the ViT
    [0.5, 0.5, 0.5]
    ```
    """

    model_type = "inat"

    # Each field's help is its `train.py --help` line (the recipe's `model:` keys are these keyword arguments).
    backbone: str = dataclasses.field(
        default="resnet50",
        metadata={"help": "Any timm architecture, with an optional pretrained tag (resnet50.a1_in1k)."},
    )
    model_args: dict[str, Any] | str | None = dataclasses.field(
        default=None,
        metadata={"help": "Extra timm.create_model keyword arguments (JSON text on the command line)."},
    )
    drop_path_rate: float | None = dataclasses.field(
        default=None, metadata={"help": "Stochastic depth rate, in [0, 1); None: timm's default."}
    )
    attn_layer: str = dataclasses.field(
        default="se",
        metadata={"help": "Channel attention on the feature map: se, eca, cbam or none (token backbones)."},
    )
    rd_ratio: float = dataclasses.field(
        default=1 / 16, metadata={"help": "Reduction ratio of the attention bottleneck, in (0, 1]."}
    )
    head_hidden_sizes: list[int] = dataclasses.field(
        default_factory=lambda: [1024, 512], metadata={"help": "Hidden widths of the MLP head ([]: a linear one)."}
    )
    drop_rate: float = dataclasses.field(default=0.3, metadata={"help": "Dropout probability in the head, in [0, 1)."})
    head_batch_norm: bool = dataclasses.field(
        default=True, metadata={"help": "BatchNorm1d in the hidden head layers."}
    )
    focal_gamma: float = dataclasses.field(
        default=2.0, metadata={"help": "Focal loss focusing parameter (0: cross-entropy)."}
    )
    focal_alpha: list[float] | None = dataclasses.field(
        default=None, metadata={"help": "Per-class loss weights, one per label."}
    )
    label_smoothing: float = dataclasses.field(
        default=0.1, metadata={"help": "Label smoothing of hard labels, in [0, 1)."}
    )
    label_rank: str = dataclasses.field(default="species", metadata={"help": "Taxonomic rank of the labels."})
    taxonomy: dict[str, Any] | None = dataclasses.field(
        default=None, metadata={"help": "Plain JSON dict describing every label."}
    )
    image_size: int | None = dataclasses.field(
        default=None, metadata={"help": "Side of the square model input and training crop; None: timm's."}
    )
    crop_pct: float | None = dataclasses.field(
        default=None, metadata={"help": "Evaluation center-crop fraction, in (0, 1]; None: timm's."}
    )
    interpolation: str | None = dataclasses.field(
        default=None, metadata={"help": "Evaluation resize interpolation, bicubic or bilinear; None: timm's."}
    )
    image_mean: list[float] | None = dataclasses.field(
        default=None, metadata={"help": "RGB normalisation mean (training too); None: timm's."}
    )
    image_std: list[float] | None = dataclasses.field(
        default=None, metadata={"help": "RGB normalisation std (training too); None: timm's."}
    )
    temperature: float = dataclasses.field(
        default=1.0,
        metadata={"help": "Logit temperature T (probabilities = softmax(logits / T)), fitted by calibrate.py."},
    )
    fusion_weight: float | None = dataclasses.field(
        default=None,
        metadata={"help": "Weight w of a location prior fused with this model (calibrate.py); None: the prior's own."},
    )

    def __post_init__(self, **kwargs):
        # `num_labels` is not stored (transformers derives it from `id2label`, and only warns), so check it here.
        num_labels = kwargs.get("num_labels")
        if num_labels is not None and self.id2label is not None and len(self.id2label) != num_labels:
            raise ValueError(
                f"num_labels={num_labels} disagrees with id2label, which has {len(self.id2label)} entries. "
                "Pass only `id2label` (num_labels follows from it) or make both agree."
            )
        if isinstance(self.model_args, str):  # a JSON object from the command line, as TrainingArguments reads dicts
            self.model_args = json.loads(self.model_args) if self.model_args.strip() else None
        check_backbone(self.backbone, self.model_args)
        # Preprocessing left at None: timm's for the backbone (the probe at image_size is the one validation uses).
        for name, value in describe_backbone(
            self.backbone, self.backbone_kwargs, self.image_size
        ).preprocessing.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        # JSON has no tuples and dataclass defaults cannot be lists: lists, so that a reloaded config compares equal.
        for name in ("head_hidden_sizes", "image_mean", "image_std", "focal_alpha"):
            if isinstance(getattr(self, name), tuple):
                setattr(self, name, list(getattr(self, name)))
        super().__post_init__(**kwargs)
        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: index for index, name in self.id2label.items()}
        self._check_inat_fields()

    @property
    def backbone_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `timm.create_model` besides those the model sets (`model_args` + `drop_path_rate`)."""
        kwargs = dict(self.model_args or {})
        if self.drop_path_rate is not None:
            kwargs["drop_path_rate"] = self.drop_path_rate
        return kwargs

    @property
    def backbone_info(self) -> BackboneInfo:
        """Feature layout, widths and stage names of the backbone at `image_size` (see `describe_backbone`)."""
        return describe_backbone(self.backbone, self.backbone_kwargs, self.image_size)

    @property
    def resize_shortest_edge(self) -> int:
        """Shortest edge images are resized to before the center crop: `floor(image_size / crop_pct)` (timm)."""
        return math.floor(self.image_size / self.crop_pct)

    def validate(self):
        """transformers' checks, then this config's (also run by `save_pretrained` and the model's `__init__`)."""
        super().validate()
        self._check_inat_fields()

    def _check_inat_fields(self) -> None:
        check_backbone(self.backbone, self.model_args)
        check_fields(self, _RULES)
        num_labels = self.num_labels
        if self.id2label is not None and self.label2id is not None:
            expected = {str(name): index for index, name in self.id2label.items()}
            if len(expected) != num_labels or {str(k): int(v) for k, v in self.label2id.items()} != expected:
                raise ValueError(
                    "label2id is not the inverse of id2label (or two labels share a name). Pass only `id2label` with "
                    "unique names (label2id is derived from it), or make them consistent."
                )
        if self.focal_alpha is not None and len(self.focal_alpha) != num_labels:
            raise ValueError(
                f"focal_alpha has {len(self.focal_alpha)} entries but num_labels={num_labels}; give one weight per "
                "label, or focal_alpha=None for unweighted focal loss."
            )
        self._check_taxonomy_fits(num_labels)
        self.backbone_info.check_fits(self.backbone, self.attn_layer, self.image_size)

    def _check_taxonomy_fits(self, num_labels: int) -> None:
        # Only whether the dict fits this label set: known rank names, one entry per label in every list. What makes
        # a valid taxonomy (its rank is label_rank, unique labels, types) is checked once, by its owner
        # inat_hf.data.Taxonomy (Taxonomy.from_config), which this shipped file cannot import.
        unknown = sorted(set((self.taxonomy or {}).get("ranks", {})) - set(RANKS))
        if unknown:
            raise ValueError(f"taxonomy['ranks'] has unknown rank(s) {unknown}; valid ranks: {', '.join(RANKS)}.")
        for where, values in _per_label_lists(self.taxonomy or {}):
            if len(values) != num_labels:
                raise ValueError(
                    f"{where} has {len(values)} entries but num_labels={num_labels}; every per-label list in the "
                    "taxonomy needs exactly one entry per label (in label index order)."
                )

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs):
        """The config from a saved dict plus overrides (`from_pretrained(path, num_labels=..., ...)`).

        Overrides of fields are applied before construction, so validation sees the final values only. A new label
        set (another `num_labels` or `id2label`) replaces the saved labels; saved per-label data (`focal_alpha`,
        `taxonomy`) that no longer fits is dropped with a warning.
        """
        config_dict = dict(config_dict)
        saved_count = len(config_dict["id2label"]) if config_dict.get("id2label") is not None else None
        overridden = {f.name for f in dataclasses.fields(cls)} & set(kwargs)
        for name in overridden:
            config_dict[name] = kwargs.pop(name)
        new_count = saved_count
        if "id2label" in overridden:
            new_count = len(config_dict["id2label"]) if config_dict["id2label"] is not None else None
            if "label2id" not in overridden:
                config_dict.pop("label2id", None)  # it names the old labels; derived again from id2label
        elif "num_labels" in kwargs:
            new_count = kwargs.pop("num_labels")
            if new_count != saved_count:  # fresh generic labels (LABEL_0, ...), as transformers does for num_labels=
                config_dict.pop("id2label", None)
                config_dict.pop("label2id", None)
                config_dict["num_labels"] = new_count
        for name in ("focal_alpha", "taxonomy"):
            value = config_dict.get(name)
            if (
                new_count != saved_count
                and name not in overridden
                and value is not None
                and not _fits(value, new_count)
            ):
                logger.warning(
                    f"Dropping the saved `{name}`: it describes {saved_count} labels but the new label set has "
                    f"{new_count}. Pass `{name}=...` for the new labels to keep one."
                )
                config_dict[name] = None
        return super().from_dict(config_dict, **kwargs)


def check_fields(config: PreTrainedConfig, rules: dict) -> None:
    """A fix-it ValueError for the first field whose value fails its rule (a rule raising TypeError fails)."""
    for name, (test, expected) in rules.items():
        value = getattr(config, name)
        try:
            valid = test(value)
        except TypeError:
            valid = False
        if not valid:
            raise ValueError(f"{name}={value!r} {expected}.")


def _per_label_lists(taxonomy: dict) -> list[tuple[str, list]]:
    """(where, list) of every per-label list of a taxonomy dict: the lists in `"ranks"` and the top-level ones."""
    lists = [(f"taxonomy['ranks'][{rank!r}]", values) for rank, values in taxonomy.get("ranks", {}).items()]
    lists += [(f"taxonomy[{key!r}]", values) for key, values in taxonomy.items() if key != "ranks"]
    return [(where, values) for where, values in lists if isinstance(values, list)]


def _fits(value: Any, num_labels: int) -> bool:
    if isinstance(value, dict):
        return all(len(values) == num_labels for _, values in _per_label_lists(value))
    return len(value) == num_labels


__all__ = ["RANKS", "InatConfig"]
