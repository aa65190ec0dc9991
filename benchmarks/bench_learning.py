"""Learning benchmark: does InatTrainer learn like a plain PyTorch loop, on real photos, at the same speed?

Data: the real bird photos in ``../shared/data/real_sample/images`` (25 classes, 227x227 JPEGs; research-only
licence, read in place, never copied), split reproducibly per class: every 5th image (sorted by name) is
validation, the rest training. Skipped with a reason when the folder is absent.

Recipe (both loops): resnet18 from random init at 64 px, linear head, cross-entropy (focal gamma 0), label
smoothing 0.1, mixup 0.2 / cutmix 1.0 (probability 1, switch 0.5), AdamW lr 3e-3 / weight decay 0.05 (none on
norms and biases; the same fused implementation in both), cosine schedule with one warmup epoch, batch 32 (last partial batch dropped), 15 epochs, no
freezing, the same train / eval transform presets (``TrainPreset`` / ``EvalPreset``), the same seed for the
initial weights, the same single-process data loading and one torch thread. The plain loop is written here with torch, timm's
``Mixup`` and ``SoftTargetCrossEntropy`` and the same model class called without labels; the other one is
``InatTrainer`` built by ``run_training`` from a benchmark-local recipe. Both final models are scored by one
evaluation function (top-1 / top-5 on the validation split).

Timing: the two loops run in one process with their epochs alternated (Trainer epoch 0, plain 0, plain 1,
Trainer 1, Trainer 2, plain 2, ...; each keeps its own random streams), so load from other jobs on a shared machine
falls on both alike; the image files are read once beforehand so that neither reads the disk cold. Training img/s
counts the time inside each loop's epochs (data loading, forward, backward, optimizer, schedule, and for the
Trainer every per-step hook and its logging), not set-up or the end of training; ``trainer_run_training_seconds``
reports all of ``run_training`` (minus the plain loop's epochs) for the fixed costs around the loop.

Targets: InatTrainer's final top-1 within 2 points of the plain loop's (or better); its training img/s >= 0.95x.

Usage: ``python -m benchmarks.bench_learning [--quick]`` (quick: 2 epochs on 10 classes; not part of
``python -m benchmarks --quick``, which skips this benchmark).
"""

from __future__ import annotations

import argparse
import math
import os
import random
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
    from inat_hf.data.augmentation import AugmentationConfig

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
class RandomState:
    """The global random state (torch CPU, numpy, python): the two loops run interleaved in one process, and each
    keeps its own stream, so each sees exactly the draws it would see if it ran alone."""

    def __init__(self) -> None:
        self.torch, self.numpy, self.python = torch.get_rng_state(), np.random.get_state(), random.getstate()

    def restore(self) -> None:
        torch.set_rng_state(self.torch)
        np.random.set_state(self.numpy)
        random.setstate(self.python)


