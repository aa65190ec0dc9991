"""Mixup / CutMix around timm's ``Mixup``, with a probability that follows a schedule, applied on the device.

The probability goes from ``mix_prob`` to ``mix_prob_final`` (constant, linear or cosine; the recipe's ``mixing``
section) and is 0 for the last ``mix_off_epochs`` epochs, so the model finishes on clean images. It runs in the
Trainer rather than the collator: the probability changes every step, which persistent DataLoader workers would
never see.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from timm.data import Mixup

from ..cli import option


@dataclasses.dataclass
class MixingConfig:
    """Mixup / CutMix (timm ``Mixup``, on the device inside the Trainer) with a scheduled probability."""

    mixup_alpha: float = option(0.2, "Mixup beta(α, α); 0 = no mixup.")
    cutmix_alpha: float = option(1.0, "CutMix beta(α, α); 0 = no cutmix.")
    mix_prob: float = option(1.0, "Probability that a batch is mixed at the start of training.")
    mix_switch_prob: float = option(0.5, "Probability of cutmix rather than mixup when both are on.")
    mix_schedule: Literal["constant", "linear", "cosine"] = option(
        "linear", "How the mix probability moves from mix_prob to mix_prob_final over training."
    )
    mix_prob_final: float = option(0.3, "Mix probability at the end of the schedule.")
    mix_off_epochs: int = option(2, "Turn mixing off for the last N epochs (clean fine-tuning).")

    def __post_init__(self):
        for name in ("mix_prob", "mix_prob_final", "mix_switch_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name} is a probability in [0, 1], got {getattr(self, name)}.")
        if min(self.mixup_alpha, self.cutmix_alpha, self.mix_off_epochs) < 0:
            raise ValueError(
                f"mixup_alpha, cutmix_alpha, mix_off_epochs must be >= 0, got {dataclasses.astuple(self)}"
            )
        if self.mix_schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"mix_schedule must be constant, linear or cosine, got {self.mix_schedule!r}.")

    @property
    def enabled(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and max(self.mix_prob, self.mix_prob_final) > 0


class AdaptiveMixup:
    """``mixer(pixel_values, labels, epoch) -> (pixel_values, targets)``; targets are soft ``[B, C]`` when mixed.

    ``num_labels`` and ``label_smoothing`` (folded into the soft targets) come from the model config: timm's defaults
    are 1000 classes and 0.1; ``num_epochs`` is the length of training.
    """

    def __init__(self, config: MixingConfig, *, num_labels: int, label_smoothing: float, num_epochs: float) -> None:
        self.config = config
        self.num_epochs = float(num_epochs)
        self.mixup = Mixup(
            mixup_alpha=config.mixup_alpha,
            cutmix_alpha=config.cutmix_alpha,
            prob=config.mix_prob,
            switch_prob=config.mix_switch_prob,
            mode="batch",
            label_smoothing=label_smoothing,
            num_classes=num_labels,
        )

    def probability(self, epoch: float) -> float:
        """Mixing probability at (fractional) ``epoch``."""
        c = self.config
        active = self.num_epochs - c.mix_off_epochs
        if epoch >= active or active <= 0:
            return 0.0
        t = min(max(epoch / active, 0.0), 1.0)
        cosine = 0.5 * (1 - math.cos(math.pi * t))  # slow start, slow finish
        weight = {"constant": 0.0, "linear": t, "cosine": cosine}[c.mix_schedule]
        return c.mix_prob + (c.mix_prob_final - c.mix_prob) * weight

    def __call__(
        self, pixel_values: torch.Tensor, labels: torch.Tensor, epoch: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.probability(epoch)
        # hard labels: the loss applies the label smoothing itself; timm pairs image i with image B-1-i, so an odd
        # batch (a last partial batch) is left unmixed
        if p <= 0 or pixel_values.shape[0] % 2:
            return pixel_values, labels
        self.mixup.mix_prob = p
        self.mixup.mixup_enabled = True
        # timm mixes the batch in place and returns the (smoothed) soft targets [B, C]
        mixed, targets = self.mixup(pixel_values, labels)
        return mixed, targets.float()
