"""Learning benchmark: does InatTrainer learn like a plain PyTorch loop, on real photos, at the same speed?

Data: the real bird photos in ``../shared/data/real_sample/images`` (25 classes, 227x227 JPEGs; research-only
licence, read in place, never copied), split reproducibly per class: every 5th image (sorted by name) is
validation, the rest training. Skipped with a reason when the folder is absent.

Recipe (both loops): resnet18 from random init at 64 px, linear head, cross-entropy (focal gamma 0), label
smoothing 0.1, mixup 0.2 / cutmix 1.0 (probability 1, switch 0.5), AdamW lr 3e-3 / weight decay 0.05 (none on
norms and biases), cosine schedule with one warmup epoch, batch 32 (last partial batch dropped), 15 epochs, no
freezing, the same train / eval transform presets (``TrainPreset`` / ``EvalPreset``), the same seed for the
initial weights, the same single-process data loading and one torch thread. The plain loop is written here with torch, timm's
``Mixup`` and ``SoftTargetCrossEntropy`` and the same model class called without labels; the other one is
``InatTrainer`` built by ``run_training`` from a benchmark-local recipe. Both final models are scored by one
evaluation function (top-1 / top-5 on the validation split).

Targets: InatTrainer's final top-1 within 2 points of the plain loop's (or better); its training img/s >= 0.95x.

Usage: ``python -m benchmarks.bench_learning [--quick]`` (quick: 2 epochs on 10 classes; not part of
``python -m benchmarks --quick``, which skips this benchmark).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/bench_learning.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from benchmarks.common import REPO_ROOT, print_table, write_results

IMAGES = Path(os.environ.get("INAT_REAL_SAMPLE", REPO_ROOT.parent / "shared" / "data" / "real_sample")) / "images"

SETTINGS = dict(
    backbone="resnet18",
    image_size=64,
    epochs=15,
    batch_size=32,
    learning_rate=3e-3,
    weight_decay=0.05,
    warmup_epochs=1,
    mixup_alpha=0.2,
    cutmix_alpha=1.0,
    label_smoothing=0.1,
    seed=0,
)


# ---------------------------------------------------------------------------------------------- data
def split_files(root: Path, max_classes: int | None = None) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """Class names and ``{"train": [(path, label)], "val": [...]}``: every 5th image of a class is validation."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())[:max_classes]
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
    for label, name in enumerate(classes):
        for i, path in enumerate(sorted((root / name).glob("*.jpg"))):
            splits["val" if i % 5 == 4 else "train"].append((str(path), label))
    return classes, splits


def as_dataset(rows: list[tuple[str, int]]):
    import datasets

    return datasets.Dataset.from_dict(
        {"image": [{"path": p, "bytes": None} for p, _ in rows], "label": [y for _, y in rows]},
        features=datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")}),
    )


def make_model(num_labels: int):
    from inat_hf import InatConfig, InatForImageClassification

    torch.manual_seed(SETTINGS["seed"])
    config = InatConfig(
        backbone=SETTINGS["backbone"],
        attn_layer="none",
        head_hidden_sizes=[],
        drop_rate=0.0,
        focal_gamma=0.0,
        label_smoothing=SETTINGS["label_smoothing"],
        num_labels=num_labels,
        image_size=SETTINGS["image_size"],
    )
    return InatForImageClassification(config)


def augmentation():
    from inat_hf.data.transforms import AugmentationConfig

    return AugmentationConfig(image_size=SETTINGS["image_size"])  # the seed recipe's augmentation at 64 px


@torch.no_grad()
def evaluate(model, val_rows) -> dict[str, float]:
    """Top-1 / top-5 of ``model`` on the validation rows (the image processor's center crop)."""
    from inat_hf.data.transforms import EvalPreset

    preset = EvalPreset(image_size=SETTINGS["image_size"], crop_pct=0.875, interpolation="bicubic")
    model.eval()
    hits1 = hits5 = 0
    for start in range(0, len(val_rows), 128):
        chunk = val_rows[start : start + 128]
        x = torch.stack([preset(p) for p, _ in chunk])
        y = torch.tensor([label for _, label in chunk])
        top5 = model(x).logits.topk(5, dim=-1).indices
        hits1 += int((top5[:, 0] == y).sum())
        hits5 += int((top5 == y[:, None]).any(-1).sum())
    return {"top1": hits1 / len(val_rows), "top5": hits5 / len(val_rows)}


