"""One training run, top to bottom: recipe → data → model → InatTrainer → saved (and pushed) checkpoint.

``scripts/train.py`` parses a :class:`~.recipe.Recipe` and calls :func:`run_training`; nothing else happens there.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np
from transformers import EarlyStoppingCallback, set_seed
from transformers.utils import logging

from ..data import PreparedInat, Taxonomy
from ..data.array_preset import eval_kwargs_from_image_processor
from ..data.collate import ImageClassificationCollator
from ..data.source import load_data
from ..data.torch_dataset import ImageClassificationDataset
from ..data.transforms import EvalPreset, TrainPreset, TTAPreset
from ..files import check_model_output_dir
from ..inference.evaluator import check_label_sets
from ..models import InatConfig, InatForImageClassification
from .arguments import AUGMENTATION_FROM_MODEL
from .checkpoints import CheckpointError, resolve_resume
from .metrics_log import TrainingMetricsCallback
from .mixing import AdaptiveMixup
from .recipe import RECIPE_FILE, Recipe, save_recipe
from .trainer import InatTrainer
from .unfreezing import ProgressiveUnfreezingCallback, unfreezing_plan

logger = logging.get_logger(__name__)

# The InatConfig fields that shape the weights: a checkpoint's decide them (init_checkpoint) or must match (resume).
ARCHITECTURE = ("backbone", "model_args", "attn_layer", "rd_ratio", "head_hidden_sizes", "head_batch_norm")


@dataclasses.dataclass
class TrainingRun:
    """What a finished run leaves behind."""

    output_dir: str
    trainer: InatTrainer
    metrics: dict[str, Any]
    taxonomy: Taxonomy


# ---------------------------------------------------------------------------------------------- data
def select_split(prepared: PreparedInat, name: str, limit: int | None, *, role: str):
    split = prepared.dataset[name]  # load_data checked that it is there
    if limit is not None:
        split = split.select(range(min(limit, split.num_rows)))
    labels = np.asarray(split["label"])
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"The {role} split {name!r} has unlabeled images (label -1, e.g. public_test): it cannot be used for "
            "training or evaluation. Use scripts/predict.py or scripts/evaluate.py --submission for it."
        )
    return split


# ---------------------------------------------------------------------------------------------- model
def class_weights(labels: np.ndarray, num_labels: int, kind: str) -> list[float] | None:
    """Per-class focal-loss alpha from training label counts (mean 1 over the classes present)."""
    if kind == "none":
        return None
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    present = counts > 0
    power = 0.5 if kind == "inverse_sqrt_frequency" else 1.0
    weights = np.zeros(num_labels)
    weights[present] = counts[present] ** -power
    weights[present] /= weights[present].mean()
    weights[~present] = weights[present].max() if present.any() else 1.0  # unseen classes: the rarest weight
    return weights.round(6).tolist()


def build_model(recipe: Recipe, taxonomy: Taxonomy, train_labels: np.ndarray) -> InatForImageClassification:
    """The recipe's ``model`` section as ``InatConfig`` keyword arguments, plus what the data decides."""
    run, id2label = recipe.model_run, dict(enumerate(taxonomy.labels))
    config_kwargs = dict(
        recipe.model,
        focal_alpha=class_weights(train_labels, len(id2label), run.class_weights),
        label_rank=taxonomy.rank,
        taxonomy=taxonomy.to_dict(),
    )
    if run.init_checkpoint:
        saved = InatConfig.from_pretrained(run.init_checkpoint)
        if saved.id2label != id2label and not run.ignore_mismatched_sizes:
            differ = sorted(set(saved.id2label.values()) ^ set(id2label.values()))
            raise ValueError(
                f"The checkpoint {run.init_checkpoint} has {saved.num_labels} labels and the dataset "
                f"{len(id2label)}, and they differ (e.g. {differ[:5]}, or in order). Pass "
                "--ignore_mismatched_sizes true to start a new classifier for the dataset's labels."
            )
        # Architecture comes from the checkpoint; labels, taxonomy, loss and preprocessing from this recipe
        # (preprocessing and drop_path_rate the recipe leaves unset stay the checkpoint's).
        keep_if_unset = ("image_size", "crop_pct", "interpolation", "image_mean", "image_std", "drop_path_rate")
        overrides = {
            k: v for k, v in config_kwargs.items() if k not in ARCHITECTURE and not (k in keep_if_unset and v is None)
        }
        return InatForImageClassification.from_pretrained(
            run.init_checkpoint,
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=run.ignore_mismatched_sizes,
            **overrides,
        )
    config = InatConfig(id2label=id2label, label2id={v: k for k, v in id2label.items()}, **config_kwargs)
    if run.pretrained_weights:
        model, info = InatForImageClassification.from_backbone_pretrained(
            config, weights=run.pretrained_weights, output_loading_info=True
        )
        logger.info(
            f"Backbone weights from {run.pretrained_weights}: {len(info['loaded_keys'])} tensors loaded, "
            f"new (initialised): {len(info['missing_keys'])} attention/head tensors."
        )
        model.train()
        return model
    return InatForImageClassification(config)


