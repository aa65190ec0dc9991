"""The location prior's optimisation settings, in a module free of torch: ``train_geo_prior.py`` parses them
before it imports anything heavy."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class GeoTrainingArguments:
    """Optimisation of the prior: the paper's Adam, lr 5e-4 decayed ×0.98 per epoch, batch 1024. Two epochs: on
    iNat 2021's 2.7M records that is 5,248 steps, a run of minutes on a CPU (``benchmarks/results.md``);
    ``min_steps`` gives a small set as many epochs as it needs."""

    num_epochs: int = dataclasses.field(default=2, metadata={"help": "Passes over the training records."})
    min_steps: int = dataclasses.field(
        default=1000,
        metadata={"help": "Train at least this many steps (more epochs on small data; 2.7M records never need it)."},
    )
    max_steps: int | None = dataclasses.field(
        default=None, metadata={"help": "Stop after this many steps (a time-boxed run; default: the epochs)."}
    )
    batch_size: int = dataclasses.field(default=1024, metadata={"help": "Records per step."})
    learning_rate: float = dataclasses.field(default=5e-4, metadata={"help": "Adam learning rate."})
    lr_decay: float = dataclasses.field(default=0.98, metadata={"help": "Learning-rate factor per epoch."})
    weight_decay: float = dataclasses.field(default=0.0, metadata={"help": "AdamW weight decay."})
    seed: int = dataclasses.field(default=0, metadata={"help": "Initialisation and shuffling seed."})
    num_threads: int | None = dataclasses.field(default=None, metadata={"help": "torch CPU threads (default: all)."})

    def __post_init__(self):
        for name in ("num_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max_steps must be >= 1, got {self.max_steps}.")
        if self.min_steps < 0 or self.learning_rate <= 0 or not 0 < self.lr_decay <= 1:
            raise ValueError("--min_steps must be >= 0, --learning_rate > 0 and --lr_decay in (0, 1].")
