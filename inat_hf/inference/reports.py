"""Evaluation reports: the files of ``DIR/test_results_<TIMESTAMP>/`` written by ``inat-evaluate``.

* ``summary.json``: top-1/3/5, ECE, macro P/R/F1, hierarchical accuracy of the primary run (TTA when enabled) and
  of every run under ``runs``; number of images, seconds per image, images/s, model, split, TTA views, options.
  ``results.md``: the runs' scores as a Markdown table.
* ``predictions.csv`` (``predictions_<run>.csv`` for the other runs): per image ``image_id, file, true_index,
  true_label, pred_index, pred_label, confidence, correct, top{i}_index, top{i}_label, top{i}_prob`` (i = 1..5).
* ``per_class.csv``: ``label_index, label, common_name, support, predicted, correct, accuracy, precision, recall,
  f1`` (every label); ``classification_report.txt``: scikit-learn's; ``hierarchical_accuracy.csv``: ``rank,
  num_groups`` and one accuracy column per run.
* up to ``max_confusion_labels`` (50) labels: ``confusion_matrix.csv/.png`` (rows true, columns predicted; the
  heatmap row-normalised). More labels: ``most_confused.csv`` (the 100 most frequent (true, predicted) pairs with
  ``count, true_support, rate, shared_rank``, the finest rank both share) and ``confusion_<rank>.csv/.png`` at a
  coarser rank (order, or class when order has more than ``max_confusion_labels`` values).
* ``reliability_diagram.png``: accuracy vs confidence per calibration bin, ECE in the title.
* ``submission.csv`` with ``--submission``: ``Id,Predicted`` (:mod:`~inat_hf.inference.submission`).

An unlabeled split gets only ``summary.json`` (saying that accuracy metrics were skipped), ``predictions.csv`` and
``submission.csv``.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.taxonomy import RANKS, Taxonomy
from ..files import printable_path
from . import metrics as M
from .evaluator import MetricsResult, TopKPredictions

MAX_CONFUSION_LABELS = 50
MOST_CONFUSED_ROWS = 100


def make_run_dir(output_dir: str | os.PathLike, prefix: str = "test_results") -> Path:
    """Create and return ``output_dir/<prefix>_<YYYYmmdd-HHMMSS>`` (``_2``, ``_3``... when it already exists)."""
    base = Path(output_dir) / f"{prefix}_{datetime.datetime.now():%Y%m%d-%H%M%S}"
    for n in itertools.count(1):
        path = base.with_name(f"{base.name}_{n}") if n > 1 else base
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            pass


def predictions_frame(
    preds: TopKPredictions, taxonomy: Taxonomy, *, image_ids: Sequence[Any], files: Sequence[str]
) -> pd.DataFrame:
    """One row per image (see the module docstring for the columns); unlabeled images have ``true_index -1`` and
    empty ``true_label`` / ``correct``."""
    names = np.asarray(taxonomy.labels, dtype=object)
    labeled = preds.labeled
    true_names = np.where(labeled, names[np.where(labeled, preds.labels, 0)], "")
    correct = np.where(labeled, (preds.predictions == preds.labels).astype(object), "")
    columns: dict[str, Any] = {
        "image_id": list(image_ids),
        "file": [printable_path(f) for f in files],
        "true_index": preds.labels,
        "true_label": true_names,
        "pred_index": preds.predictions,
        "pred_label": names[preds.predictions],
        "confidence": np.round(preds.confidence, 6),
        "correct": correct,
    }
    for i in range(preds.indices.shape[1]):
        columns[f"top{i + 1}_index"] = preds.indices[:, i]
        columns[f"top{i + 1}_label"] = names[preds.indices[:, i]]
        columns[f"top{i + 1}_prob"] = np.round(preds.probs[:, i], 6)
    return pd.DataFrame(columns)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_confusion(matrix: np.ndarray, names: Sequence[str], path: str | os.PathLike, title: str) -> None:
    """Row-normalised heatmap (fraction of each true class); names on the axes up to 60 classes, counts in the
    cells up to 20."""
    matrix = np.asarray(matrix)
    n = len(names)
    rows = matrix.sum(axis=1, keepdims=True)
    frac = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    side = min(4 + 0.3 * n, 30)
    fig = _figure(side + 1.5, side)
    ax = fig.add_subplot()
    image = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of true class")
    if n <= 60:
        ax.set_xticks(range(n), [str(x) for x in names], rotation=90, fontsize=7)
        ax.set_yticks(range(n), [str(x) for x in names], fontsize=7)
    if n <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                color = "white" if frac[i, j] > 0.5 else "black"
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.savefig(path, dpi=110)


def plot_reliability(data: M.ReliabilityData, path: str | os.PathLike, title: str) -> None:
    """Reliability diagram: accuracy per confidence bin against the diagonal, and the bin counts below."""
    fig = _figure(5.5, 6.5)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    width = np.diff(data.edges)
    left = data.edges[:-1]
    filled = data.counts > 0
    bars = dict(width=width[filled], align="edge")
    top.bar(left[filled], data.accuracy[filled], edgecolor="black", color="tab:blue", label="accuracy", **bars)
    # The gap spans accuracy..confidence, above the accuracy bar (overconfident) or inside it (underconfident): drawn
    # as a hatched outline without fill, it looks the same in both cases and in the legend (a translucent fill
    # would blend with the accuracy bar where they overlap).
    low = np.minimum(data.accuracy[filled], data.mean_confidence[filled])
    gap = np.abs(data.mean_confidence[filled] - data.accuracy[filled])
    style = dict(facecolor="none", edgecolor="tab:red", hatch="///", label="gap to mean confidence")
    top.bar(left[filled], gap, bottom=low, **bars, **style)
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{title}\nECE = {data.ece:.4f} ({len(data.counts)} bins)")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(left, data.counts, width=width, align="edge", edgecolor="black", color="gray")
    bottom.set_xlabel("confidence (top-1 probability)")
    bottom.set_ylabel("images")
    fig.savefig(path, dpi=110)


def _json_ready(value: Any) -> Any:
    """numpy values as Python ones, NaN as null (JSON has no NaN), anything else unknown as its ``str``."""
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value if value is None or isinstance(value, (str, int)) else str(value)


def _write_confusion(matrix: np.ndarray, names: Sequence[str], out, stem: str, title: str) -> None:
    """``<stem>.csv`` (rows true, columns predicted) and its heatmap ``<stem>.png``."""
    frame = pd.DataFrame(matrix, index=list(names), columns=list(names))
    frame.index.name = "true \\ predicted"
    frame.to_csv(out(f"{stem}.csv"))
    plot_confusion(matrix, names, out(f"{stem}.png"), title)


def _shared_rank(true: np.ndarray, pred: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """The finest rank (above the label rank) at which each (true, pred) pair agrees; "" when none."""
    shared = np.full(len(true), "", dtype=object)
    for rank, groups in reversed(taxonomy.rank_groups().items()):  # coarse -> fine: finer ranks overwrite
        if rank != taxonomy.rank:
            shared[groups[true] == groups[pred]] = rank
    return shared


def _coarse_rank(taxonomy: Taxonomy, max_labels: int) -> str | None:
    """The finest rank from order up with at most ``max_labels`` groups (else the coarsest): a readable matrix."""
    candidates = [r for r in taxonomy.rank_groups() if r != taxonomy.rank and RANKS.index(r) <= RANKS.index("order")]
    for rank in candidates:
        if len(taxonomy.groups(rank)[0]) <= max_labels:
            return rank
    return candidates[-1] if candidates else None


def write_evaluation_report(
    run_dir: str | os.PathLike,
    *,
    runs: Mapping[str, TopKPredictions],
    metrics: Mapping[str, MetricsResult],
    primary: str,
    taxonomy: Taxonomy,
    image_ids: Sequence[Any],
    files: Sequence[str],
    info: Mapping[str, Any],
    max_confusion_labels: int = MAX_CONFUSION_LABELS,
    submission_lookup: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write every report file into ``run_dir`` (see the module docstring); return the summary dict. ``runs`` /
    ``metrics``: top-k predictions / :func:`~inat_hf.inference.evaluator.compute_metrics` per run name; ``primary``:
    the run whose per-image, per-class, confusion and reliability files are written; ``image_ids``, ``files``: per
    image; ``info``: extra summary entries; ``submission_lookup`` (label -> iNat category id): writes
    ``submission.csv``."""
    from .submission import write_submission

    run_dir = Path(run_dir)
    rank_groups = taxonomy.rank_groups()
    preds = runs[primary]
    result = metrics[primary]
    written: list[str] = []

    def out(name: str) -> Path:
        written.append(name)
        return run_dir / name

    for name in sorted(runs, key=lambda name: name != primary):  # the primary run first, as predictions.csv
        csv_name = "predictions.csv" if name == primary else f"predictions_{name}.csv"
        predictions_frame(runs[name], taxonomy, image_ids=image_ids, files=files).to_csv(out(csv_name), index=False)
    if submission_lookup is not None:
        write_submission(out("submission.csv"), list(image_ids), preds.indices, submission_lookup)

    if result.per_class is not None:
        mask = preds.labeled
        y_true, y_pred = preds.labels[mask], preds.predictions[mask]
        names = np.asarray(taxonomy.labels, dtype=object)
        common = [c or "" for c in taxonomy.common_names]
        per_class = {"label_index": np.arange(taxonomy.num_labels), "label": names, "common_name": common}
        pd.DataFrame({**per_class, **result.per_class}).round(6).to_csv(out("per_class.csv"), index=False)
        out("classification_report.txt").write_text(M.classification_report_text(y_true, y_pred, taxonomy.labels))

        if rank_groups:
            hier = {"rank": list(rank_groups), "num_groups": [int(g.max()) + 1 for g in rank_groups.values()]}
            for name, m in metrics.items():
                hier[name] = [m.summary.get("hierarchical_accuracy", {}).get(r) for r in rank_groups]
            pd.DataFrame(hier).to_csv(out("hierarchical_accuracy.csv"), index=False)

        if taxonomy.num_labels <= max_confusion_labels:
            matrix = M.confusion_matrix(y_true, y_pred, taxonomy.num_labels)
            _write_confusion(matrix, taxonomy.labels, out, "confusion_matrix", f"confusion ({primary})")
        else:
            # A dense C x C matrix is neither readable nor cheap at C = 10k: the most confused pairs instead ...
            true, pred, count = M.most_confused(
                *M.sparse_confusion(y_true, y_pred, taxonomy.num_labels), k=MOST_CONFUSED_ROWS
            )
            support = result.per_class["support"][true]
            pd.DataFrame(
                {
                    "true_index": true,
                    "true_label": names[true],
                    "pred_index": pred,
                    "pred_label": names[pred],
                    "count": count,
                    "true_support": support,
                    "rate": np.round(count / np.maximum(support, 1), 6),
                    "shared_rank": _shared_rank(true, pred, taxonomy),
                }
            ).to_csv(out("most_confused.csv"), index=False)
            # ... and the full confusion at a coarse rank.
            rank = _coarse_rank(taxonomy, max_confusion_labels)
            if rank is not None:
                group_names, groups = taxonomy.groups(rank)
                matrix = M.confusion_matrix(groups[y_true], groups[y_pred], len(group_names))
                _write_confusion(matrix, group_names, out, f"confusion_{rank}", f"confusion at {rank} ({primary})")

        plot_reliability(result.reliability, out("reliability_diagram.png"), f"reliability ({primary})")

    summary: dict[str, Any] = dict(info)
    summary["primary_run"] = primary
    summary["label_rank"] = taxonomy.rank
    summary.update(result.summary)
    summary["runs"] = {name: m.summary for name, m in metrics.items()}
    if result.reliability is not None:
        summary["reliability"] = dataclasses.asdict(result.reliability)
    if any("top1" in run for run in summary["runs"].values()):
        (run_dir / "results.md").write_text(results_markdown(summary))
        written.append("results.md")
    summary["files"] = [*written, "summary.json"]
    (run_dir / "summary.json").write_text(json.dumps(_json_ready(summary), indent=2, ensure_ascii=False) + "\n")
    return summary


