"""The location prior's run options, free of torch. Its model options are ``GeoPriorConfig``'s own keyword
arguments (``CommandParser.add_config``), less :data:`CONFIG_FROM_DATA`; where the records come from is
:class:`~inat_hf.data.source.DataArguments`."""

from __future__ import annotations

import dataclasses
from typing import Literal

# Set from the training records (label space, taxonomy, label frequencies), never on the command line.
CONFIG_FROM_DATA = ("class_prior", "label_rank", "taxonomy")


def _help(text: str, default=dataclasses.MISSING):
    return dataclasses.field(default=default, metadata={"help": text})


@dataclasses.dataclass
class GeoTrainingArguments:
    """The run: splits, output and optimisation (the paper's Adam, lr 5e-4 decayed ×0.98 per epoch, batch 1024;
    ``min_steps`` gives a small set as many epochs as it needs)."""

    output_dir: str = _help("Where the prior and geo_report.json are written.")
    train_split: str = _help("Split the prior is trained on.", "train")
    eval_split: str | None = _help("Split scored in geo_report.json ('none': no evaluation).", "val")
    on_bad_record: Literal["error", "skip"] = _help(
        "Invalid coordinates or unparsable dates: stop with the record ids (error) or leave them out and count them "
        "in geo_report.json (skip; a bad date only loses the date).",
        "error",
    )
    num_epochs: int = _help("Passes over the training records.", 2)
    min_steps: int = _help("Train at least this many steps (more epochs on small data).", 1000)
    max_steps: int | None = _help("Stop after this many steps (a time-boxed run; default: the epochs).", None)
    batch_size: int = _help("Records per step.", 1024)
    learning_rate: float = _help("Adam learning rate.", 5e-4)
    lr_decay: float = _help("Learning-rate factor per epoch.", 0.98)
    weight_decay: float = _help("AdamW weight decay.", 0.0)
    seed: int = _help("Initialisation and shuffling seed.", 0)
    num_threads: int | None = _help("torch CPU threads (default: all).", None)

    def __post_init__(self):
        if self.eval_split is not None and self.eval_split.strip().lower() in ("", "none"):
            self.eval_split = None
        for name in ("num_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max_steps must be >= 1, got {self.max_steps}.")
        if self.min_steps < 0 or self.learning_rate <= 0 or not 0 < self.lr_decay <= 1:
            raise ValueError("--min_steps must be >= 0, --learning_rate > 0 and --lr_decay in (0, 1].")
