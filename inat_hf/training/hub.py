"""Model card and Hugging Face Hub upload of a finished run."""

from __future__ import annotations

import os
from typing import Any

import yaml
from huggingface_hub import HfApi

from ..data import Taxonomy
from .recipe import RECIPE_FILE, Recipe, recipe_to_dict

# What a run folder holds besides the model that should not go to the Hub.
HUB_IGNORE = ["checkpoint-*", "checkpoint-*/**", "runs/**", "*.tmp", "trainer_state.json"]


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
    metadata = {
        "library_name": "transformers",
        "pipeline_tag": "image-classification",
        "tags": ["image-classification", "timm", "fine-grained", "inat_hf"] + (["inaturalist"] if is_inat else []),
        **({"datasets": ["inaturalist-2021"]} if is_inat else {}),
        "metrics": ["accuracy"],
    }
    if top1 is not None:
        metadata["model-index"] = [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": "image-classification", "name": "Image Classification"},
                        "dataset": {
                            "name": data_args.dataset_name or str(source),
                            "type": "inaturalist-2021" if is_inat else "imagefolder",
                            "split": data_args.eval_split,
                        },
                        "metrics": [
                            {"type": "accuracy", "name": f"top-{k} accuracy", "value": v}
                            for k, v in ((1, top1), (3, top3), (5, top5))
                            if v is not None
                        ],
                    }
                ],
            }
        ]
    ranks = ", ".join(taxonomy.available_ranks)
    resolved = recipe_to_dict(recipe)
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).strip(),
        "---",
        "",
        f"# {name}",
        "",
        f"A `{model['backbone']}` (timm) with `{model['attn_layer']}` channel attention and a "
        f"{'→'.join(map(str, model['head_hidden_sizes'])) or 'linear'} head, fine-tuned with focal loss "
        f"(γ={model['focal_gamma']}, label smoothing {model['label_smoothing']}) by "
        f"inat_hf on {dataset}.",
        "",
        f"- labels: {taxonomy.num_labels} at rank **{taxonomy.rank}** (the config's `taxonomy` gives {ranks} for every label)",
        f"- input: {model['image_size']}×{model['image_size']}, eval crop {model['crop_pct']}",
        f"- epochs: {args.num_train_epochs}, batch {args.per_device_train_batch_size}/device × {args.world_size} "
        f"× {args.gradient_accumulation_steps} accumulation",
        "",
        "## Results",
        "",
        "| split | top-1 | top-3 | top-5 |",
        "|---|---|---|---|",
        f"| {data_args.eval_split} ({dataset}) | {top1} | {top3} | {top5} |"
        if top1 is not None
        else "| (no evaluation) | | | |",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        f'classifier = pipeline("image-classification", model="{hub_id or output_dir}", trust_remote_code=True)',
        'classifier("photo.jpg", top_k=5)',
        "```",
        "",
        "With `inat_hf` installed, `import inat_hf.models` registers the classes and `trust_remote_code` is not needed.",
        "",
        "## Training recipe",
        "",
        f"The resolved recipe is `{RECIPE_FILE}` in this repository; reproduce with "
        f"`python scripts/train.py {RECIPE_FILE}`.",
        "",
        "```yaml",
        yaml.safe_dump(
            resolved | {"training": {k: v for k, v in resolved["training"].items() if k in _CARD_TRAINING_KEYS}},
            sort_keys=False,
        ).strip(),
        "```",
        "",
    ]
    path = os.path.join(output_dir, "README.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


_CARD_TRAINING_KEYS = (
    "learning_rate",
    "backbone_learning_rate",
    "layer_decay",
    "weight_decay",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "lr_scheduler_kwargs",
    "warmup_steps",
    "frozen_stages",
    "unfreeze_schedule",
    "max_grad_norm",
    "bf16",
    "fp16",
    "channels_last",
    "seed",
)


def push_run_to_hub(
    output_dir: str,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Upload inat_hf model",
    api: HfApi | None = None,
) -> str:
    """Create (if needed) the model repo and upload the run folder: config, weights, image processor, model code,
    model card, recipe and metrics — not the intermediate checkpoints. Returns the commit URL."""
    api = api or HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=output_dir,
        repo_id=repo_id,
        repo_type="model",
        commit_message=commit_message,
        ignore_patterns=HUB_IGNORE,
    )
    return getattr(commit, "commit_url", str(commit))
