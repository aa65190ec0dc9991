"""Test-time augmentation (TTA): ``V`` views per image, ONE batched forward over ``B x V`` images.

Views
-----
The views come from :class:`inat_hf.data.transforms.TTAPreset` (``num_views=V`` takes the first ``V`` of
:data:`inat_hf.data.transforms.TTA_VIEWS`), all cut from one decode of the image. With the default ``V = 5``:

====  ===============  ======================================================================================
view  name             what the model sees (``S = image_size``, ``R = floor(S / crop_pct)``)
====  ===============  ======================================================================================
0     ``center``       the eval preset / image processor: shortest edge resized to ``R``, center crop ``S``
1     ``center_flip``  view 0 mirrored horizontally
2     ``full``         shortest edge resized to ``S`` itself, center crop ``S`` (the whole short side)
3     ``zoom_1.15``    shortest edge resized to ``floor(1.15 R)``, center crop ``S`` (subject enlarged)
4     ``zoom_1.3``     shortest edge resized to ``floor(1.3 R)``, center crop ``S``
5-7   ``*_flip``       mirrors of views 2-4 (``num_views`` up to 8)
====  ===============  ======================================================================================

Averaging
---------
``average="prob"`` (default) averages the softmax probabilities of the views and returns their log,
``log(mean_v softmax(z_v))``: a drop-in for logits (``argmax`` / ``topk`` / ``softmax`` work on it, and
``softmax(out)`` is exactly the averaged probability). ``average="logit"`` returns ``mean_v z_v``. Probability
averaging is the usual choice (a view that is very sure cannot outvote the others by logit scale alone).

Cost
----
The ``B x V`` views go through the model as one ``[B*V, 3, S, S]`` batch: one kernel launch sequence, so TTA costs
``V`` times the compute and nothing more (``benchmarks/bench_infer.py`` measures the ratio). Everything runs under
``torch.inference_mode``; optional bf16 autocast (``bf16=True``) and channels-last input (``channels_last=True``;
convert the model once with ``model.to(memory_format=torch.channels_last)``).

The same functions serve ``scripts/evaluate.py``, ``scripts/predict.py`` (through
:class:`inat_hf.inference.predictor.Predictor`) and the Trainer's evaluation (:func:`tta_logits`).
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

    ``average="prob"``: ``log(mean_v softmax(logits_v))`` (log-probabilities; argmax / top-k / softmax behave as on
    logits); ``average="logit"``: ``mean_v logits_v``. ``[B, 3, H, W]`` input is one view (plain logits for
    ``"logit"``, log-softmax for ``"prob"``). Runs under ``torch.inference_mode`` (no autograd graph; the result is
    an inference tensor: ``.clone()`` it before in-place edits outside inference mode). Returns float32.

    Trainer evaluation: with an eval dataset transformed by ``TTAPreset`` (``pixel_values [B, V, 3, S, S]``), call
    this in ``prediction_step`` instead of ``model(**inputs)``; the loss, if wanted, is
    ``nll_loss(tta_logits(...), labels)`` for ``"prob"`` (the model's own focal loss expects single-view logits).
    """
    if average not in AVERAGES:  # before the forward pass, not after it
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    return average_views(view_logits(model, pixel_values), average)
