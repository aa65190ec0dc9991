"""Test-time augmentation: ``V`` views per image (:data:`inat_hf.data.tta_views.TTA_VIEWS`), ONE batched forward
over ``B x V`` images, so TTA costs ``V`` times the compute and nothing more.

``average="prob"`` (default) returns ``log(mean_v softmax(z_v))``: a drop-in for logits (argmax / top-k / softmax
work on it) in which a view that is very sure cannot outvote the others by logit scale alone. ``"logit"`` returns
``mean_v z_v``.
"""

from __future__ import annotations

import contextlib
import math

import torch

__all__ = ["AVERAGES", "average_views", "tta_logits", "view_logits"]

AVERAGES = ("prob", "logit")


def _model_device(model) -> torch.device | None:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return None  # a plain callable (tests) or a parameter-free module


@torch.inference_mode()
def view_logits(model, pixel_values: torch.Tensor, *, bf16: bool = False, channels_last: bool = False) -> torch.Tensor:
    """Logits of every view, from one forward over the flattened ``B x V`` batch.

    Args:
        model: returns logits ``[N, C]`` or an output with ``.logits`` (``InatForImageClassification``, any
            transformers image classifier), called as ``model(pixel_values=...)``. Put it in eval mode first.
        pixel_values: ``[B, V, 3, H, W]`` (``TTAPreset`` outputs stacked) or ``[B, 3, H, W]`` (``V = 1``); moved to
            the model's device.
        bf16: run under ``torch.autocast(dtype=torch.bfloat16)`` on the model's device type.
        channels_last: feed the flattened batch in channels-last memory format.

    Returns:
        float32 ``[B, V, C]``.
    """
    if pixel_values.ndim == 4:
        pixel_values = pixel_values.unsqueeze(1)
    if pixel_values.ndim != 5:
        raise ValueError(f"pixel_values must be [B, V, 3, H, W] or [B, 3, H, W], got {tuple(pixel_values.shape)}")
    b, v = pixel_values.shape[:2]
    device = _model_device(model)
    flat = pixel_values.flatten(0, 1)  # [B*V, 3, H, W]
    if device is not None:
        flat = flat.to(device, non_blocking=True)
    if channels_last:
        flat = flat.contiguous(memory_format=torch.channels_last)
    device_type = (device or flat.device).type
    autocast = torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        out = model(pixel_values=flat)
    logits = getattr(out, "logits", out)  # [B*V, C]
    return logits.float().view(b, v, -1)


def average_views(logits: torch.Tensor, average: str = "prob") -> torch.Tensor:
    """``[B, V, C]`` per-view logits -> ``[B, C]``: ``log(mean_v softmax)`` (``"prob"``) or ``mean_v`` (``"logit"``)."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    if logits.ndim != 3:
        raise ValueError(f"logits must be [B, V, C], got {tuple(logits.shape)}")
    if average == "logit":
        return logits.mean(dim=1)
    # log(mean_v softmax(z_v)) = logsumexp_v(log_softmax(z_v)) - log V, stable for any logit scale
    return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=1) - math.log(logits.shape[1])


@torch.inference_mode()
def tta_logits(model, pixel_values: torch.Tensor, *, average: str = "prob") -> torch.Tensor:
    """TTA scores ``[B, C]`` for ``pixel_values [B, V, 3, H, W]``, from ONE batched forward of ``B x V`` images.

    ``[B, 3, H, W]`` input is one view. The result is an inference tensor: ``.clone()`` it before in-place edits
    outside inference mode.
    """
    if average not in AVERAGES:  # before the forward pass, not after it
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    return average_views(view_logits(model, pixel_values), average)