# ---------------------------------------------------------------------------------------------- plain loop
def plain_loop(train_rows, num_labels: int, epochs: int) -> tuple[torch.nn.Module, float, int]:
    """The reference: a hand-written PyTorch training loop. Returns (model, seconds, images trained on)."""
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy
    from timm.optim import param_groups_weight_decay

    from inat_hf.data.collate import ImageClassificationCollator
    from inat_hf.data.torch_dataset import ImageClassificationDataset
    from inat_hf.data.transforms import TrainPreset

    model = make_model(num_labels)
    dataset = ImageClassificationDataset(as_dataset(train_rows), TrainPreset(augmentation()), seed=SETTINGS["seed"])
    start = time.perf_counter()
    torch.manual_seed(SETTINGS["seed"])
    np.random.seed(SETTINGS["seed"])
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=SETTINGS["batch_size"],
        shuffle=True,
        drop_last=True,
        num_workers=0,
        collate_fn=ImageClassificationCollator(),
    )
    steps_per_epoch = len(loader)
    total, warmup = steps_per_epoch * epochs, steps_per_epoch * SETTINGS["warmup_epochs"]
    optimizer = torch.optim.AdamW(
        param_groups_weight_decay(model, SETTINGS["weight_decay"]), lr=SETTINGS["learning_rate"]
    )

    def cosine_with_warmup(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup)
    mixup = Mixup(
        mixup_alpha=SETTINGS["mixup_alpha"],
        cutmix_alpha=SETTINGS["cutmix_alpha"],
        prob=1.0,
        switch_prob=0.5,
        mode="batch",
        label_smoothing=SETTINGS["label_smoothing"],
        num_classes=num_labels,
    )
    criterion = SoftTargetCrossEntropy()
    images = 0
    model.train()
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            x, targets = mixup(batch["pixel_values"], batch["labels"])
            loss = criterion(model(x).logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            images += x.shape[0]
    return model, time.perf_counter() - start, images


# ---------------------------------------------------------------------------------------------- InatTrainer
def trainer_run(train_rows, val_rows, classes, epochs: int, workdir: Path) -> tuple[torch.nn.Module, float, int]:
    """The same recipe through ``run_training`` (recipe → InatTrainer). Returns (model, seconds, images)."""
    import datasets
    import yaml

    from inat_hf.data import PreparedInat
    from inat_hf.data.taxonomy import Taxonomy
    from inat_hf.training import run as run_module
    from inat_hf.training.recipe import parse_recipe

    # A prepared-dataset stand-in: the same rows the plain loop reads, the class names as species labels.
    categories = [
        {"id": i, "kingdom": "Animalia", "phylum": "Chordata", "class": "Aves", "order": "Aves", "family": name,
         "genus": name, "species": name}
        for i, name in enumerate(classes)
    ]  # fmt: skip
    prepared = PreparedInat(
        dataset=datasets.DatasetDict({"train": as_dataset(train_rows), "val": as_dataset(val_rows)}),
        taxonomy=Taxonomy.from_categories(categories, "species"),
        report={},
    )
    steps_per_epoch = len(train_rows) // SETTINGS["batch_size"]
    # the benchmark-local recipe (YAML, as a user would write it)
    recipe_dict = {
        "model": {
            "backbone": SETTINGS["backbone"], "attn_layer": "none", "head_hidden_sizes": [], "drop_rate": 0.0,
            "focal_gamma": 0.0, "label_smoothing": SETTINGS["label_smoothing"],
        },
        "data": {"dataset_dir": str(workdir), "eval_split": "none"},  # dataset_dir is not read: see below
        "augmentation": {
            "image_size": SETTINGS["image_size"], "mixup_alpha": SETTINGS["mixup_alpha"],
            "cutmix_alpha": SETTINGS["cutmix_alpha"], "mix_prob": 1.0, "mix_prob_final": 1.0, "mix_off_epochs": 0,
        },
        "training": {
            "output_dir": str(workdir / "trainer"), "use_cpu": True, "seed": SETTINGS["seed"],
            "num_train_epochs": epochs, "per_device_train_batch_size": SETTINGS["batch_size"],
            "learning_rate": SETTINGS["learning_rate"], "backbone_learning_rate": SETTINGS["learning_rate"],
            "weight_decay": SETTINGS["weight_decay"], "lr_scheduler_type": "cosine",
            "warmup_steps": steps_per_epoch * SETTINGS["warmup_epochs"], "frozen_stages": [],
            "unfreeze_schedule": "", "max_grad_norm": 0.0, "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False,
            "logging_steps": steps_per_epoch, "dataloader_num_workers": 0, "report_to": "none",
            "disable_tqdm": True,
        },
    }  # fmt: skip
    path = workdir / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    recipe = parse_recipe([str(path)])
    original = run_module.load_data
    run_module.load_data = lambda data_args: prepared
    try:
        start = time.perf_counter()
        run = run_module.run_training(recipe)
        seconds = time.perf_counter() - start
    finally:
        run_module.load_data = original
    images = run.trainer.state.global_step * SETTINGS["batch_size"]
    return run.trainer.model, seconds, images


# ---------------------------------------------------------------------------------------------- main
def run(quick: bool = False) -> dict:
    if not IMAGES.is_dir():
        return {"skipped": f"no real sample images at {IMAGES} (research-only data, read in place from ../shared)"}
    # One thread for both loops: on a small shared machine, intra-op threads that wait for each other under
    # oversubscription make steps an order of magnitude slower and the comparison meaningless.
    torch.set_num_threads(1)
    classes, splits = split_files(IMAGES, max_classes=10 if quick else None)
    epochs = 2 if quick else SETTINGS["epochs"]
    with tempfile.TemporaryDirectory() as tmp:
        trainer_model, trainer_s, trainer_images = trainer_run(
            splits["train"], splits["val"], classes, epochs, Path(tmp)
        )
        trainer_eval = evaluate(trainer_model, splits["val"])
    plain_model, plain_s, plain_images = plain_loop(splits["train"], len(classes), epochs)
    plain_eval = evaluate(plain_model, splits["val"])
    result = {
        "settings": {**SETTINGS, "epochs": epochs, "quick": quick},
        "classes": len(classes),
        "train_images": len(splits["train"]),
        "val_images": len(splits["val"]),
        "plain_top1": round(plain_eval["top1"], 4),
        "plain_top5": round(plain_eval["top5"], 4),
        "trainer_top1": round(trainer_eval["top1"], 4),
        "trainer_top5": round(trainer_eval["top5"], 4),
        "top1_difference_points": round(100 * (trainer_eval["top1"] - plain_eval["top1"]), 2),
        "plain_img_s": round(plain_images / plain_s, 2),
        "trainer_img_s": round(trainer_images / trainer_s, 2),
        "plain_seconds": round(plain_s, 1),
        "trainer_seconds": round(trainer_s, 1),
    }
    result["trainer_vs_plain_img_s"] = round(result["trainer_img_s"] / result["plain_img_s"], 3)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 epochs on 10 classes (a smoke run, not the target)")
    args = parser.parse_args(argv)
    result = run(args.quick)
    if "skipped" in result:
        print(f"bench_learning skipped: {result['skipped']}")
    else:
        print_table(
            f"learning: {result['train_images']} train / {result['val_images']} val real photos, "
            f"{result['classes']} classes, {result['settings']['epochs']} epochs",
            [
                ["plain PyTorch loop", result["plain_top1"], result["plain_top5"], result["plain_img_s"]],
                ["InatTrainer", result["trainer_top1"], result["trainer_top5"], result["trainer_img_s"]],
            ],
            header=["", "top-1", "top-5", "train img/s"],
        )
    write_results("learning", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
