"""Classification metrics: the one metrics module of inat_hf (numpy, vectorised), shared by evaluate, predict and
the Trainer's evaluation. Inputs are per-image top-k predictions and true labels ``[N]``, never ``[N, C]`` logits
(100k images x 10k classes stay small); coarser ranks come from ``Taxonomy.rank_groups()``. Not
``evaluate.load("accuracy")``: it fetches code from the Hub and encodes its inputs into Arrow one by one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_CALIBRATION_BINS = 15


def topk_accuracy(topk_indices: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """``{f"top{k}": accuracy}`` from ``topk_indices [N, K]`` (best first; ``[N]`` is ``K = 1``) and ``labels [N]``.

    A ``k`` over ``K`` is clamped to ``K`` (exact when ``K`` is the number of classes; otherwise pass at least
    ``max(ks)`` columns); the key keeps the requested ``k``, so reports have a stable schema. No images: ``nan``.
    """
    topk_indices = np.asarray(topk_indices)
    labels = np.asarray(labels)
    if topk_indices.ndim == 1:
        topk_indices = topk_indices[:, None]
    if topk_indices.ndim != 2 or labels.ndim != 1 or topk_indices.shape[0] != labels.shape[0]:
        raise ValueError(f"expected topk_indices [N, K] and labels [N], got {topk_indices.shape} and {labels.shape}")
    hits = topk_indices == labels[:, None]  # [N, K]; a row's indices are distinct: at most one hit
    if min(ks) < 1:
        raise ValueError(f"k must be >= 1, got {min(ks)}")
    return {f"top{k}": float(hits[:, :k].any(axis=1).mean()) if hits.size else float("nan") for k in ks}


def per_class_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> dict[str, np.ndarray]:
    """Per-class top-1 statistics ``[num_labels]`` (absent classes included): ``support``, ``predicted``,
    ``correct``, ``accuracy`` (= ``recall``), ``precision``, ``recall``, ``f1``. Undefined ratios are 0
    (scikit-learn's ``zero_division=0``); read them together with ``support`` / ``predicted``."""
    y_true, y_pred = _check_pair(y_true, y_pred)

    def count(x: np.ndarray) -> np.ndarray:
        return np.bincount(x, minlength=num_labels)[:num_labels].astype(np.int64)

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros(num_labels), where=b > 0)

    support, predicted, correct = count(y_true), count(y_pred), count(y_true[y_true == y_pred])
    recall = ratio(correct, support)
    f1 = ratio(2 * correct, support + predicted)  # 2PR / (P + R) = 2 correct / (support + predicted)
    stats = dict(support=support, predicted=predicted, correct=correct, accuracy=recall)
    return {**stats, "precision": ratio(correct, predicted), "recall": recall, "f1": f1}


def macro_averages(per_class: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Macro precision / recall / F1 over the classes present in the split (``support > 0``); macro recall is the
    balanced accuracy. Classes absent from the split would only add zeros, so they are left out."""
    present = per_class["support"] > 0
    if not present.any():
        return {"macro_precision": float("nan"), "macro_recall": float("nan"), "macro_f1": float("nan")}
    return {f"macro_{key}": float(per_class[key][present].mean()) for key in ("precision", "recall", "f1")}


def classification_report_text(y_true: np.ndarray, y_pred: np.ndarray, label_names: Sequence[str]) -> str:
    """scikit-learn's ``classification_report`` over every label (absent ones included, ``zero_division=0``)."""
    from sklearn.metrics import classification_report

    y_true, y_pred = _check_pair(y_true, y_pred)
    if not y_true.size:
        return "no labeled images\n"
    labels, names = np.arange(len(label_names)), [str(n) for n in label_names]
    return classification_report(y_true, y_pred, labels=labels, target_names=names, digits=4, zero_division=0)


def hierarchical_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, rank_groups: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """Top-1 accuracy at every rank of ``rank_groups`` (``{rank: label_to_group [C]}``, e.g.
    ``Taxonomy.rank_groups()``): right at ``r`` when ``rank_groups[r][pred] == rank_groups[r][true]``."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    out = {}
    for rank, groups in rank_groups.items():
        groups = np.asarray(groups)
        out[rank] = float((groups[y_pred] == groups[y_true]).mean()) if y_true.size else float("nan")
    return out


@dataclasses.dataclass
class ReliabilityData:
    """Equal-width confidence bins: ``edges [M+1]`` over [0, 1]; per bin ``counts``, ``mean_confidence`` and
    ``accuracy`` (``nan`` for empty bins); ``ece`` the expected calibration error. ``dataclasses.asdict`` of it is
    the ``reliability`` entry of an evaluation's ``summary.json``."""

    edges: np.ndarray
    counts: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray
    ece: float


def reliability_data(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_CALIBRATION_BINS
) -> ReliabilityData:
    """Bin top-1 ``confidence [N]`` (in [0, 1]) with ``correct [N]`` into ``n_bins`` equal-width, right-closed bins
    ``(i/M, (i+1)/M]`` (the first also holds 0), tested against the returned ``edges`` themselves."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise ValueError(f"expected confidence [N] and correct [N], got {confidence.shape} and {correct.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if confidence.size and (confidence.min() < 0 or confidence.max() > 1 + 1e-6):
        raise ValueError("confidence values must lie in [0, 1] (probabilities, not logits)")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # number of inner edges strictly below the value == index of the bin (lo, hi] holding it
    bins = np.searchsorted(edges[1:-1], confidence, side="left")  # [N] in 0..M-1
    counts = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = conf_sum / counts
        accuracy = correct_sum / counts
    total = counts.sum()
    # sum_b |B_b|/N |acc_b - conf_b| == sum_b |correct_sum_b - conf_sum_b| / N
    ece = float(np.abs(correct_sum - conf_sum).sum() / total) if total else float("nan")
    return ReliabilityData(edges=edges, counts=counts, mean_confidence=mean_conf, accuracy=accuracy, ece=ece)


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_CALIBRATION_BINS
) -> float:
    """Expected calibration error of top-1 predictions (equal-width bins, default 15; see :func:`reliability_data`)."""
    return reliability_data(confidence, correct, n_bins).ece


def sparse_confusion(
    y_true: np.ndarray, y_pred: np.ndarray, num_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confusion counts as COO triplets ``(true [M], pred [M], count [M])``, one per (true, pred) pair that occurs,
    sorted by (true, pred). Memory is ``O(min(N, C^2))``: never a dense ``C x C`` matrix."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    codes, counts = np.unique(y_true * np.int64(num_labels) + y_pred, return_counts=True)
    return codes // num_labels, codes % num_labels, counts.astype(np.int64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    """Dense ``[C, C]`` int64 confusion matrix (rows: true, columns: predicted): for small label sets only
    (``8 C^2`` bytes), :func:`sparse_confusion` otherwise."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    flat = np.bincount(y_true * np.int64(num_labels) + y_pred, minlength=num_labels * num_labels)
    return flat.reshape(num_labels, num_labels).astype(np.int64)


def most_confused(
    true: np.ndarray, pred: np.ndarray, count: np.ndarray, k: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` most frequent off-diagonal pairs of COO confusion counts, most frequent first (ties: by true, then
    predicted label). Returns ``(true [k'], pred [k'], count [k'])``."""
    off = true != pred
    true, pred, count = true[off], pred[off], count[off]
    order = np.lexsort((pred, true, -count))[:k]
    return true[order], pred[order], count[order]


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"expected y_true [N] and y_pred [N], got {y_true.shape} and {y_pred.shape}")
    return y_true, y_pred
