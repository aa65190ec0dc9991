"""Configuration of the iNat classifier: any timm backbone + channel attention + MLP head + focal loss.

The config is the single source of truth for the architecture, the loss and the evaluation preprocessing. It is
saved as ``config.json`` next to the weights and shipped, together with this file, for ``trust_remote_code`` loading,
so this module may only import torch/timm/transformers (no ``inat_hf`` imports).
"""

import dataclasses
import difflib
import json
import math
import re
from collections import OrderedDict
from dataclasses import fields
from functools import lru_cache
from typing import Any

import timm
import torch
from timm.data import resolve_model_data_config
from timm.models._manipulate import group_with_matcher  # what timm.models.group_parameters calls
from torch import nn
from transformers import PreTrainedConfig
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Taxonomic ranks from coarse to fine, in the order the iNaturalist 2021 metadata lists them: the copy this shipped
# file needs (the library's owner is inat_hf/data/taxonomy.py; tests/data/test_taxonomy.py checks they agree).
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")

ATTN_LAYERS = ("se", "eca", "cbam", "none")
INTERPOLATIONS = ("bicubic", "bilinear")

# Fields whose lists hold one entry per label; they describe one particular label set.
_PER_LABEL_FIELDS = ("focal_alpha", "taxonomy")


# timm.create_model arguments the model sets itself (or, for drop_path_rate, a config field of its own).
_RESERVED_MODEL_ARGS = ("pretrained", "num_classes", "global_pool", "features_only", "in_chans", "drop_path_rate")
# Stage names the model adds after the backbone's; a backbone group may not take them.
CLASSIFIER_STAGES = ("attention", "head")


@dataclasses.dataclass(frozen=True)
class BackboneInfo:
    """What the model needs to know about a timm backbone before building it (see `describe_backbone`).

    Attributes:
        feature_format: layout of `forward_features` at the config's image size: `"NCHW"` (CNN feature map, where
            channel attention applies), `"NHWC"` (e.g. Swin), `"NLC"` (ViT/EVA tokens) or `"unknown"`.
        num_features: channels of the final feature map (the attention width).
        head_features: width of `forward_head(pre_logits=True)` (the head's input), e.g. MobileNetV3's conv_head.
        stage_names: the backbone's stage groups, input -> output (see `backbone_stage_groups`).
        data_config: timm's preprocessing for the backbone (`resolve_model_data_config` + `model_args` img_size).
        probe_error: why the feature layout could not be determined, if it could not.
    """

    feature_format: str
    num_features: int
    head_features: int
    stage_names: tuple[str, ...]
    data_config: dict[str, Any]
    probe_error: str | None = None


