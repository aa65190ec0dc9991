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

from ..inference import tta
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
    location_problem: str | None = None  # why a location found (in EXIF) was not used

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "location_used": self.has_location,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "location_source": self.location_source if self.has_location else None,
            "location_problem": self.location_problem,
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
    """Where and when a photo was taken, from its EXIF (Pillow); never an exception. The GPS position is used only
    when it is valid (:func:`_exif_gps`; else ``location_problem`` says why). The date: ``DateTimeOriginal``, else
    ``DateTimeDigitized``, else the GPS date stamp (UTC); never ``DateTime``, the time the file was last edited."""
    from PIL import ExifTags, Image

    try:
        with Image.open(path) as image:
            exif = image.getexif()
            gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
            sub = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # unreadable files are reported by the prediction itself
        return Location()
    lat, lon, problem = _exif_gps(gps)
    date = None
    for value in (sub.get(ExifTags.Base.DateTimeOriginal), sub.get(ExifTags.Base.DateTimeDigitized),
                  gps.get(ExifTags.GPS.GPSDateStamp)):  # fmt: skip
        try:
            date = datetime.datetime.strptime(str(value).strip()[:10], "%Y:%m:%d").date().isoformat()
            break
        except ValueError:
            continue  # absent (None) or not a date: the next tag
    return Location(lat, lon, date, "exif" if lat is not None else None, "exif" if date is not None else None, problem)


def _exif_gps(gps) -> tuple[float | None, float | None, str | None]:
    """``(latitude, longitude, None)`` from a GPS IFD, or ``(None, None, why it is not used)``; no GPS position at all
    is ``(None, None, None)``. Refused: a reference other than N/S and E/W, a zero denominator, minutes or seconds
    outside [0, 60), a position outside [-90, 90] x [-180, 180], and (0, 0), which many cameras write without a fix."""
    if not any(key in gps for key in (1, 2, 3, 4)):
        return None, None, None
    missing = [name for key, name in ((1, "GPSLatitudeRef"), (2, "GPSLatitude"), (3, "GPSLongitudeRef"),
                                      (4, "GPSLongitude")) if key not in gps]  # fmt: skip
    if missing:
        return None, None, f"incomplete EXIF GPS (no {', '.join(missing)})"
    position = []
    for axis, ref_key, value_key, refs, limit in (("latitude", 1, 2, "NS", 90), ("longitude", 3, 4, "EW", 180)):
        ref = str(gps[ref_key]).strip().upper()
        if ref not in refs:
            return None, None, f"EXIF GPS {axis} reference {gps[ref_key]!r} (expected {' or '.join(refs)})"
        try:
            parts = [float(v) for v in gps[value_key]]  # Pillow's IFDRational: NaN for a zero denominator
        except (TypeError, ValueError):
            return None, None, f"EXIF GPS {axis} {gps[value_key]!r} is not degrees, minutes, seconds"
        if len(parts) != 3 or not np.isfinite(parts).all():
            return None, None, f"EXIF GPS {axis} {tuple(parts)} (expected 3 finite numbers; a zero denominator?)"
        degrees, minutes, seconds = parts
        if degrees < 0 or not (0 <= minutes < 60 and 0 <= seconds < 60):
            return None, None, f"EXIF GPS {axis} {degrees:g}° {minutes:g}' {seconds:g}\" (minutes, seconds in [0, 60))"
        value = (degrees + minutes / 60 + seconds / 3600) * (-1 if ref == refs[1] else 1)
        if abs(value) > limit:
            return None, None, f"EXIF GPS {axis} {value:g} outside [-{limit}, {limit}]"
        position.append(value)
    if position == [0.0, 0.0]:
        return None, None, "EXIF GPS position (0, 0): what cameras write without a GPS fix"
    return position[0], position[1], None


def _as(like, tensor: torch.Tensor):
    """``tensor`` as ``like`` is: a numpy array, or a tensor on ``like``'s device (``None``: as it is)."""
    if like is None:
        return tensor
    return tensor.cpu().numpy() if isinstance(like, np.ndarray) else tensor.to(like.device)


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
        fusion_weight: float | None = None,
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
        # the image model's calibrated weight (config.fusion_weight) wins over the prior's own
        self.fusion_weight = float(model.config.fusion_weight if fusion_weight is None else fusion_weight)

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

    @classmethod
    def for_predictor(cls, path: str | os.PathLike, predictor) -> GeoFusion:
        """The prior saved in ``path`` aligned to a ``Predictor``'s labels, on its device (the CPU for the ONNX
        backend), fused with the model config's ``fusion_weight`` when it has one (calibrated with the image model),
        else the prior's own."""
        device = predictor.device if predictor.backend == "torch" else "cpu"
        weight = getattr(predictor.config, "fusion_weight", None)
        return cls.from_pretrained(path, predictor.taxonomy.labels, device=device, fusion_weight=weight)

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
        ``weight`` (default: :attr:`fusion_weight`; calibration fits it from the term at weight 1)."""
        weight = self.fusion_weight if weight is None else weight
        return self.model.log_prior_ratio(*self._inputs(records, rows), weight=weight)[:, self.index]

    def log_probs(self, records: GeoRecords, rows: slice | np.ndarray = slice(None), *, like=None):
        """Prior-only log-probabilities ``[B, C_image]`` over the image model's labels (as ``like``: a tensor on its
        device or a numpy array)."""
        probs = self.model.probabilities(*self._inputs(records, rows))[:, self.index]
        return _as(like, (probs / probs.sum(-1, keepdim=True)).clamp_min(1e-30).log())

    def prior_ratio(self, records: GeoRecords, rows: slice | np.ndarray, answers) -> torch.Tensor:
        """``p(answer | place, date) / p(answer)`` per record ``[B]`` (``answers [B]``: image-model label indices, a
        tensor or an array): how much likelier (> 1) or rarer (< 1) the prior finds the answer here and now than
        across its training records (``p(y)``: their label frequencies, else uniform). 1 where there is no location."""
        probs = self.model.probabilities(*self._inputs(records, rows))  # [B, C_prior]
        base = torch.tensor(self.model.config.class_prior or [1.0] * probs.shape[-1], device=probs.device)
        index = self.index[torch.as_tensor(answers).to(self.device)]
        return (probs.gather(1, index[:, None])[:, 0] / (base / base.sum())[index]).float()

    def fuse(self, scores, records: GeoRecords, rows: slice | np.ndarray = slice(None)):
        """Image scores (logits or log-probabilities) ``[B, C]``, a tensor or a numpy array (the ONNX backend) ->
        fused log-scores ``[B, C]`` of the same kind."""
        return tta.log_softmax(scores.astype(np.float32) if isinstance(scores, np.ndarray) else scores.float()) + _as(
            scores, self.log_ratio(records, rows)
        )

    def summary(self) -> dict[str, Any]:
        c = self.model.config
        return {"loss": c.loss, "fusion_weight": self.fusion_weight, "num_prior_labels": c.num_labels}
