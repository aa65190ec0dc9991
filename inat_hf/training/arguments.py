"""Run-time arguments of a training run, as ``HfArgumentParser`` dataclasses (one per YAML section).

A recipe (``configs/*.yaml``) has the sections ``model``, ``data``, ``augmentation`` and ``training``, whose keys
are the fields below (``training`` takes every ``transformers.TrainingArguments`` field too). The recipe is the
single source of truth for a run: command-line ``--key value`` overrides are applied on top and the resolved
recipe is saved next to the outputs (see :mod:`inat_hf.training.recipe`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from transformers import TrainingArguments

from ..data.augmentation import AugmentationConfig

# How to see a backbone's stage names (they come from timm's group_matcher: stem, layer1..layer4 for ResNets).
LIST_STAGES_HINT = "list a backbone's stages with `python scripts/train.py --list_stages BACKBONE`"


def _help(text: str, **kwargs):
    return dataclasses.field(metadata={"help": text}, **kwargs)


@dataclasses.dataclass
class ModelArguments:
    backbone: str = _help(
        "Any timm model name (resnet50, convnext_tiny, efficientnet_b0, vit_base_patch16_224, …; timm.list_models()).",
        default="resnet50",
    )
    model_args: dict[str, Any] | str | None = _help(
        "Extra timm.create_model arguments as a mapping (YAML) or JSON string (CLI), e.g. '{\"img_size\": 64}'.",
        default=None,
    )
    drop_path_rate: float | None = _help("Stochastic depth rate passed to timm (None = timm's default).", default=None)
    attn_layer: Literal["se", "eca", "cbam", "none"] = _help(
        "Channel attention after the backbone (CNNs only; 'none' for ViT/EVA token backbones).", default="se"
    )
    rd_ratio: float = _help("Attention reduction ratio (timm rd_ratio).", default=1 / 16)
    head_hidden_sizes: list[int] = _help(
        "Hidden widths of the head (Linear→BN→ReLU→Dropout each); empty = linear classifier.",
        default_factory=lambda: [1024, 512],
    )
    drop_rate: float = _help("Dropout in the head.", default=0.3)
    head_batch_norm: bool = _help("BatchNorm1d in the head's hidden layers.", default=True)
    focal_gamma: float = _help("Focal loss gamma (0 = cross-entropy).", default=2.0)
    label_smoothing: float = _help("Label smoothing of the focal loss (and of mixup/cutmix targets).", default=0.1)
    focal_alpha: Literal["none", "inverse_sqrt_frequency", "inverse_frequency"] = _help(
        "Per-class loss weights from the training label counts (normalised to mean 1).", default="none"
    )
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

    def __post_init__(self):
        if isinstance(self.model_args, str):
            try:
                self.model_args = json.loads(self.model_args) if self.model_args.strip() else None
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"--model_args must be a JSON object, e.g. '{{\"img_size\": 64}}'; got {self.model_args!r}."
                ) from error
        if self.model_args is not None and not isinstance(self.model_args, dict):
            raise ValueError(f"model_args must be a mapping of timm.create_model arguments, got {self.model_args!r}.")


@dataclasses.dataclass
class DataArguments:
    data_dir: str | None = _help("Raw iNat 2021 root (JSON + JPEG folders); prepared on the fly.", default=None)
    dataset_dir: str | None = _help("A folder written by scripts/prepare_data.py --output_dir.", default=None)
    train_split: str = _help("Split to train on.", default="train")
    eval_split: str | None = _help("Split to evaluate on ('none': no evaluation).", default="val")
    splits: str | None = _help(
        "With --data_dir: splits to prepare, e.g. 'train_mini,val' (default: both used).", default=None
    )
    rank: str = _help("With --data_dir: label rank.", default="species")
    taxon: str = _help("With --data_dir: category filter, e.g. kingdom=Animalia.", default="kingdom=Animalia")
    image_storage: Literal["path", "bytes"] | None = _help("With --data_dir: image storage.", default=None)
    resize_shorter: int | None = _help("With --data_dir: pre-resize images (shorter side, px).", default=None)
    on_bad_image: Literal["error", "skip"] = _help("With --data_dir: bad image policy.", default="error")
    verify_files: bool = _help("With --data_dir: decode every image while preparing.", default=True)
    cache_dir: str | None = _help("datasets cache root for --data_dir.", default=None)
    max_train_samples: int | None = _help("Use only the first N training images (quick runs).", default=None)
    max_eval_samples: int | None = _help("Use only the first N evaluation images.", default=None)
    dataset_name: str | None = _help(
        "What the data is, for the model card (e.g. 'iNaturalist 2021 (Animalia, train_mini)'); the card names "
        "iNaturalist 2021 only when this says so.",
        default=None,
    )

    def __post_init__(self):
        if self.eval_split is not None and self.eval_split.strip().lower() in ("", "none"):
            self.eval_split = None  # `--eval_split none` on the command line
        if (self.data_dir is None) == (self.dataset_dir is None):
            raise ValueError(
                "Give exactly one data source: --data_dir (a raw iNat 2021 root) or --dataset_dir (a folder written "
                f"by scripts/prepare_data.py); got data_dir={self.data_dir!r}, dataset_dir={self.dataset_dir!r}."
            )
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive number of images, got {value}.")


_AUG_DEFAULTS = AugmentationConfig()


@dataclasses.dataclass
class AugmentationArguments:
    """Training augmentation (see ``inat_hf.data.augmentation.AugmentationConfig``), eval preprocessing, mixing."""

    # None: timm's pretrained config of the backbone decides (resolved into the model config and the saved recipe).
    image_size: int | None = _help(
        "Training/eval crop size (also stored in the model config); default: the backbone's timm input size.",
        default=None,
    )
    crop_pct: float | None = _help(
        "Eval center-crop fraction: resize shorter side to image_size/crop_pct; default: the backbone's timm crop_pct.",
        default=None,
    )
    eval_interpolation: Literal["bicubic", "bilinear"] | None = _help(
        "Eval resize interpolation; default: the backbone's timm interpolation.", default=None
    )
    interpolation: str = _help("Train RandomResizedCrop interpolation.", default=_AUG_DEFAULTS.interpolation)
    scale: list[float] = _help("RandomResizedCrop area range.", default_factory=lambda: list(_AUG_DEFAULTS.scale))
    ratio: list[float] = _help("RandomResizedCrop aspect range.", default_factory=lambda: list(_AUG_DEFAULTS.ratio))
    hflip: float = _help("Horizontal flip probability (0 = off).", default=_AUG_DEFAULTS.hflip)
    color_jitter: float = _help("Brightness/contrast/saturation jitter (0 = off).", default=0.4)
    hue: float = _help("Hue jitter while colour jitter is on (0 = off).", default=_AUG_DEFAULTS.hue)
    rotation: float = _help("Max rotation in degrees (0 = off).", default=_AUG_DEFAULTS.rotation)
    blur_prob: float = _help("Gaussian blur probability (0 = off).", default=_AUG_DEFAULTS.blur_prob)
    re_prob: float = _help("Random erasing probability (0 = off).", default=_AUG_DEFAULTS.re_prob)
    auto_augment: str | None = _help(
        "timm RandAugment/AugMix/AutoAugment string, e.g. 'rand-m9-mstd0.5-inc1' (needs color_jitter 0); None = off.",
        default=None,
    )
    # Mixing (timm Mixup/CutMix, on the device inside the Trainer).
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
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise ValueError(f"--crop_pct must be in (0, 1], got {self.crop_pct}.")
        self.augmentation_config()  # validates the transform fields (raises ValueError naming the bad one)

    @property
    def mixing_enabled(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and max(self.mix_prob, self.mix_prob_final) > 0

    def augmentation_config(self, mean=None, std=None, image_size: int | None = None) -> AugmentationConfig:
        """The train transform's config; `mean`/`std`/`image_size` of the model config (resolved from timm)."""
        kwargs = dict(
            scale=tuple(self.scale),
            ratio=tuple(self.ratio),
            interpolation=self.interpolation,
            hflip=self.hflip,
            color_jitter=self.color_jitter,
            hue=self.hue,
            rotation=self.rotation,
            blur_prob=self.blur_prob,
            re_prob=self.re_prob,
            auto_augment=self.auto_augment,
        )
        if mean is not None:
            kwargs.update(mean=tuple(mean), std=tuple(std))
        image_size = image_size if image_size is not None else self.image_size
        if image_size is not None:
            kwargs.update(image_size=image_size)
        return AugmentationConfig(**kwargs)