# ---------------------------------------------------------------------------------------------- checks
def check_recipe(recipe: Recipe) -> None:
    """Problems that would otherwise surface hours into a run (or never)."""
    args = recipe.training
    if recipe.mixing.enabled and args.per_device_train_batch_size % 2:
        raise ValueError(
            f"Mixup/CutMix pairs the images of a batch, so per_device_train_batch_size must be even; got "
            f"{args.per_device_train_batch_size}. Use an even batch size or set mixup_alpha and cutmix_alpha to 0."
        )
    if args.early_stopping_patience is not None:
        if not args.load_best_model_at_end or args.metric_for_best_model is None:
            raise ValueError("early_stopping_patience needs load_best_model_at_end and metric_for_best_model.")
        if recipe.data.eval_split is None:
            raise ValueError("early_stopping_patience needs an eval_split to measure improvement on.")
    if recipe.data.eval_split is None and (args.load_best_model_at_end or args.eval_strategy != "no"):
        raise ValueError(
            "No eval_split, but evaluation is configured: set eval_strategy: 'no' and load_best_model_at_end: false, "
            "or give an eval_split."
        )
    if args.geo_prior and recipe.data.eval_split is None:
        raise ValueError("geo_prior adds fused metrics to the evaluation: it needs an eval_split.")
    _check_patience_covers_a_cycle(args)
    metric = (args.metric_for_best_model or "").removeprefix("eval_")
    fused = ("fused_top1", "fused_top3", "fused_top5")
    if args.load_best_model_at_end and metric not in ("top1", "top3", "top5", "loss", *fused):
        raise ValueError(
            "metric_for_best_model must be one of top1, top3, top5, loss (or fused_top1/3/5 with geo_prior); got "
            f"{args.metric_for_best_model!r}."
        )
    if args.load_best_model_at_end and metric in fused and not args.geo_prior:
        raise ValueError(f"metric_for_best_model {metric!r} is a fused metric: it needs geo_prior (a prior folder).")
    inputs = (recipe.model_run.init_checkpoint, args.geo_prior, recipe.data.dataset_dir, recipe.data.data_dir)
    check_model_output_dir(
        args.output_dir, model_type=InatConfig.model_type, marker=RECIPE_FILE, overwrite=args.overwrite, inputs=inputs
    )


def check_resume_fits(checkpoint: str, config: InatConfig, data: str) -> None:
    """The run resumed from ``checkpoint`` builds the model it holds: same architecture, same labels in the same
    order. Checked before anything is written; else the Trainer fails deep in ``load_state_dict``, or (labels of
    the same count) silently trains on wrong names."""
    try:
        saved = InatConfig.from_pretrained(checkpoint)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"resume_from_checkpoint: {checkpoint} holds no readable model config: {err}") from err
    for key in ARCHITECTURE:
        if getattr(saved, key) != getattr(config, key):
            raise CheckpointError(
                f"resume_from_checkpoint: {checkpoint} holds a model with {key}={getattr(saved, key)!r}, this "
                f"recipe builds {key}={getattr(config, key)!r}. Resume with the recipe of that run (its "
                "run_config.yaml), or train from scratch into a new output_dir."
            )
    labels = [saved.id2label[i] for i in range(saved.num_labels)]
    check_label_sets(
        labels, [config.id2label[i] for i in range(config.num_labels)], model=checkpoint, dataset=data,
        fix="Resume on the data that run was trained on (same --rank and --taxon), or train from scratch.",
    )  # fmt: skip


