"""Optimizer parameter groups: differential learning rates by stage, no weight decay on norms and biases."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.backbone import CLASSIFIER_STAGES


def stage_learning_rates(
    stage_names: tuple[str, ...], *, learning_rate: float, backbone_learning_rate: float, layer_decay: float = 1.0
) -> dict[str, float]:
    """LR of every stage: the classifier LR for attention/head, ``backbone_lr × decay^k`` for the k-th stage below
    the deepest backbone stage (ResNet layer4: k=0, layer3: k=1, …, stem: k=4; a ViT's blocks.11: k=0, …, stem:
    k=12). The stages are timm's ``group_matcher`` groups, as in ``timm.optim.param_groups_layer_decay`` (which
    also gives timm's head-side layers, here in ``head``, the classifier's rate)."""
    backbone = [s for s in stage_names if s not in CLASSIFIER_STAGES]
    rates = {s: learning_rate for s in stage_names if s in CLASSIFIER_STAGES}
    for depth, stage in enumerate(reversed(backbone)):
        rates[stage] = backbone_learning_rate * layer_decay**depth
    return rates


def build_param_groups(
    model: nn.Module,
    *,
    learning_rate: float,
    backbone_learning_rate: float,
    layer_decay: float = 1.0,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """AdamW parameter groups, two per stage (with / without weight decay), named ``"<stage>"`` / ``"<stage>_no_decay"``.

    Weight decay skips 1-d tensors (biases and every norm's affine parameters) — timm's rule
    (``timm.optim.param_groups_weight_decay``), which unlike transformers' also covers BatchNorm. Parameters with
    ``requires_grad=False`` (stages frozen for the whole run) are left out. Stages frozen only for a while stay in
    their groups: the Trainer discards their gradients until they unfreeze (see ``ProgressiveUnfreezingCallback``).
    """
    stages = model.stage_parameter_names()  # {stage: [parameter names]}, every parameter in exactly one stage
    params = dict(model.named_parameters())
    rates = stage_learning_rates(
        tuple(stages),
        learning_rate=learning_rate,
        backbone_learning_rate=backbone_learning_rate,
        layer_decay=layer_decay,
    )
    groups = []
    for stage, names in stages.items():
        trainable = [(n, params[n]) for n in names if params[n].requires_grad]
        decay = [p for n, p in trainable if p.ndim > 1]
        no_decay = [p for n, p in trainable if p.ndim <= 1]
        for suffix, members, wd in (("", decay, weight_decay), ("_no_decay", no_decay, 0.0)):
            if members:
                groups.append({"params": members, "lr": rates[stage], "weight_decay": wd, "name": stage + suffix})
    return groups
