"""Mixup / CutMix with an adaptive probability, on the device, around timm's ``Mixup``.

The probability that a batch is mixed follows a schedule over training (:class:`~.arguments.MixingConfig`, the
recipe's ``mixing`` section) — from ``mix_prob`` to ``mix_prob_final``, constant, linear or cosine — and is 0 for
the last ``mix_off_epochs`` epochs, so the model finishes on clean images. It runs in the Trainer on the device
rather than in the DataLoader's collator: the probability changes every step, and a collator in persistent worker
processes would never see the change.

timm's ``Mixup`` needs an even batch (it pairs each image with its mirror in the batch) and defaults to
``num_classes=1000`` and ``label_smoothing=0.1``: both are set explicitly here from the model config.
"""

from __future__ import annotations

import math

import torch
from timm.data import Mixup

from .arguments import MixingConfig


class AdaptiveMixup:
    """``mixer(pixel_values, labels, epoch) -> (pixel_values, targets)``; targets are soft ``[B, C]`` when mixed.

    Args:
        config: the recipe's ``mixing`` section.
        num_labels: classes (width of the soft targets).
        label_smoothing: smoothing folded into the soft targets (the focal loss uses soft targets as given).
        num_epochs: length of training, in epochs.
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
        if c.mix_schedule == "constant":
            weight = 0.0
        elif c.mix_schedule == "linear":
            weight = t
        else:  # cosine: slow start, slow finish
            weight = 0.5 * (1 - math.cos(math.pi * t))
        return c.mix_prob + (c.mix_prob_final - c.mix_prob) * weight

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
