"""Mixup / CutMix with an adaptive probability, on the device, around timm's ``Mixup``.

The probability that a batch is mixed follows a schedule over training — from ``mix_prob`` to ``mix_prob_final``
(constant, linear or cosine) — and is 0 for the last ``mix_off_epochs`` epochs, so the model finishes on clean
images. It runs in the Trainer on the device rather than in the DataLoader's collator: the probability changes
every step, and a collator in persistent worker processes would never see the change (and mixing a batch that is
already on the device costs ~1% of a step: see benchmarks/bench_data.py).

timm's ``Mixup`` needs an even batch (it pairs each image with its mirror in the batch) and defaults to
``num_classes=1000`` and ``label_smoothing=0.1``: both are set explicitly here from the model config.
"""

from __future__ import annotations

import math

import torch
from timm.data import Mixup

SCHEDULES = ("constant", "linear", "cosine")


class AdaptiveMixup:
    """``mixer(pixel_values, labels, epoch) -> (pixel_values, targets)``; targets are soft ``[B, C]`` when mixed.

    Args:
        num_labels: classes (width of the soft targets).
        label_smoothing: smoothing folded into the soft targets (the focal loss uses soft targets as given).
        mixup_alpha / cutmix_alpha: beta-distribution parameters; 0 disables that kind of mixing.
        mix_prob / mix_prob_final / schedule: the per-batch mixing probability over ``[0, num_epochs - mix_off_epochs)``.
        switch_prob: probability of CutMix instead of Mixup when both are enabled.
        num_epochs: length of training, in epochs.
        mix_off_epochs: last epochs without mixing.
    """

    def __init__(
        self,
        *,
        num_labels: int,
        label_smoothing: float,
        num_epochs: float,
        mixup_alpha: float = 0.2,
        cutmix_alpha: float = 1.0,
        mix_prob: float = 1.0,
        mix_prob_final: float = 0.3,
        schedule: str = "linear",
        switch_prob: float = 0.5,
        mix_off_epochs: int = 0,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"mix_schedule must be one of {SCHEDULES}, got {schedule!r}.")
        self.num_epochs = float(num_epochs)
        self.mix_prob, self.mix_prob_final = mix_prob, mix_prob_final
        self.schedule = schedule
        self.mix_off_epochs = mix_off_epochs
        self.num_labels = num_labels
        self.mixup = Mixup(
            mixup_alpha=mixup_alpha,
            cutmix_alpha=cutmix_alpha,
            prob=mix_prob,
            switch_prob=switch_prob,
            mode="batch",
            label_smoothing=label_smoothing,
            num_classes=num_labels,
        )

    def probability(self, epoch: float) -> float:
        """Mixing probability at (fractional) ``epoch``."""
        active = self.num_epochs - self.mix_off_epochs
        if epoch >= active or active <= 0:
            return 0.0
        t = min(max(epoch / active, 0.0), 1.0)
        if self.schedule == "constant":
            weight = 0.0
        elif self.schedule == "linear":
            weight = t
        else:  # cosine: slow start, slow finish
            weight = 0.5 * (1 - math.cos(math.pi * t))
        return self.mix_prob + (self.mix_prob_final - self.mix_prob) * weight

    def __call__(
        self, pixel_values: torch.Tensor, labels: torch.Tensor, epoch: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.probability(epoch)
        if p <= 0:
            return pixel_values, labels  # hard labels: the loss applies the label smoothing itself
        if pixel_values.shape[0] % 2:
            # timm pairs image i with image B-1-i; an odd batch (a last partial batch) is left unmixed.
            return pixel_values, labels
        self.mixup.mix_prob = p
        self.mixup.mixup_enabled = True
        # timm mixes the batch in place and returns the (smoothed) soft targets [B, C]
        mixed, targets = self.mixup(pixel_values, labels)
        return mixed, targets.float()
