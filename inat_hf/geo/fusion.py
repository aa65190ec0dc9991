"""Fusing an image classifier with the location/date prior, and reading where/when a photo was taken from EXIF.

Fusion (Mac Aodha et al. 2019) adds the prior's :meth:`GeoPriorModel.log_prior_ratio` to the image model's
log-probabilities (zeros for an image without a location: the image model's answer). Labels are matched by name: the
prior must cover every label of the image model (it may know more).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..inference.errors import InferenceError
from .records import GeoRecords, clean_records, day_of_year, split_records


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


def photo_locations(
    images: Sequence[Any],
    lat: float | None = None,
    lon: float | None = None,
    date: str | None = None,
    *,
    source: str = "arguments",
) -> list[Location]:
    """One :class:`Location` per image: the values a person gave (``source``: ``"arguments"``, ``"typed in"``;
    checked, an ``InferenceError`` says what is wrong) for every image, else each photo's EXIF. Given values replace
    EXIF as a whole, so a typed date never pairs with an EXIF location. ``predict.py`` and the web page both call
    this, so they read the same location for the same photo."""
    if isinstance(date, str) and not date.strip():
        date = None  # an empty field
    if lat is None and lon is None and date is None:
        return [exif_location(image) for image in images]
    if (lat is None) != (lon is None):
        raise InferenceError("latitude and longitude go together: give both (decimal degrees) or neither.")
    for name, value, limit in (("latitude", lat, 90), ("longitude", lon, 180)):
        if value is not None and not (np.isfinite(value) and abs(value) <= limit):
            raise InferenceError(f"expected {name} in [-{limit}, {limit}] (decimal degrees), got {value}.")
    if date is not None and day_of_year([date])[1][0]:
        raise InferenceError(f"the date {date!r} does not parse: expected YYYY-MM-DD (e.g. 2021-06-15).")
    given = Location(lat, lon, date, source if lat is not None else None, source if date is not None else None)
    return [given] * len(images)


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
            # Pillow's IFDRational: float() gives NaN for a zero denominator (then refused below).
            lat = sum(float(v) / 60**i for i, v in enumerate(gps[2])) * (-1 if str(gps[1]).upper() == "S" else 1)
            lon = sum(float(v) / 60**i for i, v in enumerate(gps[4])) * (-1 if str(gps[3]).upper() == "W" else 1)
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


def describe_unusual(unusual: dict[str, Any] | None, label: str) -> str | None:
    """The "unusual here and now" note on a top answer ``label`` (:attr:`ImagePrediction.unusual`), as
    ``predict.py`` prints it and the web page shows it; ``None`` when it is not unusual (or there is no location)."""
    if not unusual or not unusual["unusual_here"]:
        return None
    ratio = unusual["prior_ratio"]
    return (
        f"unusual here and now: the location prior finds {label} {1 / ratio:.0f}× rarer at this place and date than "
        "on average (a rare sighting, or a misidentification)"
        if ratio > 0
        else f"unusual here and now: the location prior never expects {label} at this place and date"
    )


def split_locations(split, where: str) -> GeoRecords:
    """A dataset split's locations, one record per image: a bad location or date is counted and left out, so that
    image is scored image-only."""
    return split_records(split, where, on_bad_record="skip", keep_rows=True)


class GeoFusion:
    """A :class:`~inat_hf.models.GeoPriorModel` aligned to an image model's ``label_names`` (in its label order),
    fused with ``weight`` (the image model's calibrated ``InatConfig.fusion_weight``; ``None``: the prior's own)."""

    def __init__(
        self,
        model,
        label_names: Sequence[str],
        *,
        device: str | torch.device | None = None,
        weight: float | None = None,
    ):
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
        self.weight = float(model.config.fusion_weight if weight is None else weight)

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

    @staticmethod
    def photo_records(locations: Sequence[Location | None], names: Sequence[str]) -> tuple[GeoRecords, list[Location]]:
        """One record per photo, checked as training records are (no location: the prior is neutral for it)."""
        locations = [loc or Location() for loc in locations]
        lat, lon, dates = ([getattr(loc, key) for loc in locations] for key in ("latitude", "longitude", "date"))
        return clean_records(lat, lon, dates, [0] * len(locations), list(names), where="photo locations"), locations

    def _inputs(self, records: GeoRecords, rows: slice | np.ndarray) -> list[torch.Tensor]:
        columns = (records.latitude, records.longitude, records.day_of_year)
        return [torch.from_numpy(np.ascontiguousarray(c[rows], dtype=np.float32)).to(self.device) for c in columns]

    def log_ratio(
        self, records: GeoRecords, rows: slice | np.ndarray = slice(None), *, weight: float | None = None
    ) -> torch.Tensor:
        """The fusion term ``[B, C_image]`` for ``records[rows]`` (zeros where there is no location), with
        ``weight`` (default: :attr:`weight`)."""
        weight = self.weight if weight is None else weight
        return self.model.log_prior_ratio(*self._inputs(records, rows), weight=weight)[:, self.index]

    def log_probs(self, records: GeoRecords, rows: slice | np.ndarray = slice(None)) -> torch.Tensor:
        """Prior-only log-probabilities ``[B, C_image]`` over the image model's labels."""
        probs = self.model.probabilities(*self._inputs(records, rows))[:, self.index]
        return (probs / probs.sum(-1, keepdim=True)).clamp_min(1e-30).log()

    def prior_ratio(self, records: GeoRecords, rows: slice | np.ndarray, answers: torch.Tensor) -> torch.Tensor:
        """``p(answer | place, date) / p(answer)`` per record ``[B]`` (``answers [B]``: image-model label indices):
        how much likelier (> 1) or rarer (< 1) the prior finds the answer here and now than across its training
        records (``p(y)``: their label frequencies, else uniform). 1 where there is no location."""
        probs = self.model.probabilities(*self._inputs(records, rows))  # [B, C_prior]
        base = torch.tensor(self.model.config.class_prior or [1.0] * probs.shape[-1], device=probs.device)
        index = self.index[answers.to(self.device)]
        return (probs.gather(1, index[:, None])[:, 0] / (base / base.sum())[index]).float()

    def fuse(self, scores: torch.Tensor, records: GeoRecords, rows: slice | np.ndarray = slice(None)) -> torch.Tensor:
        """Image scores (logits or log-probabilities) ``[B, C]`` -> fused log-scores ``[B, C]``."""
        return scores.float().log_softmax(-1) + self.log_ratio(records, rows).to(scores.device)

    def summary(self) -> dict[str, Any]:
        c = self.model.config
        return {"loss": c.loss, "fusion_weight": self.weight, "num_prior_labels": c.num_labels}
