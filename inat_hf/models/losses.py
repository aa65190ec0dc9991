"""Focal loss with label smoothing, for hard (class index) and soft (probability) targets.

For logits `z` [B, C], `p = softmax(z)` and a target distribution `q` [B, C], one sample's loss is
`- sum_c alpha_c * q_c * (1 - p_c) ** gamma * log(p_c)`, where for class indices `y` [B]
`q = (1 - label_smoothing) * one_hot(y) + label_smoothing / C` (the target of `F.cross_entropy(label_smoothing=)`,
so `gamma=0, alpha=None` is cross-entropy), and soft targets (mixup/cutmix) are used as given: they carry their own
smoothing (`timm.data.Mixup(label_smoothing=...)`), a second one would silently double it. `"mean"` is a plain
mean over the batch (as `torchvision.ops.sigmoid_focal_loss`), not `F.cross_entropy(weight=)`'s weighted mean.
Computed in float32 from `log_softmax` whatever the logits' dtype. Shipped with checkpoints: imports only torch.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: torch.Tensor | Sequence[float] | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax focal loss (see the module docstring): `logits` [B, C]; `target` class indices [B] or a distribution
    [B, C]; `alpha` optional per-class weights [C]; `label_smoothing` in [0, 1) for class indices only; `reduction`
    `"mean"`, `"sum"` or `"none"` ([B]). Returns float32."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not supported; valid choices: {', '.join(REDUCTIONS)}.")
    if gamma < 0:
        raise ValueError(f"gamma={gamma} must be >= 0 (0 gives cross-entropy).")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1).")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape [batch, num_classes], got {tuple(logits.shape)}.")
    batch_size, num_classes = logits.shape

    # float32 + log_softmax: stable for large logits and for fp16/bf16 activations.
    log_p = F.log_softmax(logits.float(), dim=-1)  # [B, C]
    weighted = log_p
    if gamma > 0:
        # 1 - p computed as -expm1(log p): accurate when p is close to 1. The clamp keeps the gradient of
        # (1 - p) ** gamma finite for gamma < 1 when p rounds to exactly 1.
        one_minus_p = (-torch.expm1(log_p)).clamp_min(torch.finfo(torch.float32).tiny)
        weighted = one_minus_p.pow(gamma) * log_p  # [B, C]
    if alpha is not None:
        alpha = torch.as_tensor(alpha, dtype=torch.float32, device=logits.device)
        if alpha.shape != (num_classes,):
            raise ValueError(f"alpha must have one weight per class ({num_classes}), got shape {tuple(alpha.shape)}.")
        weighted = weighted * alpha  # [B, C] * [C]

    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(
                f"Soft targets must have the logits' shape [batch, num_classes] = {list(logits.shape)}, "
                f"got {list(target.shape)}."
            )
        loss = -(target.float() * weighted).sum(dim=-1)  # [B]
    else:
        if target.shape != (batch_size,):
            raise ValueError(
                f"Class-index targets must have shape [batch] = [{batch_size}], got {list(target.shape)}; "
                "use a float [batch, num_classes] tensor for soft targets."
            )
        # Gather instead of multiplying by a one-hot: exact cross-entropy for gamma=0 and no 0 * -inf = nan.
        loss = -weighted.gather(1, target.long().unsqueeze(1)).squeeze(1)  # [B]
        if label_smoothing > 0:
            # (1 - eps) * term(y) + eps / C * sum_c term(c), as F.cross_entropy(label_smoothing=eps).
            loss = (1 - label_smoothing) * loss - label_smoothing * weighted.mean(dim=-1)

    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()


__all__ = ["focal_loss"]
