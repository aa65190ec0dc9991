"""Fusing an image classifier with the location/date prior, and reading where/when a photo was taken from EXIF.

Fusion (Mac Aodha et al. 2019): ``p(y|x,l) ∝ p(y|x) · (p(y|l) / p(y))^w`` for a softmax prior (``p(y)``: the label
frequencies it was trained on, saved in its config), ``p(y|x) · σ(s_y(l))^w`` for a presence-only prior. The
weight ``w`` is the prior's saved ``config.fusion_weight`` (default 1, the Bayes weighting of two calibrated
models), never tuned on the split being reported. In log space the fusion adds
:meth:`GeoPriorModel.log_prior_ratio` to the image model's log-probabilities; an image without a location gets
zeros there, so its answer is the image model's.

Labels are matched by name: the prior must cover every label of the image model (it may know more).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data.geo import GeoRecords, clean_records, day_of_year
from .errors import InferenceError

__all__ = ["GeoFusion", "Location", "exif_location", "location_from_values", "photo_locations", "split_locations"]


@dataclasses.dataclass
class Location:
    """Where/when one photo was taken, and where that came from (``"arguments"``, ``"exif"``, ``"dataset"``)."""

    latitude: float | None = None
    longitude: float | None = None
    date: str | None = None
    location_source: str | None = None
    date_source: str | None = None

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "location_used": self.has_location,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "location_source": self.location_source if self.has_location else None,
            "date_used": self.date is not None,
            "date": self.date,
            "date_source": self.date_source if self.date is not None else None,
        }


def location_from_values(lat: float | None, lon: float | None, date: str | None, source: str) -> Location:
    """A :class:`Location` from values a person gave (command-line arguments, fields of the web page), checked:
    an ``InferenceError`` says what is wrong (a half location, a coordinate out of range, a date that does not
    parse). ``source`` says where they came from (``"arguments"``, ``"typed in"``)."""
    if (lat is None) != (lon is None):
        raise InferenceError("latitude and longitude go together: give both (decimal degrees) or neither.")
    for name, value, limit in (("latitude", lat, 90), ("longitude", lon, 180)):
        if value is not None and not (np.isfinite(value) and abs(value) <= limit):
            raise InferenceError(f"expected {name} in [-{limit}, {limit}] (decimal degrees), got {value}.")
    if date is not None and day_of_year([date])[1][0]:
        raise InferenceError(f"the date {date!r} does not parse: expected YYYY-MM-DD (e.g. 2021-06-15).")
    return Location(lat, lon, date, source if lat is not None else None, source if date is not None else None)


def photo_locations(
    images: Sequence[Any],
    lat: float | None = None,
    lon: float | None = None,
    date: str | None = None,
    *,
    source: str = "arguments",
) -> list[Location]:
    """One :class:`Location` per image for fusion with the prior: the given values (any of them given) for every
    image, checked by :func:`location_from_values`; otherwise each photo's EXIF (:func:`exif_location`). Given
    values replace EXIF as a whole, so a typed date never pairs with an EXIF location. ``predict.py`` and the web
    page both call this, so they read the same location for the same photo."""
    if isinstance(date, str) and not date.strip():
        date = None  # an empty field
    if lat is not None or lon is not None or date is not None:
        given = location_from_values(lat, lon, date, source)
        return [given] * len(images)
    return [exif_location(image) for image in images]


def _rational(value) -> float:
    try:
        return float(value)
    except (TypeError, ZeroDivisionError):
        num, den = value
        return float(num) / float(den) if den else float("nan")


def exif_location(path: str | os.PathLike) -> Location:
    """GPS coordinates and ``DateTimeOriginal`` from a photo's EXIF (Pillow); missing or broken tags give ``None``
    fields (the image is then predicted without them), never an exception."""
    from PIL import ExifTags, Image

    try:
        with Image.open(path) as image:
            exif = image.getexif()
            gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
            sub = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # unreadable files are reported by the prediction itself
        return Location()
    lat = lon = None
    try:
        if gps and all(k in gps for k in (1, 2, 3, 4)):
            lat = sum(_rational(v) / 60**i for i, v in enumerate(gps[2])) * (-1 if str(gps[1]).upper() == "S" else 1)
            lon = sum(_rational(v) / 60**i for i, v in enumerate(gps[4])) * (-1 if str(gps[3]).upper() == "W" else 1)
            if not (np.isfinite(lat) and np.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
                lat = lon = None
    except (TypeError, ValueError):
        lat = lon = None
    date = sub.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    if date is not None:
        try:
            date = datetime.datetime.strptime(str(date).strip()[:10], "%Y:%m:%d").date().isoformat()
        except ValueError:
            date = None
    return Location(lat, lon, date, "exif" if lat is not None else None, "exif" if date is not None else None)


def split_locations(split, where: str) -> GeoRecords:
    """The locations of a prepared split's images, row by row (``latitude``, ``longitude``, optional ``date``), for
    fusion: a bad location or date is counted (``counts``) and left out, so that image is scored image-only."""
    missing = {"latitude", "longitude"} - set(split.column_names)
    if missing:
        raise InferenceError(
            f"fusion with the prior needs the {where}'s coordinates, but it has no column(s) {sorted(missing)}."
        )
    cols = [c for c in ("latitude", "longitude", "date") if c in split.column_names]
    table = split.select_columns(cols).to_pandas()
    return clean_records(
        table["latitude"].to_numpy(dtype="float64", na_value=float("nan")),
        table["longitude"].to_numpy(dtype="float64", na_value=float("nan")),
        table["date"].tolist() if "date" in table else None,
        [0] * len(table),
        split["image_id"] if "image_id" in split.column_names else list(range(len(table))),
        on_bad_record="skip",
        keep_rows=True,
        where=where,
    )


class GeoFusion:
    """A loaded prior aligned to an image model's labels.

    Args:
        model: a :class:`~inat_hf.models.GeoPriorModel`.
        label_names: the image model's label names, in its label order.
    """

    def __init__(self, model, label_names: Sequence[str], *, device: str | torch.device | None = None):
        prior_names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
        position = {name: i for i, name in enumerate(prior_names)}
        missing = [n for n in label_names if n not in position]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:10]) + (" …" if len(missing) > 10 else "")
            raise InferenceError(
                f"the location prior does not know {len(missing)} of the image model's {len(label_names)} labels "
                f"({shown}). Train it on data with the model's label set (same --rank and --taxon)."
            )
        self.device = torch.device(device or "cpu")
        self.model = model.eval().to(self.device)
        self.index = torch.tensor([position[n] for n in label_names], device=self.device)
        self.weight = float(model.config.fusion_weight)
        self.loss = model.config.loss

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, label_names: Sequence[str], **kwargs) -> GeoFusion:
        from transformers import AutoConfig, AutoModel

        import inat_hf.models  # noqa: F401 - registers the inat_geo model type

        path = os.path.expanduser(os.fspath(path))
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise InferenceError(
                f"--geo_prior {path!r} is not a saved prior (no config.json); train one with scripts/train_geo_prior.py."
            )
        config = AutoConfig.from_pretrained(path)
        if config.model_type != "inat_geo":
            raise InferenceError(
                f"--geo_prior {path!r} holds a {config.model_type!r} model, not a location prior (inat_geo)."
            )
        return cls(AutoModel.from_pretrained(path), label_names, **kwargs)

    def _inputs(self, records: GeoRecords, rows: slice | np.ndarray):
        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a[rows], dtype=np.float32)).to(self.device)

        return t(records.latitude), t(records.longitude), t(records.day_of_year)

    def log_ratio(self, records: GeoRecords, rows: slice | np.ndarray = slice(None)) -> torch.Tensor:
        """The fusion term ``[B, C_image]`` for ``records[rows]`` (zeros where there is no location)."""
        return self.model.log_prior_ratio(*self._inputs(records, rows))[:, self.index]

    def log_probs(self, records: GeoRecords, rows: slice | np.ndarray = slice(None)) -> torch.Tensor:
        """Prior-only log-probabilities ``[B, C_image]`` over the image model's labels."""
        probs = self.model.probabilities(*self._inputs(records, rows))[:, self.index]
        return (probs / probs.sum(-1, keepdim=True)).clamp_min(1e-30).log()

    def fuse(self, scores: torch.Tensor, records: GeoRecords, rows: slice | np.ndarray = slice(None)) -> torch.Tensor:
        """Image scores (logits or log-probabilities) ``[B, C]`` -> fused log-scores ``[B, C]``."""
        return scores.float().log_softmax(-1) + self.log_ratio(records, rows).to(scores.device)

    def summary(self) -> dict[str, Any]:
        return {"loss": self.loss, "fusion_weight": self.weight, "num_prior_labels": int(self.model.config.num_labels)}
