"""Focal loss with label smoothing, for hard (class index) and soft (probability) targets.

For logits `z` ([B, C]), `p = softmax(z)` and a target distribution `q` ([B, C]) the loss of one sample is

    loss = - sum_c  alpha_c * q_c * (1 - p_c) ** gamma * log(p_c)

* hard targets `y` ([B], int64): `q = (1 - label_smoothing) * one_hot(y) + label_smoothing / C`, exactly the target
  `F.cross_entropy(..., label_smoothing=...)` uses, so `gamma=0, alpha=None` reproduces cross-entropy;
* soft targets ([B, C], float, e.g. from mixup/cutmix): `q` is the target as given. **`label_smoothing` is not applied
  to soft targets**: mixup/cutmix targets are built with their own smoothing (`timm.data.Mixup(label_smoothing=...)`),
  and smoothing them a second time would silently double it. Pass the smoothing to the mixup instead.

`alpha` weighs each class term (for hard targets without smoothing this is the usual `alpha_y`). The `"mean"`
reduction is a plain mean over the batch (like `torchvision.ops.sigmoid_focal_loss`), not the alpha-weighted mean of
`F.cross_entropy(weight=...)`. The loss is computed in float32 from `log_softmax` whatever the logits' dtype.

This module only imports torch: it is shipped with checkpoints for `trust_remote_code` loading.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")


def _check_settings(gamma: float, label_smoothing: float, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not supported; valid choices: {', '.join(REDUCTIONS)}.")
    if gamma < 0:
        raise ValueError(f"gamma={gamma} must be >= 0 (0 gives cross-entropy).")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1).")


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: torch.Tensor | Sequence[float] | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax focal loss with label smoothing (see the module docstring for the exact formula).

    Args:
        logits: `[B, C]` unnormalised scores (any float dtype; computed in float32).
        target: class indices `[B]` (integer) or a target distribution `[B, C]` (float; used as given, not smoothed).
        gamma: focusing parameter, >= 0; 0 disables the modulating factor.
        alpha: optional per-class weights `[C]`.
        label_smoothing: in [0, 1); applied to class-index targets only.
        reduction: `"mean"` (over the batch), `"sum"` or `"none"` (`[B]`).

    Returns:
        A float32 scalar, or `[B]` for `reduction="none"`.
    """
    _check_settings(gamma, label_smoothing, reduction)
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

    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


__all__ = ["focal_loss"]
