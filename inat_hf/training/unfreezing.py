"""Progressive unfreezing: which stages a recipe freezes and when each starts to train (:func:`unfreezing_plan`),
and the callback that does it, correctly under DDP (:class:`ProgressiveUnfreezingCallback`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from torch import nn
from transformers import TrainerCallback
from transformers.utils import logging

logger = logging.get_logger(__name__)

# How to see a backbone's stage names (they come from timm's group_matcher: stem, layer1..layer4 for ResNets).
LIST_STAGES_HINT = "list a backbone's stages with `python scripts/train.py --list_stages BACKBONE`"


def parse_unfreeze_schedule(text: str | None) -> dict[str, int]:
    """``'layer4:1,-2:2'`` → ``{"layer4": 1, "-2": 2}``: syntax only (stages are resolved by :func:`unfreezing_plan`)."""
    schedule: dict[str, int] = {}
    text = (text or "").strip()
    if text.lower() in ("", "none"):
        return schedule
    for term in text.split(","):
        stage, sep, epoch = term.strip().partition(":")
        if not sep or not stage.strip() or not epoch.strip().lstrip("-").isdigit():
            raise ValueError(
                f"Invalid unfreeze_schedule term {term!r}: expected 'stage:epoch', e.g. 'layer4:1,layer3:2'."
            )
        if int(epoch) < 0:
            raise ValueError(f"unfreeze_schedule epoch for {stage.strip()!r} must be >= 0, got {epoch}.")
        schedule[stage.strip()] = int(epoch)
    return schedule


def unfreezing_plan(
    frozen_stages: Sequence[str],
    unfreeze_schedule: str | None,
    stage_names: Sequence[str],
    backbone_stages: Sequence[str],
) -> tuple[list[str], dict[str, int]]:
    """A recipe's ``frozen_stages`` and ``unfreeze_schedule`` as stage names of a model (``model.stage_names``).

    A reference is a stage name, ``'backbone'`` (every backbone stage) or an integer index into the backbone
    stages (``-1`` = the deepest), so one recipe fits every backbone. In the schedule, ``backbone:E`` unfreezes
    at epoch E every frozen backbone stage that no other term names.
    """
    valid = (
        f"valid: {', '.join(stage_names)}, 'backbone' (every backbone stage) or an index into the "
        f"{len(backbone_stages)} backbone stages (-1 = {backbone_stages[-1]!r}); {LIST_STAGES_HINT}"
    )

    def resolve(ref: str) -> list[str] | None:
        ref = str(ref).strip()
        if ref == "backbone":
            return list(backbone_stages)
        if re.fullmatch(r"-?\d+", ref):
            index = int(ref)
            return [backbone_stages[index]] if -len(backbone_stages) <= index < len(backbone_stages) else None
        return [ref] if ref in stage_names else None

    frozen: list[str] = []
    unknown = [ref for ref in frozen_stages if resolve(ref) is None]
    if unknown:
        raise ValueError(f"Unknown stage name(s) {unknown} in frozen_stages; {valid}.")
    for ref in frozen_stages:
        frozen.extend(n for n in resolve(ref) if n not in frozen)
    schedule: dict[str, int] = {}
    rest_epoch = None
    for ref, epoch in parse_unfreeze_schedule(unfreeze_schedule).items():
        if ref == "backbone":
            rest_epoch = epoch
            continue
        names = resolve(ref)
        if names is None:
            raise ValueError(f"Unknown stage name {ref!r} in unfreeze_schedule; {valid}.")
        (stage,) = names
        if stage not in frozen:
            raise ValueError(f"unfreeze_schedule unfreezes {ref!r}, which is not in frozen_stages {frozen}.")
        schedule[stage] = epoch
    if rest_epoch is not None:
        for stage in frozen:
            if stage in backbone_stages and stage not in schedule:
                schedule[stage] = rest_epoch
    return frozen, schedule


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
