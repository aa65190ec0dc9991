"""The location/date prior's records: ``latitude``, ``longitude``, ``date`` and ``label`` of a dataset split.

Input checking (:func:`clean_records`): a record either has a complete, valid location or none. Records without
coordinates are counted (at training they are left out; at prediction the prior is neutral for them). Coordinates
outside [-90, 90] x [-180, 180], infinities, a latitude without longitude, and dates that do not parse are errors
naming the records (``on_bad_record="error"``, the default) or counted skips (``"skip"``: a bad location drops the
record, or only its location with ``keep_rows``; a bad date only its date). Never a silent wrong prior.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.inat_json import InatDataError, invalid_locations

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

    def without_dates(self) -> GeoRecords:
        return dataclasses.replace(self, day_of_year=np.full_like(self.day_of_year, np.nan))

    def subset(self, mask: np.ndarray) -> GeoRecords:
        columns = (self.latitude, self.longitude, self.day_of_year, self.labels, self.ids)
        return GeoRecords(*(c[mask] for c in columns), dict(self.counts))


def day_of_year(dates: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Day of the year (1..366, float; NaN for ``None``/``""``/NaN) of each date, and the mask of given dates that
    do not parse. iNat's ``2019-04-20 22:35:00+00:00``, ISO and EXIF (``2019:04:20 22:35:00``) dates and
    ``datetime``/``date`` objects; only the calendar date is read (the local day is what matters for seasons)."""
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
    """Validate raw columns into :class:`GeoRecords` (the rules: the module docstring), with ``counts``.
    ``keep_rows``: a skipped bad location becomes a missing one (fusion: one record per image)."""
    if on_bad_record not in ON_BAD_RECORD:
        raise ValueError(f"on_bad_record={on_bad_record!r}; expected one of {', '.join(ON_BAD_RECORD)}.")
    lat, lon = np.array(latitude, dtype=np.float64), np.array(longitude, dtype=np.float64)  # copies; None -> NaN
    ids = np.asarray(ids)
    n = len(lat)
    if len(lon) != n or len(labels) != n or len(ids) != n or (dates is not None and len(dates) != n):
        raise ValueError(f"{where}: location columns have different lengths.")
    lat_nan, lon_nan = np.isnan(lat), np.isnan(lon)
    bad_loc = invalid_locations(lat, lon)  # the preparation's rule (None and NaN: missing)
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


def split_records(split, where: str, *, on_bad_record: str = "error", keep_rows: bool = False) -> GeoRecords:
    """The location columns (``latitude``, ``longitude``, optional ``date`` and ``label``) of a dataset split, checked
    by :func:`clean_records`."""
    missing = {"latitude", "longitude"} - set(split.column_names)
    if missing:
        raise InatDataError(f"{where} has no column(s) {sorted(missing)}: no location to learn from or fuse with.")
    cols = [c for c in ("latitude", "longitude", "date", "label", "image_id") if c in split.column_names]
    table = split.select_columns(cols).to_pandas()
    return clean_records(
        table["latitude"].to_numpy(dtype=np.float64, na_value=np.nan),
        table["longitude"].to_numpy(dtype=np.float64, na_value=np.nan),
        table["date"].tolist() if "date" in table else None,
        table["label"].to_numpy() if "label" in table else np.full(len(table), -1),
        table["image_id"].to_numpy() if "image_id" in table else np.arange(len(table)),
        on_bad_record=on_bad_record,
        keep_rows=keep_rows,
        where=where,
    )
