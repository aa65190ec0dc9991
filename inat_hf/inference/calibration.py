"""Calibration: the logit temperature ``T`` of an image model and the weight ``w`` of a location prior fused with it,
fitted by minimum negative log-likelihood on held-out labeled images (Guo et al. 2017: LBFGS on ``log T``).

Label smoothing and mixup train models to be under-confident and the fusion ``p(y|x) · ratio^w`` is only Bayes-optimal
for calibrated ``p(y|x)``: the back-off threshold and ``w = 1`` mean what they say once ``T`` and ``w`` are fitted.
``T`` divides each view's logits (:func:`.tta.view_logits`); ``w`` is fitted after ``T``, on the fused scores, so an
image without a location still gets calibrated image probabilities. A fit never sees the images it is reported on:
:func:`split_indices` halves a split by image (seeded), :func:`calibrate` fits on one part and scores the other.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.collate import ImageClassificationCollator
from ..data.torch_dataset import ImageClassificationDataset
from ..files import atomic_write
from . import metrics as M
from . import tta
from .backoff import BackoffAccumulator, RankGroups, backoff_table
from .errors import InferenceError

__all__ = ["CalibrationFit", "calibrate", "collect_view_logits", "fit_log_scale", "save_calibration"]
__all__ += ["score_metrics", "split_indices"]


def split_indices(n: int, fit_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``n`` images: ``(fit, report)`` index arrays, sorted, disjoint, both non-empty."""
    if n < 2:
        raise InferenceError(f"calibration needs at least 2 labeled images (one to fit, one to report), got {n}.")
    order = np.random.default_rng(seed).permutation(n)
    cut = min(max(round(n * fit_fraction), 1), n - 1)
    return np.sort(order[:cut]), np.sort(order[cut:])


