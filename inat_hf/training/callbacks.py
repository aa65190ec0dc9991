"""Progressive unfreezing (moves to ``training/unfreezing.py``; the other callbacks have their own modules)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import nn
from transformers import TrainerCallback
from transformers.utils import logging

logger = logging.get_logger(__name__)


class ProgressiveUnfreezingCallback(TrainerCallback):
    """Unfreeze the model's named stages by epoch (e.g. ``{"layer4": 1, "layer3": 2}``).

    A frozen stage keeps its weights *and* its batch-norm statistics: its norm layers are put back in eval mode
    before every training forward (``Trainer.training_step`` calls ``model.train()`` each step, so setting
    ``requires_grad=False`` alone would still update the running means).

    Correct under DDP by construction. DDP decides at wrap time which parameters it synchronises; flipping
    ``requires_grad`` afterwards leaves the newly trainable parameters un-synchronised and the ranks drift apart
    silently. So:

    * stages frozen for the *whole* run get ``requires_grad=False`` in :meth:`setup`, before the model is wrapped
      (no backward through them: that is where freezing saves compute);
    * stages that unfreeze later keep ``requires_grad=True`` from the start, so DDP reduces their gradients on
      every rank; while frozen, the Trainer drops those gradients after backward (:meth:`discard_frozen_grads`),
      so AdamW neither moves them nor builds up moment estimates for them (it skips parameters whose grad is None).

    Unfreezing is then only "stop discarding", decided from ``state.epoch``, which every rank shares.
    """

    def __init__(self, frozen_stages: Sequence[str], schedule: Mapping[str, int]):
        unknown = sorted(set(schedule) - set(frozen_stages))
        if unknown:
            raise ValueError(f"unfreeze schedule names stages {unknown} that are not frozen ({list(frozen_stages)}).")
        self.initially_frozen = tuple(frozen_stages)
        self.schedule = dict(schedule)
        self.frozen: set[str] = set(frozen_stages)
        self._stage_params: dict[str, list[nn.Parameter]] = {}
        self._stage_norms: dict[str, list[nn.Module]] = {}

    @property
    def permanently_frozen(self) -> tuple[str, ...]:
        return tuple(s for s in self.initially_frozen if s not in self.schedule)

    def setup(self, model: nn.Module) -> None:
        """Call once, before the model is wrapped for distributed training."""
        for stage in self.initially_frozen:
            self._stage_params[stage] = model.stage_parameters([stage])[stage]
            modules = model.stage_modules([stage])[stage]
            self._stage_norms[stage] = [
                m for root in modules for m in root.modules() if getattr(m, "running_mean", None) is not None
            ]
        for stage in self.permanently_frozen:
            for param in self._stage_params[stage]:
                param.requires_grad_(False)

    def frozen_at(self, epoch: int) -> set[str]:
        return {s for s in self.initially_frozen if s not in self.schedule or self.schedule[s] > epoch}

    def _update(self, epoch: float) -> None:
        current = math.floor(epoch + 1e-9)
        frozen = self.frozen_at(current)
        if frozen != self.frozen:
            opened = sorted(self.frozen - frozen, key=self.initially_frozen.index)
            still = [s for s in self.initially_frozen if s in frozen]
            logger.info(
                f"Epoch {current}: unfreezing {', '.join(opened)} (still frozen: {', '.join(still) or 'none'})"
            )
        self.frozen = frozen

    def on_train_begin(self, args, state, control, **kwargs):
        self._update(state.epoch or 0.0)  # on resume, state.epoch comes from the checkpoint

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._update(state.epoch or 0.0)

    def prepare_step(self) -> None:
        """Before a training forward: frozen stages' norm layers to eval mode (their statistics stay put)."""
        for stage in self.frozen:
            for module in self._stage_norms[stage]:
                module.eval()

    def discard_frozen_grads(self) -> None:
        """After backward: forget the (already all-reduced) gradients of temporarily frozen stages."""
        for stage in self.frozen:
            for param in self._stage_params[stage]:
                param.grad = None
