"""What the model needs to know about a timm backbone before building it (feature layout, widths, stage groups,
timm's preprocessing), found on the meta device. Shipped with checkpoints: imports only torch and timm."""

import dataclasses
import difflib
import json
import re
from functools import lru_cache
from itertools import chain
from typing import Any

import timm
import torch
from timm.data import resolve_model_data_config
from timm.models._manipulate import group_with_matcher  # what timm.models.group_parameters calls
from torch import nn

# Stage names the model adds after the backbone's; a backbone group may not take them.
CLASSIFIER_STAGES = ("attention", "head")
# timm.create_model arguments the model sets itself (or, for drop_path_rate, a config field of its own).
_RESERVED_MODEL_ARGS = ("pretrained", "num_classes", "global_pool", "features_only", "in_chans", "drop_path_rate")


@dataclasses.dataclass(frozen=True)
class BackboneInfo:
    """`feature_format`: layout of `forward_features` at the probed size, `"NCHW"` (CNN map, where channel attention
    applies), `"NHWC"` (Swin), `"NLC"` (ViT/EVA tokens) or `"unknown"` (see `probe_error`). `num_features`: width of
    that map; `head_features`: width of `forward_head(pre_logits=True)`, the head's input. `stage_names`: the
    backbone's stage groups (`backbone_stage_groups`). `preprocessing`: timm's for it, as InatConfig fields."""

    feature_format: str
    num_features: int
    head_features: int
    stage_names: tuple[str, ...]
    preprocessing: dict[str, Any]
    probe_error: str | None = None

    def check_fits(self, backbone: str, attn_layer: str, image_size: int) -> None:
        """Raise a fix-it ValueError if the backbone cannot take `image_size` inputs or `attn_layer` its features."""
        if self.probe_error is not None and "doesn't match model" in self.probe_error:
            raise ValueError(
                f"backbone={backbone!r} takes inputs of a fixed size and image_size={image_size} is not it "
                f"({self.probe_error}). Build it for this size with model_args={{'img_size': {image_size}}} (timm "
                "resamples position embeddings of pretrained weights), or set image_size to its size."
            )
        if attn_layer != "none" and self.feature_format != "NCHW":
            why = (
                f"its forward_features returns {self.feature_format} features (tokens or channels-last)"
                if self.feature_format != "unknown"
                else f"the layout of its features could not be determined ({self.probe_error})"
            )
            raise ValueError(
                f"attn_layer={attn_layer!r} needs a backbone with an NCHW feature map (a CNN), but "
                f"backbone={backbone!r} does not have one: {why}. Channel attention over tokens is not defined "
                "here; set attn_layer='none' (timm's own head pools the tokens)."
            )