def _check_patience_covers_a_cycle(args) -> None:
    """Early stopping must not end a run inside a restart cycle of ``cosine_with_restarts``: after a restart top-1
    drops and beats the previous best only towards the end of the next cycle, so a patience shorter than a cycle
    stops the run before the later cycles and the clean ``mix_off_epochs`` finish."""
    kwargs = args.lr_scheduler_kwargs if isinstance(args.lr_scheduler_kwargs, dict) else {}
    num_cycles = int(kwargs.get("num_cycles", 1))
    restarts = "cosine_with_restarts" in str(args.lr_scheduler_type).lower()
    if args.early_stopping_patience is None or not restarts or num_cycles <= 1:
        return
    warmup_fraction = args.warmup_steps if 0 < args.warmup_steps < 1 else 0.0  # a float < 1 is a ratio
    strategy = str(getattr(args.eval_strategy, "value", args.eval_strategy))
    if strategy == "epoch" and args.max_steps <= 0:
        unit, cycle, interval = "epochs", args.num_train_epochs * (1 - warmup_fraction) / num_cycles, 1.0
    elif strategy == "steps" and args.max_steps > 0:
        unit, cycle = "steps", args.max_steps * (1 - warmup_fraction) / num_cycles
        interval = args.eval_steps if args.eval_steps and args.eval_steps >= 1 else args.max_steps * args.eval_steps
    else:
        return  # cycle length in evaluations unknown before the data is loaded
    patience = args.early_stopping_patience * interval
    if patience < cycle:
        needed = math.ceil(cycle / interval)
        raise ValueError(
            f"early_stopping_patience={args.early_stopping_patience} evaluations ({patience:g} {unit}) is shorter "
            f"than one restart cycle of cosine_with_restarts (num_cycles={num_cycles}: {cycle:.1f} {unit} each). "
            "After each hard LR restart top-1 drops for several evaluations, so early stopping would end the run "
            "before the later cycles and the final mix_off_epochs. Fix: early_stopping_patience >= "
            f"{needed}, or lr_scheduler_kwargs: {{num_cycles: 1}} (or lr_scheduler_type: cosine), or no early "
            "stopping."
        )


def _drop_unavailable_loggers(args) -> None:
    if "tensorboard" in (args.report_to or []):
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            logger.warning("report_to includes tensorboard, which is not installed: skipping it.")
            args.report_to = [r for r in args.report_to if r != "tensorboard"]


