"""``InatTrainer``: a ``transformers.Trainer`` with the seed project's fine-tuning recipe.

What it adds to the stock Trainer (everything else — DDP/accelerate, mixed precision, gradient accumulation and
clipping, checkpointing, resuming, logging, early stopping — is the Trainer's own):

* mixup / cutmix with an adaptive probability, applied on the device (:class:`~.mixing.AdaptiveMixup`);
* AdamW parameter groups with differential learning rates per stage (:func:`~.optim.build_param_groups`);
* progressive unfreezing that is correct under DDP (:class:`~.callbacks.ProgressiveUnfreezingCallback`);
* channels_last inputs, test-time augmentation in evaluation, and a hard stop on a NaN/Inf loss.
"""

from __future__ import annotations

import contextlib
import math
import os

import torch
from transformers import Trainer, TrainerCallback
from transformers.utils import logging

from ..inference.evaluator import TopKComputeMetrics, preprocess_logits_for_metrics
from ..inference.tta import tta_logits
from .callbacks import EMA_FILE, EmaCallback, ProgressiveUnfreezingCallback, replica_checksums
from .mixing import AdaptiveMixup
from .optim import build_param_groups

logger = logging.get_logger(__name__)


class _DatasetEpochCallback(TrainerCallback):
    """Tell the training dataset which epoch it is (per-item augmentation seeds depend on it)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-9))


class InatTrainer(Trainer):
    """Trainer for :class:`~inat_hf.models.InatForImageClassification`.

    Args (besides the Trainer's):
        mixup: an :class:`AdaptiveMixup`, or None for no mixing.
        unfreezing: a :class:`ProgressiveUnfreezingCallback`, or None to train every stage from the start.
    The learning rates come from the training arguments: ``learning_rate`` (head and attention),
    ``backbone_learning_rate`` and ``layer_decay`` (see :class:`~.arguments.InatTrainingArguments`).
    """

    def __init__(
        self,
        *args,
        mixup: AdaptiveMixup | None = None,
        unfreezing: ProgressiveUnfreezingCallback | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if self.compute_metrics is None:
            # Evaluation keeps only the top-5 indices and probabilities of each image ([N, 10] numbers instead of
            # the [N, C] logits: 4 GB for 100k images x 10k classes) and scores them with the one metrics module:
            # top-1/3/5, ECE, macro F1 and accuracy at every taxonomic rank.
            self.compute_metrics = TopKComputeMetrics(self.model.config)
            self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self.mixup = mixup
        self.unfreezing = unfreezing
        if unfreezing is not None:
            # Before accelerate wraps the model (DDP): see ProgressiveUnfreezingCallback.
            unfreezing.setup(self.model)
            self.add_callback(unfreezing)
        if hasattr(self.train_dataset, "set_epoch"):
            self.add_callback(_DatasetEpochCallback(self.train_dataset))
        # EMA of the weights: the copy is made after the Trainer has moved the model to its device.
        self.ema = EmaCallback(self.model, self.args.ema_decay) if getattr(self.args, "ema_decay", 0) > 0 else None
        if self.ema is not None:
            self.add_callback(self.ema)
        if getattr(self.args, "channels_last", False):
            self.model.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ optimisation
    def create_optimizer(self, model=None):
        if self.optimizer is None:
            args = self.args
            groups = build_param_groups(
                self.model,
                learning_rate=args.learning_rate,
                backbone_learning_rate=getattr(args, "backbone_learning_rate", args.learning_rate),
                layer_decay=getattr(args, "layer_decay", 1.0),
                weight_decay=args.weight_decay,
            )
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(args, self.model)
            optimizer_kwargs.pop("lr", None)  # every group carries its own
            self.optimizer = optimizer_cls(groups, lr=args.learning_rate, **optimizer_kwargs)
        return self.optimizer

    # ------------------------------------------------------------------ data
    def _get_dataloader(
        self, dataset, description, batch_size, sampler_fn=None, is_training=False, dataloader_key=None
    ):
        # `dataloader_drop_last` is meant for training batches (even batches for mixup, > 1 image for BatchNorm);
        # the Trainer would apply it to evaluation too and silently skip the last images of the eval split.
        drop_last = self.args.dataloader_drop_last
        self.args.dataloader_drop_last = drop_last and is_training
        try:
            return super()._get_dataloader(dataset, description, batch_size, sampler_fn, is_training, dataloader_key)
        finally:
            self.args.dataloader_drop_last = drop_last

    # ------------------------------------------------------------------ steps
    def _prepare_inputs(self, inputs):
        inputs = super()._prepare_inputs(inputs)
        if getattr(self.args, "channels_last", False) and inputs.get("pixel_values") is not None:
            pixel_values = inputs["pixel_values"]
            if pixel_values.ndim == 4:
                inputs["pixel_values"] = pixel_values.contiguous(memory_format=torch.channels_last)
        return inputs

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            if self.unfreezing is not None:
                self.unfreezing.prepare_step()  # after Trainer.training_step's model.train()
            if self.mixup is not None:
                pixel_values, labels = self.mixup(
                    inputs["pixel_values"], inputs["labels"], epoch=self.state.epoch or 0.0
                )
                inputs = {**inputs, "pixel_values": pixel_values, "labels": labels}
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.unfreezing is not None:
            self.unfreezing.discard_frozen_grads()
        self._raise_if_not_finite(loss)
        return loss

    def _raise_if_not_finite(self, loss: torch.Tensor) -> None:
        bad = (~torch.isfinite(loss)).to(torch.float32).reshape(1)
        if self.args.world_size > 1:
            # Every rank must stop together: one raising while the others wait in the next all-reduce would hang.
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if bad.item():
            step = self.state.global_step + 1
            raise FloatingPointError(
                f"The training loss is {loss.item()} (not finite) at step {step} (epoch {self.state.epoch or 0:.2f}). "
                "Training stopped instead of continuing on NaN weights. Lower the learning rate, use bf16 instead "
                f"of fp16, or check the inputs; the last complete checkpoint in {self.args.output_dir} can be resumed."
            )

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        pixel_values = inputs.get("pixel_values")
        if pixel_values is None or pixel_values.ndim != 5:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        # Test-time augmentation: [B, V, 3, H, W] → one forward over B·V images → averaged [B, C]
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get("labels")
        with torch.no_grad(), self.compute_loss_context_manager():
            logits = tta_logits(model, inputs["pixel_values"], average="prob")
            loss = None
            if labels is not None:
                loss = torch.nn.functional.nll_loss(logits.float(), labels)
        if prediction_loss_only:
            return loss, None, None
        return loss, logits, labels

    # ------------------------------------------------------------------ EMA
    @contextlib.contextmanager
    def _ema_weights(self):
        """Temporarily put the EMA weights into the model (evaluation), then restore the raw ones."""
        if self.ema is None:
            yield
            return
        raw = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.ema.state_dict())
        try:
            yield
        finally:
            self.model.load_state_dict(raw)

    def evaluate(self, *args, **kwargs):
        with self._ema_weights():
            return super().evaluate(*args, **kwargs)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        ema_file = os.path.join(resume_from_checkpoint, EMA_FILE)
        if self.ema is not None and os.path.isfile(ema_file):
            self.ema.load(ema_file)

    def finalize_ema(self) -> None:
        """After training: make the EMA the model (that of the best checkpoint when the best was restored)."""
        if self.ema is None:
            return
        best = self.state.best_model_checkpoint
        if self.args.load_best_model_at_end and best and os.path.isfile(os.path.join(best, EMA_FILE)):
            self.ema.load(os.path.join(best, EMA_FILE))
        self.model.load_state_dict(self.ema.state_dict())
        self.pop_callback(self.ema)
        self.ema = None  # from now on the model *is* the EMA: evaluate it as it is

    def verify_replicas(self) -> list[float]:
        """Check that every process holds the same weights (a silent DDP divergence would show here)."""
        sums = replica_checksums(self.model)
        if len(set(sums)) > 1:
            raise RuntimeError(f"Model replicas diverged across processes: per-rank checksums {sums}.")
        return sums
