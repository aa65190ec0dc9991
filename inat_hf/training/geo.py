"""Training the location/date prior (:class:`~inat_hf.models.GeoPriorModel`) and its same-run k-NN baseline.

Records come from :mod:`inat_hf.data.geo` (location columns only: nothing here touches pixels, so 2.7M records
train on a CPU). The baseline (:func:`knn_baseline`): a vote of the k nearest training records by great-circle
distance (scikit-learn's haversine ``BallTree``), for several k, scored on the same records as the prior.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..data.geo import GeoRecords, clean_records, day_of_year, records_from_json, records_from_prepared
from ..data.inat_json import InatDataError
from ..files import atomic_write
from ..inference.metrics import topk_accuracy
from .geo_arguments import GeoTrainingArguments

__all__ = [
    "GEO_REPORT_FILE",
    "GeoRecords",
    "GeoTrainingArguments",
    "clean_records",
    "day_of_year",
    "evaluate_prior",
    "knn_baseline",
    "records_from_json",
    "records_from_prepared",
    "topk_hits",
    "train_geo_prior",
]

GEO_REPORT_FILE = "geo_report.json"
KNN_KS = (1, 5, 10, 25, 50, 100)


# -- Metrics and the k-NN baseline -------------------------------------------------------------------------------------


def topk_hits(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy of ``[N, C]`` scores."""
    k = min(max(ks), scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, 1).argsort(1)[:, ::-1]
    return topk_accuracy(np.take_along_axis(top, order, 1), labels, ks)


def knn_baseline(
    train: GeoRecords, val: GeoRecords, num_labels: int, ks: Sequence[int] = KNN_KS, batch_size: int = 4096
) -> dict[str, Any]:
    """Great-circle k-nearest-neighbour vote: for each k, top-1/top-5 of the label counts among the k nearest
    training records (ties broken by the nearer neighbour, through a tiny distance-rank bonus)."""
    from sklearn.neighbors import BallTree

    t_mask, v_mask = train.has_location, val.has_location
    start = time.perf_counter()
    tree = BallTree(np.radians(np.stack([train.latitude[t_mask], train.longitude[t_mask]], 1)), metric="haversine")
    train_labels = train.labels[t_mask]
    query = np.radians(np.stack([val.latitude[v_mask], val.longitude[v_mask]], 1))
    labels = val.labels[v_mask]
    ks = [k for k in ks if k <= len(train_labels)]
    kmax = max(ks)
    per_k = {k: {"top1": 0.0, "top5": 0.0} for k in ks}
    for s in range(0, len(query), batch_size):
        _, nn_idx = tree.query(query[s : s + batch_size], k=kmax)  # sorted nearest first
        nn_labels = train_labels[nn_idx]  # [b, kmax]
        rows = np.arange(len(nn_labels))[:, None]
        for k in ks:
            votes = np.zeros((len(nn_labels), num_labels), dtype=np.float64)
            # +1 per neighbour, minus a rank-dependent epsilon: equal counts go to the class seen nearer.
            np.add.at(votes, (np.broadcast_to(rows, (len(rows), k)), nn_labels[:, :k]), 1.0 - np.arange(k) * 1e-6)
            hits = topk_hits(votes, labels[s : s + batch_size])
            for key in ("top1", "top5"):
                per_k[k][key] += hits[key] * len(nn_labels)
    n = max(len(query), 1)
    per_k = {k: {key: v / n for key, v in m.items()} for k, m in per_k.items()}
    best = max(per_k, key=lambda k: (per_k[k]["top5"], per_k[k]["top1"]))
    return {
        "metric": "great-circle (haversine) distance",
        "per_k": {str(k): m for k, m in per_k.items()},
        "best_k_by_top5": best,
        "best_top1": max(m["top1"] for m in per_k.values()),
        "best_top5": per_k[best]["top5"],
        "num_scored": int(v_mask.sum()),
        "seconds": round(time.perf_counter() - start, 3),
    }


# -- Training ----------------------------------------------------------------------------------------------------------


def _tensors(records: GeoRecords, mask: np.ndarray | None = None):
    mask = records.has_location if mask is None else mask
    return (
        torch.from_numpy(records.latitude[mask].astype(np.float32)),
        torch.from_numpy(records.longitude[mask].astype(np.float32)),
        torch.from_numpy(records.day_of_year[mask].astype(np.float32)),
        torch.from_numpy(records.labels[mask]),
    )


def train_geo_prior(model, train: GeoRecords, args: GeoTrainingArguments, *, log=print) -> dict[str, Any]:
    """Train ``model`` (a :class:`GeoPriorModel`) in place on the records with a location; returns statistics."""
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    lat, lon, day, labels = _tensors(train)
    n = len(labels)
    if n == 0:
        raise InatDataError("no training record has a location: nothing to train the prior on.")
    steps_per_epoch = math.ceil(n / args.batch_size)
    epochs = max(args.num_epochs, math.ceil(args.min_steps / steps_per_epoch))
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay, fused=True
    )
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    model.train()
    start = time.perf_counter()
    losses, step, processed = [], 0, 0
    total_steps = epochs * steps_per_epoch if args.max_steps is None else min(args.max_steps, epochs * steps_per_epoch)
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator)
        total, seen = 0.0, 0
        for s in range(0, n, args.batch_size):
            if step == total_steps:
                break
            idx = order[s : s + args.batch_size]
            loss = model(lat[idx], lon[idx], day[idx], labels=labels[idx]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            processed += len(idx)
            step += 1
        scheduler.step()
        losses.append(total / max(seen, 1))
        if log is not None and (step == total_steps or epoch % max(epochs // 10, 1) == 0):
            log(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f} ({time.perf_counter() - start:.1f} s)")
        if step == total_steps:
            break
    model.eval()
    return {
        "epochs": len(losses),
        "steps": step,
        "records_per_second": round(processed / max(time.perf_counter() - start, 1e-9), 1),
        "records": n,
        "seconds": round(time.perf_counter() - start, 2),
        "final_loss": losses[-1],
    }


@torch.no_grad()
def evaluate_prior(model, records: GeoRecords, batch_size: int = 8192) -> dict[str, Any]:
    """Prior-only top-1/top-5 on the records with a location (the others are counted, not scored)."""
    model.eval()
    mask = records.has_location & (records.labels >= 0)
    lat, lon, day, labels = _tensors(records, mask)
    hits = {"top1": 0.0, "top5": 0.0}
    for s in range(0, len(labels), batch_size):
        scores = model(lat[s : s + batch_size], lon[s : s + batch_size], day[s : s + batch_size]).logits.numpy()
        part = topk_hits(scores, labels[s : s + batch_size].numpy())
        for key in hits:
            hits[key] += part[key] * len(scores)
    n = max(len(labels), 1)
    return {**{k: v / n for k, v in hits.items()}, "num_scored": int(len(labels))}


def write_geo_report(path: str | os.PathLike, report: Mapping[str, Any]) -> None:
    with atomic_write(path) as f:
        json.dump(report, f, indent=2, ensure_ascii=False, default=float)
        f.write("\n")
