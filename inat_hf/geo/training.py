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


# The place+date k-NN's date weights α: the date is a point on a unit circle beside the place on the unit sphere,
# so with α = 0.01 half a year apart counts as far as 0.02 Earth radii (~127 km). α = 0 is the place-only k-NN.
KNN_DATE_WEIGHTS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
# Without a selection split, the k-NN's k and α are chosen on this share of the training records (held out).
KNN_HELD_OUT = 0.2


def _knn_points(records: GeoRecords, date_weight: float) -> np.ndarray:
    """``[N, 3]`` points on the unit sphere (their chord orders neighbours as the great-circle distance does), plus
    ``α·(cos, sin)`` of the day of the year; an unknown date sits at the circle's centre, equally far from every date
    (as the prior's zero encoding), so it ranks neighbours by place alone."""
    lat, lon = np.radians(records.latitude), np.radians(records.longitude)
    columns = [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]
    if date_weight:
        angle = np.nan_to_num((records.day_of_year - 1.0) * (2 * np.pi / 365.25), nan=0.0)
        known = ~np.isnan(records.day_of_year)
        columns += [date_weight * np.cos(angle) * known, date_weight * np.sin(angle) * known]
    return np.stack(columns, 1)


def knn_scores(
    train: GeoRecords, query: GeoRecords, num_labels: int, ks: Sequence[int], date_weight: float = 0.0
) -> dict[int, dict[str, float]]:
    """For each k, top-1/top-5 of the label counts among the k nearest training records (equal counts go to the
    label seen nearer). Both sets must hold only located, labeled records."""
    from sklearn.neighbors import KDTree

    tree = KDTree(_knn_points(train, date_weight))
    points = _knn_points(query, date_weight)
    ks = [k for k in ks if k <= len(train)]
    hits = {k: {"top1": 0.0, "top5": 0.0} for k in ks}
    for s in range(0, len(points), 4096):
        _, nn_idx = tree.query(points[s : s + 4096], k=max(ks))  # sorted nearest first
        nn_labels = train.labels[nn_idx]  # [b, kmax]
        rows = np.arange(len(nn_labels))[:, None]
        for k in ks:
            votes = np.zeros((len(nn_labels), num_labels), dtype=np.float64)
            # +1 per neighbour, minus a rank-dependent epsilon: equal counts go to the class seen nearer.
            np.add.at(votes, (np.broadcast_to(rows, (len(rows), k)), nn_labels[:, :k]), 1.0 - np.arange(k) * 1e-6)
            for key, value in topk_hits(votes, query.labels[s : s + 4096]).items():
                hits[k][key] += value * len(nn_labels)
    return {k: {key: v / max(len(points), 1) for key, v in m.items()} for k, m in hits.items()}


def knn_baseline(
    train: GeoRecords,
    report: GeoRecords,
    num_labels: int,
    *,
    select: GeoRecords | None = None,
    date_weights: Sequence[float] = (0.0,),
    ks: Sequence[int] = KNN_KS,
    seed: int = 0,
) -> dict[str, Any]:
    """A k-nearest-neighbour vote over place (``date_weights=(0,)``: great-circle order) or place and date, with k
    and the date weight α chosen by top-5 (then top-1) on ``select``, then scored on ``report``. Without ``select``,
    :data:`KNN_HELD_OUT` of the training records (drawn with ``seed``) are scored against the rest to choose; the
    chosen k-NN then votes over every training record. Never chosen on the split it reports."""
    start = time.perf_counter()
    train, report = (r.subset(r.has_location & (r.labels >= 0)) for r in (train, report))
    if select is None:
        held = np.random.default_rng(seed).random(len(train)) < KNN_HELD_OUT
        held[0] &= not held.all()  # a tiny set: keep one record to vote
        reference, select = train.subset(~held), train.subset(held)
    else:
        reference, select = train, select.subset(select.has_location & (select.labels >= 0))
    grid = {
        (alpha, k): m
        for alpha in date_weights
        for k, m in knn_scores(reference, select, num_labels, ks, alpha).items()
    }
    alpha, k = max(grid, key=lambda key: (grid[key]["top5"], grid[key]["top1"]))
    return {
        "metric": "great-circle distance" + (" and day of the year (weight date_weight)" if alpha else ""),
        "k": k,
        "date_weight": alpha,
        **knn_scores(train, report, num_labels, [k], alpha)[k],
        "num_scored": len(report),
        "selection": {"num_scored": len(select), "top5": {f"{a:g},{kk}": m["top5"] for (a, kk), m in grid.items()}},
        "seconds": round(time.perf_counter() - start, 3),
    }


def _tensors(records: GeoRecords, mask: np.ndarray | None = None):
    mask = records.has_location if mask is None else mask
    columns = (records.latitude, records.longitude, records.day_of_year)
    return *(torch.from_numpy(c[mask].astype(np.float32)) for c in columns), torch.from_numpy(records.labels[mask])


