"""THE inference path after the forward pass, shared by the Trainer's evaluation, ``evaluate.py``, ``predict.py``
and the web page: per-view logits (:func:`view_logits`, or an ONNX graph's) -> TTA average -> optional location
fusion (:func:`score`) -> softmax + top-k (:func:`top_k`). A change to TTA or fusion is one edit here. Each view's
logits are divided by the model's calibrated ``config.temperature`` (``calibrate.py``) in :func:`score`, before the
views are averaged; :func:`view_logits` gives the raw logits (as an exported graph does).

TTA is ONE batched forward over ``B x V`` images, so it costs ``V`` times the compute and nothing more.
``average="prob"`` (default) gives ``log(mean_v softmax(z_v))``: a drop-in for logits in which a view that is very
sure cannot outvote the others by logit scale alone. ``"logit"`` gives ``mean_v z_v``.

The math after the forward pass takes torch tensors (on any device: the evaluator reduces on the GPU) or numpy
arrays (the ONNX backend, which never imports torch): one formula, written with the functions both libraries name
alike (``amax``, ``sum``, ``exp``, ``log``, ``mean`` with ``axis``/``keepdims``). torch is imported only by
:func:`view_logits` / :func:`tta_logits`.
"""

from __future__ import annotations

import contextlib
import math
import sys

import numpy as np

__all__ = [
    "AVERAGES",
    "array_module",
    "average_views",
    "check_average",
    "log_softmax",
    "score",
    "softmax",
    "top_k",
    "tta_logits",
    "view_logits",
]

AVERAGES = ("prob", "logit")


def check_average(average: str) -> None:
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")


def view_logits(model, pixel_values, *, bf16: bool = False, channels_last: bool = False):
    """float32 logits ``[B, V, C]`` of ``pixel_values [B, V, 3, H, W]`` (or ``[B, 3, H, W]``: ``V = 1``), from one
    ``model(pixel_values=...)`` over the flattened batch, on the model's device (bf16: under autocast): the raw
    logits, before any calibrated temperature (:func:`score` applies it)."""
    import torch

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
    # A calibrated model's eval-mode forward divides by its temperature (for pipeline()); here the raw logits are
    # wanted, as an exported graph gives them: score() divides once, for both backends.
    raw = {"apply_temperature": False} if hasattr(getattr(model, "config", None), "temperature") else {}
    with torch.inference_mode(), autocast:
        out = model(pixel_values=flat, **raw)
    return getattr(out, "logits", out).float().view(b, v, -1)


def array_module(x):
    """The array library of ``x``: numpy for an ndarray, else torch (a tensor: torch is imported already)."""
    return np if isinstance(x, np.ndarray) else sys.modules["torch"]


def log_softmax(z, axis: int = -1):
    """``log softmax`` of a tensor or an array along ``axis`` (max-shifted: stable for any logit scale)."""
    xp = array_module(z)
    shifted = z - xp.amax(z, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def softmax(z, axis: int = -1):
    return array_module(z).exp(log_softmax(z, axis))


def average_views(logits, average: str = "prob"):
    """``[B, V, C]`` per-view logits -> ``[B, C]``: ``log(mean_v softmax)`` (``"prob"``) or ``mean_v`` (``"logit"``)."""
    check_average(average)
    if logits.ndim != 3:
        raise ValueError(f"logits must be [B, V, C], got {tuple(logits.shape)}")
    xp = array_module(logits)
    if average == "logit":
        return xp.mean(logits, axis=1)
    # log(mean_v softmax(z_v)) = logsumexp_v(log_softmax(z_v)) - log V, stable for any logit scale
    logp = log_softmax(logits)
    top = xp.amax(logp, axis=1, keepdims=True)
    return (top + xp.log(xp.sum(xp.exp(logp - top), axis=1, keepdims=True)))[:, 0] - math.log(logits.shape[1])


def score(
    logits, *, average: str = "prob", temperature: float = 1.0, geo=None, locations=None, rows=slice(None)
) -> dict:
    """Per-view logits ``[B, V, C]`` (a tensor or an array) -> the scores ``[B, C]`` of each run (logits or
    log-probabilities: softmax gives the probabilities): ``"image"`` (view 0 alone for ``V == 1``, else the views'
    ``average``, each view's logits divided by ``temperature`` first) and, with a location prior ``geo`` (a
    ``GeoFusion``) and ``locations`` (``GeoRecords``, of which the batch is ``rows``), ``"fused"`` (image x prior; an
    image without a location keeps its image scores) and ``"prior"`` (prior only).
    """
    check_average(average)
    if temperature != 1.0:
        logits = logits / temperature
    image = logits[:, 0] if logits.shape[1] == 1 else average_views(logits, average)
    if geo is None:
        return {"image": image}
    return {
        "image": image,
        "fused": geo.fuse(image, locations, rows),
        "prior": geo.log_probs(locations, rows, like=image),
    }


def top_k(scores, k: int):
    """``[B, C]`` scores -> ``(probs, indices)``, each ``[B, min(k, C)]``, best first, computed where the scores are
    (an array: numpy arrays, ties broken by the lower index as ``torch.topk`` on CPU does)."""
    k = min(k, scores.shape[-1])
    if isinstance(scores, np.ndarray):
        probs = softmax(scores.astype(np.float32, copy=False))
        indices = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
        return np.take_along_axis(probs, indices, axis=-1), indices
    return softmax(scores.float()).topk(k, dim=-1)


def tta_logits(model, pixel_values, *, average: str = "prob"):
    """``score(view_logits(model, pixel_values), average=average, temperature=T)["image"]``: TTA scores ``[B, C]``
    with the model's calibrated ``config.temperature`` T (1 when absent; an inference tensor: ``.clone()`` it before
    in-place edits outside inference mode)."""
    import torch

    check_average(average)  # before the forward pass, not after it
    temperature = float(getattr(getattr(model, "config", None), "temperature", 1.0))
    with torch.inference_mode():
        return score(view_logits(model, pixel_values), average=average, temperature=temperature)["image"]