# ---------------------------------------------------------------------------------------------- the run
def run_training(recipe: Recipe) -> TrainingRun:
    data_args, args = recipe.data, recipe.training
    check_recipe(recipe)
    resume = resolve_resume(args.resume_from_checkpoint, args.output_dir)  # a bad path fails before the data
    _drop_unavailable_loggers(args)
    set_seed(args.seed)

    # ---- data (rank 0 prepares the Arrow cache first; the others then read it)
    with args.main_process_first(desc="dataset preparation"):
        prepared = load_data(data_args, [s for s in (data_args.train_split, data_args.eval_split) if s])
    train_split = select_split(prepared, data_args.train_split, data_args.max_train_samples, role="training")
    eval_split = None
    if data_args.eval_split:
        eval_split = select_split(prepared, data_args.eval_split, data_args.max_eval_samples, role="evaluation")
    taxonomy = prepared.taxonomy
    geo = locations = None
    if args.geo_prior:  # a prior that does not fit the labels or the split fails here, before any training
        from ..geo.fusion import GeoFusion, split_locations

        geo = GeoFusion.from_pretrained(args.geo_prior, taxonomy.labels, device=args.device)
        locations = split_locations(eval_split, f"{data_args.eval_split} split")
        logger.info(f"Fused metrics with the prior {args.geo_prior}: {locations.counts}")

    # ---- model + the image processor it ships with
    model = build_model(recipe, taxonomy, np.asarray(train_split["label"]))
    if resume is not None:
        check_resume_fits(resume, model.config, data_args.dataset_dir or data_args.data_dir)
    processor = model.create_image_processor()
    config = model.config
    # Preprocessing the recipe left to the backbone (timm's pretrained config): the saved recipe holds the values.
    for key in ("image_size", "crop_pct", "interpolation", "image_mean", "image_std"):
        recipe.model[key] = getattr(config, key)

    # ---- transforms: train augmentation at the model's size, mean and std; eval = the processor's (or TTA views)
    from_model = {field: getattr(config, key) for field, key in AUGMENTATION_FROM_MODEL.items()}
    aug = dataclasses.replace(recipe.augmentation, **from_model)
    eval_kwargs = eval_kwargs_from_image_processor(processor)  # the exact ops the saved processor will run
    seed = args.augmentation_seed if args.augmentation_seed is not None else args.seed
    train_dataset = ImageClassificationDataset(train_split, TrainPreset(aug), seed=seed)
    eval_dataset = None
    if eval_split is not None:
        views = args.eval_tta_views
        preset = TTAPreset(num_views=views, **eval_kwargs) if views > 1 else EvalPreset(**eval_kwargs)
        eval_dataset = ImageClassificationDataset(eval_split, preset)

    # ---- recipe pieces that live in the Trainer
    mixup = None
    if recipe.mixing.enabled:
        mixup = AdaptiveMixup(
            recipe.mixing,
            num_labels=config.num_labels,
            label_smoothing=config.label_smoothing,
            num_epochs=args.num_train_epochs,
        )
    frozen_stages, unfreeze_schedule = unfreezing_plan(
        args.frozen_stages, args.unfreeze_schedule, model.stage_names, model.backbone_stage_names
    )
    unfreezing = ProgressiveUnfreezingCallback(frozen_stages, unfreeze_schedule) if frozen_stages else None
    images_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    callbacks = [TrainingMetricsCallback(args.output_dir, images_per_step)]
    if args.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(args.early_stopping_patience, args.early_stopping_threshold))

    # One Hub upload, at the end, of the best model and its card (Trainer.push_to_hub below): even with
    # hub_strategy "end" the Trainer would create the repo up front and push at every save_model. The token stays
    # out of the arguments, which every checkpoint pickles (training_args.bin).
    push_to_hub, hub_token = args.push_to_hub, args.hub_token
    args.push_to_hub, args.hub_token = False, None
    trainer = InatTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=ImageClassificationCollator(),
        processing_class=processor,
        callbacks=callbacks,
        mixup=mixup,
        unfreezing=unfreezing,
        geo=geo,
        locations=locations,
    )
    if args.should_save:
        save_recipe(recipe, args.output_dir)

    # ---- train (or resume); the final model is the best checkpoint (load_best_model_at_end) or the EMA
    train_result = trainer.train(resume_from_checkpoint=resume)
    checksums = trainer.verify_replicas()
    trainer.save_model(args.output_dir)  # model + config + processor + code
    metrics = dict(train_result.metrics)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    if eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    trainer.save_state()
    if args.should_save:
        with open(os.path.join(args.output_dir, "replica_checksums.json"), "w") as f:
            json.dump({"world_size": args.world_size, "checksums": checksums}, f)
    card = dict(recipe=recipe, metrics=metrics, taxonomy=taxonomy)
    if push_to_hub:  # on every rank: the model is saved by all of them, uploaded from rank 0 with the card
        message = f"inat_hf: {config.backbone} on {taxonomy.num_labels} {taxonomy.rank} labels"
        commit = trainer.push_to_hub(commit_message=message, token=hub_token, **card)
        if commit is not None:
            logger.info(f"Pushed to {commit.commit_url}")
    else:
        trainer.create_model_card(**card)
    trainer.accelerator.wait_for_everyone()  # nobody exits while rank 0 still writes
    return TrainingRun(output_dir=args.output_dir, trainer=trainer, metrics=metrics, taxonomy=taxonomy)
