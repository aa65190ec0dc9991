"""Training the location/date prior (:class:`~inat_hf.models.GeoPriorModel`) and its same-run k-NN baseline.

The prior reads location columns only (``latitude``, ``longitude``, ``date``, ``label``): from a prepared folder
(:func:`records_from_prepared`) or straight from iNat JSON files, images-only JSON included, without any image file
(:func:`records_from_json`). Nothing here touches pixels, so 2.7M records train on a CPU.

Input checking (:func:`clean_records`): a record either has a complete, valid location or none. Records without
coordinates are counted and left out of training (at prediction the prior is neutral for them). Coordinates
outside [-90, 90] × [-180, 180], infinities, a latitude without longitude, and dates that do not parse are errors
naming the records (``on_bad_record="error"``, the default) or counted skips (``"skip"``: a bad location drops the
record, a bad date only its date). Never a silent wrong prior.

The baseline (:func:`knn_baseline`): a vote of the k nearest training records by great-circle distance
(scikit-learn's haversine ``BallTree``), for several k, scored on the same records as the prior.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..data.inat_json import (
    InatDataError,
    categories_from_dir_names,
    categories_per_image,
    categories_to_records,
    read_inat_json,
)
from ..data.taxonomy import Taxonomy, parse_taxon_filter

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
ON_BAD_RECORD = ("error", "skip")
KNN_KS = (1, 5, 10, 25, 50, 100)
_LISTED = 10


@dataclasses.dataclass
class GeoRecords:
    """Location columns of one split: ``latitude``/``longitude`` (degrees, NaN = unknown), ``day_of_year``
    (1..366, NaN = unknown), ``labels`` (int64, -1 = unlabeled), ``ids`` (image ids, for messages) and
    ``counts`` (what :func:`clean_records` found)."""

    latitude: np.ndarray
    longitude: np.ndarray
    day_of_year: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    counts: dict[str, int] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def has_location(self) -> np.ndarray:
        return ~np.isnan(self.latitude)

    def subset(self, mask: np.ndarray) -> GeoRecords:
        return GeoRecords(
            self.latitude[mask],
            self.longitude[mask],
            self.day_of_year[mask],
            self.labels[mask],
            self.ids[mask],
            dict(self.counts),
        )


# ----------------------------------------------------------------------------------------------------------------
# Dates and input checks
# ----------------------------------------------------------------------------------------------------------------


def day_of_year(dates: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Day of the year (1..366, float) of each date, and a mask of the dates that are given but do not parse.

    Accepts the iNat format (``2019-04-20 22:35:00+00:00``), ISO dates (``2019-04-20``, ``2019-04-20T22:35``),
    EXIF's ``2019:04:20 22:35:00`` and ``datetime``/``date`` objects. ``None``/``""``/NaN are unknown (NaN, not
    flagged). Only the calendar date is read (the local day a photo was taken is what matters for seasons).
    """
    import pandas as pd

    values = pd.Series(list(dates), dtype=object)
    missing = values.isna() | (values.astype(str).str.strip() == "")
    text = values.where(~missing, None).astype(str).str.strip().str.slice(0, 10).str.replace(":", "-", regex=False)
    parsed = pd.to_datetime(text.where(~missing, None), format="%Y-%m-%d", errors="coerce")
    day = parsed.dt.dayofyear.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (~missing & parsed.isna()).to_numpy()
    return day, bad


def _listing(ids: np.ndarray, values: Sequence[str]) -> str:
    shown = ", ".join(f"{i} ({v})" for i, v in list(zip(ids, values))[:_LISTED])
    return shown + (f", … and {len(ids) - _LISTED} more" if len(ids) > _LISTED else "")


