"""The train recipe's sections (``configs/*.yaml``) and the project's own run options.

``model`` is ``InatConfig``'s keyword arguments (less :data:`MODEL_FIELDS_FROM_DATA`) plus
:class:`ModelRunArguments`; ``data`` is :class:`TrainDataArguments`; ``augmentation`` is ``AugmentationConfig`` (less
:data:`AUGMENTATION_FROM_MODEL`: one ``image_size``, mean and std for training and evaluation, the model's);
``mixing`` is :class:`MixingConfig`; ``training`` is :class:`InatTrainingArguments`. How they are read:
:mod:`inat_hf.training.recipe`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from transformers import TrainingArguments

from ..data.source import DataArguments
from .unfreezing import LIST_STAGES_HINT, parse_unfreeze_schedule

# Set from the prepared dataset (label set, rank, class frequencies), never from the recipe.
MODEL_FIELDS_FROM_DATA = ("label_rank", "taxonomy", "focal_alpha")
# AugmentationConfig field -> the InatConfig field that sets it: the train crop and the eval preprocessing share them.
AUGMENTATION_FROM_MODEL = {"image_size": "image_size", "mean": "image_mean", "std": "image_std"}


def _help(text: str, **kwargs):
    return dataclasses.field(metadata={"help": text}, **kwargs)


@dataclasses.dataclass
class ModelRunArguments:
    """The ``model`` section's keys that are not part of the saved model config: where the weights start from."""

    pretrained_weights: str | None = _help(
        "ImageNet backbone weights: a local .safetensors/.pth file, or a timm/Hub name (needs the network "
        "or the HF cache). None = random init.",
        default=None,
    )
    init_checkpoint: str | None = _help(
        "Start from this saved inat_hf checkpoint (dir or Hub id) instead of a fresh head.", default=None
    )
    ignore_mismatched_sizes: bool = _help(
        "With --init_checkpoint: re-create the classifier if the checkpoint's label set differs.", default=False
    )
    class_weights: Literal["none", "inverse_sqrt_frequency", "inverse_frequency"] = _help(
        "Focal-loss alpha (InatConfig.focal_alpha) from the training label counts, normalised to mean 1.",
        default="none",
    )


@dataclasses.dataclass
class TrainDataArguments(DataArguments):
    """The recipe's ``data`` section: the data source, and what training takes from it."""

    train_split: str = _help("Split to train on.", default="train")
    eval_split: str | None = _help("Split to evaluate on ('none': no evaluation).", default="val")
    max_train_samples: int | None = _help("Use only the first N training images (quick runs).", default=None)
    max_eval_samples: int | None = _help("Use only the first N evaluation images.", default=None)
    dataset_name: str | None = _help(
        "What the data is, for the model card (e.g. 'iNaturalist 2021 (Animalia, train_mini)'); the card names "
        "iNaturalist 2021 only when this says so.",
        default=None,
    )

    def __post_init__(self):
        super().__post_init__()
        if self.eval_split is not None and self.eval_split.strip().lower() in ("", "none"):
            self.eval_split = None  # `--eval_split none` on the command line
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive number of images, got {value}.")