class PlainLoop:
    """The reference: a hand-written PyTorch training loop, run one epoch at a time (:meth:`run_epoch`) so that
    its epochs can alternate with the Trainer's. ``seconds`` is the time inside its epochs, ``images`` the images
    trained on."""

    def __init__(self, train_rows, num_labels: int, epochs: int) -> None:
        from timm.data import Mixup
        from timm.loss import SoftTargetCrossEntropy
        from timm.optim import param_groups_weight_decay

        from inat_hf.data.collate import ImageClassificationCollator
        from inat_hf.data.torch_dataset import ImageClassificationDataset
        from inat_hf.data.transforms import TrainPreset

        outer = RandomState()
        self.model = make_model(num_labels)
        self.dataset = ImageClassificationDataset(
            as_dataset(train_rows), TrainPreset(augmentation()), seed=SETTINGS["seed"]
        )
        torch.manual_seed(SETTINGS["seed"])
        np.random.seed(SETTINGS["seed"])
        random.seed(SETTINGS["seed"])
        self.loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=SETTINGS["batch_size"],
            shuffle=True,
            drop_last=True,
            num_workers=0,
            collate_fn=ImageClassificationCollator(),
        )
        steps_per_epoch = len(self.loader)
        total, warmup = steps_per_epoch * epochs, steps_per_epoch * SETTINGS["warmup_epochs"]
        # The same AdamW implementation as the Trainer's (transformers' default optim, adamw_torch_fused):
        # torch's default on CPU is the per-tensor loop, ~3-4x slower per step for resnet18.
        self.optimizer = torch.optim.AdamW(
            param_groups_weight_decay(self.model, SETTINGS["weight_decay"]), lr=SETTINGS["learning_rate"], fused=True
        )

        def cosine_with_warmup(step: int) -> float:
            if step < warmup:
                return step / max(1, warmup)
            return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, cosine_with_warmup)
        self.mixup = Mixup(
            mixup_alpha=SETTINGS["mixup_alpha"],
            cutmix_alpha=SETTINGS["cutmix_alpha"],
            prob=1.0,
            switch_prob=0.5,
            mode="batch",
            label_smoothing=SETTINGS["label_smoothing"],
            num_classes=num_labels,
        )
        self.criterion = SoftTargetCrossEntropy()
        self.epoch = 0
        self.seconds = 0.0
        self.images = 0
        self.state = RandomState()
        outer.restore()

    def run_epoch(self) -> None:
        outer = RandomState()
        self.state.restore()
        start = time.perf_counter()
        self.model.train()
        self.dataset.set_epoch(self.epoch)
        for batch in self.loader:
            x, targets = self.mixup(batch["pixel_values"], batch["labels"])
            loss = self.criterion(self.model(x).logits, targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.images += x.shape[0]
        self.seconds += time.perf_counter() - start
        self.epoch += 1
        self.state = RandomState()
        outer.restore()


# ---------------------------------------------------------------------------------------------- InatTrainer
def trainer_run(train_rows, val_rows, classes, epochs: int, workdir: Path, plain: PlainLoop) -> dict:
    """The same recipe through ``run_training`` (recipe → InatTrainer), its epochs alternating with ``plain``'s
    (T0 P0 P1 T1 T2 P2 …: each loop goes first equally often, and load on the machine falls on both alike).

    Returns the trainer's model, ``seconds`` inside its epochs (data, forward, backward, optimizer, schedule and
    every per-step hook; not the plain loop's epochs), ``images``, and ``run_seconds``: all of ``run_training``
    without the plain epochs (adds model build, Trainer set-up, final save, model card and curves)."""
    import datasets
    import yaml
    from transformers import TrainerCallback

    from inat_hf.data import PreparedInat
    from inat_hf.data.taxonomy import Taxonomy
    from inat_hf.training import run as run_module
    from inat_hf.training.recipe import parse_recipe

    timing = {"seconds": 0.0, "plain": 0.0}

    def plain_epoch() -> None:
        start = time.perf_counter()
        plain.run_epoch()
        timing["plain"] += time.perf_counter() - start

    class Alternate(TrainerCallback):
        """Trainer epoch e (from 0) is preceded by plain epoch e when e is odd, followed by it when e is even."""

        epoch = 0

        def on_epoch_begin(self, args, state, control, **kwargs):
            if self.epoch % 2 and plain.epoch == self.epoch:
                plain_epoch()
            timing["begin"] = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            timing["seconds"] += time.perf_counter() - timing["begin"]
            if self.epoch % 2 == 0 and plain.epoch == self.epoch:
                plain_epoch()
            self.epoch += 1

    class BenchmarkTrainer(run_module.InatTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(Alternate())

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
            "focal_gamma": 0.0, "label_smoothing": SETTINGS["label_smoothing"], "image_size": SETTINGS["image_size"],
        },
        "data": {"dataset_dir": str(workdir), "eval_split": "none"},  # dataset_dir is not read: see below
        "mixing": {
            "mixup_alpha": SETTINGS["mixup_alpha"], "cutmix_alpha": SETTINGS["cutmix_alpha"], "mix_prob": 1.0,
            "mix_prob_final": 1.0, "mix_off_epochs": 0,
        },
        "training": {
            "output_dir": str(workdir / "trainer"), "use_cpu": True, "seed": SETTINGS["seed"],
            "num_train_epochs": epochs, "per_device_train_batch_size": SETTINGS["batch_size"],
            "learning_rate": SETTINGS["learning_rate"], "backbone_learning_rate": SETTINGS["learning_rate"],
            "optim": "adamw_torch_fused",
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
    original = run_module.load_data, run_module.InatTrainer
    run_module.load_data = lambda *args: prepared
    run_module.InatTrainer = BenchmarkTrainer
    try:
        start = time.perf_counter()
        run = run_module.run_training(recipe)
        run_seconds = time.perf_counter() - start - timing["plain"]
    finally:
        run_module.load_data, run_module.InatTrainer = original
    while plain.epoch < epochs:  # (only if the Trainer stopped early)
        plain.run_epoch()
    return {
        "model": run.trainer.model,
        "seconds": timing["seconds"],
        "images": run.trainer.state.global_step * SETTINGS["batch_size"],
        "run_seconds": run_seconds,
    }


# ---------------------------------------------------------------------------------------------- main
def warm_up(train_rows, num_labels: int) -> None:
    """One untimed batch through the data pipeline and a training step of a throwaway model: the one-off costs of
    a first step (lazy imports, oneDNN kernel selection, allocator growth) would otherwise fall on whichever loop
    runs first. The global random state is left as it was."""
    from inat_hf.data.collate import ImageClassificationCollator
    from inat_hf.data.torch_dataset import ImageClassificationDataset
    from inat_hf.data.transforms import TrainPreset

    outer = RandomState()
    rows = train_rows[: SETTINGS["batch_size"]]
    dataset = ImageClassificationDataset(as_dataset(rows), TrainPreset(augmentation()), seed=SETTINGS["seed"])
    batch = ImageClassificationCollator()([dataset[i] for i in range(len(rows))])
    model = make_model(num_labels).train()
    model(batch["pixel_values"]).logits.sum().backward()
    torch.optim.AdamW(model.parameters(), fused=True).step()
    outer.restore()


def run(quick: bool = False) -> dict:
    if not IMAGES.is_dir():
        return {"skipped": f"no real sample images at {IMAGES} (research-only data, read in place from ../shared)"}
    # One thread for both loops: on a small shared machine, intra-op threads that wait for each other under
    # oversubscription make steps an order of magnitude slower and the comparison meaningless.
    torch.set_num_threads(1)
    classes, splits = split_files(IMAGES, max_classes=10 if quick else None)
    epochs = 2 if quick else SETTINGS["epochs"]
    for path, _ in splits["train"] + splits["val"]:  # into the page cache: neither loop reads the disk cold
        Path(path).read_bytes()
    warm_up(splits["train"], len(classes))
    plain = PlainLoop(splits["train"], len(classes), epochs)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_run(splits["train"], splits["val"], classes, epochs, Path(tmp), plain)
    trainer_eval = evaluate(trainer["model"], splits["val"])
    plain_eval = evaluate(plain.model, splits["val"])
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
        "plain_img_s": round(plain.images / plain.seconds, 2),
        "trainer_img_s": round(trainer["images"] / trainer["seconds"], 2),
        "plain_seconds": round(plain.seconds, 1),
        "trainer_seconds": round(trainer["seconds"], 1),
        # all of run_training: the fixed costs around the loop (model build, set-up, save, model card, curves)
        "trainer_run_training_seconds": round(trainer["run_seconds"], 1),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
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
