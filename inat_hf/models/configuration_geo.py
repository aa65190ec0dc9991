"""Configuration of the location/date prior (:mod:`.modeling_geo`): p(label | latitude, longitude[, day of year]).

Its label space and taxonomy are those of an image model (``id2label``, ``label_rank``, ``taxonomy``), so that the
two can be fused label by label. Shipped with checkpoints for ``trust_remote_code`` with ``configuration_inat.py``
(its rank order); imports nothing else of ``inat_hf``.
"""

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
    "presence_pos_weight": (lambda v: v is None or v > 0, "must be a positive number or None (num_labels / 4)"),
    "fusion_weight": (lambda v: v >= 0, "must be a number >= 0 (0 switches the prior off)"),
    "label_rank": choice(RANKS, "is not a rank"),
    "class_prior": (lambda v: v is None or all(p > 0 for p in v), "must hold positive frequencies (smooth zeros)"),
}


class GeoPriorConfig(PreTrainedConfig):
    r"""
    Configuration for [`GeoPriorModel`].

    Args:
        hidden_size (`int`, *optional*, defaults to 256):
            Width of the network (the paper uses 256).
        num_blocks (`int`, *optional*, defaults to 4):
            Residual blocks (Linear -> ReLU -> Dropout -> Linear -> ReLU, plus the skip), as in the paper.
        drop_rate (`float`, *optional*, defaults to 0.5):
            Dropout inside each residual block, in [0, 1) (the paper's value).
        use_date (`bool`, *optional*, defaults to `True`):
            Also encode the day of the year (a missing date encodes as zeros, which no real date produces, so the
            network learns a date-free answer for it).
        loss (`str`, *optional*, defaults to `"softmax"`):
            `"softmax"`: cross-entropy over the labels, the scores are log p(label | location) up to a constant.
            `"presence"`: the paper's presence-only loss ("full" loss: sigmoid per label, the observed label as a
            positive weighted by `presence_pos_weight`, every other label and every label at a uniformly drawn
            random location/date as negatives). Which one works better is measured in `benchmarks/bench_geo.py`.
        loss_negatives (`int`, *optional*, defaults to 1024):
            Labels scored as negatives per training step. Both losses sum over every label; with more labels than
            this, each step draws `loss_negatives` labels uniformly (shared by the batch; each row keeps its own
            label) and weights them by `num_labels / loss_negatives`, so the sum is estimated without scoring every
            label: softmax becomes a sampled softmax (its normaliser estimated from the draw), the presence loss an
            unbiased estimate of the paper's. `None`, or at least `num_labels - 1`: every label, exactly.
            Prediction always scores every label.
        presence_pos_weight (`float`, *optional*):
            Weight of the positive term of the presence loss. `None`: `num_labels / 4`, the paper's ratio (2048 for
            its 8,142 classes).
        fusion_weight (`float`, *optional*, defaults to 1.0):
            Exponent `w` of the prior in the fusion `p(y|x,l) ∝ p(y|x) · (p(y|l) / p(y))^w` (softmax) or
            `p(y|x) · σ(s_y(l))^w` (presence, the paper's product). 1 is the Bayes-optimal weighting when both
            models are calibrated; it is a saved parameter, never tuned on the split being reported.
        class_prior (`list[float]`, *optional*):
            p(y): label frequencies of the records the prior was trained on (the softmax fusion divides by it).
        label_rank (`str`, *optional*, defaults to `"species"`):
            Taxonomic rank of the labels, one of [`RANKS`].
        taxonomy (`dict`, *optional*):
            The label taxonomy, the same dict an image model's `InatConfig.taxonomy` holds.

    Labels use the standard `id2label` / `label2id` / `num_labels` arguments.
    """

    model_type = "inat_geo"

    hidden_size: int = 256
    num_blocks: int = 4
    drop_rate: float = 0.5
    use_date: bool = True
    loss: str = "softmax"
    loss_negatives: int | None = 1024
    presence_pos_weight: float | None = None
    fusion_weight: float = 1.0
    class_prior: list[float] | None = None
    label_rank: str = "species"
    taxonomy: dict[str, Any] | None = None

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
        """The presence loss's positive weight (`presence_pos_weight`, default `num_labels / 4`)."""
        if self.presence_pos_weight is not None:
            return float(self.presence_pos_weight)
        return max(self.num_labels / 4, 1.0)

    @property
    def sampled_negatives(self) -> int | None:
        """Negatives drawn per training step, or `None` when the loss scores every label (see `loss_negatives`)."""
        if self.loss_negatives is None or self.loss_negatives >= self.num_labels - 1:
            return None
        return self.loss_negatives

    @property
    def num_inputs(self) -> int:
        """Width of the periodic encoding: sin/cos of latitude and longitude (+ sin/cos of the day of the year)."""
        return 6 if self.use_date else 4


__all__ = ["GeoPriorConfig"]
