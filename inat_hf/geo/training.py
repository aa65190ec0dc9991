"""Training the location/date prior (:class:`~inat_hf.models.GeoPriorModel`) from location columns only, scoring it
and its same-run baselines: a great-circle k-nearest-neighbour vote (scikit-learn's haversine ``BallTree``, several
k) and chance, on the same records. :func:`train_prior` is the whole ``train_geo_prior.py`` run."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data.inat_json import InatDataError
from ..data.source import DataArguments, load_data
from ..files import atomic_write, check_model_output_dir
from ..models import GeoPriorConfig, GeoPriorModel
from .arguments import GeoTrainingArguments
from .records import GeoRecords, split_records

GEO_REPORT_FILE = "geo_report.json"
KNN_KS = (1, 5, 10, 25, 50, 100)


def topk_hits(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy of ``[N, C]`` scores; a label tied with others ranks after them (no lucky ties)."""
    rank = (scores >= scores[np.arange(len(labels)), labels][:, None]).sum(1) - 1
    return {f"top{k}": float((rank < k).mean()) for k in ks}


def knn_baseline(
    train: GeoRecords, val: GeoRecords, num_labels: int, ks: Sequence[int] = KNN_KS, batch_size: int = 4096
) -> dict[str, Any]:
    """For each k, top-1/top-5 of the label counts among the k nearest training records by great-circle distance
    (equal counts go to the label seen nearer)."""
    from sklearn.neighbors import BallTree

    t_mask, v_mask = train.has_location, val.has_location
    start = time.perf_counter()
    tree = BallTree(np.radians(np.stack([train.latitude[t_mask], train.longitude[t_mask]], 1)), metric="haversine")
    train_labels = train.labels[t_mask]
    query = np.radians(np.stack([val.latitude[v_mask], val.longitude[v_mask]], 1))
    labels = val.labels[v_mask]
    ks = [k for k in ks if k <= len(train_labels)]
    per_k = {k: {"top1": 0.0, "top5": 0.0} for k in ks}
    for s in range(0, len(query), batch_size):
        _, nn_idx = tree.query(query[s : s + batch_size], k=max(ks))  # sorted nearest first
        nn_labels = train_labels[nn_idx]  # [b, kmax]
        rows = np.arange(len(nn_labels))[:, None]
        for k in ks:
            votes = np.zeros((len(nn_labels), num_labels), dtype=np.float64)
            # +1 per neighbour, minus a rank-dependent epsilon: equal counts go to the class seen nearer.
            np.add.at(votes, (np.broadcast_to(rows, (len(rows), k)), nn_labels[:, :k]), 1.0 - np.arange(k) * 1e-6)
            for key, value in topk_hits(votes, labels[s : s + batch_size]).items():
                per_k[k][key] += value * len(nn_labels)
    per_k = {k: {key: v / max(len(query), 1) for key, v in m.items()} for k, m in per_k.items()}
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


def _tensors(records: GeoRecords, mask: np.ndarray | None = None):
    mask = records.has_location if mask is None else mask
    columns = (records.latitude, records.longitude, records.day_of_year)
    return *(torch.from_numpy(c[mask].astype(np.float32)) for c in columns), torch.from_numpy(records.labels[mask])


