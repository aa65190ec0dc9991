"""The location/date prior: (latitude, longitude[, day of year]) -> one score per label.

    latitude, longitude [B] (degrees), day_of_year [B] (1..366, NaN = unknown)
      -> periodic encoding [B, 4 or 6]: sin/cos(π·lon/180), sin/cos(π·lat/90)[, sin/cos(2π·(day-1)/365.25)]
      -> Linear -> ReLU                                             [B, hidden]
      -> residual blocks: x + ReLU(Linear(Dropout(ReLU(Linear x))))  [B, hidden]
      -> class embedding (Linear, no bias)                          [B, num_labels]

Mac Aodha, Cole & Perona (ICCV 2019), "Presence-Only Geographical Priors for Fine-Grained Image Classification".
The latitude wraps as in the paper (the poles meet); a missing date encodes as (0, 0), which no real date gives. The
network only learns what (0, 0) means from records that have it: training drops the date of a share
(``date_drop_rate``) of the records, so a photo without a date gets a place-only answer (neither anchor does this).
Shipped with checkpoints for ``trust_remote_code``: imports only torch, transformers and its sibling config.
"""

import math

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_geo import GeoPriorConfig

DAYS_PER_YEAR = 365.25


def check_locations(latitude: torch.Tensor, longitude: torch.Tensor, *, allow_missing: bool = True) -> torch.Tensor:
    """The ``[B]`` mask of rows with a location. A location is complete (latitude in [-90, 90], longitude in
    [-180, 180]) or missing (both NaN); anything else would silently give a wrong prior: a ``ValueError``."""
    if latitude.shape != longitude.shape or latitude.ndim != 1:
        raise ValueError(
            f"latitude and longitude must both be [B]; got {tuple(latitude.shape)} and {tuple(longitude.shape)}."
        )
    lat_nan, lon_nan = torch.isnan(latitude), torch.isnan(longitude)
    half = lat_nan ^ lon_nan
    if half.any():
        i = int(half.nonzero()[0])
        raise ValueError(
            f"row {i}: latitude={latitude[i].item()} longitude={longitude[i].item()}: a location needs both "
            "coordinates (or neither, NaN/None for an unknown location)."
        )
    has = ~lat_nan
    bad = has & ((latitude.abs() > 90) | (longitude.abs() > 180))  # infinities too
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"row {i}: latitude={latitude[i].item()} longitude={longitude[i].item()} is not a location: expected "
            f"latitude in [-90, 90] and longitude in [-180, 180] (decimal degrees); {int(bad.sum())} bad row(s)."
        )
    if not allow_missing and not has.all():
        raise ValueError(f"{int((~has).sum())} row(s) have no location (NaN); the prior cannot be trained on them.")
    return has


def encode_inputs(
    latitude: torch.Tensor, longitude: torch.Tensor, day_of_year: torch.Tensor | None, use_date: bool
) -> torch.Tensor:
    """Periodic encoding ``[B, 4]`` (location) or ``[B, 6]`` (+ date); NaN coordinates propagate."""
    lon = longitude.float() * (math.pi / 180.0)
    lat = latitude.float() * (math.pi / 90.0)
    parts = [torch.sin(lon), torch.cos(lon), torch.sin(lat), torch.cos(lat)]
    if use_date:
        if day_of_year is None:
            day_of_year = torch.full_like(lat, float("nan"))
        angle = (day_of_year.float() - 1.0) * (2 * math.pi / DAYS_PER_YEAR)
        known = ~torch.isnan(angle)
        angle = torch.where(known, angle, torch.zeros_like(angle))
        parts += [torch.sin(angle) * known, torch.cos(angle) * known]
    return torch.stack(parts, dim=-1)


class GeoResidualBlock(nn.Module):
    def __init__(self, width: int, drop_rate: float):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.drop = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.fc2(self.drop(self.act(self.fc1(x)))))


class GeoPriorPreTrainedModel(PreTrainedModel):
    config_class = GeoPriorConfig
    config: GeoPriorConfig
    base_model_prefix = "geo"
    main_input_name = "latitude"
    accepts_loss_kwargs = False

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            # PyTorch's default Linear init (what the paper's reference code trains from), bias at zero.
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                init.zeros_(module.bias)


