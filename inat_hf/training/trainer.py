"""``InatTrainer``: a ``transformers.Trainer`` with this project's fine-tuning recipe.

What it adds to the stock Trainer (DDP, mixed precision, gradient accumulation and clipping, checkpointing, resuming,
logging and early stopping are the Trainer's own):

* mixup / cutmix with an adaptive probability, applied on the device (:class:`~.mixing.AdaptiveMixup`);
* AdamW parameter groups with differential learning rates per stage (:func:`~.optim.build_param_groups`);
* progressive unfreezing that is correct under DDP (:class:`~.unfreezing.ProgressiveUnfreezingCallback`);
* an EMA of the weights (:class:`~.ema.EmaCallback`), channels_last inputs, test-time augmentation in evaluation;
* a hard stop on a NaN/Inf loss, checkpoints that are complete or ignored (:mod:`~.checkpoints`), a check that
  every process ends with the same weights;
* optionally, image x location-prior fused metrics at every evaluation (``geo=``, as ``evaluate.py --geo_prior``).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..files import is_disk_full
from ..inference.evaluator import TopKComputeMetrics, preprocess_logits_for_metrics
from ..inference.tta import score, view_logits
from .checkpoints import disk_full_error, mark_checkpoint_complete, rotate_checkpoints
from .ema import EmaCallback
from .hub import write_model_card
from .mixing import AdaptiveMixup
from .optim import CLASSIFIER_STAGES, build_param_groups
from .unfreezing import ProgressiveUnfreezingCallback


class _DatasetEpochCallback(TrainerCallback):
    """Tell the training dataset which epoch it is (per-item augmentation seeds depend on it)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-9))


class _NonFiniteLossCallback(TrainerCallback):
    """Stop before a NaN model is logged, evaluated or saved (the Trainer acts on these flags right after).

    The first non-finite loss is kept on the device as ``[step, loss]``: an ``.item()`` per step would serialise a GPU
    pipeline. It is read once per logging/evaluation/save step and at the end of training.
    """

    def __init__(self, world_size: int, output_dir: str):
        self.world_size, self.output_dir = world_size, output_dir
        self.found: torch.Tensor | None = None  # [step, loss]; step inf = nothing found yet

    def track(self, loss: torch.Tensor, step: int) -> None:
        loss = loss.detach().reshape(()).float()
        if self.found is None:
            self.found = torch.full((2,), math.inf, device=loss.device)
        first = ~torch.isfinite(loss) & torch.isinf(self.found[0])
        self.found = torch.where(first, torch.stack([torch.full_like(loss, step), loss]), self.found)

    def check(self) -> None:
        if self.found is None:
            return
        found = self.found
        if self.world_size > 1:
            # Every rank takes part and every rank stops: one raising while the others wait in the next collective
            # would hang. The earliest step over all ranks is reported.
            gathered = [torch.empty_like(found) for _ in range(self.world_size)]
            torch.distributed.all_gather(gathered, found)
            found = min(gathered, key=lambda t: float(t[0]))
        step, loss = found.tolist()
        if not math.isinf(step):
            raise FloatingPointError(
                f"The training loss is {loss} (not finite) at step {int(step)}. Training stopped instead of "
                "continuing on NaN weights (checked at every logging step, so up to logging_steps later). Lower the "
                "learning rate, use bf16 instead of fp16, or check the inputs; the last complete checkpoint in "
                f"{self.output_dir} can be resumed."
            )

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_log or control.should_evaluate or control.should_save or control.should_training_stop:
            self.check()

    on_epoch_end = on_step_end


class _NumberedRows(torch.utils.data.Dataset):
    """The eval items with their row number (``"rows"``), by which fusion finds each image's location whatever
    order the sampler (or DDP's sharding) visits them in."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return {**self.dataset[index], "rows": index}


class _CollateRows:
    """The collator's batch, plus the items' ``"rows"`` (int64 ``[B]``) when they carry them (evaluation only)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, features):
        batch = self.collator(features)
        if "rows" in features[0]:
            batch["rows"] = torch.tensor([f["rows"] for f in features], dtype=torch.long)
        return batch


