"""Configuration of the location/date prior (:mod:`.modeling_geo`): p(label | latitude, longitude[, day of year]).

Its label space and taxonomy are an image model's (``id2label``, ``label_rank``, ``taxonomy``), so that the two fuse
label by label. Imports nothing of ``inat_hf`` but its sibling ``configuration_inat.py`` (the rank order).
"""

import dataclasses
from typing import Any

from transformers import PreTrainedConfig

from .configuration_inat import RANKS, check_fields, choice

LOSSES = ("softmax", "presence")
# field -> (test, what a valid value is); see configuration_inat.check_fields.
_RULES = {
    "hidden_size": (lambda v: isinstance(v, int) and v > 0, "must be a positive integer"),
    "num_blocks": (lambda v: isinstance(v, int) and v >= 0, "must be an integer >= 0"),
    "drop_rate": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "use_date": (lambda v: isinstance(v, bool), "must be True or False"),
    "loss": choice(LOSSES),
    "loss_negatives": (lambda v: v is None or isinstance(v, int) and v > 0, "must be a positive integer or None"),
    "date_drop_rate": (lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    "presence_pos_weight": (lambda v: v is None or v > 0, "must be a positive number or None (num_labels)"),
    "fusion_weight": (lambda v: v >= 0, "must be a number >= 0 (0 switches the prior off)"),
    "label_rank": choice(RANKS, "is not a rank"),
    "class_prior": (lambda v: v is None or all(p > 0 for p in v), "must hold positive frequencies (smooth zeros)"),
}


class GeoPriorConfig(PreTrainedConfig):
    r"""
    Configuration for [`GeoPriorModel`]; each field's `help` is its `train_geo_prior.py --help` line. Labels use the
    standard `id2label` / `label2id` / `num_labels` arguments.

    - `loss="softmax"`: cross-entropy over the labels; the scores are log p(label | location) up to a constant.
      `"presence"`: the paper's "full" presence-only loss (a sigmoid per label; the observed label a positive weighted
      by `presence_pos_weight`, `num_labels` by default as in `geo_prior`'s code, SINR fixes 2048; every other
      label, and every label at a uniformly drawn location/date, a negative).
    - `date_drop_rate`: in training, this share of the records (and of the presence loss's random negatives) lose
      their date, so that the "no date" input (zeros) learns the place-only answer a photo without a date needs.
    - `loss_negatives`: both losses sum over every label; with more labels than this, each step draws this many
      (shared by the batch, each row keeps its own label) weighted by `num_labels / loss_negatives`: a sampled
      softmax, or an unbiased estimate of the presence loss. Prediction always scores every label.
    - `fusion_weight` `w`: `p(y|x,l) ∝ p(y|x) · (p(y|l) / p(y))^w` (softmax) or `p(y|x) · σ(s_y(l))^w` (presence).
      1 is Bayes-optimal for calibrated models; it is saved with the prior, never tuned on the split reported.
    """

    model_type = "inat_geo"

    hidden_size: int = dataclasses.field(default=256, metadata={"help": "Width of the network (the paper's 256)."})
    num_blocks: int = dataclasses.field(default=4, metadata={"help": "Residual blocks (the paper's 4)."})
    drop_rate: float = dataclasses.field(default=0.5, metadata={"help": "Dropout in each residual block, in [0, 1)."})
    use_date: bool = dataclasses.field(
        default=True, metadata={"help": "Also encode the day of the year (a missing date encodes as zeros)."}
    )
    date_drop_rate: float = dataclasses.field(
        default=0.5,
        metadata={"help": "Share of training records whose date is dropped, in [0, 1]: the date-less answer."},
    )
    loss: str = dataclasses.field(default="softmax", metadata={"help": "softmax or presence (the paper's)."})
    loss_negatives: int | None = dataclasses.field(
        default=1024, metadata={"help": "Labels drawn as negatives per training step; None: every label."}
    )
    presence_pos_weight: float | None = dataclasses.field(
        default=None,
        metadata={"help": "Weight of the presence loss's positive term; None: num_labels (geo_prior's rule)."},
    )
    fusion_weight: float = dataclasses.field(
        default=1.0, metadata={"help": "Exponent w of the prior in the fusion, >= 0 (0: off)."}
    )
    class_prior: list[float] | None = dataclasses.field(
        default=None, metadata={"help": "p(y): label frequencies of the training records."}
    )
    label_rank: str = dataclasses.field(default="species", metadata={"help": "Taxonomic rank of the labels."})
    taxonomy: dict[str, Any] | None = dataclasses.field(
        default=None, metadata={"help": "The label taxonomy, as an image model's InatConfig.taxonomy."}
    )

    def __post_init__(self, **kwargs):
        if self.class_prior is not None:
            self.class_prior = [float(p) for p in self.class_prior]
        super().__post_init__(**kwargs)
        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: index for index, name in self.id2label.items()}
        self._check_geo_fields()

    def validate(self):
        super().validate()
        self._check_geo_fields()

    def _check_geo_fields(self) -> None:
        check_fields(self, _RULES)
        if self.class_prior is not None and len(self.class_prior) != self.num_labels:
            raise ValueError(
                f"class_prior has {len(self.class_prior)} entries but num_labels={self.num_labels}; give one "
                "frequency per label."
            )

    @property
    def pos_weight(self) -> float:
        """The presence loss's positive weight: `presence_pos_weight`, else `num_labels` (`geo_prior`'s
        `pos_weight = num_classes`: the positive counts as much as all the negatives of its row together)."""
        return float(self.num_labels) if self.presence_pos_weight is None else float(self.presence_pos_weight)

    @property
    def sampled_negatives(self) -> int | None:
        """Negatives drawn per training step, or `None` when the loss scores every label (see `loss_negatives`)."""
        if self.loss_negatives is None or self.loss_negatives >= self.num_labels - 1:
            return None
        return self.loss_negatives


__all__ = ["GeoPriorConfig"]
