"""``InatTrainer``: a ``transformers.Trainer`` with this project's fine-tuning recipe.

What it adds to the stock Trainer (everything else — DDP/accelerate, mixed precision, gradient accumulation and
clipping, checkpointing, resuming, logging, early stopping — is the Trainer's own):

* mixup / cutmix with an adaptive probability, applied on the device (:class:`~.mixing.AdaptiveMixup`);
* AdamW parameter groups with differential learning rates per stage (:func:`~.optim.build_param_groups`);
* progressive unfreezing that is correct under DDP (:class:`~.unfreezing.ProgressiveUnfreezingCallback`);
* channels_last inputs, test-time augmentation in evaluation, and a hard stop on a NaN/Inf loss;
* optionally, image x location-prior fused metrics at every evaluation (``geo=``, as ``evaluate.py --geo_prior``).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from ..inference.evaluator import TopKComputeMetrics, preprocess_logits_for_metrics
from ..inference.tta import tta_logits
from .callbacks import (
    EMA_FILE,
    EmaCallback,
    broadcast_buffers,
    latest_complete_checkpoint,
    mark_checkpoint_complete,
    replica_checksums,
    rotate_checkpoints,
)
from .mixing import AdaptiveMixup
from .optim import CLASSIFIER_STAGES, build_param_groups
from .unfreezing import ProgressiveUnfreezingCallback

logger = logging.get_logger(__name__)


class _DatasetEpochCallback(TrainerCallback):
    """Tell the training dataset which epoch it is (per-item augmentation seeds depend on it)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-9))


class _NonFiniteLossCallback(TrainerCallback):
    """Stop before a NaN model is logged, evaluated or saved: the Trainer acts on these flags right after."""

    def __init__(self, trainer: InatTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_log or control.should_evaluate or control.should_save or control.should_training_stop:
            self.trainer._raise_if_not_finite()

    on_epoch_end = on_step_end


class _NumberedRows(torch.utils.data.Dataset):
    """The evaluation dataset's items with their row number (``"rows"``): fusion looks each image's location up by
    it, whatever order the sampler (or DDP's sharding, padding included) visits the rows in."""

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


class CheckpointDiskFullError(OSError):
    """The disk filled up while a checkpoint was being written."""


def _is_disk_full(exc: BaseException) -> bool:
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        seen = seen.__cause__ or seen.__context__
    # torch.save reports a full disk as a RuntimeError from its zip writer ("... unexpected pos ...",
    # "file write failed"), without the errno
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("unexpected pos", "file write failed", "No space left on device")
    )


def _free_bytes(path: str) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


