"""The model card of a finished run (``README.md``; ``InatTrainer.push_to_hub`` uploads it with the model)."""

from __future__ import annotations

import os
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCardData

from ..data import Taxonomy
from .recipe import RECIPE_FILE, Recipe, recipe_to_dict


def _metric(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(f"eval_{key}", metrics.get(key))
    return round(float(value), 4) if value is not None else None


INAT2021 = "iNaturalist 2021"


def write_model_card(
    output_dir: str, *, recipe: Recipe, metrics: dict[str, Any], taxonomy: Taxonomy, hub_id: str | None = None
) -> str:
    """``README.md`` of the checkpoint: card metadata, results, the recipe and how to use the model.

    Says only what is known: the title and the usage snippet name the Hub repo when the run is pushed (``hub_id``),
    else the run folder as given; the dataset is the recipe's ``dataset_name`` (``iNaturalist 2021`` metadata only
    when it is that), else the folder the data came from.
    """
    model, data_args, args = recipe.model, recipe.data, recipe.training
    top1, top3, top5 = (_metric(metrics, k) for k in ("top1", "top3", "top5"))
    name = hub_id or args.run_name or output_dir
    source = data_args.dataset_dir or data_args.data_dir
    dataset = data_args.dataset_name or f"the data in `{source}`"
    is_inat = (data_args.dataset_name or "").startswith(INAT2021)
    results = [
        EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type="inaturalist-2021" if is_inat else "imagefolder",
            dataset_name=data_args.dataset_name or str(source),
            dataset_split=data_args.eval_split,
            metric_type="accuracy",
            metric_name=f"top-{k} accuracy",
            metric_value=value,
        )
        for k, value in ((1, top1), (3, top3), (5, top5))
        if value is not None
    ]
    metadata = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["image-classification", "timm", "fine-grained", "inat_hf"] + (["inaturalist"] if is_inat else []),
        datasets=["inaturalist-2021"] if is_inat else None,
        metrics=["accuracy"],
        model_name=name if results else None,
        eval_results=results or None,
    )
    head = "→".join(map(str, model["head_hidden_sizes"])) or "linear"
    start = _starting_point(recipe.model_run)
    resolved = recipe_to_dict(recipe)
    resolved["training"] = {k: v for k, v in resolved["training"].items() if k in _CARD_TRAINING_KEYS}
    result = (
        f"| {data_args.eval_split} ({dataset}) | {top1} | {top3} | {top5} |"
        if top1 is not None
        else "| (no evaluation) | | | |"
    )
    card = f"""---
{metadata.to_yaml()}
---

# {name}

A `{model["backbone"]}` (timm) with `{model["attn_layer"]}` channel attention and a {head} head, {start}, \
trained with focal loss (γ={model["focal_gamma"]}, label smoothing {model["label_smoothing"]}) by inat_hf on {dataset}.

- labels: {taxonomy.num_labels} at rank **{taxonomy.rank}** (the config's `taxonomy` gives \
{", ".join(taxonomy.available_ranks)} for every label)
- input: {model["image_size"]}×{model["image_size"]}, eval crop {model["crop_pct"]}
- epochs: {args.num_train_epochs}, batch {args.per_device_train_batch_size}/device × {args.world_size} × \
{args.gradient_accumulation_steps} accumulation

## Results

| split | top-1 | top-3 | top-5 |
|---|---|---|---|
{result}

## Use

```python
from transformers import pipeline
classifier = pipeline("image-classification", model="{hub_id or output_dir}", trust_remote_code=True)
classifier("photo.jpg", top_k=5)
```

With `inat_hf` installed, `import inat_hf.models` registers the classes and `trust_remote_code` is not needed.

## Training recipe

The resolved recipe is `{RECIPE_FILE}` in this repository; reproduce with `python scripts/train.py {RECIPE_FILE}`.

```yaml
{yaml.safe_dump(resolved, sort_keys=False).strip()}
```
"""
    path = os.path.join(output_dir, "README.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(card)
    return path


def _starting_point(run) -> str:
    """Where the weights started: "fine-tuned" only when they were trained before (say which)."""
    if run.init_checkpoint:
        return f"fine-tuned from the inat_hf checkpoint `{run.init_checkpoint}`"
    if run.pretrained_weights:
        return f"fine-tuned from the backbone weights `{run.pretrained_weights}`"
    return "trained from random initialisation (no pretrained weights)"


# the training arguments the card shows (the whole recipe is run_config.yaml)
_CARD_TRAINING_KEYS = (
    *("learning_rate", "backbone_learning_rate", "layer_decay", "weight_decay", "num_train_epochs", "seed"),
    *("per_device_train_batch_size", "gradient_accumulation_steps", "lr_scheduler_type", "lr_scheduler_kwargs"),
    *("warmup_steps", "frozen_stages", "unfreeze_schedule", "max_grad_norm", "bf16", "fp16", "channels_last"),
)
