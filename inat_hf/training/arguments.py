"""The train recipe's sections (configs/*.yaml) besides the config classes (``InatConfig``,
``AugmentationConfig``, ``MixingConfig`` beside the code that reads it),
and which fields of those the data or the model set. How the recipe is read: :mod:`inat_hf.training.recipe`."""

from __future__ import annotations

import dataclasses
from typing import Literal

from transformers import TrainingArguments

from ..cli import option
from ..data.source import DataArguments
from ..files import overwrite_option
from .unfreezing import LIST_STAGES_HINT, parse_unfreeze_schedule

# Set from the prepared dataset (label set, rank, class frequencies), never from the recipe.
MODEL_FIELDS_FROM_DATA = ("label_rank", "taxonomy", "focal_alpha")
# InatConfig fields fitted after training (calibrate.py), not recipe options.
MODEL_FIELDS_FROM_CALIBRATION = ("temperature", "fusion_weight")
# AugmentationConfig field -> the InatConfig field that sets it: the train crop and the eval preprocessing share them.
AUGMENTATION_FROM_MODEL = {"image_size": "image_size", "mean": "image_mean", "std": "image_std"}


@dataclasses.dataclass
class ModelRunArguments:
    """The ``model`` section's keys that are not part of the saved model config: where the weights start from."""

    pretrained_weights: str | None = option(
        None, "Backbone weights: a .safetensors/.pth file or a timm/Hub name; None: random."
    )
    init_checkpoint: str | None = option(None, "Start from this inat_hf checkpoint (dir or Hub id), not a fresh head.")
    ignore_mismatched_sizes: bool = option(False, "With --init_checkpoint: a new classifier for another label set.")
    class_weights: Literal["none", "inverse_sqrt_frequency", "inverse_frequency"] = option(
        "none", "Focal-loss alpha (InatConfig.focal_alpha) from the training label counts, normalised to mean 1."
    )


@dataclasses.dataclass
class TrainDataArguments(DataArguments):
    """The recipe's ``data`` section: the data source, and what training takes from it."""

    train_split: str = option("train", "Split to train on.")
    eval_split: str | None = option("val", "Split to evaluate on ('none': no evaluation).")
    max_train_samples: int | None = option(None, "Use only the first N training images (quick runs).")
    max_eval_samples: int | None = option(None, "Use only the first N evaluation images.")
    dataset_name: str | None = option(
        None, "What the data is, for the model card, e.g. 'iNaturalist 2021 (Animalia)'."
    )

    def __post_init__(self):
        super().__post_init__()
        if self.eval_split is not None and self.eval_split.strip().lower() in ("", "none"):
            self.eval_split = None  # `--eval_split none` on the command line
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be a positive number of images, got {getattr(self, name)}.")


@dataclasses.dataclass
class InatTrainingArguments(TrainingArguments):
    """The ``training`` section: ``TrainingArguments``, this project's defaults (evaluation and checkpoints once per
    epoch, the best one restored at the end), and its own options (the fields below)."""

    learning_rate: float = option(1e-4, "Learning rate of the head and attention (the classifier LR).")
    backbone_learning_rate: float = option(1e-5, "Learning rate of the deepest backbone stage (layer4 of a ResNet).")
    layer_decay: float = option(1.0, "Stage k below the deepest trains at backbone_learning_rate × layer_decay^k.")
    weight_decay: float = option(0.05, "AdamW weight decay (never on norm weights and biases).")
    frozen_stages: list[str] = option(
        ["backbone"],
        "Stages frozen at the start: stage names (" + LIST_STAGES_HINT + "), 'backbone' (all its stages) or an "
        "index into the backbone stages (-1 = deepest). Those not in unfreeze_schedule stay frozen.",
    )
    unfreeze_schedule: str = option(
        "-1:1,-2:2,-3:3", "Progressive unfreezing 'stage:epoch,…' (epochs from 0; stages as in frozen_stages)."
    )
    channels_last: bool = option(False, "Use channels_last memory format (faster convs with bf16/AMP).")
    early_stopping_patience: int | None = option(None, "Stop after N evaluations without improvement (None = off).")
    early_stopping_threshold: float = option(0.0, "Minimum improvement that counts for early stopping.")
    ema_decay: float = option(0.0, "EMA of weights (timm ModelEmaV3) with this decay; 0 = off.")
    eval_tta_views: int = option(1, "Views of test-time augmentation during evaluation (1 = plain).")
    augmentation_seed: int | None = option(None, "Seed of per-image augmentation (exact resumes); None = seed.")
    geo_prior: str | None = option(None, "A location prior (train_geo_prior.py): evaluations also log fused metrics.")
    overwrite: bool = overwrite_option()
    # this project's defaults of TrainingArguments' own options
    eval_strategy: str = option("epoch", "When to evaluate.")
    save_strategy: str = option("epoch", "When to save checkpoints.")
    logging_steps: float = option(10, "Log every N steps.")
    save_total_limit: int | None = option(2, "Keep at most N checkpoints (the best is always kept).")
    load_best_model_at_end: bool = option(True, "Restore the best checkpoint at the end.")
    metric_for_best_model: str | None = option("top1", "Metric that picks the best checkpoint.")
    dataloader_drop_last: bool = option(True, "Drop the last incomplete batch (mixup: even batches; BatchNorm: > 1).")
    dataloader_num_workers: int = option(2, "Data loading processes.")
    lr_scheduler_type: str = option("cosine_with_restarts", "LR schedule (transformers names).")
    logging_nan_inf_filter: bool = option(False, "Hide NaN/Inf losses in logs (a sync per step; InatTrainer stops).")

    def __post_init__(self):
        super().__post_init__()
        if self.label_smoothing_factor:
            raise ValueError(
                "Set label smoothing with the model's label_smoothing (the focal loss applies it); "
                f"label_smoothing_factor={self.label_smoothing_factor} would smooth the targets a second time."
            )
        # Checked here, when the recipe is parsed: torch would refuse them only after run_config.yaml is written.
        rules = {
            "learning_rate": (self.learning_rate > 0, "> 0"),
            "backbone_learning_rate": (self.backbone_learning_rate >= 0, ">= 0 (0: the backbone does not learn)"),
            "layer_decay": (0 < self.layer_decay <= 1, "in (0, 1]"),
            "weight_decay": (self.weight_decay >= 0, ">= 0"),
            "ema_decay": (0 <= self.ema_decay < 1, "in [0, 1) (0: off)"),
            "eval_tta_views": (self.eval_tta_views >= 1, ">= 1"),
            "per_device_train_batch_size": (self.per_device_train_batch_size >= 1, ">= 1"),
            "per_device_eval_batch_size": (self.per_device_eval_batch_size >= 1, ">= 1"),
            "gradient_accumulation_steps": (self.gradient_accumulation_steps >= 1, ">= 1"),
            "dataloader_num_workers": (self.dataloader_num_workers >= 0, ">= 0"),
            "num_train_epochs": (self.num_train_epochs > 0 or self.max_steps > 0, "> 0 (or max_steps > 0)"),
        }
        for name, (ok, rule) in rules.items():
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}.")
        parse_unfreeze_schedule(self.unfreeze_schedule)  # syntax; the stages are checked against the model
