"""GPU benchmark, prepared for when an accelerator is lent: ResNet-50 training and evaluation img/s through the
project's real data path, and that data path's own ceiling, in one run (< 8 minutes on one GPU).

1. Data loader ceiling: the training ``DataLoader`` (``ImageClassificationDataset`` + ``TrainPreset`` +
   ``ImageClassificationCollator``, ``--num_workers`` processes) on iNat-sized JPEGs (500x375 and 800x600 q90,
   generated as ``bench_data`` makes them: the real bird photos upscaled, or photo-like synthetic images), no model.
2. Training img/s: ``InatForImageClassification`` (ResNet-50 + SE + the default MLP head, 5,388 labels, 224 px),
   AdamW, bf16 autocast, channels_last, fed by that loader (host-to-device copies included), eager and with
   ``torch.compile`` (its compile time reported apart, not in the img/s).
3. Evaluation img/s: single view and 5-view TTA (:func:`inat_hf.inference.tta.view_logits` + the views' average),
   bf16 + channels_last, on ready device tensors (model side) and through the evaluation loader (end to end).

img/s counts ``--steps`` timed steps after ``--warmup`` steps, synchronised. The training figures are bounded by the
loader's: when they sit at its ceiling, the GPU waits for data (more ``--num_workers``, or GPU decoding, would
pay). Usage: ``python -m benchmarks.bench_gpu`` (CUDA); ``--device cpu --quick`` (resnet10t at 32 px, one thread, tiny
batches: what the tests run, so that the script cannot rot). Results: printed and ``write_results("gpu", ...)``;
record GPU figures in results.md only from a real GPU run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import time

if __package__ in (None, ""):  # `python benchmarks/bench_gpu.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from benchmarks.bench_data import make_jpegs
from benchmarks.common import print_table, write_results

NUM_LABELS = 5388
NUM_VIEWS = 5


def _split(paths: list[str], rows: int):
    import datasets

    return datasets.Dataset.from_dict(
        {"image": [{"bytes": None, "path": paths[i % len(paths)]} for i in range(rows)], "label": [i % NUM_LABELS for i in range(rows)]},
        features=datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")}),
    )  # fmt: skip


def _loader(split, transform, *, batch_size: int, num_workers: int, device: torch.device, train: bool):
    from torch.utils.data import DataLoader

    from inat_hf.data.collate import ImageClassificationCollator
    from inat_hf.data.torch_dataset import ImageClassificationDataset

    return DataLoader(
        ImageClassificationDataset(split, transform, seed=0 if train else None),
        batch_size=batch_size,
        shuffle=train,
        drop_last=train,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers else None,
        pin_memory=device.type == "cuda",
        collate_fn=ImageClassificationCollator(),
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, batches, *, warmup: int, steps: int, device: torch.device) -> tuple[float, float]:
    """(img/s over ``steps`` calls of ``step(batch)`` after ``warmup``, seconds of the warm-up)."""
    it = iter(batches)
    start = time.perf_counter()
    for _ in range(warmup):
        step(next(it))
    _sync(device)
    warm_s = time.perf_counter() - start
    seen, start = 0, time.perf_counter()
    for _ in range(steps):
        seen += step(next(it))
    _sync(device)
    return seen / (time.perf_counter() - start), warm_s


def _cycle(loader):
    while True:
        yield from loader


def run(quick: bool = False, *, device: str | None = None, num_workers: int | None = None) -> dict:
    from inat_hf.data.augmentation import AugmentationConfig
    from inat_hf.data.transforms import EvalPreset, TrainPreset, TTAPreset
    from inat_hf.inference import tta
    from inat_hf.models import InatConfig, InatForImageClassification

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    backbone, size = ("resnet10t", 32) if quick else ("resnet50", 224)
    if quick and device.type == "cpu":
        torch.set_num_threads(1)  # on a shared CPU, 2 OpenMP threads next to a busy process run many times slower
    batch, eval_batch = (4, 4) if quick else (128, 256)
    warmup, steps = (1, 2) if quick else (10, 30)
    workers = num_workers if num_workers is not None else (0 if quick else min(16, os.cpu_count() or 1))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    # bf16 where it runs on hardware units; a CPU without AVX512-BF16/AMX emulates it at ~20x the fp32 time
    bf16 = device.type == "cuda" or bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "backbone": backbone,
        "image_size": size,
        "num_labels": NUM_LABELS,
        "batch_size": batch,
        "eval_batch_size": eval_batch,
        "num_workers": workers,
        "warmup_steps": warmup,
        "timed_steps": steps,
        "quick": quick,
        "compile_backend": "eager" if quick else "inductor",
        "bf16": bf16,
    }
    with tempfile.TemporaryDirectory() as tmp:
        n = 8 if quick else 256
        paths = make_jpegs(n // 2, (500, 375), tmp)[0] + make_jpegs(n // 2, (800, 600), tmp)[0]
        rows = (warmup + steps + 2) * max(batch, eval_batch) + batch * max(workers, 1) * 4
        split = _split(paths, rows)
        aug = AugmentationConfig(image_size=size)
        train_loader = _loader(
            split, TrainPreset(aug), batch_size=batch, num_workers=workers, device=device, train=True
        )

        # 1. the loader alone
        rate, _ = _timed(
            lambda b: len(b["labels"]), _cycle(train_loader), warmup=max(warmup, 2), steps=steps, device=device
        )
        result["loader_img_s"] = round(rate, 1)

        # 2. training, eager and compiled
        torch.manual_seed(0)
        config = InatConfig(backbone=backbone, image_size=size, id2label={i: f"s{i}" for i in range(NUM_LABELS)})
        training = {}
        for mode in ("eager", "compile"):
            model = InatForImageClassification(config).to(device).to(memory_format=torch.channels_last).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
            # quick (the tests' CPU run): dynamo's capture only, not minutes of inductor code generation
            forward = torch.compile(model, backend="eager" if quick else "inductor") if mode == "compile" else model

            def train_step(b, forward=forward, optimizer=optimizer):
                x = b["pixel_values"].to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                y = b["labels"].to(device, non_blocking=True)
                with autocast:
                    loss = forward(pixel_values=x, labels=y).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                return len(y)

            try:
                rate, warm_s = _timed(train_step, _cycle(train_loader), warmup=warmup, steps=steps, device=device)
                training[mode] = {"img_s": round(rate, 1), "warmup_s": round(warm_s, 1)}
            except Exception as err:  # noqa: BLE001 - torch.compile may lack a backend here (no C++ compiler ...)
                training[mode] = {"error": f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"}
            del model, optimizer, forward
        result["training"] = training

        # 3. evaluation: model side on device tensors, then through the evaluation loader
        model = InatForImageClassification(config).to(device).to(memory_format=torch.channels_last).eval()
        kwargs = dict(image_size=size, resize_size=int(size / 0.875))
        evaluation = {}
        for name, views in (("single view", 1), (f"TTA x{NUM_VIEWS}", NUM_VIEWS)):
            per_batch = max(1, eval_batch // views)
            x = torch.randn(per_batch, views, 3, size, size, device=device)

            def model_side(_, x=x):
                tta.average_views(tta.view_logits(model, x, bf16=bf16, channels_last=True))
                return x.shape[0]

            rate, _ = _timed(model_side, itertools.repeat(None), warmup=warmup, steps=steps, device=device)
            transform = EvalPreset(**kwargs) if views == 1 else TTAPreset(num_views=views, **kwargs)
            loader = _loader(split, transform, batch_size=per_batch, num_workers=workers, device=device, train=False)

            def end_to_end(b):
                tta.average_views(tta.view_logits(model, b["pixel_values"], bf16=bf16, channels_last=True))
                return len(b["labels"])

            e2e, _ = _timed(end_to_end, _cycle(loader), warmup=max(warmup, 2), steps=steps, device=device)
            evaluation[name] = {"model_img_s": round(rate, 1), "end_to_end_img_s": round(e2e, 1)}
        result["evaluation"] = evaluation
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="resnet10t @ 32 px, tiny batches (the tests' CPU run)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--num_workers", type=int, default=None, help="loader processes (default: min(16, CPUs))")
    args = parser.parse_args(argv)
    with contextlib.suppress(AttributeError):
        torch.set_float32_matmul_precision("high")
    result = run(args.quick, device=args.device, num_workers=args.num_workers)
    title = f"{result['backbone']} @ {result['image_size']} px on {result['device']}, {result['num_workers']} workers"
    precision = "bf16 autocast" if result["bf16"] else "fp32 (no native bf16 here)"
    rows = [["data loader alone (train preset)", "", result["loader_img_s"]]]
    rows += [
        [f"training, {precision} + channels_last, {mode}", result["batch_size"], r.get("img_s", r.get("error"))]
        for mode, r in result["training"].items()
    ]
    for name, r in result["evaluation"].items():
        rows += [
            [f"evaluation {name}, model side", result["eval_batch_size"], r["model_img_s"]],
            [f"evaluation {name}, through the loader", result["eval_batch_size"], r["end_to_end_img_s"]],
        ]
    print_table(title, rows, header=["what", "batch", "img/s"])
    write_results("gpu", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