class GeoPriorModel(GeoPriorPreTrainedModel):
    """Location/date prior over an image model's labels; see :class:`GeoPriorConfig`."""

    def __init__(self, config: GeoPriorConfig):
        super().__init__(config)
        self.stem = nn.Sequential(nn.Linear(6 if config.use_date else 4, config.hidden_size), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(
            *[GeoResidualBlock(config.hidden_size, config.drop_rate) for _ in range(config.num_blocks)]
        )
        self.classifier = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def features(self, encoded: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(encoded))

    def forward(
        self,
        latitude: torch.Tensor,
        longitude: torch.Tensor,
        day_of_year: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """Scores ``[B, num_labels]`` of rows that all have a location: log-probabilities up to a constant (softmax)
        or per-label logits (presence). With ``labels``, the loss (:meth:`objective`); in training with sampled
        negatives, the loss only (``logits=None``: not scoring every label is the point of sampling)."""
        check_locations(latitude, longitude, allow_missing=False)
        if day_of_year is not None:
            day_of_year = self.drop_dates(day_of_year)
        features = self.features(encode_inputs(latitude, longitude, day_of_year, self.config.use_date))
        sampled = labels is not None and self.training and self.config.sampled_negatives is not None
        logits = None if sampled else self.classifier(features)
        loss = None if labels is None else self.objective(features, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def drop_dates(self, day_of_year: torch.Tensor) -> torch.Tensor:
        """In training, ``config.date_drop_rate`` of the days, drawn at random, made unknown (NaN)."""
        if not (self.training and self.config.use_date and self.config.date_drop_rate):
            return day_of_year
        dropped = torch.rand(day_of_year.shape, device=day_of_year.device) < self.config.date_drop_rate
        return day_of_year.float().masked_fill(dropped, float("nan"))

    def random_location_features(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """Features at uniformly drawn locations (on the sphere) and dates, dates dropped as the records' are: the
        presence loss's negatives."""
        rand_lat = torch.rad2deg(torch.asin(torch.rand(batch_size, device=device) * 2 - 1))
        rand_lon = torch.rand(batch_size, device=device) * 360 - 180
        rand_day = self.drop_dates(torch.rand(batch_size, device=device) * DAYS_PER_YEAR + 1)
        return self.features(encode_inputs(rand_lat, rand_lon, rand_day, self.config.use_date))

    def objective(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``config.loss`` of ``features [B, hidden]``. Presence: the paper's "full" loss (the observed label a
        positive weighted by ``config.pos_weight``, every other label a negative, and every label at a random
        location). The sum over the other labels scores every label, or in training with ``sampled_negatives`` S of
        the K labels drawn uniformly for the step, weighted by K / S (``log(K / S)`` on a sampled softmax's logits,
        Jean et al. 2015; a factor on the presence loss's negatives, unbiased); a row's own label is masked out."""
        k, s = self.config.num_labels, self.config.sampled_negatives if self.training else None
        # Drawn before the random locations, as the seed's sampled loss did: the same seed gives the same run.
        negatives = None if s is None else torch.randperm(k, device=features.device)[:s]
        presence = self.config.loss == "presence"
        rand = self.random_location_features(features.shape[0], features.device) if presence else None
        if negatives is None:
            # Every label: the classifier's own scores (the sampled branch's products would give the same loss).
            logits = self.classifier(features)
            if not presence:
                return nn.functional.cross_entropy(logits, labels)
            positive, own, scale = logits.gather(1, labels[:, None]), nn.functional.one_hot(labels, k).bool(), 1.0
            negative, rand_negative = logits, self.classifier(rand)
            rand_positive = rand_negative.gather(1, labels[:, None])[:, 0]
        else:
            # index_select, not weight[labels]: the gradient of advanced indexing with repeated labels is summed
            # in a thread-dependent order on CPU, so two runs with one seed would not give the same prior (the
            # negatives are distinct: their rows get one term each).
            weight = self.classifier.weight  # [K, hidden]
            label_w, negative_w = weight.index_select(0, labels), weight[negatives]
            scale, own = k / s, negatives[None, :] == labels[:, None]  # own: [B, S]
            positive = (features * label_w).sum(-1, keepdim=True)  # [B, 1]
            negative = features @ negative_w.T  # [B, S]
            if not presence:
                logits = torch.cat([positive, (negative + math.log(scale)).masked_fill(own, float("-inf"))], 1)
                return nn.functional.cross_entropy(logits, torch.zeros_like(labels))
            rand_positive, rand_negative = (rand * label_w).sum(-1), rand @ negative_w.T
        others = nn.functional.logsigmoid(-negative).masked_fill(own, 0.0).sum(1)
        rand_others = nn.functional.logsigmoid(-rand_negative).masked_fill(own, 0.0).sum(1)
        loss_obs = -(others * scale + self.config.pos_weight * nn.functional.logsigmoid(positive[:, 0]))
        loss_rand = -(nn.functional.logsigmoid(-rand_positive) + rand_others * scale)
        return (loss_obs + loss_rand).mean() / k

    def _located_logits(self, latitude, longitude, day_of_year) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(rows with a location [B], float scores of those rows or None when there are none)."""
        has = check_locations(latitude, longitude)
        if not has.any():
            return has, None
        day = day_of_year[has] if day_of_year is not None else None
        return has, self(latitude[has], longitude[has], day).logits.float()

    @torch.no_grad()
    def log_prior_ratio(
        self,
        latitude: torch.Tensor,
        longitude: torch.Tensor,
        day_of_year: torch.Tensor | None = None,
        *,
        weight: float | None = None,
    ) -> torch.Tensor:
        """The term ``[B, num_labels]`` to add to an image model's log-probabilities: ``w · (log p(y|l) - log p(y))``
        (softmax) or ``w · log σ(s_y(l))`` (presence), ``w = config.fusion_weight`` by default; zeros without a
        location."""
        weight = self.config.fusion_weight if weight is None else weight
        out = torch.zeros(latitude.shape[0], self.config.num_labels, device=latitude.device)
        has, logits = self._located_logits(latitude, longitude, day_of_year)
        if logits is None or weight == 0:
            return out
        if self.config.loss == "presence":
            term = nn.functional.logsigmoid(logits)
        else:
            term = logits.log_softmax(-1)
            if self.config.class_prior is not None:
                prior = torch.tensor(self.config.class_prior, device=logits.device, dtype=torch.float32)
                term = term - (prior / prior.sum()).log()
        out[has] = weight * term
        return out

    @torch.no_grad()
    def probabilities(
        self, latitude: torch.Tensor, longitude: torch.Tensor, day_of_year: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Prior-only ``[B, num_labels]``; without a location, the training label frequencies (or uniform)."""
        c = self.config.num_labels
        base = torch.tensor(self.config.class_prior or [1.0] * c, device=latitude.device, dtype=torch.float32)
        out = (base / base.sum()).expand(latitude.shape[0], c).clone()
        has, logits = self._located_logits(latitude, longitude, day_of_year)
        if logits is not None:
            out[has] = (nn.functional.logsigmoid(logits) if self.config.loss == "presence" else logits).softmax(-1)
        return out


__all__ = ["GeoPriorModel", "GeoPriorPreTrainedModel", "check_locations", "encode_inputs"]