def check_backbone(name: Any, model_args: dict[str, Any] | None = None) -> None:
    """Raise a fix-it ValueError if `name` is not a timm architecture (optionally `arch.tag`; close matches are
    named) or `model_args` is not a dict that leaves the model's own arguments alone."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"backbone={name!r} must be a timm model name such as 'resnet50' or 'convnext_tiny'.")
    arch = timm.models.get_arch_name(name)
    if not timm.is_model(arch):
        hints = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
        raise ValueError(
            f"backbone={name!r} is not a timm model name.{hint} Any name in timm.list_models() works (an optional "
            "pretrained tag is allowed, e.g. 'resnet50.a1_in1k'); list a family with timm.list_models('convnext*')."
        )
    if model_args is not None and not isinstance(model_args, dict):
        raise ValueError(f"model_args={model_args!r} must be a dict of timm.create_model keyword arguments.")
    reserved = sorted(set(model_args or {}) & set(_RESERVED_MODEL_ARGS))
    if reserved:
        raise ValueError(
            f"model_args may not set {reserved}: the model sets pretrained/num_classes/global_pool/features_only/"
            "in_chans itself, and drop_path_rate is a config field of its own."
        )


def backbone_stage_groups(backbone: nn.Module) -> dict[str, list[str]]:
    """Parameter and buffer names of each stage group, input -> output: timm's `group_matcher(coarse=True)` groups
    (as `timm.optim.param_groups_layer_decay`), named by what the pattern matches (`stem`, `layer1`, `stages.0`,
    `blocks.0`). What no pattern matches is timm's head side (ViT's `fc_norm`): `"head"`. Without a matcher: one
    group, `"backbone"`."""
    names = tensor_names(backbone)
    try:
        matcher = backbone.group_matcher(coarse=True)
    except (AttributeError, NotImplementedError):
        matcher = None
    if matcher is None:
        return {"backbone": names}
    groups: dict[str, list[str]] = {}
    for index, members in group_with_matcher(((n, None) for n in names), matcher).items():
        name = _group_name(matcher, members, index)
        if name is None:  # what no pattern matches (the last ordinal): timm's head side
            groups["head"] = members
            continue
        while name in groups or name in CLASSIFIER_STAGES:
            name = f"{name}_"
        groups[name] = members
    return groups


def tensor_names(module: nn.Module) -> list[str]:
    return [n for n, _ in chain(module.named_parameters(), module.named_buffers())]


def _group_name(matcher, members: list[str], index: int) -> str | None:
    if isinstance(matcher, dict):
        for key, spec in matcher.items():  # the first pattern that matches, as group_with_matcher tries them
            for pattern in [s[0] for s in spec] if isinstance(spec, (list, tuple)) else [spec] if spec else []:
                match = re.match(pattern, members[0])
                if match:
                    return "stem" if key == "stem" else match.group(0).rstrip(".") or f"group{index}"
        return None
    # A callable matcher: the module path the group's tensors share.
    common = []
    for level in zip(*(n.split(".")[:-1] for n in members)):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return ".".join(common) or f"group{index}"


@lru_cache(maxsize=16)
def _meta_backbone(name: str, kwargs_json: str) -> nn.Module:
    kwargs = json.loads(kwargs_json)
    try:
        with torch.device("meta"):
            return timm.create_model(name, pretrained=False, num_classes=0, **kwargs).eval()
    except (TypeError, ValueError, RuntimeError, AssertionError) as error:
        raise ValueError(
            f"timm cannot build backbone={name!r} with arguments {kwargs}: {type(error).__name__}: {error}. Check "
            "model_args (they are passed to timm.create_model) and drop_path_rate."
        ) from error


@lru_cache(maxsize=64)
def _describe(name: str, kwargs_json: str, image_size: int | None) -> BackboneInfo:
    backbone = _meta_backbone(name, kwargs_json)
    data = resolve_model_data_config(backbone)
    img_size = json.loads(kwargs_json).get("img_size")  # timm's cfg keeps its size when a ViT is built for another
    side = data["input_size"][-1] if img_size is None else img_size if isinstance(img_size, int) else img_size[0]
    preprocessing = dict(
        image_size=side,
        crop_pct=data["crop_pct"],
        interpolation=data["interpolation"],
        image_mean=list(data["mean"]),
        image_std=list(data["std"]),
    )
    num_features = backbone.num_features
    head_features = getattr(backbone, "head_hidden_size", None) or num_features
    feature_format, probe_error = "unknown", None
    side = image_size or side
    try:
        with torch.no_grad():
            features = backbone.forward_features(torch.empty(2, 3, side, side, device="meta"))
            head_features = backbone.forward_head(features, pre_logits=True).shape[-1]
        if features.ndim == 4 and features.shape[1] == num_features:
            feature_format = "NCHW"
        elif features.ndim == 4 and features.shape[-1] == num_features:
            feature_format = "NHWC"
        elif features.ndim == 3:
            feature_format = "NLC"
    except Exception as error:  # noqa: BLE001 - any failure only means "layout unknown"; see probe_error
        probe_error = f"{type(error).__name__}: {error}"
    stages = tuple(s for s in backbone_stage_groups(backbone) if s != "head")
    return BackboneInfo(feature_format, num_features, head_features, stages, preprocessing, probe_error)


def describe_backbone(
    backbone: str, model_args: dict[str, Any] | None = None, image_size: int | None = None
) -> BackboneInfo:
    """Feature layout, widths, stage names and timm preprocessing of a timm backbone, built once per (name,
    arguments) on the meta device and probed with an `image_size` input (default: timm's)."""
    check_backbone(backbone)
    return _describe(backbone, json.dumps(model_args or {}, sort_keys=True), image_size)


__all__ = [
    "CLASSIFIER_STAGES",
    "BackboneInfo",
    "backbone_stage_groups",
    "check_backbone",
    "describe_backbone",
    "tensor_names",
]