@dataclasses.dataclass
class InatTrainingArguments(TrainingArguments):
    """``transformers.TrainingArguments`` plus the recipe's optimisation options.

    Defaults differ from transformers' where this project needs them: images arrive through a transform, so
    ``remove_unused_columns=False`` (else ``KeyError: 'image'``); evaluation and checkpoints once per epoch.
    """

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

    # transformers defaults changed for this project
    remove_unused_columns: bool = _help("Keep the image column for the transform (must stay False).", default=False)
    eval_strategy: str = _help("When to evaluate.", default="epoch")
    save_strategy: str = _help("When to save checkpoints.", default="epoch")
    logging_strategy: str = _help("When to log.", default="steps")
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
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns must be False: images reach the model through a transform, and the Trainer "
                "would drop the 'image' column first (KeyError: 'image')."
            )
        if self.backbone_learning_rate < 0 or not 0 < self.layer_decay <= 1:
            raise ValueError(
                f"Need backbone_learning_rate >= 0 and 0 < layer_decay <= 1, got {self.backbone_learning_rate} and "
                f"{self.layer_decay}."
            )
        if self.label_smoothing_factor:
            raise ValueError(
                "Set label smoothing with the model's label_smoothing (the focal loss applies it); "
                f"label_smoothing_factor={self.label_smoothing_factor} would smooth the targets a second time."
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}.")
        if self.eval_tta_views < 1:
            raise ValueError(f"eval_tta_views must be >= 1, got {self.eval_tta_views}.")
        self.parsed_unfreeze_schedule()  # raises on syntax errors / unknown stages

    def parsed_unfreeze_schedule(self) -> dict[str, int]:
        """``'layer4:1,-2:2'`` → ``{"layer4": 1, "-2": 2}``: syntax only; stage references are resolved against the
        model's stages by :meth:`unfreezing_plan`."""
        schedule: dict[str, int] = {}
        text = (self.unfreeze_schedule or "").strip()
        if text.lower() in ("", "none"):
            return schedule
        for term in text.split(","):
            stage, sep, epoch = term.strip().partition(":")
            if not sep or not stage.strip() or not epoch.strip().lstrip("-").isdigit():
                raise ValueError(
                    f"Invalid unfreeze_schedule term {term!r}: expected 'stage:epoch', e.g. 'layer4:1,layer3:2'."
                )
            stage = stage.strip()
            if int(epoch) < 0:
                raise ValueError(f"unfreeze_schedule epoch for {stage!r} must be >= 0, got {epoch}.")
            schedule[stage] = int(epoch)
        return schedule

    def unfreezing_plan(
        self, stage_names: Sequence[str], backbone_stages: Sequence[str]
    ) -> tuple[list[str], dict[str, int]]:
        """``frozen_stages`` and ``unfreeze_schedule`` as stage names of a model (``model.stage_names``).

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
        unknown = []
        for ref in self.frozen_stages:
            names = resolve(ref)
            if names is None:
                unknown.append(ref)
            else:
                frozen.extend(n for n in names if n not in frozen)
        if unknown:
            raise ValueError(f"Unknown stage name(s) {unknown} in frozen_stages; {valid}.")
        schedule: dict[str, int] = {}
        rest_epoch = None
        for ref, epoch in self.parsed_unfreeze_schedule().items():
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