def fit_log_scale(nll, init: float = 0.0, max_iter: int = 100) -> float:
    """``exp(s)`` for the ``s`` minimising ``nll(s)`` (a differentiable scalar function of a 0-d tensor), by LBFGS
    with a strong-Wolfe line search from ``init``: the standard way to fit a temperature (positive by
    construction)."""
    s = torch.tensor(float(init), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([s], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nll(s)
        loss.backward()
        return loss

    optimizer.step(closure)
    value = float(s.detach().exp())
    if not math.isfinite(value) or value <= 0:
        raise InferenceError(f"the calibration fit diverged (scale {value}); are the logits finite and varied?")
    return value


def _image_scores(view_logits: torch.Tensor, temperature: float, average: str) -> torch.Tensor:
    return tta.score(view_logits / temperature, average=average)["image"].float().log_softmax(-1)


def fit_temperature(view_logits: torch.Tensor, labels: torch.Tensor, average: str = "prob") -> float:
    """The temperature ``T`` minimising the NLL of the TTA-averaged ``softmax(view_logits / T)``."""
    logits, labels = view_logits.double(), labels.long()

    def nll(log_t):
        return torch.nn.functional.cross_entropy(_image_scores(logits, log_t.exp(), average), labels)

    return fit_log_scale(nll)


def fit_fusion_weight(image_scores: torch.Tensor, log_ratio: torch.Tensor, labels: torch.Tensor) -> float:
    """The weight ``w`` minimising the NLL of ``softmax(log p(y|x) + w · log_ratio)`` (``log_ratio``: the prior's
    fusion term at weight 1; zeros for images without a location)."""
    scores, ratio, labels = image_scores.double().log_softmax(-1), log_ratio.double(), labels.long()

    def nll(log_w):
        return torch.nn.functional.cross_entropy(scores + log_w.exp() * ratio, labels)

    return fit_log_scale(nll)


@torch.inference_mode()
def collect_view_logits(
    predictor, split, *, num_views: int = 1, batch_size: int = 32, num_workers: int = 0, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-view logits ``[N, V, C]`` (float32, CPU; already divided by the model's current temperature) and labels
    ``[N]`` of a prepared split, from :meth:`Predictor.scores` (the one inference path). Unlike evaluation this keeps
    ``[N, V, C]``: calibrate on a few thousand images, not on a 100k-image split of 10k classes."""
    dataset = ImageClassificationDataset(split, predictor.transform(num_views))
    loader = predictor.loader(dataset, ImageClassificationCollator(), batch_size=batch_size, num_workers=num_workers)
    logits, labels = [], []
    with tqdm(total=len(dataset), unit="img", desc="logits", disable=None if progress else True) as bar:
        for batch in loader:
            view_logits, _ = predictor.scores(batch["pixel_values"])
            logits.append(view_logits.cpu() / predictor.temperature)  # (scores() gives the raw logits)
            labels.append(batch["labels"].cpu())
            bar.update(len(batch["labels"]))
    return torch.cat(logits), torch.cat(labels)


def score_metrics(
    scores: torch.Tensor, labels: torch.Tensor, *, groups: RankGroups | None, threshold: float, n_bins: int = 15
) -> dict[str, Any]:
    """ECE, NLL and top-1 of ``scores [N, C]`` (logits or log-probabilities), and with ``groups`` the back-off's
    precision (how often the answer is right) and coverage (how often it names a taxon at all, and the species)."""
    scores, labels = scores.float(), labels.long()
    probs = scores.softmax(-1)
    confidence, predicted = probs.max(-1)
    correct = (predicted == labels).numpy()
    out = {
        "images": len(labels),
        "ece": M.expected_calibration_error(confidence.numpy(), correct, n_bins),
        "nll": float(torch.nn.functional.cross_entropy(scores.log_softmax(-1), labels)),
        "top1": float(correct.mean()),
        "mean_confidence": float(confidence.mean()),
    }
    if groups is not None:
        accumulator = BackoffAccumulator(groups)
        accumulator.update(scores, labels)
        table = backoff_table(*accumulator.result(), groups.ranks, threshold)
        out["backoff_precision"] = table["overall_precision"]
        out["backoff_coverage"] = 1 - table["no_answer"] / len(labels)
        out[f"backoff_coverage_{groups.ranks[0]}"] = table["per_rank"][groups.ranks[0]]["coverage"]
    return out


@dataclasses.dataclass
class CalibrationFit:
    """What :func:`calibrate` fitted (``temperature``, ``fusion_weight``: the values to save) and its report: per
    run (``"image"``, ``"fused"``) the metrics ``before`` (the checkpoint as it was) and ``after`` on the held-out
    images."""

    temperature: float
    fusion_weight: float | None
    report: dict[str, Any]


def calibrate(
    view_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 1.0,
    average: str = "prob",
    fit_fraction: float = 0.5,
    seed: int = 0,
    log_ratio: torch.Tensor | None = None,
    fusion_weight: float | None = None,
    groups: RankGroups | None = None,
    threshold: float = 0.8,
    n_bins: int = 15,
) -> CalibrationFit:
    """Fit ``T`` (and ``w`` with ``log_ratio [N, C]``, the prior's fusion term at weight 1) on ``fit_fraction`` of the
    images and report on the rest. ``view_logits [N, V, C]`` are the model's current outputs, already divided by its
    ``temperature``; ``fusion_weight``: the weight used so far. Returns the new absolute values."""
    fit, held = (torch.from_numpy(i) for i in split_indices(len(labels), fit_fraction, seed))
    scale = fit_temperature(view_logits[fit], labels[fit], average)
    out_t = temperature * scale
    before = {"image": _image_scores(view_logits[held], 1.0, average)}
    after = {"image": _image_scores(view_logits[held], scale, average)}
    out_w = None
    if log_ratio is not None:
        out_w = fit_fusion_weight(_image_scores(view_logits[fit], scale, average), log_ratio[fit], labels[fit])
        before["fused"] = before["image"] + fusion_weight * log_ratio[held]
        after["fused"] = after["image"] + out_w * log_ratio[held]
    report = {
        "fit_images": len(fit),
        "report_images": len(held),
        "seed": seed,
        "tta_average": average,
        "temperature": {"before": temperature, "after": out_t},
        **({"fusion_weight": {"before": fusion_weight, "after": out_w}} if log_ratio is not None else {}),
        "runs": {
            name: {
                when: score_metrics(scores[name], labels[held], groups=groups, threshold=threshold, n_bins=n_bins)
                for when, scores in (("before", before), ("after", after))
            }
            for name in before
        },
    }
    return CalibrationFit(out_t, out_w, report)


def save_calibration(model_dir: str | os.PathLike, temperature: float, fusion_weight: float | None = None) -> str:
    """Write ``temperature`` (and ``fusion_weight`` unless ``None``) into ``model_dir/config.json``, atomically;
    nothing else of the checkpoint (weights, processor) is touched. Returns the file written."""
    path = os.path.join(os.path.expanduser(os.fspath(model_dir)), "config.json")
    if not os.path.isfile(path):
        raise InferenceError(
            f"cannot save the calibration: {path} does not exist (a local checkpoint folder is needed)."
        )
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config["temperature"] = float(temperature)
    if fusion_weight is not None:
        config["fusion_weight"] = float(fusion_weight)
    text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"  # as transformers writes it
    with atomic_write(path) as f:
        f.write(text)
    return path