_RUN_TITLES = {"no_tta": "no TTA", "geo_prior": "location prior only", "fused": "image × location prior"}


def results_markdown(summary: Mapping[str, Any]) -> str:
    """The scores of every run as a Markdown table (what the README's results section shows, copied from a run)."""
    runs = {name: run for name, run in summary["runs"].items() if "top1" in run}
    ranks = list(dict.fromkeys(r for run in runs.values() for r in run.get("hierarchical_accuracy", {})))
    ranks = [r for r in ranks if r != summary.get("label_rank")]
    has_ece = any("ece" in run for run in runs.values())
    header = [f"{summary['split']} ({summary['num_images']} images)", "top-1", "top-3", "top-5", *ranks]
    header += ["ECE"] if has_ece else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, run in runs.items():
        title = f"{summary['tta']['num_views']}-view TTA" if name == "tta" else _RUN_TITLES.get(name, name)
        cells = [f"{100 * run[k]:.1f} %" for k in ("top1", "top3", "top5")]
        cells += [
            f"{100 * run['hierarchical_accuracy'][r]:.1f} %" if r in run.get("hierarchical_accuracy", {}) else ""
            for r in ranks
        ]
        cells += [f"{run['ece']:.3f}" if "ece" in run else ""] if has_ece else []
        lines.append("| " + " | ".join([title, *cells]) + " |")
    return "\n".join(lines) + "\n"