def check_backbone_name(name: Any) -> None:
    """Raise a ValueError naming close matches if `name` is not a timm architecture (optionally `arch.tag`)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"backbone={name!r} must be a timm model name such as 'resnet50' or 'convnext_tiny'.")
    arch = timm.models.get_arch_name(name)
    if timm.is_model(arch):
        return
    hints = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    raise ValueError(
        f"backbone={name!r} is not a timm model name.{hint} Any name in timm.list_models() works (an optional "
        "pretrained tag is allowed, e.g. 'resnet50.a1_in1k'); list a family with timm.list_models('convnext*')."
    )


def backbone_stage_groups(backbone: nn.Module) -> "OrderedDict[str, list[str]]":
    """Parameter and buffer names (relative to `backbone`) of each stage group, input -> output.

    The groups are timm's own: `backbone.group_matcher(coarse=True)` grouped by `timm.models.group_with_matcher`,
    the mechanism `timm.optim.param_groups_layer_decay` uses. A group takes the name timm's matcher gives it:
    `"stem"`, or the text its regular expression matches (`layer1` .. `layer4` for ResNets, `stages.0` for
    ConvNeXt, `blocks.0` for EfficientNet/MobileNet/ViT). What the matcher leaves out is timm's head side (e.g.
    ConvNeXt's `head.norm`, MobileNetV3's `conv_head`, ViT's `fc_norm`); it is returned under `"head"`, with the
    classifier head, as timm's layer decay gives it the classifier's rate too. A backbone without a
    `group_matcher` is one group, `"backbone"`.
    """
    names = [n for n, _ in backbone.named_parameters()] + [n for n, _ in backbone.named_buffers()]
    try:
        matcher = backbone.group_matcher(coarse=True)
    except (AttributeError, NotImplementedError):
        matcher = None
    if matcher is None:
        return OrderedDict(backbone=names)
    ordinal_of = group_with_matcher(((n, n) for n in names), matcher, reverse=True)
    # group_with_matcher gives what no entry matches the last ordinal (inf): timm's head side.
    unmatched = [n for n in names if isinstance(matcher, dict) and _match_spec(matcher, n) is None]
    head_id = ordinal_of[unmatched[0]] if unmatched else None
    groups: OrderedDict[str, list[str]] = OrderedDict()
    names_by_id: dict[int, list[str]] = {}
    for n in names:
        names_by_id.setdefault(ordinal_of[n], []).append(n)
    taken: set[str] = set()
    for group_id in sorted(names_by_id):
        members = names_by_id[group_id]
        if group_id == head_id:
            name = "head"
        else:
            name = _group_name(matcher, members, group_id)
            while name in taken or name in CLASSIFIER_STAGES:
                name = f"{name}_"
        taken.add(name)
        groups[name] = members
    return groups


def _match_spec(matcher: dict, name: str) -> tuple[str, re.Match] | None:
    """(key, match) of the first group_matcher entry that matches `name`, as `group_with_matcher` tries them."""
    for key, spec in matcher.items():
        if spec is None:
            continue
        for pattern in [s[0] for s in spec] if isinstance(spec, (list, tuple)) else [spec]:
            match = re.match(pattern, name)
            if match:
                return key, match
    return None


def _group_name(matcher, members: list[str], group_id: int) -> str:
    if isinstance(matcher, dict):
        key, match = _match_spec(matcher, members[0])
        if key == "stem":
            return "stem"
        text = match.group(0).rstrip(".")
        if text:
            return text
    # A callable matcher: the module path the group's tensors share.
    common = members[0].split(".")[:-1]
    for n in members[1:]:
        parts = n.split(".")[:-1]
        while common and parts[: len(common)] != common:
            common = common[:-1]
    return ".".join(common) or f"group{group_id}"


@lru_cache(maxsize=16)
def _meta_backbone(name: str, kwargs_json: str) -> nn.Module:
    # On the meta device: no memory, no initialisation compute; enough for names, shapes and timm's metadata.
    kwargs = json.loads(kwargs_json)
    try:
        with torch.device("meta"):
            return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    except (TypeError, ValueError, RuntimeError, AssertionError) as error:
        raise ValueError(
            f"timm cannot build backbone={name!r} with arguments {kwargs}: {type(error).__name__}: {error}. Check "
            "model_args (they are passed to timm.create_model) and drop_path_rate."
        ) from error


class _Probe(nn.Module):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        features = self.backbone.forward_features(x)
        return features, self.backbone.forward_head(features, pre_logits=True)


@lru_cache(maxsize=64)
def _describe(name: str, kwargs_json: str, image_size: int | None) -> BackboneInfo:
    backbone = _meta_backbone(name, kwargs_json)
    data_config = dict(resolve_model_data_config(backbone))
    img_size = json.loads(kwargs_json).get("img_size")
    if img_size is not None:  # timm keeps the pretrained cfg's size when a ViT is built for another one
        side = img_size if isinstance(img_size, int) else img_size[0]
        data_config["input_size"] = (3, side, side)
    num_features = backbone.num_features
    head_features = getattr(backbone, "head_hidden_size", None) or num_features
    feature_format, probe_error = "unknown", None
    side = image_size or data_config["input_size"][-1]
    try:
        with torch.no_grad():
            features, pooled = _Probe(backbone).eval()(torch.empty(2, 3, side, side, device="meta"))
        head_features = pooled.shape[-1]
        if features.ndim == 4 and features.shape[1] == num_features:
            feature_format = "NCHW"
        elif features.ndim == 4 and features.shape[-1] == num_features:
            feature_format = "NHWC"
        elif features.ndim == 3:
            feature_format = "NLC"
    except Exception as error:  # noqa: BLE001 - any failure only means "layout unknown"; see probe_error
        probe_error = f"{type(error).__name__}: {error}"
    stages = tuple(s for s in backbone_stage_groups(backbone) if s != "head")
    return BackboneInfo(feature_format, num_features, head_features, stages, data_config, probe_error)


def describe_backbone(
    backbone: str, model_args: dict[str, Any] | None = None, image_size: int | None = None
) -> BackboneInfo:
    """Feature layout, widths, stage names and timm preprocessing of a timm backbone, without building it.

    The backbone is built once per (name, arguments) on the meta device and probed with a `[1, 3, S, S]` input (S =
    `image_size`, default timm's input size); results are cached.

    Example: `describe_backbone("convnext_atto").stage_names` -> `('stem', 'stages.0', ..., 'stages.3')`.
    """
    check_backbone_name(backbone)
    return _describe(backbone, json.dumps(model_args or {}, sort_keys=True), image_size)


class InatConfig(PreTrainedConfig):
    r"""
    Configuration for [`InatForImageClassification`].

    Args:
        backbone (`str`, *optional*, defaults to `"resnet50"`):
            Any timm architecture (`timm.list_models()`: `resnet50`, `convnext_tiny`, `efficientnet_b0`,
            `vit_base_patch16_224`, `eva02_small_patch14_224`, ...). An optional pretrained tag (`resnet50.a1_in1k`)
            selects the timm preprocessing defaults below (and the weights `from_backbone_pretrained` fetches).
        model_args (`dict` or `str`, *optional*):
            Extra `timm.create_model` keyword arguments, e.g. `{"img_size": 64}` for a ViT at another input size
            (a JSON string is loaded, as `TrainingArguments` reads its dict arguments).
            `pretrained`, `num_classes`, `global_pool`, `features_only`, `in_chans` are set by the model, and
            `drop_path_rate` has its own field.
        drop_path_rate (`float`, *optional*):
            Stochastic depth rate passed to timm, in [0, 1); `None` keeps timm's default (0 for most models).
        attn_layer (`str`, *optional*, defaults to `"se"`):
            Channel attention applied to the final feature map, built with timm's `create_attn`: one of
            `"se"`, `"eca"`, `"cbam"` or `"none"`. Only for backbones whose features are an NCHW map (CNNs); a
            token backbone (ViT, EVA, ...) needs `"none"`.
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
            "species": [...]}, "common_names": [...], "category_ids": [[...], ...]}`. Stored as given; the keys of
            `"ranks"` are [`RANKS`] and every per-label list (top-level lists and the lists in `"ranks"`) must have
            `num_labels` entries. `inat_hf.data.Taxonomy.from_config` reads it.
        image_size (`int`, *optional*):
            Side of the square model input (also the training crop's); `None`: the backbone's timm input size.
        crop_pct (`float`, *optional*):
            Center-crop fraction for evaluation, in (0, 1]: images are resized so that their shortest edge is
            `floor(image_size / crop_pct)` and then center-cropped to `image_size` (timm's convention); `None`: the
            backbone's timm value.
        interpolation (`str`, *optional*):
            Evaluation resize interpolation, `"bicubic"` or `"bilinear"`; `None`: the backbone's timm value.
        image_mean (`list[float]`, *optional*):
            Per-channel RGB mean used to normalise inputs scaled to [0, 1] (training too); `None`: timm's value.
        image_std (`list[float]`, *optional*):
            Per-channel RGB std used to normalise inputs scaled to [0, 1] (training too); `None`: timm's value.

    The five preprocessing fields left at `None` are filled from timm's pretrained config of the backbone
    (`timm.data.resolve_model_data_config`; `image_size` follows `model_args["img_size"]` when given), so that a
    ViT gets its own mean/std and crop. A saved config always holds the resolved values.

    Labels use the standard `id2label` / `label2id` / `num_labels` arguments.

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

    def __post_init__(self, **kwargs):
        # `num_labels` is not stored (transformers derives it from `id2label`), so a disagreement can only be seen here.
        num_labels = kwargs.get("num_labels")
        if num_labels is not None and self.id2label is not None and len(self.id2label) != num_labels:
            raise ValueError(
                f"num_labels={num_labels} disagrees with id2label, which has {len(self.id2label)} entries. "
                "Pass only `id2label` (num_labels follows from it) or make both agree."
            )
        if isinstance(self.model_args, str):  # a JSON object from the command line, as TrainingArguments reads dicts
            self.model_args = json.loads(self.model_args) if self.model_args.strip() else None
        # JSON has no tuples and dataclass defaults cannot be lists: keep lists so that a saved and reloaded config
        # compares equal to the original.
        if not isinstance(self.head_hidden_sizes, (list, tuple)):
            raise ValueError(
                f"head_hidden_sizes={self.head_hidden_sizes!r} must be a list of positive integers "
                "(an empty list gives a linear classifier)."
            )
        self.head_hidden_sizes = list(self.head_hidden_sizes)
        self._resolve_preprocessing()
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

    def _resolve_preprocessing(self) -> None:
        """Fill the preprocessing fields left at None from timm's pretrained config of the backbone."""
        missing = [
            n
            for n in ("image_size", "crop_pct", "interpolation", "image_mean", "image_std")
            if getattr(self, n) is None
        ]
        if not missing:
            return
        self._check_backbone_args()
        data = describe_backbone(self.backbone, self.backbone_kwargs).data_config
        timm_values = dict(
            image_size=data["input_size"][-1],
            crop_pct=data["crop_pct"],
            interpolation=data["interpolation"],
            image_mean=list(data["mean"]),
            image_std=list(data["std"]),
        )
        for name in missing:
            setattr(self, name, timm_values[name])

    # ------------------------------------------------------------------ backbone

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

    def _check_backbone_args(self) -> None:
        check_backbone_name(self.backbone)
        if self.model_args is not None:
            if not isinstance(self.model_args, dict) or not all(isinstance(k, str) for k in self.model_args):
                raise ValueError(
                    f"model_args={self.model_args!r} must be a dict of timm.create_model keyword arguments, e.g. "
                    "{'img_size': 64}."
                )
            reserved = sorted(set(self.model_args) & set(_RESERVED_MODEL_ARGS))
            if reserved:
                raise ValueError(
                    f"model_args may not set {reserved}: the model sets pretrained/num_classes/global_pool/"
                    "features_only/in_chans itself, and drop_path_rate is a config field of its own."
                )
        if self.drop_path_rate is not None and (
            not _is_number(self.drop_path_rate) or not 0 <= self.drop_path_rate < 1
        ):
            raise ValueError(f"drop_path_rate={self.drop_path_rate!r} must be in [0, 1) (None: timm's default).")

    # ------------------------------------------------------------------ validation

    def validate(self):
        """Run transformers' own checks, then this config's (also called on `save_pretrained` and model creation)."""
        super().validate()
        self._check_inat_fields()

    def _check_inat_fields(self) -> None:
        # Every message names the valid values, so a bad config file can be fixed without reading this code.
        self._check_backbone_args()
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
        self._check_backbone_features()

    def _check_backbone_features(self) -> None:
        info = self.backbone_info
        if info.probe_error is not None and "doesn't match model" in info.probe_error:
            raise ValueError(
                f"backbone={self.backbone!r} takes inputs of a fixed size and image_size={self.image_size} is not "
                f"it ({info.probe_error}). Build it for this size with model_args={{'img_size': {self.image_size}}} "
                "(timm resamples position embeddings of pretrained weights), or set image_size to its size."
            )
        if self.attn_layer != "none" and info.feature_format != "NCHW":
            why = (
                f"its forward_features returns {info.feature_format} features (tokens or channels-last), not an "
                "NCHW feature map"
                if info.feature_format != "unknown"
                else f"the layout of its features could not be determined ({info.probe_error})"
            )
            raise ValueError(
                f"attn_layer={self.attn_layer!r} needs a backbone with an NCHW feature map (a CNN), but "
                f"backbone={self.backbone!r} does not have one: {why}. Channel attention over tokens is not defined "
                "here; set attn_layer='none' (timm's own head pools the tokens)."
            )

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
        unknown = sorted(set(ranks) - set(RANKS))
        if unknown:
            raise ValueError(f"taxonomy['ranks'] has unknown rank(s) {unknown}; valid ranks: {', '.join(RANKS)}.")
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


__all__ = ["RANKS", "BackboneInfo", "InatConfig", "backbone_stage_groups", "check_backbone_name", "describe_backbone"]