def clean_records(
    latitude: Sequence[Any],
    longitude: Sequence[Any],
    dates: Sequence[Any] | None,
    labels: Sequence[int],
    ids: Sequence[Any],
    *,
    on_bad_record: str = "error",
    where: str = "records",
) -> GeoRecords:
    """Validate raw columns into :class:`GeoRecords` (see the module docstring for the rules).

    ``counts``: ``records``, ``with_location``, ``without_location``, ``bad_location_skipped``, ``with_date``,
    ``bad_date_skipped`` (dates dropped, the location kept).
    """
    if on_bad_record not in ON_BAD_RECORD:
        raise ValueError(f"on_bad_record={on_bad_record!r}; expected one of {', '.join(ON_BAD_RECORD)}.")
    lat = np.array([np.nan if v is None else v for v in latitude], dtype=np.float64)
    lon = np.array([np.nan if v is None else v for v in longitude], dtype=np.float64)
    ids = np.asarray(ids)
    n = len(lat)
    if len(lon) != n or len(labels) != n or len(ids) != n or (dates is not None and len(dates) != n):
        raise ValueError(f"{where}: location columns have different lengths.")
    lat_nan, lon_nan = np.isnan(lat), np.isnan(lon)
    half = lat_nan ^ lon_nan
    out_of_range = ~lat_nan & ~lon_nan & ~((np.abs(lat) <= 90) & (np.abs(lon) <= 180))  # inf is out of range too
    bad_loc = half | out_of_range
    if bad_loc.any() and on_bad_record == "error":
        idx = np.flatnonzero(bad_loc)
        raise InatDataError(
            f"{where}: {len(idx)} record(s) have an invalid location (expected latitude in [-90, 90] and longitude "
            f"in [-180, 180] in decimal degrees, both or neither): image ids "
            f"{_listing(ids[idx], [f'lat={lat[i]}, lon={lon[i]}' for i in idx])}. Fix the data or pass "
            "--on_bad_record skip to leave them out (counted in geo_report.json)."
        )
    if dates is None:
        day, bad_date = np.full(n, np.nan), np.zeros(n, dtype=bool)
    else:
        day, bad_date = day_of_year(dates)
    if bad_date.any() and on_bad_record == "error":
        idx = np.flatnonzero(bad_date)
        raise InatDataError(
            f"{where}: {len(idx)} record(s) have a date that does not parse (expected YYYY-MM-DD[ HH:MM:SS…] or "
            f"EXIF's YYYY:MM:DD HH:MM:SS): image ids {_listing(ids[idx], [repr(dates[i]) for i in idx])}. Fix the "
            "data or pass --on_bad_record skip (the date is then treated as unknown and counted)."
        )
    lat[bad_loc] = np.nan
    lon[bad_loc] = np.nan
    keep = ~(bad_loc & (on_bad_record == "skip"))
    has = ~np.isnan(lat) & keep
    counts = {
        "records": int(n),
        "with_location": int(has.sum()),
        "without_location": int((lat_nan & lon_nan).sum()),
        "bad_location_skipped": int(bad_loc.sum()),
        "with_date": int((~np.isnan(day)).sum()),
        "bad_date_skipped": int(bad_date.sum()),
    }
    records = GeoRecords(lat, lon, day, np.asarray(labels, dtype=np.int64), ids, counts)
    return records.subset(keep)


# ----------------------------------------------------------------------------------------------------------------
# Reading location columns
# ----------------------------------------------------------------------------------------------------------------


def records_from_prepared(
    dataset_dir: str | os.PathLike, splits: Sequence[str], *, on_bad_record: str = "error"
) -> tuple[dict[str, GeoRecords], Taxonomy]:
    """Location columns of ``splits`` of a prepared folder (``scripts/prepare_data.py --output_dir``)."""
    from ..data import load_prepared

    prepared = load_prepared(dataset_dir)
    out = {}
    for split in splits:
        if split not in prepared.dataset:
            raise InatDataError(f"split {split!r} not in {dataset_dir}; available: {', '.join(prepared.dataset)}.")
        data = prepared.dataset[split]
        missing = {"latitude", "longitude", "label"} - set(data.column_names)
        if missing:
            raise InatDataError(
                f"{dataset_dir} [{split}] has no column(s) {sorted(missing)}: no location to learn from."
            )
        cols = [c for c in ("latitude", "longitude", "date", "label", "image_id") if c in data.column_names]
        table = data.select_columns(cols).to_pandas()
        out[split] = clean_records(
            table["latitude"].to_numpy(dtype=np.float64, na_value=np.nan),
            table["longitude"].to_numpy(dtype=np.float64, na_value=np.nan),
            table["date"].tolist() if "date" in table else None,
            table["label"].to_numpy(),
            table["image_id"].to_numpy() if "image_id" in table else np.arange(len(table)),
            on_bad_record=on_bad_record,
            where=f"{dataset_dir} [{split}]",
        )
    return out, prepared.taxonomy