def epoch_order(labels: torch.Tensor, generator: torch.Generator, max_per_class: int | None) -> torch.Tensor:
    """One epoch's record order: every record shuffled, or at most ``max_per_class`` records of each label drawn
    without replacement (geo_prior's ``BalancedSampler``), shuffled."""
    order = torch.randperm(len(labels), generator=generator)
    if max_per_class is None:
        return order
    by_label = order[torch.sort(labels[order], stable=True).indices]  # grouped by label, shuffled within
    grouped = labels[by_label]
    counts = torch.bincount(grouped)
    rank = torch.arange(len(labels)) - (counts.cumsum(0) - counts)[grouped]  # position within its label
    kept = by_label[rank < max_per_class]
    return kept[torch.randperm(len(kept), generator=generator)]


def train_geo_prior(model, train: GeoRecords, args: GeoTrainingArguments, *, log=print) -> dict[str, Any]:
    """Train ``model`` (a :class:`GeoPriorModel`) in place on the records with a location; returns statistics."""
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    lat, lon, day, labels = _tensors(train)
    n = len(labels)
    if n == 0:
        raise InatDataError("no training record has a location: nothing to train the prior on.")
    per_epoch = n if args.max_per_class is None else int(torch.bincount(labels).clamp(max=args.max_per_class).sum())
    steps_per_epoch = math.ceil(per_epoch / args.batch_size)
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
        order = epoch_order(labels, generator, args.max_per_class)
        total, seen = 0.0, 0
        for s in range(0, per_epoch, args.batch_size)[
            : total_steps - step
        ]:  # the last epoch may end early (max_steps)
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
            seconds = time.perf_counter() - start  # steps first: the README and --min_steps count steps
            log(f"step {step}/{total_steps} (epoch {epoch + 1}/{epochs}): loss {losses[-1]:.4f} ({seconds:.1f} s)")
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
    wanted = [s for s in (args.train_split, args.eval_split, args.select_split) if s is not None]
    if data.data_dir is not None:  # the prior reads location columns only: no image file is opened
        data = dataclasses.replace(data, verify_files=False, image_storage="path", resize_shorter=None)
    prepared = load_data(data, wanted)
    where = data.dataset_dir or data.data_dir
    splits = {}
    for name in wanted:
        records = split_records(prepared.dataset[name], f"{where} [{name}]", on_bad_record=data.on_bad_record)
        if (records.labels < 0).any():
            raise InatDataError(
                f"split {name!r} of {where} is unlabeled (label -1, e.g. public_test): the prior trains and is "
                "scored on labeled records. Choose another --train_split / --eval_split."
            )
        split_report = prepared.report.get("splits", {}).get(name, {})
        records.counts["filtered_by_taxon"] = split_report.get("filtered_out", 0)
        records.counts["bad_location_skipped"] += split_report.get("bad_locations", 0)  # dropped by the preparation
        splits[name] = records
    train, taxonomy = splits[args.train_split], prepared.taxonomy
    num_labels = taxonomy.num_labels
    # p(y) of the training records, add-one smoothed: the fusion divides by it (a label never seen keeps a finite
    # ratio instead of an infinite one).
    # With --max_per_class the prior learns the capped frequencies, so p(y) is capped the same way.
    counts = np.bincount(train.labels[train.has_location], minlength=num_labels).clip(max=args.max_per_class) + 1.0
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
        "config": {
            k: getattr(config, k)
            for k in ("loss", "hidden_size", "num_blocks", "drop_rate", "use_date", "date_drop_rate")
        }
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
        # The same records with their dates removed: what a photo without a date gets.
        report["prior_without_date"] = evaluate_prior(model, val.without_dates())
        select = splits.get(args.select_split)
        report["knn_chosen_on"] = args.select_split or f"a held-out {KNN_HELD_OUT:.0%} of {args.train_split}"
        report["knn"] = {
            "place": knn_baseline(train, val, num_labels, select=select, seed=args.seed),
            "place_date": knn_baseline(
                train, val, num_labels, select=select, date_weights=KNN_DATE_WEIGHTS, seed=args.seed
            ),
        }
        report["prior_top5_minus_place_date_knn_top5"] = report["prior"]["top5"] - report["knn"]["place_date"]["top5"]
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
        p, q, k = report["prior"], report["prior_without_date"], report["knn"]
        lines.append(
            f"  [{report['eval_split']}, {p['num_scored']} records] top-1 / top-5: prior {p['top1']:.4f} / "
            f"{p['top5']:.4f}, without the date {q['top1']:.4f} / {q['top5']:.4f}; chance {report['chance_top1']:.4f}"
        )
        for name, what in (("place", "place"), ("place_date", "place + date")):
            m = k[name]
            lines.append(
                f"  k-NN over {what} (k={m['k']}, date weight {m['date_weight']:g}, chosen on "
                f"{report['knn_chosen_on']}): {m['top1']:.4f} / {m['top5']:.4f}"
            )
    lines.append(f"  report: {os.path.join(output_dir, GEO_REPORT_FILE)}")
    return "\n".join(lines)
