"""The location prior's run options, free of torch. Its model options are ``GeoPriorConfig``'s own keyword
arguments (``CommandParser.add_config``), less :data:`CONFIG_FROM_DATA`; where the records come from is
:class:`~inat_hf.data.source.DataArguments`."""

from __future__ import annotations

import dataclasses

from ..cli import option
from ..files import overwrite_option

# Set from the training records (label space, taxonomy, label frequencies), never on the command line.
CONFIG_FROM_DATA = ("class_prior", "label_rank", "taxonomy")


@dataclasses.dataclass
class GeoTrainingArguments:
    """The run: splits, output and optimisation (the paper's Adam, lr 5e-4 decayed ×0.98 per epoch, batch 1024;
    ``min_steps`` gives a small set as many epochs as it needs)."""

    output_dir: str = dataclasses.field(metadata={"help": "Where the prior and geo_report.json are written."})
    train_split: str = option("train", "Split the prior is trained on.")
    eval_split: str | None = option("val", "Split scored in geo_report.json ('none': no evaluation).")
    select_split: str | None = option(
        None,
        "Split on which the k-NN baselines choose k and the date weight (never the scored split; default: a held-out fifth "
        "of the training records).",
    )
    num_epochs: int = option(2, "Passes over the training records.")
    min_steps: int = option(1000, "Train at least this many steps (more epochs on small data).")
    max_steps: int | None = option(None, "Stop after this many steps (a time-boxed run; default: the epochs).")
    batch_size: int = option(1024, "Records per step.")
    max_per_class: int | None = option(
        None,
        "Each epoch draws at most this many records of each label (geo_prior's balanced sampler, 100 there: long-tailed "
        "data); default: every record.",
    )
    learning_rate: float = option(5e-4, "Adam learning rate.")
    lr_decay: float = option(0.98, "Learning-rate factor per epoch.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    overwrite: bool = overwrite_option()
    seed: int = option(0, "Initialisation and shuffling seed.")
    num_threads: int | None = option(None, "torch CPU threads (default: all).")

    def __post_init__(self):
        if self.eval_split is not None and self.eval_split.strip().lower() in ("", "none"):
            self.eval_split = None
        for name in ("num_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.select_split is not None and self.select_split.strip().lower() in ("", "none"):
            self.select_split = None
        if self.select_split is not None and self.select_split in (self.eval_split, self.train_split):
            raise ValueError(
                f"--select_split {self.select_split!r} is the train or eval split: the k-NN baselines must be chosen "
                "on another split (or leave it out: a held-out part of the training records)."
            )
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ValueError(f"--max_per_class must be >= 1, got {self.max_per_class}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max_steps must be >= 1, got {self.max_steps}.")
        if self.min_steps < 0 or self.learning_rate <= 0 or not 0 < self.lr_decay <= 1:
            raise ValueError("--min_steps must be >= 0, --learning_rate > 0 and --lr_decay in (0, 1].")


# "Unusual here and now": an answer the prior finds this many times rarer at the photo's place and date than across
# its training records (p(y | place, date) / p(y) below it) is flagged. 0.1 = ten times rarer than on average: on
# the real iNat 2021 records it flags few right answers and many more wrong ones (docs/calibration.md).
DEFAULT_UNUSUAL_BELOW = 0.1