def records_from_json(
    files: Mapping[str, str | os.PathLike],
    *,
    rank: str = "species",
    taxon: str | None = "kingdom=Animalia",
    on_bad_record: str = "error",
) -> tuple[dict[str, GeoRecords], Taxonomy]:
    """Location columns straight from iNat JSON files (``{split: path}``); no image file is read.

    Categories come from ``categories`` + ``annotations`` or, for images-only JSON, from the folder names in
    ``file_name``. The label space is built from the union of the files' categories after the ``taxon`` filter
    (the builder's rule), so it matches a model trained on data prepared with the same ``rank`` and ``taxon``;
    records of filtered-out categories are counted (``filtered_by_taxon``), not trained on.
    """
    parsed, categories = {}, {}
    for split, path in files.items():
        data = read_inat_json(path)
        if data.annotations is not None and data.categories is not None:
            cats = categories_to_records(data.categories)
            per_image = categories_per_image(data, data.categories.column("id").combine_chunks())
        else:
            derived = categories_from_dir_names(data.images, data.path)
            if derived is None:
                raise InatDataError(
                    f"{path}: no annotations and no category folders in file_name: an unlabeled split cannot "
                    "train or score the prior."
                )
            cats, per_image = derived
        for cat in cats:
            other = categories.setdefault(cat["id"], cat)
            if other["species"] != cat["species"]:
                raise InatDataError(
                    f"category {cat['id']} is {other['species']!r} in one file, {cat['species']!r} in {path}."
                )
        parsed[split] = (data, np.asarray(per_image.to_numpy(zero_copy_only=False)))
    terms = parse_taxon_filter(taxon)
    kept = [c for c in categories.values() if all(c[r] in v for r, v in terms.items())]
    if not kept:
        raise InatDataError(f"the taxon filter {taxon!r} keeps none of the {len(categories)} categories; use 'none'.")
    taxonomy = Taxonomy.from_categories(kept, rank)
    label_of = {}
    for index, ids in enumerate(taxonomy.category_ids):
        for cat_id in ids:
            label_of[cat_id] = index
    out = {}
    for split, (data, cat_ids) in parsed.items():
        labels = np.array([label_of.get(int(c), -1) for c in cat_ids], dtype=np.int64)
        images = data.images
        records = clean_records(
            images.column("latitude").to_numpy(zero_copy_only=False),
            images.column("longitude").to_numpy(zero_copy_only=False),
            images.column("date").to_pylist(),
            labels,
            images.column("id").to_numpy(),
            on_bad_record=on_bad_record,
            where=data.path,
        )
        filtered = records.labels < 0
        records = records.subset(~filtered)
        records.counts["filtered_by_taxon"] = int(filtered.sum())
        out[split] = records
    return out, taxonomy


# ----------------------------------------------------------------------------------------------------------------
# Metrics and the k-NN baseline
# ----------------------------------------------------------------------------------------------------------------


def topk_hits(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy of ``[N, C]`` scores."""
    k = min(max(ks), scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, 1).argsort(1)[:, ::-1]
    top = np.take_along_axis(top, order, 1)
    hits = top == labels[:, None]
    return {f"top{kk}": float(hits[:, : min(kk, k)].any(1).mean()) if len(labels) else float("nan") for kk in ks}


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


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class GeoTrainingArguments:
    """Optimisation of the prior (the paper's: Adam, lr 5e-4 decayed ×0.98 per epoch, batch 1024)."""

    num_epochs: int = dataclasses.field(default=30, metadata={"help": "Passes over the training records."})
    min_steps: int = dataclasses.field(
        default=2000,
        metadata={"help": "Train at least this many steps (more epochs on small data; 2.7M records never need it)."},
    )
    batch_size: int = dataclasses.field(default=1024, metadata={"help": "Records per step."})
    learning_rate: float = dataclasses.field(default=5e-4, metadata={"help": "Adam learning rate."})
    lr_decay: float = dataclasses.field(default=0.98, metadata={"help": "Learning-rate factor per epoch."})
    weight_decay: float = dataclasses.field(default=0.0, metadata={"help": "AdamW weight decay."})
    seed: int = dataclasses.field(default=0, metadata={"help": "Initialisation and shuffling seed."})
    num_threads: int | None = dataclasses.field(default=None, metadata={"help": "torch CPU threads (default: all)."})

    def __post_init__(self):
        for name in ("num_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.min_steps < 0 or self.learning_rate <= 0 or not 0 < self.lr_decay <= 1:
            raise ValueError("--min_steps must be >= 0, --learning_rate > 0 and --lr_decay in (0, 1].")


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
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    model.train()
    start = time.perf_counter()
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for s in range(0, n, args.batch_size):
            idx = order[s : s + args.batch_size]
            loss = model(lat[idx], lon[idx], day[idx], labels=labels[idx]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        scheduler.step()
        losses.append(total / n)
        if log is not None and (epoch == epochs - 1 or epoch % max(epochs // 10, 1) == 0):
            log(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f} ({time.perf_counter() - start:.1f} s)")
    model.eval()
    return {
        "epochs": epochs,
        "steps": epochs * steps_per_epoch,
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
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=False, default=float)
        f.write("\n")
    os.replace(tmp, path)