class InatTrainer(Trainer):
    """Trainer for :class:`~inat_hf.models.InatForImageClassification`.

    Args (besides the Trainer's):
        mixup: an :class:`AdaptiveMixup`, or None for no mixing.
        unfreezing: a :class:`ProgressiveUnfreezingCallback`, or None to train every stage from the start.
        geo: a :class:`~inat_hf.inference.fusion.GeoFusion` (location prior aligned to the model's labels) and
            ``locations``, the ``eval_dataset``'s :class:`~inat_hf.data.geo.GeoRecords` row by row: every evaluation
            of that dataset also reports ``fused_*`` (image x prior) and ``prior_*`` (prior only) metrics.
    The learning rates come from the training arguments: ``learning_rate`` (head and attention),
    ``backbone_learning_rate`` and ``layer_decay`` (see :class:`~.arguments.InatTrainingArguments`).
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
            # Evaluation keeps only the top-5 indices and probabilities of each image ([N, 10] numbers instead of
            # the [N, C] logits, which do not fit in memory for iNat's size) and scores them with the one metrics
            # module: top-1/3/5, ECE, macro F1 and accuracy at every taxonomic rank.
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
        # First step with a non-finite loss, kept on the device (inf = none yet): checked once per logging step.
        self._nonfinite_step: torch.Tensor | None = None
        self._nonfinite_loss: torch.Tensor | None = None
        self._group_lrs: dict[str, float] = {}
        self.add_callback(_NonFiniteLossCallback(self))

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
        self._track_not_finite(loss)
        return loss

    # ------------------------------------------------------------------ non-finite loss
    def _track_not_finite(self, loss: torch.Tensor) -> None:
        """Remember the first step whose loss is NaN/Inf, on the device: no host sync per step (on a GPU an
        ``.item()`` here would serialise the pipeline). :meth:`_raise_if_not_finite` looks at it once per
        logging/evaluation/save step and at the end."""
        loss = loss.detach().reshape(())
        step = self.state.global_step + 1  # the optimizer step this micro-batch belongs to
        if self._nonfinite_step is None:
            self._nonfinite_step = torch.full((), math.inf, device=loss.device)
            self._nonfinite_loss = torch.zeros((), device=loss.device)
        first = (~torch.isfinite(loss)) & torch.isinf(self._nonfinite_step)
        self._nonfinite_step = torch.where(first, torch.full_like(self._nonfinite_step, step), self._nonfinite_step)
        self._nonfinite_loss = torch.where(first, loss.float(), self._nonfinite_loss)

    def _raise_if_not_finite(self) -> None:
        if self._nonfinite_step is None:
            return
        found = torch.stack([self._nonfinite_step, self._nonfinite_loss.to(self._nonfinite_step.dtype)])
        if self.args.world_size > 1:
            # Every rank takes part and every rank stops: one raising while the others wait in the next collective
            # would hang. The earliest step over all ranks is reported.
            gathered = [torch.empty_like(found) for _ in range(self.args.world_size)]
            torch.distributed.all_gather(gathered, found)
            found = min(gathered, key=lambda t: float(t[0]))
        step, loss = found.tolist()  # the one host sync, once per logging step
        if math.isinf(step):
            return
        raise FloatingPointError(
            f"The training loss is {loss} (not finite) at step {int(step)}. Training stopped instead of continuing "
            "on NaN weights (checked at every logging step, so up to logging_steps later). Lower the learning "
            f"rate, use bf16 instead of fp16, or check the inputs; the last complete checkpoint in "
            f"{self.args.output_dir} can be resumed."
        )

    def train(self, *args, **kwargs):
        # timm's Mixup draws λ, the mixup/cutmix choice, the box and "mix this batch?" from numpy's global RNG;
        # after set_seed(seed) every rank would draw the same. One stream per process, as timm's train.py does
        # (seed + rank). The Trainer saves this state per process in every checkpoint (rng_state_<rank>.pth) and
        # restores it on resume, so resumed runs still replay the same draws.
        np.random.seed((self.args.seed + self.args.process_index) % 2**32)
        result = super().train(*args, **kwargs)
        self._raise_if_not_finite()
        return result

    # ------------------------------------------------------------------ logging
    def _get_learning_rate(self) -> float:
        """The classifier's LR (head/attention), not the first group's (a frozen backbone stage in the recipes);
        every group's LR is logged under its own name by :meth:`log`."""
        lrs = self.lr_scheduler.get_last_lr()
        groups = self.optimizer.param_groups
        frozen = self.unfreezing.frozen if self.unfreezing is not None else set()
        self._group_lrs = {}
        for i, group in enumerate(groups):
            name = group.get("name", str(i))
            if not name.endswith("_no_decay"):
                self._group_lrs[f"lr_{name}"] = 0.0 if name in frozen else float(lrs[i])
        classifier = [
            i for i, g in enumerate(groups) if g.get("name", "").removesuffix("_no_decay") in CLASSIFIER_STAGES
        ]
        return float(lrs[classifier[0] if classifier else 0])

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "learning_rate" in logs:
            logs = {**logs, **self._group_lrs}  # TensorBoard, the console and the CSV: every group's LR
        super().log(logs, *args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = dict(inputs)
        rows = inputs.pop("rows", None)  # the images' row numbers, for their locations (geo=)
        loss, logits, labels = self._image_prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        if rows is None or self.geo is None or logits is None:
            return loss, logits, labels
        scores = logits[0] if isinstance(logits, (tuple, list)) else logits
        rows = rows.cpu().numpy()
        with torch.no_grad():
            # the library's fusion, as evaluate.py's; images without a location keep the image scores
            fused = self.geo.fuse(scores, self.locations, rows)
            prior = self.geo.log_probs(self.locations, rows).to(scores.device)
        return loss, {"logits": scores, "fused": fused, "prior": prior}, labels

    def _image_prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
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
                # The training objective (focal + smoothing), as without TTA, on the averaged probabilities: the
                # log-probabilities returned by tta_logits are logits whose softmax is that average.
                loss = self.model.objective(logits, labels)
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

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, model, trial):
        """The Trainer's checkpoint, then ``ema.safetensors``, then (every rank done) the completion marker, and only
        then the rotation of older checkpoints: the last complete checkpoint is never deleted before the next one
        is complete. A full disk ends the run with a message that says so; the partial folder is removed."""
        run_dir = self._get_output_dir(trial=trial)
        folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        limit, self.args.save_total_limit = self.args.save_total_limit, None  # rotation comes after the marker
        try:
            super()._save_checkpoint(model, trial)
            if self.ema is not None and self.args.should_save:
                self.ema.save(folder)
        except (OSError, RuntimeError) as e:
            if not _is_disk_full(e):
                raise
            if self.args.should_save:
                shutil.rmtree(folder, ignore_errors=True)  # unusable without its marker; give the space back
            free = _free_bytes(run_dir)
            kept = latest_complete_checkpoint(run_dir)
            raise CheckpointDiskFullError(
                errno.ENOSPC,
                f"Disk full: no space left on the device holding {run_dir} while writing checkpoint {folder} "
                f"({'unknown' if free is None else f'{free / 2**20:.1f} MiB'} free now). The incomplete checkpoint "
                f"was removed; {f'the last complete checkpoint {kept} is kept' if kept else 'no complete checkpoint exists yet'}. "
                "Free some space (or lower save_total_limit, or choose another output_dir) and rerun with "
                "--resume_from_checkpoint latest.",
            ) from e
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()  # every rank's files (rng_state_<rank>.pth) are on disk
        if self.args.should_save:
            mark_checkpoint_complete(folder, self.state.global_step, self.state.epoch)
            rotate_checkpoints(run_dir, limit, self.state.best_model_checkpoint)

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
        """Check that every process holds the same weights (a silent DDP divergence would show here).

        Batch-norm running statistics are per process by design: DDP broadcasts rank 0's buffers at the start of
        every forward, so after the last step each rank holds the statistics of its own last batch. They are
        synchronised to rank 0's (the ones that are saved, and what the next forward would do) before the check;
        parameters are compared as they are."""
        broadcast_buffers(self.model)
        sums = replica_checksums(self.model)
        if len(set(sums)) > 1:
            raise RuntimeError(f"Model replicas diverged across processes: per-rank checksums {sums}.")
        return sums
