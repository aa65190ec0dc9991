"""Configuration of the iNat classifier: a timm ResNet + channel attention + MLP head + focal loss.

The config is the single source of truth for the architecture, the loss and the evaluation preprocessing. It is
saved as ``config.json`` next to the weights and shipped, together with this file, for ``trust_remote_code`` loading,
so this module may only import torch/timm/transformers (no ``inat_hf`` imports).
"""

import math
from dataclasses import fields
from functools import lru_cache
from typing import Any

import timm
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers import PreTrainedConfig
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Taxonomic ranks from coarse to fine, in the order the iNaturalist 2021 metadata lists them.
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")

ATTN_LAYERS = ("se", "eca", "cbam", "none")
INTERPOLATIONS = ("bicubic", "bilinear")

# Fields whose lists hold one entry per label; they describe one particular label set.
_PER_LABEL_FIELDS = ("focal_alpha", "taxonomy")


@lru_cache(maxsize=1)
def _resnet_family() -> frozenset[str]:
    # Every architecture timm builds with `timm.models.resnet.ResNet` (resnet*, resnext*, seresnet*, ecaresnet*, ...)
    # has the conv1/bn1/act1/maxpool/layer1..4 layout the model's stage groups rely on.
    return frozenset(timm.list_models(module="resnet"))


def _is_resnet_family(name: str) -> bool:
    # A pretrained tag ("resnet50.a1_in1k") does not change the architecture.
    return timm.models.get_arch_name(name) in _resnet_family()