class InatTrainer(Trainer):
    """Trainer for :class:`~inat_hf.models.InatForImageClassification`.

    Args (besides the Trainer's):
        mixup: an :class:`AdaptiveMixup`, or None for no mixing.
        unfreezing: a :class:`ProgressiveUnfreezingCallback`, or None to train every stage from the start.
        geo: a :class:`~inat_hf.geo.fusion.GeoFusion` (location prior aligned to the model's labels) and
            ``locations``, the ``eval_dataset``'s :class:`~inat_hf.geo.records.GeoRecords` row by row: every evaluation
            of that dataset also reports ``fused_*`` (image x prior) and ``prior_*`` (prior only) metrics.
    The learning rates (``learning_rate`` for head and attention, ``backbone_learning_rate``, ``layer_decay``), the
    EMA (``ema_decay``) and ``channels_last`` come from the training arguments.
    """

    def __init__(
        self,
        *args,
        mixup: AdaptiveMixup | None = None,
        unfreezing: ProgressiveUnfreezingCallback | None = None,
        geo=None,
        locations=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.geo, self.locations = geo, locations
        if geo is not None:
            if locations is None or self.eval_dataset is None or len(locations) != len(self.eval_dataset):
                raise ValueError("geo fusion needs an eval_dataset and its locations, one record per image.")
            self.eval_dataset = _NumberedRows(self.eval_dataset)
            self.data_collator = _CollateRows(self.data_collator)
        if self.compute_metrics is None:
            # Evaluation keeps the top-5 indices and probabilities of each image ([N, 10] numbers instead of [N, C]
            # logits, which do not fit in memory for iNat's size), scored by the one metrics module.
            self.compute_metrics = TopKComputeMetrics(self.model.config)
            self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self.mixup, self.unfreezing = mixup, unfreezing
        if unfreezing is not None:
            unfreezing.setup(self.model)  # before accelerate wraps the model (DDP): see ProgressiveUnfreezingCallback
            self.add_callback(unfreezing)
        if hasattr(self.train_dataset, "set_epoch"):
            self.add_callback(_DatasetEpochCallback(self.train_dataset))
        # the EMA copy is made after the Trainer has moved the model to its device
        self.ema = EmaCallback(self.model, self.args.ema_decay) if getattr(self.args, "ema_decay", 0) > 0 else None
        if self.ema is not None:
            self.add_callback(self.ema)
        if getattr(self.args, "channels_last", False):
            self.model.to(memory_format=torch.channels_last)
        self._nonfinite = _NonFiniteLossCallback(self.args.world_size, self.args.output_dir)
        self.add_callback(self._nonfinite)
        self._group_lrs: dict[str, float] = {}

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
    # `dataloader_drop_last` is for training batches (even batches for mixup, > 1 image for BatchNorm), but
    # transformers (checked on 5.24) applies it to every loader and has no per-split switch: the public evaluation
    # and test getters turn it off while they build theirs, so no image of the split is skipped. With geo fusion
    # they also keep the items' "rows" key, which column removal would drop (the model's forward does not take it;
    # prediction_step takes it out of the batch before the forward).
    def get_eval_dataloader(self, eval_dataset=None):
        return self._without_drop_last(super().get_eval_dataloader, eval_dataset)

    def get_test_dataloader(self, test_dataset):
        return self._without_drop_last(super().get_test_dataloader, test_dataset)

    def _without_drop_last(self, get_dataloader, dataset):
        args = self.args
        saved = args.dataloader_drop_last, args.remove_unused_columns
        args.dataloader_drop_last = False
        args.remove_unused_columns = args.remove_unused_columns and self.geo is None
        try:
            return get_dataloader(dataset)
        finally:
            args.dataloader_drop_last, args.remove_unused_columns = saved

    # ------------------------------------------------------------------ steps
    def _prepare_inputs(self, inputs):
        # the Trainer has no public hook for the batch once it is on the device: channels_last is applied here
        inputs = super()._prepare_inputs(inputs)
        pixel_values = inputs.get("pixel_values")
        if getattr(self.args, "channels_last", False) and pixel_values is not None and pixel_values.ndim == 4:
            inputs["pixel_values"] = pixel_values.contiguous(memory_format=torch.channels_last)
        return inputs

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            if self.unfreezing is not None:
                self.unfreezing.prepare_step()  # after Trainer.training_step's model.train()
            if self.mixup is not None:
                pixel_values, labels = self.mixup(inputs["pixel_values"], inputs["labels"], self.state.epoch or 0.0)
                inputs = {**inputs, "pixel_values": pixel_values, "labels": labels}
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.unfreezing is not None:
            self.unfreezing.discard_frozen_grads()
        self._nonfinite.track(loss, self.state.global_step + 1)  # the optimizer step this micro-batch belongs to
        return loss

    def train(self, *args, **kwargs):
        # timm's Mixup draws from numpy's global RNG; after set_seed(seed) every rank would draw the same. One stream
        # per process, as timm's train.py does (seed + rank); checkpoints save and restore it per process.
        np.random.seed((self.args.seed + self.args.process_index) % 2**32)
        result = super().train(*args, **kwargs)
        self._nonfinite.check()
        return result

    # ------------------------------------------------------------------ logging
    def _get_learning_rate(self) -> float:
        # the Trainer logs its first group's LR (here a frozen backbone stage), read right after optimizer.step(), and
        # has no public hook there: the classifier's instead, and every group's kept for log()
        names = [group.get("name", str(i)) for i, group in enumerate(self.optimizer.param_groups)]
        lrs = dict(zip(names, map(float, self.lr_scheduler.get_last_lr())))
        frozen = self.unfreezing.frozen if self.unfreezing is not None else set()
        self._group_lrs = {
            f"lr_{n}": 0.0 if n in frozen else lr for n, lr in lrs.items() if not n.endswith("_no_decay")
        }
        classifier = [n for n in names if n.removesuffix("_no_decay") in CLASSIFIER_STAGES] or names
        return lrs[classifier[0]]

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "learning_rate" in logs:
            logs = {**logs, **self._group_lrs}  # TensorBoard, the console and the CSV: every group's LR (0 = frozen)
        super().log(logs, *args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # The library's one inference path (as evaluate.py's and predict.py's): [B, V, C] view logits -> TTA
        # average -> with geo, fusion by the items' row numbers ("rows", for their locations).
        inputs = self._prepare_inputs(dict(inputs))
        rows, labels = inputs.pop("rows", None), inputs.get("labels")
        with torch.no_grad(), self.compute_loss_context_manager():
            channels_last = getattr(self.args, "channels_last", False)
            logits = view_logits(model, inputs["pixel_values"], channels_last=channels_last)
            fused = self.geo is not None and rows is not None  # rows: the items of the eval_dataset the prior knows
            fusion = dict(geo=self.geo, locations=self.locations, rows=rows.cpu().numpy()) if fused else {}
            runs = score(logits, average="prob", **fusion)
            # the training objective (focal + smoothing) on the image run: for TTA, the log of the averaged
            # probabilities, whose softmax is that average
            loss = None if labels is None else self.model.objective(runs["image"], labels).detach()
        if prediction_loss_only:
            return loss, None, None
        return loss, runs if fused else runs["image"], labels

    # ------------------------------------------------------------------ EMA and checkpoints
    def evaluate(self, *args, **kwargs):
        with self.ema.swapped_into(self.model) if self.ema is not None else contextlib.nullcontext():
            return super().evaluate(*args, **kwargs)

    def _save_checkpoint(self, model, trial):
        # transformers' _save_checkpoint is not atomic: ours ends with a completion marker, then rotates old ones
        run_dir = self._get_output_dir(trial=trial)
        folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        limit, self.args.save_total_limit = self.args.save_total_limit, None  # rotation comes after the marker
        try:
            super()._save_checkpoint(model, trial)
            if self.ema is not None and self.args.should_save:
                self.ema.save(folder)
        except (OSError, RuntimeError) as e:
            if not is_disk_full(e):
                raise
            if self.args.should_save:
                shutil.rmtree(folder, ignore_errors=True)  # unusable without its marker; give the space back
            raise disk_full_error(run_dir, folder) from e
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()  # every rank's files (rng_state_<rank>.pth) are on disk
        if self.args.should_save:
            mark_checkpoint_complete(folder, self.state.global_step, self.state.epoch)
            rotate_checkpoints(run_dir, limit, self.state.best_model_checkpoint)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        # no public hook sees the checkpoint being resumed: the EMA is loaded back here
        super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        if self.ema is not None:
            self.ema.load(resume_from_checkpoint)

    def create_model_card(self, model_name=None, recipe=None, metrics=None, taxonomy=None, **kwargs):
        """The run's card (:func:`~.hub.write_model_card`), also the one ``push_to_hub`` uploads (it passes these
        keyword arguments on); without a ``recipe``, the Trainer's generic card."""
        if recipe is None:
            return super().create_model_card(model_name=model_name, **kwargs)
        if self.is_world_process_zero():
            write_model_card(
                self.args.output_dir, recipe=recipe, metrics=metrics, taxonomy=taxonomy, hub_id=self.hub_model_id
            )

    def verify_replicas(self) -> list[float]:
        """Check that every process holds the same weights (a silent DDP divergence would show here).

        Batch-norm statistics are per process by design: DDP broadcasts rank 0's buffers at the start of every
        forward, so after the last step each rank holds those of its own last batch. They are set to rank 0's (the
        ones that are saved) before the check."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer.data, src=0)
        sums = replica_checksums(self.model)
        if len(set(sums)) > 1:
            raise RuntimeError(f"Model replicas diverged across processes: per-rank checksums {sums}.")
        return sums


def replica_checksums(model: nn.Module) -> list[float]:
    """One position-weighted float64 checksum of all parameters and buffers per process (one entry when not
    distributed): equal entries mean identical weights."""
    with torch.no_grad():
        tensors = [*model.parameters(), *model.buffers()]
        total = sum((i + 1) * t.detach().double().sum().cpu() for i, t in enumerate(tensors))
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [float(total)]
    total = total.to(next(model.parameters()).device)
    gathered = [torch.zeros_like(total) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(gathered, total)
    return [t.item() for t in gathered]
