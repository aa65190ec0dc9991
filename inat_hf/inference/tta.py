"""THE inference path after the forward pass, shared by the Trainer's evaluation, ``evaluate.py``, ``predict.py``
and the web page: per-view logits (:func:`view_logits`) -> TTA average -> optional location fusion (:func:`score`)
-> softmax + top-k (:func:`top_k`). A change to TTA or fusion is one edit here. Each view's logits are divided by
the model's calibrated ``config.temperature`` (``calibrate.py``) before the views are averaged.

TTA is ONE batched forward over ``B x V`` images, so it costs ``V`` times the compute and nothing more.
``average="prob"`` (default) gives ``log(mean_v softmax(z_v))``: a drop-in for logits in which a view that is very
sure cannot outvote the others by logit scale alone. ``"logit"`` gives ``mean_v z_v``.
"""

from __future__ import annotations

import contextlib
import math

import torch

__all__ = ["AVERAGES", "average_views", "check_average", "score", "top_k", "tta_logits", "view_logits"]

AVERAGES = ("prob", "logit")


def check_average(average: str) -> None:
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")


@torch.inference_mode()
def view_logits(model, pixel_values: torch.Tensor, *, bf16: bool = False, channels_last: bool = False) -> torch.Tensor:
    """float32 logits ``[B, V, C]`` of ``pixel_values [B, V, 3, H, W]`` (or ``[B, 3, H, W]``: ``V = 1``), from one
    ``model(pixel_values=...)`` over the flattened batch, on the model's device (bf16: under autocast), divided by
    the model's ``config.temperature``."""
    if pixel_values.ndim == 4:
        pixel_values = pixel_values.unsqueeze(1)
    if pixel_values.ndim != 5:
        raise ValueError(f"pixel_values must be [B, V, 3, H, W] or [B, 3, H, W], got {tuple(pixel_values.shape)}")
    b, v = pixel_values.shape[:2]
    flat = pixel_values.flatten(0, 1)  # [B*V, 3, H, W]
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    if parameter is not None:
        flat = flat.to(parameter.device, non_blocking=True)
    if channels_last:
        flat = flat.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(flat.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    # A calibrated model (config.temperature) gives its raw logits on request and they are divided here, as an
    # exported model's are; any other module's logits are used as they come.
    temperature = getattr(getattr(model, "config", None), "temperature", None)
    raw = {} if temperature is None else {"apply_temperature": False}
    with autocast:
        out = model(pixel_values=flat, **raw)
    logits = getattr(out, "logits", out).float().view(b, v, -1)
    return logits if temperature is None else logits / temperature


def average_views(logits: torch.Tensor, average: str = "prob") -> torch.Tensor:
    """``[B, V, C]`` per-view logits -> ``[B, C]``: ``log(mean_v softmax)`` (``"prob"``) or ``mean_v`` (``"logit"``)."""
    check_average(average)
    if logits.ndim != 3:
        raise ValueError(f"logits must be [B, V, C], got {tuple(logits.shape)}")
    if average == "logit":
        return logits.mean(dim=1)
    # log(mean_v softmax(z_v)) = logsumexp_v(log_softmax(z_v)) - log V, stable for any logit scale
    return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=1) - math.log(logits.shape[1])


def score(
    logits: torch.Tensor, *, average: str = "prob", geo=None, locations=None, rows=slice(None)
) -> dict[str, torch.Tensor]:
    """Per-view logits ``[B, V, C]`` -> the scores ``[B, C]`` of each run (logits or log-probabilities: softmax
    gives the probabilities): ``"image"`` (view 0 alone for ``V == 1``, else the views' ``average``) and, with a
    location prior ``geo`` (a ``GeoFusion``) and ``locations`` (``GeoRecords``, of which the batch is ``rows``),
    ``"fused"`` (image x prior; an image without a location keeps its image scores) and ``"prior"`` (prior only).
    """
    check_average(average)
    image = logits[:, 0] if logits.shape[1] == 1 else average_views(logits, average)
    if geo is None:
        return {"image": image}
    prior = geo.log_probs(locations, rows).to(image.device)
    return {"image": image, "fused": geo.fuse(image, locations, rows), "prior": prior}


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, C]`` scores -> ``(probs, indices)``, each ``[B, min(k, C)]``, best first, computed where the scores are."""
    return scores.float().softmax(dim=-1).topk(min(k, scores.shape[-1]), dim=-1)


@torch.inference_mode()
def tta_logits(model, pixel_values: torch.Tensor, *, average: str = "prob") -> torch.Tensor:
    """``score(view_logits(model, pixel_values), average=average)["image"]``: TTA scores ``[B, C]`` (an inference
    tensor: ``.clone()`` it before in-place edits outside inference mode)."""
    check_average(average)  # before the forward pass, not after it
    return score(view_logits(model, pixel_values), average=average)["image"]
