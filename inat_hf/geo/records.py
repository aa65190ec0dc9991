"""Location columns of iNat records for the location/date prior: reading, date parsing and input checks.

The prior reads ``latitude``, ``longitude``, ``date`` and ``label`` only: from a prepared folder
(:func:`records_from_prepared`) or straight from iNat JSON files, images-only JSON included, without any image file
(:func:`records_from_json`).

Input checking (:func:`clean_records`): a record either has a complete, valid location or none. Records without
coordinates are counted (at training they are left out; at prediction the prior is neutral for them). Coordinates
outside [-90, 90] x [-180, 180], infinities, a latitude without longitude, and dates that do not parse are errors
naming the records (``on_bad_record="error"``, the default) or counted skips (``"skip"``: a bad location drops the
record, or only its location with ``keep_rows``; a bad date only its date). Never a silent wrong prior.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow.compute as pc

from .inat_json import (
    InatDataError,
    categories_from_dir_names,
    categories_per_image,
    categories_to_records,
    read_inat_json,
)
from .taxonomy import Taxonomy, parse_taxon_filter

__all__ = ["ON_BAD_RECORD", "GeoRecords", "clean_records", "day_of_year", "records_from_json", "records_from_prepared"]

ON_BAD_RECORD = ("error", "skip")
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


# -- Dates and input checks --------------------------------------------------------------------------------------------


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
    day = parsed.dt.day_of_year.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (~missing & parsed.isna()).to_numpy()
    return day, bad


def _listing(ids: np.ndarray, values: Sequence[str]) -> str:
    shown = ", ".join(f"{i} ({v})" for i, v in list(zip(ids, values))[:_LISTED])
    return shown + (f", … and {len(ids) - _LISTED} more" if len(ids) > _LISTED else "")


def _floats(values: Sequence[Any]) -> np.ndarray:
    """Float64 copy with None -> NaN (numpy float input: no per-element Python loop, 2.7M records)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values.astype(np.float64, copy=True)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def clean_records(
    latitude: Sequence[Any],
    longitude: Sequence[Any],
    dates: Sequence[Any] | None,
    labels: Sequence[int],
    ids: Sequence[Any],
    *,
    on_bad_record: str = "error",
    where: str = "records",
    keep_rows: bool = False,
) -> GeoRecords:
    """Validate raw columns into :class:`GeoRecords` (see the module docstring for the rules).

    ``counts``: ``records``, ``with_location``, ``without_location``, ``bad_location_skipped``, ``with_date``,
    ``bad_date_skipped`` (dates dropped, the location kept). ``keep_rows``: keep every record, a skipped bad location
    becoming a missing one (for evaluation, where rows must stay aligned with the images).
    """
    if on_bad_record not in ON_BAD_RECORD:
        raise ValueError(f"on_bad_record={on_bad_record!r}; expected one of {', '.join(ON_BAD_RECORD)}.")
    lat, lon = _floats(latitude), _floats(longitude)
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
    # keep_rows (evaluation): a skipped location leaves its record in place, without a location (row order matters).
    keep = np.ones(n, dtype=bool) if keep_rows else ~(bad_loc & (on_bad_record == "skip"))
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


# -- Reading location columns ------------------------------------------------------------------------------------------


def records_from_prepared(
    dataset_dir: str | os.PathLike, splits: Sequence[str], *, on_bad_record: str = "error"
) -> tuple[dict[str, GeoRecords], Taxonomy]:
    """Location columns of ``splits`` of a prepared folder (``scripts/prepare_data.py --output_dir``)."""
    from .prepare import load_prepared

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
    all_ids = [cat_id for ids in taxonomy.category_ids for cat_id in ids]
    max_id = max([*all_ids, *(int(c.max()) for _, c in parsed.values() if len(c))])
    label_of = np.full(max_id + 1, -1, dtype=np.int64)  # category id -> label (-1: filtered out)
    for index, ids in enumerate(taxonomy.category_ids):
        label_of[ids] = index
    out = {}
    for split, (data, cat_ids) in parsed.items():
        labels = label_of[cat_ids.astype(np.int64)]
        kept_rows = labels >= 0
        images = data.images.filter(kept_rows) if not kept_rows.all() else data.images
        records = clean_records(
            pc.fill_null(images.column("latitude"), float("nan")).to_numpy(),
            pc.fill_null(images.column("longitude"), float("nan")).to_numpy(),
            images.column("date").to_pylist(),
            labels[kept_rows],
            images.column("id").to_numpy(),
            on_bad_record=on_bad_record,
            where=data.path,
        )
        # `records` and the rest count the records of kept categories; these were left out before any check.
        records.counts["filtered_by_taxon"] = int((~kept_rows).sum())
        out[split] = records
    return out, taxonomy
