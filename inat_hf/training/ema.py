"""Exponential moving average of the weights (timm ``ModelEmaV3``), as a Trainer callback."""

from __future__ import annotations

import contextlib
import os

from safetensors.torch import load_file, save_file
from timm.utils import ModelEmaV3
from torch import nn
from transformers import TrainerCallback

EMA_FILE = "ema.safetensors"


class EmaCallback(TrainerCallback):
    """Updated after every optimizer step; ``InatTrainer`` evaluates with the EMA weights, and at the end of training
    the EMA becomes the model (the best checkpoint's EMA when ``load_best_model_at_end`` restored the best).

    Checkpoints keep the raw weights -- a resume must continue the raw trajectory -- plus :data:`EMA_FILE`, which a
    resume loads back. Every rank updates its own EMA from identical weights, so the EMAs stay identical too.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.ema = ModelEmaV3(model, decay=decay)  # a copy on the model's device
        self.applied = False  # True once the EMA is the model

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.ema.update(model, step=state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        # the Trainer has restored the best checkpoint's raw weights (load_best_model_at_end) before this event
        if args.load_best_model_at_end and state.best_model_checkpoint:
            self.load(state.best_model_checkpoint)
        model.load_state_dict(self.state_dict())
        self.applied = True

    def state_dict(self):
        return {k: v.contiguous() for k, v in self.ema.module.state_dict().items()}

    def save(self, folder: str) -> None:
        save_file(self.state_dict(), os.path.join(folder, EMA_FILE))

    def load(self, folder: str) -> None:
        """Load ``folder``'s EMA, if it has one."""
        path = os.path.join(folder, EMA_FILE)
        if os.path.isfile(path):
            self.ema.module.load_state_dict(load_file(path, device=str(next(self.ema.module.parameters()).device)))

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module):
        """The EMA weights in ``model`` for the block (an evaluation), then the raw ones back."""
        if self.applied:
            yield
            return
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state_dict())
        try:
            yield
        finally:
            model.load_state_dict(raw)
