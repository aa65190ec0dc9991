"""Streaming evaluation: a split -> per-image top-k -> metrics, without ever holding ``[N, C]`` logits.

Each batch's scores are reduced on the device to the top-k label indices and probabilities (:func:`.tta.top_k`);
only those ``[B, k]`` rows and the labels are kept, whatever the number of classes. Every metric is a function of
those arrays (:func:`compute_metrics`). The Trainer gets the same reduction through
:func:`preprocess_logits_for_metrics` + :class:`TopKComputeMetrics`.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.collate import ImageClassificationCollator
from ..data.taxonomy import Taxonomy
from ..data.torch_dataset import ImageClassificationDataset
from . import metrics as M
from .backoff import BackoffAccumulator
from .errors import InferenceError
from .predictor import Predictor
from .tta import top_k

__all__ = ["EvaluationRun", "MetricsResult", "TopKAccumulator", "TopKComputeMetrics", "TopKPredictions"]
__all__ += ["check_label_sets", "compute_metrics", "evaluate_split", "preprocess_logits_for_metrics"]

DEFAULT_TOPK = 5


@dataclasses.dataclass
class TopKPredictions:
    """Per-image results of one evaluation run: ``indices [N, k]`` (int64, best first), ``probs [N, k]``
    (float32), ``labels [N]`` (int64; -1 = unlabeled)."""

    indices: np.ndarray
    probs: np.ndarray
    labels: np.ndarray

    @property
    def predictions(self) -> np.ndarray:  # [N]
        return self.indices[:, 0]

    @property
    def confidence(self) -> np.ndarray:  # [N]
        return self.probs[:, 0]

    @property
    def labeled(self) -> np.ndarray:  # [N] bool
        return self.labels >= 0

    def __len__(self) -> int:
        return len(self.labels)


class TopKAccumulator:
    """Keeps only the top-k of each batch of scores: ``update(scores [B, C], labels [B])``, then :meth:`result`.

    The rows go into preallocated arrays (``capacity`` rows, doubled when full), not one small array per batch:
    with glibc's allocator small long-lived blocks pin the freed ``[B, C]`` score buffers (``bench_infer.py``).
    """

    def __init__(self, k: int = DEFAULT_TOPK, capacity: int | None = None):
        self.k = k
        self._n = 0
        self._capacity = max(int(capacity or 1024), 1)
        self._buffers: list[np.ndarray] = []  # indices [capacity, k] int64, probs [capacity, k] float32, labels

    def _grow(self, rows: int, width: int) -> None:
        new = [np.empty((rows, width), np.int64), np.empty((rows, width), np.float32), np.empty(rows, np.int64)]
        for old, buffer in zip(self._buffers, new):
            buffer[: self._n] = old[: self._n]
        self._buffers = new

    def update(self, scores: torch.Tensor, labels: torch.Tensor | np.ndarray | None = None) -> None:
        if scores.ndim != 2:
            raise ValueError(f"scores must be [B, C], got {tuple(scores.shape)}")
        width = min(self.k, scores.shape[1])
        if not self._buffers:
            self._grow(self._capacity, width)
        elif width != self._buffers[0].shape[1]:
            raise ValueError(
                f"scores have {scores.shape[1]} classes, earlier batches had more than {self._buffers[0].shape[1]}"
            )
        b = len(scores)
        if self._n + b > self._capacity:
            self._capacity = max(2 * self._capacity, self._n + b)
            self._grow(self._capacity, width)
        probs, indices = top_k(scores, width)  # [B, k]
        rows = slice(self._n, self._n + b)
        self._buffers[0][rows] = indices.cpu().numpy()
        self._buffers[1][rows] = probs.cpu().numpy()
        self._buffers[2][rows] = -1 if labels is None else torch.as_tensor(labels).cpu().numpy()
        self._n += b

    def result(self) -> TopKPredictions:
        """The rows so far (views of the buffers: copy them before further updates if you keep them)."""
        if not self._buffers:  # no update yet
            return TopKPredictions(
                np.zeros((0, self.k), np.int64), np.zeros((0, self.k), np.float32), np.zeros(0, np.int64)
            )
        return TopKPredictions(*(buffer[: self._n] for buffer in self._buffers))


@dataclasses.dataclass
class EvaluationRun:
    """The result of :func:`evaluate_split`: top-k predictions per run (``"no_tta"`` and/or ``"tta"``), with the
    wall time of the whole loop (data loading included)."""

    runs: dict[str, TopKPredictions]
    seconds: float
    num_images: int
    # per run: (conf [N, R], correct [N, R]) of the taxonomic back-off (inat_hf.inference.backoff)
    backoff: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    # with a prior: p(y | place, date) / p(y) of the fused top-1 answer per image [N] (1 without a location)
    prior_ratio: np.ndarray | None = None


def check_label_sets(
    model_labels: Sequence[str],
    dataset_labels: Sequence[str],
    *,
    model: str,
    dataset: str,
    fix: str = "Evaluate on data prepared with the model's label set (same --rank and --taxon as for training), or "
    "the model trained on this dataset.",
) -> None:
    """Raise :class:`InferenceError` (one line: the first differing label, what only one side has, then ``fix``)
    unless both label lists are identical (same order)."""
    model_labels, dataset_labels = [str(x) for x in model_labels], [str(x) for x in dataset_labels]
    if model_labels == dataset_labels:
        return

    def show(names):
        names = sorted(names)
        return ", ".join(repr(n) for n in names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")

    only_model = set(model_labels) - set(dataset_labels)
    only_data = set(dataset_labels) - set(model_labels)
    i = next(i for i, (a, b) in enumerate(itertools.zip_longest(model_labels, dataset_labels)) if a != b)

    def at(names):
        return repr(names[i]) if i < len(names) else "none (no such index)"

    parts = [
        f"the model's labels differ from the dataset's: {model} has {len(model_labels)} labels, {dataset} has "
        f"{len(dataset_labels)}; the first difference is at index {i}: model {at(model_labels)}, dataset "
        f"{at(dataset_labels)}"
    ]
    if only_model:
        parts.append(f"only in the model: {show(only_model)}")
    if only_data:
        parts.append(f"only in the dataset: {show(only_data)}")
    if not only_model and not only_data:
        moved = sum(a != b for a, b in zip(model_labels, dataset_labels))
        parts.append(f"same labels, different order: {moved} indices differ")
    raise InferenceError("; ".join(parts) + ". " + fix)


def evaluate_split(
    predictor: Predictor,
    split,
    *,
    num_views: int = 1,
    report_both: bool = False,
    batch_size: int = 32,
    num_workers: int = 0,
    k: int = DEFAULT_TOPK,
    progress: bool = True,
    geo=None,
    locations=None,
    backoff=None,
) -> EvaluationRun:
    """Score every image of a prepared split (``image`` + ``label`` columns, -1 = unlabeled) in one streaming pass.

    Returns the top-``k`` of ``runs["tta"]`` (``num_views > 1``) and/or ``runs["no_tta"]`` (one view, or with
    ``report_both`` view 0 of the TTA pass: :class:`TTAPreset`'s view 0 is the eval preset, so it is free). With
    ``geo`` (a ``GeoFusion``) and ``locations`` (the split's ``GeoRecords``, row by row) also ``"geo_prior"`` and
    ``"fused"``; with ``backoff`` (a ``RankGroups``) the back-off statistics of the image and fused runs.
    """
    dataset = ImageClassificationDataset(split, predictor.transform(num_views))
    loader = predictor.loader(dataset, ImageClassificationCollator(), batch_size=batch_size, num_workers=num_workers)
    if geo is not None and (locations is None or len(locations) != len(dataset)):
        raise InferenceError("geo fusion needs the split's locations, one record per image.")
    image_run = "tta" if num_views > 1 else "no_tta"
    run_names = {"image": image_run, "fused": "fused", "prior": "geo_prior"}  # score()'s runs, as reported
    both = report_both and num_views > 1
    names = ["no_tta"] * both + [image_run] + ["geo_prior", "fused"] * (geo is not None)
    accumulators = {name: TopKAccumulator(k, capacity=len(dataset)) for name in names}
    backoff_runs = (image_run, "fused")[: 1 + (geo is not None)] if backoff is not None else ()
    backoffs = {name: BackoffAccumulator(backoff) for name in backoff_runs}
    ratios = []
    offset = 0  # the loader is sequential: batch rows are split rows offset .. offset + B
    start = time.perf_counter()
    with tqdm(total=len(dataset), unit="img", desc="evaluate", disable=None if progress else True) as bar:
        for batch in loader:
            labels = batch["labels"]
            rows = slice(offset, offset + len(labels))
            offset += len(labels)
            logits, runs = predictor.scores(batch["pixel_values"], geo=geo, locations=locations, rows=rows)
            runs = {run_names[name]: scores for name, scores in runs.items()}
            if both:
                runs["no_tta"] = logits[:, 0]  # what score() gives for view 0 alone
            if geo is not None:
                ratios.append(geo.prior_ratio(locations, rows, runs["fused"].argmax(-1)).cpu().numpy())
            for name, scores in runs.items():
                accumulators[name].update(scores, labels)
                if name in backoffs:
                    backoffs[name].update(scores, labels)
            bar.update(len(labels))
    if predictor.device.type == "cuda":
        torch.cuda.synchronize(predictor.device)
    seconds = time.perf_counter() - start
    return EvaluationRun(
        runs={name: acc.result() for name, acc in accumulators.items()},
        seconds=seconds,
        num_images=len(dataset),
        backoff={name: acc.result() for name, acc in backoffs.items()},
        prior_ratio=np.concatenate(ratios) if ratios else None,
    )


@dataclasses.dataclass
class MetricsResult:
    """:func:`compute_metrics` output: ``summary`` (JSON-ready scalars), ``per_class`` (arrays ``[C]``) and
    ``reliability`` (calibration bins); ``per_class`` / ``reliability`` are ``None`` without labeled images."""

    summary: dict[str, Any]
    per_class: dict[str, np.ndarray] | None
    reliability: M.ReliabilityData | None


def compute_metrics(
    predictions: TopKPredictions,
    num_labels: int,
    *,
    rank_groups: Mapping[str, np.ndarray] | None = None,
    ks: Sequence[int] = (1, 3, 5),
    n_bins: int = M.DEFAULT_CALIBRATION_BINS,
) -> MetricsResult:
    """Accuracy metrics over the labeled images of ``predictions`` (unlabeled ones are counted, not scored)."""
    mask = predictions.labeled
    n_labeled = int(mask.sum())
    summary: dict[str, Any] = {"num_images": len(predictions), "num_labeled": n_labeled}
    if n_labeled == 0:
        summary["accuracy_metrics"] = "skipped: no labeled images (label -1 everywhere, e.g. a test split)"
        return MetricsResult(summary, None, None)
    indices, probs, labels = predictions.indices[mask], predictions.probs[mask], predictions.labels[mask]
    y_pred = indices[:, 0]
    summary.update(M.topk_accuracy(indices, labels, ks))
    per_class = M.per_class_metrics(labels, y_pred, num_labels)
    summary.update(M.macro_averages(per_class))
    reliability = M.reliability_data(probs[:, 0], y_pred == labels, n_bins)
    summary.update(ece=reliability.ece, calibration_bins=n_bins, mean_confidence=float(probs[:, 0].mean()))
    if rank_groups:
        summary["hierarchical_accuracy"] = M.hierarchical_accuracy(labels, y_pred, rank_groups)
    if n_labeled < len(predictions):
        summary["accuracy_metrics"] = f"over the {n_labeled} labeled of {len(predictions)} images"
    return MetricsResult(summary, per_class, reliability)


# -- Trainer glue ------------------------------------------------------------------------------------------------------


def preprocess_logits_for_metrics(logits, labels, k: int = DEFAULT_TOPK):
    """For ``Trainer(preprocess_logits_for_metrics=...)``: ``[B, C]`` scores -> ``(indices [B, k], probs [B, k])``
    (the Trainer then keeps ``[N, 2k]`` numbers, not ``[N, C]``); a dict of runs (:func:`.tta.score`'s) -> a dict."""
    if isinstance(logits, Mapping):
        return {name: preprocess_logits_for_metrics(scores, labels, k) for name, scores in logits.items()}
    if isinstance(logits, (tuple, list)):  # model outputs with extra tensors (hidden states)
        logits = logits[0]
    probs, indices = top_k(logits, k)
    return indices, probs


class TopKComputeMetrics:
    """For ``Trainer(compute_metrics=...)`` together with :func:`preprocess_logits_for_metrics`: top-1/3/5, ECE,
    macro F1 and (with an ``InatConfig`` taxonomy) accuracy at every rank, as ``acc_<rank>`` keys; for a dict of
    runs, each run's besides the image model's (``"image"``), prefixed with its name (``fused_top1``)."""

    KEYS = ("top1", "top3", "top5", "ece", "macro_f1")

    def __init__(self, config: Any = None):
        self.num_labels = getattr(config, "num_labels", None)
        self.rank_groups = Taxonomy.from_config(config).rank_groups() if config is not None else {}

    def __call__(self, eval_pred) -> dict[str, float]:
        runs, labels = eval_pred.predictions, np.asarray(eval_pred.label_ids).reshape(-1)
        if not isinstance(runs, Mapping):
            runs = {"image": runs}
        out = {}
        for name, (indices, probs) in runs.items():  # the image model's metrics unprefixed, "fused_top1", ...
            prefix = "" if name == "image" else f"{name}_"
            predictions = TopKPredictions(np.asarray(indices), np.asarray(probs), labels)
            num_labels = self.num_labels or int(max(predictions.indices.max(), predictions.labels.max())) + 1
            result = compute_metrics(predictions, num_labels, rank_groups=self.rank_groups).summary
            out.update({prefix + key: result[key] for key in self.KEYS if key in result})
            out.update({f"{prefix}acc_{rank}": v for rank, v in result.get("hierarchical_accuracy", {}).items()})
        return out