class InatConfig(PreTrainedConfig):
    r"""
    Configuration for [`InatForImageClassification`].

    Args:
        backbone (`str`, *optional*, defaults to `"resnet50"`):
            timm ResNet-family architecture (`resnet18`, `resnet26d`, `resnet50`, `resnet10t`, `seresnext50_32x4d`,
            ...; see `timm.list_models(module="resnet")`). An optional pretrained tag (`resnet50.a1_in1k`) is allowed.
        attn_layer (`str`, *optional*, defaults to `"se"`):
            Channel attention applied to the final feature map, built with timm's `create_attn`: one of
            `"se"`, `"eca"`, `"cbam"` or `"none"`.
        rd_ratio (`float`, *optional*, defaults to 1/16):
            Reduction ratio of the attention block's bottleneck (ignored by `eca`), in (0, 1].
        head_hidden_sizes (`list[int]`, *optional*, defaults to `[1024, 512]`):
            Hidden layer widths of the classification head; each is Linear -> BatchNorm1d -> ReLU -> Dropout.
            Empty: a linear classifier (Dropout -> Linear).
        drop_rate (`float`, *optional*, defaults to 0.3):
            Dropout probability in the head, in [0, 1).
        head_batch_norm (`bool`, *optional*, defaults to `True`):
            Whether the hidden head layers use BatchNorm1d.
        focal_gamma (`float`, *optional*, defaults to 2.0):
            Focal loss focusing parameter (>= 0; 0 gives cross-entropy).
        focal_alpha (`list[float]`, *optional*):
            Per-class loss weights, one per label.
        label_smoothing (`float`, *optional*, defaults to 0.1):
            Label smoothing applied to hard (class index) labels, in [0, 1). Soft targets are used as given.
        label_rank (`str`, *optional*, defaults to `"species"`):
            Taxonomic rank of the labels, one of [`RANKS`].
        taxonomy (`dict`, *optional*):
            Plain JSON dict describing every label, e.g. `{"rank": "species", "ranks": {"kingdom": [...], ...,
            "species": [...]}, "common_names": [...], "category_ids": [[...], ...]}`. Stored as given; every per-label
            list (top-level lists and the lists in `"ranks"`) must have `num_labels` entries.
        image_size (`int`, *optional*, defaults to 224):
            Side of the square model input.
        crop_pct (`float`, *optional*, defaults to 0.875):
            Center-crop fraction for evaluation, in (0, 1]: images are resized so that their shortest edge is
            `floor(image_size / crop_pct)` and then center-cropped to `image_size` (timm's convention).
        interpolation (`str`, *optional*, defaults to `"bicubic"`):
            Resize interpolation, `"bicubic"` or `"bilinear"`.
        image_mean (`list[float]`, *optional*, defaults to the ImageNet mean):
            Per-channel RGB mean used to normalise inputs scaled to [0, 1].
        image_std (`list[float]`, *optional*, defaults to the ImageNet std):
            Per-channel RGB std used to normalise inputs scaled to [0, 1].

    Labels use the standard `id2label` / `label2id` / `num_labels` arguments.

    Example:

    ```python
    >>> from inat_hf.models import InatConfig
    >>> config = InatConfig(backbone="resnet18", id2label={0: "Apis mellifera", 1: "Bombus terrestris"})
    >>> config.num_labels, config.resize_shortest_edge
    (2, 256)
    ```
    """

    model_type = "inat"

    backbone: str = "resnet50"
    attn_layer: str = "se"
    rd_ratio: float = 1 / 16
    head_hidden_sizes: list[int] | tuple[int, ...] = (1024, 512)
    drop_rate: float = 0.3
    head_batch_norm: bool = True
    focal_gamma: float = 2.0
    focal_alpha: list[float] | None = None
    label_smoothing: float = 0.1
    label_rank: str = "species"
    taxonomy: dict[str, Any] | None = None
    image_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    image_mean: list[float] | tuple[float, ...] = IMAGENET_DEFAULT_MEAN
    image_std: list[float] | tuple[float, ...] = IMAGENET_DEFAULT_STD

    def __post_init__(self, **kwargs):
        # `num_labels` is not stored (transformers derives it from `id2label`), so a disagreement can only be seen here.
        num_labels = kwargs.get("num_labels")
        if num_labels is not None and self.id2label is not None and len(self.id2label) != num_labels:
            raise ValueError(
                f"num_labels={num_labels} disagrees with id2label, which has {len(self.id2label)} entries. "
                "Pass only `id2label` (num_labels follows from it) or make both agree."
            )
        # JSON has no tuples and dataclass defaults cannot be lists: keep lists so that a saved and reloaded config
        # compares equal to the original.
        if not isinstance(self.head_hidden_sizes, (list, tuple)):
            raise ValueError(
                f"head_hidden_sizes={self.head_hidden_sizes!r} must be a list of positive integers "
                "(an empty list gives a linear classifier)."
            )
        self.head_hidden_sizes = list(self.head_hidden_sizes)
        self.image_mean = list(self.image_mean) if self.image_mean is not None else None
        self.image_std = list(self.image_std) if self.image_std is not None else None
        if self.focal_alpha is not None and not isinstance(self.focal_alpha, (list, tuple)):
            raise ValueError(
                f"focal_alpha must be a list of per-class weights (one float per label) or None, got "
                f"{type(self.focal_alpha).__name__}."
            )
        if self.focal_alpha is not None:
            self.focal_alpha = list(self.focal_alpha)

        super().__post_init__(**kwargs)

        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: index for index, name in self.id2label.items()}
        self._check_inat_fields()

    # ------------------------------------------------------------------ validation

    def validate(self):
        """Run transformers' own checks, then this config's (also called on `save_pretrained` and model creation)."""
        super().validate()
        self._check_inat_fields()

    def _check_inat_fields(self) -> None:
        # Every message names the valid values, so a bad config file can be fixed without reading this code.
        if not isinstance(self.backbone, str) or not _is_resnet_family(self.backbone):
            raise ValueError(
                f"backbone={self.backbone!r} is not a timm ResNet-family architecture. Valid: any name in "
                "timm.list_models(module='resnet'), e.g. 'resnet18', 'resnet26d', 'resnet50', 'resnet10t', "
                "'seresnext50_32x4d'."
            )
        if self.attn_layer not in ATTN_LAYERS:
            raise ValueError(
                f"attn_layer={self.attn_layer!r} is not supported; valid choices: {', '.join(ATTN_LAYERS)}."
            )
        if not _is_number(self.rd_ratio) or not 0 < self.rd_ratio <= 1:
            raise ValueError(f"rd_ratio={self.rd_ratio!r} must be a number in (0, 1], e.g. 1/16.")
        if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.head_hidden_sizes):
            raise ValueError(
                f"head_hidden_sizes={self.head_hidden_sizes!r} must be a list of positive integers "
                "(an empty list gives a linear classifier)."
            )
        if not _is_number(self.drop_rate) or not 0 <= self.drop_rate < 1:
            raise ValueError(f"drop_rate={self.drop_rate!r} must be in [0, 1).")
        if not isinstance(self.head_batch_norm, bool):
            raise ValueError(f"head_batch_norm={self.head_batch_norm!r} must be True or False.")
        if not _is_number(self.focal_gamma) or self.focal_gamma < 0:
            raise ValueError(f"focal_gamma={self.focal_gamma!r} must be >= 0 (0 gives plain cross-entropy).")
        if not _is_number(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing={self.label_smoothing!r} must be in [0, 1).")

        num_labels = self.num_labels
        if self.id2label is not None:
            if sorted(self.id2label) != list(range(num_labels)):
                raise ValueError(
                    f"id2label keys must be the label indices 0..{num_labels - 1}; got {sorted(self.id2label)[:10]}..."
                )
            expected = {name: index for index, name in self.id2label.items()}
            if len(expected) != num_labels:
                raise ValueError("id2label contains duplicate label names; every label needs a unique name.")
            if self.label2id is not None and {str(k): int(v) for k, v in self.label2id.items()} != {
                str(k): v for k, v in expected.items()
            }:
                raise ValueError(
                    "label2id is not the inverse of id2label. Pass only `id2label` (label2id is derived from it) "
                    "or make them consistent."
                )
        if self.focal_alpha is not None:
            if len(self.focal_alpha) != num_labels:
                raise ValueError(
                    f"focal_alpha has {len(self.focal_alpha)} entries but num_labels={num_labels}; give one weight "
                    "per label, or focal_alpha=None for unweighted focal loss."
                )
            if not all(_is_number(a) and a >= 0 for a in self.focal_alpha):
                raise ValueError("focal_alpha entries must be non-negative numbers (one weight per label).")
        if self.label_rank not in RANKS:
            raise ValueError(
                f"label_rank={self.label_rank!r} is not a taxonomic rank; valid choices: {', '.join(RANKS)}."
            )
        self._check_taxonomy(num_labels)

        if not isinstance(self.image_size, int) or isinstance(self.image_size, bool) or self.image_size <= 0:
            raise ValueError(f"image_size={self.image_size!r} must be a positive integer (pixels).")
        if not _is_number(self.crop_pct) or not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct={self.crop_pct!r} must be in (0, 1], e.g. 0.875 (timm's default) or 1.0.")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation={self.interpolation!r} is not supported; valid choices: {', '.join(INTERPOLATIONS)}."
            )
        for name in ("image_mean", "image_std"):
            value = getattr(self, name)
            if value is None or len(value) != 3 or not all(_is_number(v) for v in value):
                raise ValueError(f"{name}={value!r} must be a list of 3 numbers (RGB).")
        if not all(s > 0 for s in self.image_std):
            raise ValueError(f"image_std={self.image_std!r} must be positive.")

    def _check_taxonomy(self, num_labels: int) -> None:
        taxonomy = self.taxonomy
        if taxonomy is None:
            return
        if not isinstance(taxonomy, dict):
            raise ValueError(f"taxonomy must be a plain dict (JSON object) or None, got {type(taxonomy).__name__}.")
        rank = taxonomy.get("rank")
        if rank is not None and rank != self.label_rank:
            raise ValueError(
                f"taxonomy['rank']={rank!r} but label_rank={self.label_rank!r}; pass label_rank={rank!r} "
                "(the rank the labels are at)."
            )
        ranks = taxonomy.get("ranks", {})
        if not isinstance(ranks, dict):
            raise ValueError("taxonomy['ranks'] must map a rank name to a list with one entry per label.")
        per_label = {f"taxonomy['ranks'][{name!r}]": value for name, value in ranks.items()}
        per_label.update({f"taxonomy[{key!r}]": value for key, value in taxonomy.items() if key != "ranks"})
        for where, value in per_label.items():
            if isinstance(value, (list, tuple)) and len(value) != num_labels:
                raise ValueError(
                    f"{where} has {len(value)} entries but num_labels={num_labels}; every per-label list in the "
                    "taxonomy needs exactly one entry per label (in label index order)."
                )
            if where.startswith("taxonomy['ranks']") and not isinstance(value, (list, tuple)):
                raise ValueError(f"{where} must be a list with one entry per label, got {type(value).__name__}.")

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs):
        """Build the config from a saved dict plus overrides (`from_pretrained(path, num_labels=..., ...)`).

        Overrides of declared fields are applied *before* construction, so validation sees the final values only.
        A new label set (other `num_labels` or `id2label`) replaces the saved labels; saved per-label data
        (`focal_alpha`, `taxonomy`) that no longer fits is dropped with a warning instead of failing validation.
        """
        config_dict = dict(config_dict)
        saved_id2label = config_dict.get("id2label")
        saved_count = len(saved_id2label) if saved_id2label is not None else None

        # Apply field overrides up front (the base class would set them one by one after validation has run).
        field_names = {f.name for f in fields(cls)}
        overridden = {name for name in kwargs if name in field_names}
        for name in overridden:
            config_dict[name] = kwargs.pop(name)

        new_count = saved_count
        if "id2label" in overridden:
            new_count = len(config_dict["id2label"]) if config_dict["id2label"] is not None else None
            if "label2id" not in overridden:
                config_dict.pop("label2id", None)  # the saved one names the old labels; derived again from id2label
        elif "num_labels" in kwargs:
            new_count = kwargs.pop("num_labels")
            if new_count != saved_count:
                # Fresh generic labels (LABEL_0, ...), as transformers does for `num_labels=`.
                config_dict.pop("id2label", None)
                config_dict.pop("label2id", None)
                config_dict["num_labels"] = new_count
        if new_count != saved_count:
            for name in _PER_LABEL_FIELDS:
                if (
                    name not in overridden
                    and config_dict.get(name) is not None
                    and not _fits(config_dict[name], new_count)
                ):
                    logger.warning(
                        f"Dropping the saved `{name}`: it describes {saved_count} labels but the new label set has "
                        f"{new_count}. Pass `{name}=...` for the new labels to keep one."
                    )
                    config_dict[name] = None
        return super().from_dict(config_dict, **kwargs)

    # ------------------------------------------------------------------ helpers

    @property
    def resize_shortest_edge(self) -> int:
        """Shortest edge images are resized to before the center crop: `floor(image_size / crop_pct)` (timm)."""
        return math.floor(self.image_size / self.crop_pct)

    @property
    def available_ranks(self) -> tuple[str, ...]:
        """Ranks for which per-label names are known, coarse to fine (the label rank is always available)."""
        ranks = set((self.taxonomy or {}).get("ranks", {})) | {self.label_rank}
        ordered = [r for r in RANKS if r in ranks]
        return tuple(ordered + sorted(ranks.difference(RANKS)))

    def rank_names(self, rank: str | None = None) -> list[str]:
        """Name at `rank` (default: `label_rank`) of every label, in label index order: `[num_labels]`.

        Useful for hierarchical reporting, e.g. genus-level accuracy of a species classifier:
        `genus = config.rank_names("genus"); genus[pred] == genus[label]`.
        """
        rank = self.label_rank if rank is None else rank
        ranks = (self.taxonomy or {}).get("ranks", {})
        if rank in ranks:
            return [str(name) for name in ranks[rank]]
        if rank == self.label_rank and self.id2label is not None:
            return [self.id2label[i] for i in range(self.num_labels)]
        raise ValueError(
            f"No per-label names for rank {rank!r}; available ranks: {', '.join(self.available_ranks)}. "
            "Pass `taxonomy={'ranks': {rank: [...one name per label...]}}` to the config to add ranks."
        )

    def rank_groups(self, rank: str | None = None) -> tuple[list[str], list[int]]:
        """Group labels by their name at `rank`.

        Returns `(group_names, label_to_group)`: the sorted distinct names at that rank and, for every label index,
        the index of its group, so that `label_to_group[pred] == label_to_group[label]` tests a rank-level hit.
        """
        names = self.rank_names(rank)
        groups = sorted(set(names))
        index = {name: i for i, name in enumerate(groups)}
        return groups, [index[name] for name in names]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fits(value: Any, num_labels: int) -> bool:
    """Whether a per-label field (list or taxonomy dict) has one entry per label for `num_labels` labels."""
    if isinstance(value, (list, tuple)):
        return len(value) == num_labels
    if isinstance(value, dict):
        lists = [v for v in value.get("ranks", {}).values()] + [v for k, v in value.items() if k != "ranks"]
        return all(len(v) == num_labels for v in lists if isinstance(v, (list, tuple)))
    return True


__all__ = ["RANKS", "InatConfig"]