def train_geo_prior(model, train: GeoRecords, args: GeoTrainingArguments, *, log=print) -> dict[str, Any]:
    """Train ``model`` (a :class:`GeoPriorModel`) in place on the records with a location; returns statistics."""
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    lat, lon, day, labels = _tensors(train)
    n = len(labels)
    if n == 0:
        raise InatDataError("no training record has a location: nothing to train the prior on.")
    steps_per_epoch = math.ceil(n / args.batch_size)
    total_steps = max(args.num_epochs, math.ceil(args.min_steps / steps_per_epoch)) * steps_per_epoch
    total_steps = min(total_steps, args.max_steps or total_steps)
    epochs = math.ceil(total_steps / steps_per_epoch)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay, fused=True
    )
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    model.train()
    start = time.perf_counter()
    losses, step, processed = [], 0, 0
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator)
        total, seen = 0.0, 0
        for s in range(0, n, args.batch_size)[: total_steps - step]:  # the last epoch may end early (max_steps)
            idx = order[s : s + args.batch_size]
            loss = model(lat[idx], lon[idx], day[idx], labels=labels[idx]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            step += 1
        processed += seen
        scheduler.step()
        losses.append(total / seen)
        if log is not None and (step == total_steps or epoch % max(epochs // 10, 1) == 0):
            log(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f} ({time.perf_counter() - start:.1f} s)")
    model.eval()
    seconds = time.perf_counter() - start
    return {
        "epochs": len(losses),
        "steps": step,
        "records_per_second": round(processed / max(seconds, 1e-9), 1),
        "records": n,
        "seconds": round(seconds, 2),
        "final_loss": losses[-1],
    }


@torch.no_grad()
def evaluate_prior(model, records: GeoRecords, batch_size: int = 8192) -> dict[str, Any]:
    """Prior-only top-1/top-5 on the labeled records with a location (the others are counted, not scored)."""
    model.eval()
    lat, lon, day, labels = _tensors(records, records.has_location & (records.labels >= 0))
    hits = {"top1": 0.0, "top5": 0.0}
    for s in range(0, len(labels), batch_size):
        scores = model(lat[s : s + batch_size], lon[s : s + batch_size], day[s : s + batch_size]).logits.numpy()
        for key, value in topk_hits(scores, labels[s : s + batch_size].numpy()).items():
            hits[key] += value * len(scores)
    return {**{k: v / max(len(labels), 1) for k, v in hits.items()}, "num_scored": int(len(labels))}


def train_prior(data: DataArguments, args: GeoTrainingArguments, **config_kwargs) -> dict[str, Any]:
    """Records of ``args.train_split`` (and ``eval_split``) from ``data`` → a trained prior saved to
    ``args.output_dir`` with ``geo_report.json`` (counts, prior vs k-NN vs chance); returns the report.
    ``config_kwargs``: :class:`GeoPriorConfig`'s options (``loss_negatives=0``: every label)."""
    check_model_output_dir(  # before the (long) read and training
        args.output_dir,
        model_type=GeoPriorConfig.model_type,
        overwrite=args.overwrite,
        inputs=(data.dataset_dir, data.data_dir),
    )
    wanted = [s for s in (args.train_split, args.eval_split) if s is not None]
    if data.data_dir is not None:  # the prior reads location columns only: no image file is opened
        data = dataclasses.replace(data, verify_files=False, image_storage="path", resize_shorter=None)
    prepared = load_data(data, wanted)
    where = data.dataset_dir or data.data_dir
    splits = {}
    for name in wanted:
        records = split_records(prepared.dataset[name], f"{where} [{name}]", on_bad_record=args.on_bad_record)
        if (records.labels < 0).any():
            raise InatDataError(
                f"split {name!r} of {where} is unlabeled (label -1, e.g. public_test): the prior trains and is "
                "scored on labeled records. Choose another --train_split / --eval_split."
            )
        records.counts["filtered_by_taxon"] = prepared.report.get("splits", {}).get(name, {}).get("filtered_out", 0)
        splits[name] = records
    train, taxonomy = splits[args.train_split], prepared.taxonomy
    num_labels = taxonomy.num_labels
    # p(y) of the training records, add-one smoothed: the fusion divides by it (a label never seen keeps a finite
    # ratio instead of an infinite one).
    counts = np.bincount(train.labels[train.has_location], minlength=num_labels) + 1.0
    if config_kwargs.get("loss_negatives") == 0:  # the command line's spelling of None: the exact loss
        config_kwargs["loss_negatives"] = None
    torch.manual_seed(args.seed)
    config = GeoPriorConfig(
        id2label=dict(enumerate(taxonomy.labels)),
        label_rank=taxonomy.rank,
        taxonomy=taxonomy.to_dict(),
        class_prior=(counts / counts.sum()).tolist(),
        **config_kwargs,
    )
    model = GeoPriorModel(config)
    stats = train_geo_prior(model, train, args)
    os.makedirs(args.output_dir, exist_ok=True)
    model.save_pretrained(args.output_dir)
    report = {
        "source": {"data": where, "splits": data.splits, "rank": taxonomy.rank, "taxon": data.taxon},
        "label_rank": taxonomy.rank,
        "num_labels": num_labels,
        "chance_top1": 1 / num_labels,
        "chance_top5": min(5, num_labels) / num_labels,
        "counts": {name: records.counts for name, records in splits.items()},
        "config": {k: getattr(config, k) for k in ("loss", "hidden_size", "num_blocks", "drop_rate", "use_date")}
        | {
            "fusion_weight": config.fusion_weight,
            "presence_pos_weight": config.pos_weight,
            "sampled_negatives": config.sampled_negatives,
        },
        "training": stats | dataclasses.asdict(args),
    }
    if args.eval_split is not None:
        val = splits[args.eval_split]
        report["eval_split"] = args.eval_split
        report["prior"] = evaluate_prior(model, val)
        report["knn"] = knn_baseline(train, val, num_labels)
        report["prior_top5_minus_best_knn_top5"] = report["prior"]["top5"] - report["knn"]["best_top5"]
    with atomic_write(os.path.join(args.output_dir, GEO_REPORT_FILE)) as f:
        json.dump(report, f, indent=2, ensure_ascii=False, default=float)
        f.write("\n")
    return report


def format_report(report: dict, output_dir: str) -> str:
    lines = [f"prior ({report['config']['loss']} loss, {report['num_labels']} labels) saved to {output_dir}"]
    for split, c in report["counts"].items():
        lines.append(
            f"  {split}: {c['records']} records, {c['with_location']} with a location, {c['without_location']} "
            f"without, {c['bad_location_skipped']} bad locations skipped, {c['bad_date_skipped']} bad dates dropped"
        )
    if "prior" in report:
        p, k = report["prior"], report["knn"]
        lines.append(
            f"  [{report['eval_split']}] prior top-1 {p['top1']:.4f} top-5 {p['top5']:.4f} | k-NN (best k="
            f"{k['best_k_by_top5']}) top-1 {k['best_top1']:.4f} top-5 {k['best_top5']:.4f} | chance top-1 "
            f"{report['chance_top1']:.4f} ({p['num_scored']} records scored)"
        )
    lines.append(f"  report: {os.path.join(output_dir, GEO_REPORT_FILE)}")
    return "\n".join(lines)