@dataclasses.dataclass
class MixingConfig:
    """Mixup / CutMix (timm ``Mixup``, on the device inside the Trainer) with a scheduled probability."""

    mixup_alpha: float = _help("Mixup beta(α, α); 0 = no mixup.", default=0.2)
    cutmix_alpha: float = _help("CutMix beta(α, α); 0 = no cutmix.", default=1.0)
    mix_prob: float = _help("Probability that a batch is mixed at the start of training.", default=1.0)
    mix_switch_prob: float = _help("Probability of cutmix rather than mixup when both are on.", default=0.5)
    mix_schedule: Literal["constant", "linear", "cosine"] = _help(
        "How the mix probability moves from mix_prob to mix_prob_final over training.", default="linear"
    )
    mix_prob_final: float = _help("Mix probability at the end of the schedule.", default=0.3)
    mix_off_epochs: int = _help("Turn mixing off for the last N epochs (clean fine-tuning).", default=2)

    def __post_init__(self):
        for name in ("mix_prob", "mix_prob_final", "mix_switch_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name} is a probability in [0, 1], got {value}.")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError(f"mixup_alpha/cutmix_alpha must be >= 0, got {self.mixup_alpha}/{self.cutmix_alpha}.")
        if self.mix_off_epochs < 0:
            raise ValueError(f"--mix_off_epochs must be >= 0, got {self.mix_off_epochs}.")
        if self.mix_schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"mix_schedule must be constant, linear or cosine, got {self.mix_schedule!r}.")

    @property
    def enabled(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and max(self.mix_prob, self.mix_prob_final) > 0


@dataclasses.dataclass
class TrainingOptions:
    """The project's training options; ``InatTrainingArguments`` adds them to ``transformers.TrainingArguments``."""

    learning_rate: float = _help("Learning rate of the head and attention (the classifier LR).", default=1e-4)
    backbone_learning_rate: float = _help(
        "Learning rate of the deepest backbone stage (layer4 of a ResNet).", default=1e-5
    )
    layer_decay: float = _help(
        "Layer-wise LR decay: backbone stage k below the deepest gets backbone_learning_rate × layer_decay^k "
        "(1 = flat).",
        default=1.0,
    )
    weight_decay: float = _help("AdamW weight decay (never on norm weights and biases).", default=0.05)
    frozen_stages: list[str] = _help(
        "Stages frozen at the start: stage names of the backbone (timm's groups: stem, layer1..layer4 for a ResNet, "
        "stem, stages.0..3 for a ConvNeXt; " + LIST_STAGES_HINT + "), attention, head, 'backbone' (every backbone "
        "stage) or an index into the backbone stages (-1 = deepest). Those not in unfreeze_schedule stay frozen.",
        default_factory=lambda: ["backbone"],
    )
    unfreeze_schedule: str = _help(
        "Progressive unfreezing 'stage:epoch,…' (epochs count from 0; stages as in frozen_stages, 'backbone' = every "
        "frozen backbone stage not named before), e.g. '-1:1,-2:2,-3:3' (= layer4:1,layer3:2,layer2:3 on a ResNet).",
        default="-1:1,-2:2,-3:3",
    )
    channels_last: bool = _help("Use channels_last memory format (faster convs with bf16/AMP).", default=False)
    early_stopping_patience: int | None = _help(
        "Stop after this many evaluations without improvement of metric_for_best_model (None = off).", default=None
    )
    early_stopping_threshold: float = _help("Minimum improvement that counts for early stopping.", default=0.0)
    ema_decay: float = _help("EMA of weights (timm ModelEmaV3) with this decay; 0 = off.", default=0.0)
    eval_tta_views: int = _help("Views of test-time augmentation during evaluation (1 = plain).", default=1)
    augmentation_seed: int | None = _help(
        "Seed of per-image augmentation (a function of seed, epoch, index: exact resumes); None = seed.", default=None
    )
    geo_prior: str | None = _help(
        "A location/date prior (scripts/train_geo_prior.py): evaluations also log fused metrics, as evaluate.py "
        "--geo_prior (eval_fused_top1, …, eval_prior_top1, …).",
        default=None,
    )

    def check_options(self) -> None:
        if self.backbone_learning_rate < 0 or not 0 < self.layer_decay <= 1:
            raise ValueError(
                f"Need backbone_learning_rate >= 0 and 0 < layer_decay <= 1, got {self.backbone_learning_rate} and "
                f"{self.layer_decay}."
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}.")
        if self.eval_tta_views < 1:
            raise ValueError(f"eval_tta_views must be >= 1, got {self.eval_tta_views}.")
        parse_unfreeze_schedule(self.unfreeze_schedule)  # syntax; the stages are checked against the model


@dataclasses.dataclass
class InatTrainingArguments(TrainingOptions, TrainingArguments):
    """``transformers.TrainingArguments`` plus :class:`TrainingOptions`, with the defaults this project needs:
    evaluation and checkpoints once per epoch, the best one restored at the end."""

    eval_strategy: str = _help("When to evaluate.", default="epoch")
    save_strategy: str = _help("When to save checkpoints.", default="epoch")
    logging_steps: float = _help("Log every N steps.", default=10)
    save_total_limit: int | None = _help("Keep at most N checkpoints (the best is always kept).", default=2)
    load_best_model_at_end: bool = _help("Restore the best checkpoint at the end.", default=True)
    metric_for_best_model: str | None = _help("Metric that picks the best checkpoint.", default="top1")
    dataloader_drop_last: bool = _help(
        "Drop the last incomplete training batch (mixup needs even batches; BatchNorm needs > 1).", default=True
    )
    dataloader_num_workers: int = _help("Data loading processes.", default=2)
    lr_scheduler_type: str = _help("LR schedule (transformers names).", default="cosine_with_restarts")
    logging_nan_inf_filter: bool = _help(
        "transformers' filter replaces NaN/Inf losses in the logs (a host sync on every step); off, since "
        "InatTrainer stops on the first non-finite loss anyway.",
        default=False,
    )

    def __post_init__(self):
        super().__post_init__()
        if self.label_smoothing_factor:
            raise ValueError(
                "Set label smoothing with the model's label_smoothing (the focal loss applies it); "
                f"label_smoothing_factor={self.label_smoothing_factor} would smooth the targets a second time."
            )
        self.check_options()
