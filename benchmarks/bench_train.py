"""Training-loop benchmark: does InatTrainer add overhead over a plain PyTorch loop doing the same work?

Both loops train the same model (InatForImageClassification: timm ResNet + SE + MLP head, focal loss) on the same
in-memory batches (pre-made tensors, so data loading is out of the picture: bench_data.py measures that), with
the same batch size, precision, thread count, AdamW parameter groups, mixup/cutmix (AdaptiveMixup), gradient
clipping and LR schedule. Steady-state images/s is measured after warm-up steps, from a callback timestamp in the
Trainer and a timestamp in the plain loop; the ratio InatTrainer / plain has a target of >= 0.95.

Also measured: the bf16 + channels_last speed-up of a training step on this CPU (the issue's reference machine:
ResNet-50 at 224 px, fp32 6.0 img/s, bf16 + channels_last 11.1 img/s; a CPU without native bf16 instructions
emulates bf16 and gets slower instead — the result records whether this one has them; quick mode skips it there).

And the training-step rate of each backbone family beside ResNet (plain loop, fp32, same head, loss and mixing):
quick mode resnet18 / convnext_atto / efficientnet_b0 / mobilenetv3_small_050 / vit_tiny_patch16_224 at 128 px,
full mode resnet50 / convnext_tiny / efficientnet_b0 / vit_small_patch16_224 at 224 px (the ResNet's rate is the
plain loop's of the comparison above). Each configuration is built once; every loop starts from a copy of it.

Usage: ``python -m benchmarks.bench_train [--quick] [--families]`` (quick: resnet18 at 128 px, one torch thread,
two interleaved rounds instead of three; full: resnet50 at 224 px; ``--families``: only the per-family rates).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time

if __package__ in (None, ""):  # `python benchmarks/bench_train.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import TrainerCallback

from benchmarks.common import print_table, write_results
from inat_hf import InatConfig, InatForImageClassification
from inat_hf.training.mixing import AdaptiveMixup, MixingConfig
from inat_hf.training.optim import build_param_groups
from inat_hf.training.recipe import InatTrainingArguments
from inat_hf.training.trainer import InatTrainer


class TensorDataset(torch.utils.data.Dataset):
    """Pre-made images: the loops are compared without any decoding or augmentation cost."""

    def __init__(self, n: int, size: int, num_labels: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, size, size, generator=g)
        self.y = torch.randint(0, num_labels, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


_BUILT: dict[str, InatForImageClassification] = {}


def make_model(backbone: str, size: int, num_labels: int, **config_kwargs) -> InatForImageClassification:
    """The same initial weights every time; each configuration is built once and copied (every loop of the
    comparison starts from its own copy)."""
    key = repr((backbone, size, num_labels, sorted(config_kwargs.items())))
    if key not in _BUILT:
        torch.manual_seed(0)
        config = InatConfig(
            backbone=backbone, num_labels=num_labels, image_size=size, head_hidden_sizes=[1024, 512], **config_kwargs
        )
        _BUILT[key] = InatForImageClassification(config)
    torch.manual_seed(0)  # and the same random state after it (mixing draws from it)
    return copy.deepcopy(_BUILT[key])


def make_mixup(num_labels: int, epochs: float) -> AdaptiveMixup:
    mixing = MixingConfig(mix_prob=1.0, mix_prob_final=0.5, mix_off_epochs=0)
    return AdaptiveMixup(mixing, num_labels=num_labels, label_smoothing=0.1, num_epochs=epochs)


class _Clock(TrainerCallback):
    """Timestamps at the end of every optimizer step."""

    def __init__(self):
        self.stamps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.stamps.append(time.perf_counter())


def _step_times(stamps: list[float], warmup: int) -> list[float]:
    """Durations of the steps after ``warmup`` (step i lasts from stamp i-1 to stamp i)."""
    return [b - a for a, b in zip(stamps[warmup - 1 : -1], stamps[warmup:])]


def trainer_step_times(
    backbone, size, batch, steps, warmup, num_labels, bf16=False, channels_last=False
) -> list[float]:
    """Seconds per optimizer step of InatTrainer (after ``warmup`` steps)."""
    dataset = TensorDataset(batch * steps, size, num_labels)
    clock = _Clock()
    with tempfile.TemporaryDirectory() as out:
        args = InatTrainingArguments(
            output_dir=out,
            use_cpu=True,
            per_device_train_batch_size=batch,
            max_steps=steps,
            learning_rate=1e-3,
            backbone_learning_rate=1e-3,
            weight_decay=0.05,
            max_grad_norm=1.0,
            lr_scheduler_type="cosine",
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            load_best_model_at_end=False,
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            bf16=bf16,
            channels_last=channels_last,
            frozen_stages=[],
            unfreeze_schedule="",
            seed=0,
        )
        trainer = InatTrainer(
            model=make_model(backbone, size, num_labels),
            args=args,
            train_dataset=dataset,
            mixup=make_mixup(num_labels, 1.0),
            callbacks=[clock],
        )
        trainer.train()
    return _step_times(clock.stamps, warmup)


def plain_step_times(
    backbone, size, batch, steps, warmup, num_labels, bf16=False, channels_last=False, model_kwargs=None
) -> list[float]:
    """The same work, written by hand (what a careful PyTorch user would run): seconds per step after warmup."""
    dataset = TensorDataset(batch * steps, size, num_labels)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0)
    )
    model = make_model(backbone, size, num_labels, **(model_kwargs or {})).train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    groups = build_param_groups(model, learning_rate=1e-3, backbone_learning_rate=1e-3, weight_decay=0.05)
    optimizer = torch.optim.AdamW(groups, lr=1e-3, fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    mixup = make_mixup(num_labels, 1.0)
    stamps = []
    for step, batch_data in enumerate(loader, 1):
        x = batch_data["pixel_values"].contiguous(memory_format=memory_format)
        x, y = mixup(x, batch_data["labels"], epoch=step / steps)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        stamps.append(time.perf_counter())
    return _step_times(stamps, warmup)


def family_models(quick: bool, size: int) -> dict[str, tuple[str, dict]]:
    """family -> (timm backbone, extra config) measured beside ResNet; token backbones without channel attention."""
    vit = {"attn_layer": "none", "model_args": {"img_size": size}}
    if quick:
        return {
            "resnet": ("resnet18", {}),
            "convnext": ("convnext_atto", {}),
            "efficientnet": ("efficientnet_b0", {}),
            "mobilenet": ("mobilenetv3_small_050", {}),
            "vit": ("vit_tiny_patch16_224", vit),
        }
    return {
        "resnet": ("resnet50", {}),
        "convnext": ("convnext_tiny", {}),
        "efficientnet": ("efficientnet_b0", {}),
        "vit": ("vit_small_patch16_224", vit),
    }


def family_step_rates(quick: bool = False, measured: dict[str, float] | None = None) -> dict:
    """Training-step images/s of each family (plain loop, fp32, median step after warm-up); ``measured`` maps a
    backbone to a rate already measured in this run with the same loop, size and batch (not measured again)."""
    size, batch = (128, 16) if quick else (224, 16)
    steps, warmup = 6, 2
    rates = {}
    for family, (backbone, kwargs) in family_models(quick, size).items():
        if not kwargs and backbone in (measured or {}):
            rates[family] = {"backbone": backbone, "img_s": measured[backbone]}
            continue
        times = plain_step_times(backbone, size, batch, steps, warmup, 1000, model_kwargs=kwargs)
        rates[family] = {"backbone": backbone, "img_s": round(batch / statistics.median(times), 2)}
    return {"image_size": size, "batch_size": batch, "threads": torch.get_num_threads(), "rates": rates}


def run(quick: bool = False) -> dict:
    if quick:
        # One thread: on the small shared box two OpenMP threads beside other busy processes wait at barriers and
        # make every step many times slower (both loops alike, but the quick run would last minutes).
        torch.set_num_threads(1)
    backbone, size, batch = ("resnet18", 128, 16) if quick else ("resnet50", 224, 16)
    steps, warmup, rounds = (8, 2, 2) if quick else (8, 2, 3)
    num_labels = 1000
    result = {
        "backbone": backbone,
        "image_size": size,
        "batch_size": batch,
        "steps": steps,
        "warmup": warmup,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
    }
    # Interleave the two loops (A B A B A B) and compare median step times: on a shared machine a background burst
    # lengthens a few steps of one run, which a median ignores and a total would not.
    times = {"trainer": [], "plain": []}
    for _ in range(rounds):
        times["plain"] += plain_step_times(backbone, size, batch, steps, warmup, num_labels)
        times["trainer"] += trainer_step_times(backbone, size, batch, steps, warmup, num_labels)
    result["plain_img_s"] = round(batch / statistics.median(times["plain"]), 2)
    result["trainer_img_s"] = round(batch / statistics.median(times["trainer"]), 2)
    result["trainer_vs_plain"] = round(result["trainer_img_s"] / result["plain_img_s"], 3)
    result["steps_measured"] = {k: len(v) for k, v in times.items()}
    # bf16 autocast + channels_last vs fp32, same plain loop, short runs: CPUs without native bf16 (no AVX512-BF16
    # or AMX) emulate it and are over ten times slower, so a handful of steps is all this measurement can afford,
    # and the quick run leaves it out there (as bench_infer does).
    result["cpu_has_native_bf16"] = _cpu_has_native_bf16()
    if quick and not result["cpu_has_native_bf16"]:
        result["bf16_skipped"] = "quick mode on a CPU without native bf16 (emulated: over ten times slower)"
    else:
        short = dict(backbone=backbone, size=size, batch=8, steps=3, warmup=1, num_labels=num_labels)
        fp32 = 8 / statistics.median(plain_step_times(**short, bf16=False, channels_last=False))
        bf16 = 8 / statistics.median(plain_step_times(**short, bf16=True, channels_last=True))
        result["fp32_img_s"], result["bf16_channels_last_img_s"] = round(fp32, 2), round(bf16, 2)
        result["bf16_channels_last_speedup"] = round(bf16 / fp32, 2)
    # the ResNet of the family table is this comparison's plain loop (same backbone, size, batch and loop)
    result["families"] = family_step_rates(quick, measured={backbone: result["plain_img_s"]})
    return result


def _print_families(f: dict) -> None:
    print_table(
        f"training step per backbone family, {f['image_size']} px, batch {f['batch_size']}, fp32, {f['threads']} threads",
        [(family, v["backbone"], f"{v['img_s']} img/s") for family, v in f["rates"].items()],
    )


def _cpu_has_native_bf16() -> bool | None:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return None
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="resnet18 at 128 px instead of resnet50 at 224 px")
    parser.add_argument("--families", action="store_true", help="only the training-step rate of each family")
    args = parser.parse_args(argv)
    if args.families:
        f = family_step_rates(quick=args.quick)
        _print_families(f)
        write_results("train_families", f)
        return
    r = run(quick=args.quick)
    _print_families(r["families"])
    rows = [
        ("plain PyTorch loop (fp32)", f"{r['plain_img_s']} img/s", ""),
        ("InatTrainer (fp32)", f"{r['trainer_img_s']} img/s", f"ratio {r['trainer_vs_plain']} (target >= 0.95)"),
    ]
    if "bf16_skipped" in r:
        rows.append(("bf16 + channels_last", "skipped", r["bf16_skipped"]))
    else:
        rows.append(("plain loop, fp32 (batch 8)", f"{r['fp32_img_s']} img/s", ""))
        rows.append(
            (
                "plain loop, bf16 + channels_last (batch 8)",
                f"{r['bf16_channels_last_img_s']} img/s",
                f"x{r['bf16_channels_last_speedup']} vs fp32 (native bf16: {r['cpu_has_native_bf16']})",
            )
        )
    title = f"training step, {r['backbone']} @ {r['image_size']} px, batch {r['batch_size']}, {r['threads']} threads"
    print_table(title + " (CPU)", rows)
    write_results("train", r)


if __name__ == "__main__":
    main()
