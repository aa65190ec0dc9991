"""Data-pipeline benchmark: does decoding + augmentation keep the accelerator fed? (issue 6)

Measures, in one run and side by side, on iNat-size JPEGs (500x375 and 800x600, quality 90, made from the real bird
photos in ``../shared/data/real_sample/images`` upscaled -- never copied into the repo; synthetic photo-like images
with a printed note when that folder is absent):

a. the training recipe (RandomResizedCrop 224, flip, ColorJitter(0.4, 0.4, 0.4, 0.1), RandomRotation(15),
   GaussianBlur(13, 0.1-2.0) p=0.1, normalise, RandomErasing 0.25), float32 [3, 224, 224] out, one core, as:
   the seed project's chain (PIL decode, ``ToTensor`` at full resolution, torchvision v1 float ops); the same
   recipe from stock torchvision v2 ops on the decoded uint8 tensor and on the PIL image (torchvision's
   reference-preset style); our ``TrainPreset``; and ``TrainPreset`` with each custom kernel swapped for the stock
   v2 op it replaces -- a kernel stays only where that swap makes the preset slower;
b. per op at 224 px: stock v2 on the uint8 tensor, stock v2 on the PIL image, our kernel on the uint8 tensor;
c. decoding at full size vs a DCT-reduced JPEG decode (PIL ``draft``: the largest 1/2, 1/4, 1/8 reduction that
   keeps the shorter side >= m), decode alone and under the train / eval presets: m = 792 (the smallest crop still
   spans 224 px) and m = 224 for training, m = 256 (the eval resize) for evaluation;
d. ``EvalPreset`` and 5-view ``TTAPreset`` throughput, one core;
e. a ``DataLoader`` over ``ImageClassificationDataset(TrainPreset)`` + ``ImageClassificationCollator``, as the
   Trainer builds it, with all cores (``num_workers=2``, persistent workers, prefetch) -- images/s delivered to
   the main process;
f. timm ``Mixup`` (mixup 0.8 + cutmix 1.0, 10,000 classes) on a [64, 3, 224, 224] batch on one CPU core, against
   a worker's time to produce that batch -- why mixing happens on the device, not in the collator.

Usage: ``python -m benchmarks.bench_data [--quick]`` (quick: a couple of minutes on the 2-core dev box). Results
are printed and written as JSON (``benchmarks/common.py: write_results``); ``run(quick)`` returns them as a dict.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
import tempfile
import time

if __package__ in (None, ""):  # `python benchmarks/bench_data.py`: make `benchmarks` and `inat_hf` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import PIL.Image
import torch
from torchvision.transforms import v2

from benchmarks.common import REPO_ROOT, compare_throughput, print_table, rss_mb, time_call, write_results
from inat_hf.data.augmentation import AugmentationConfig
from inat_hf.data.collate import ImageClassificationCollator
from inat_hf.data.decode import decode_image
from inat_hf.data.kernels import FusedColorJitter, RandomGaussianBlur, RandomRotationNearest
from inat_hf.data.torch_dataset import ImageClassificationDataset
from inat_hf.data.transforms import EvalPreset, TrainPreset, TTAPreset

REAL_IMAGES = REPO_ROOT.parent / "shared" / "data" / "real_sample" / "images"
TARGET_SPEEDUP = 3.0
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---- inputs -----------------------------------------------------------------------------------------------------


def _synthetic_photo(rng: np.random.Generator, w: int, h: int) -> PIL.Image.Image:
    """Smooth colour gradients + blobs + sensor-like noise: compresses and decodes like a photo."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, p = rng.uniform(-1, 1, 3)
        img[..., c] = 128 + 60 * np.sin(a * xx / 60 + p) * np.cos(b * yy / 45)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(20, 90)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r**2
        img[mask] = img[mask] * 0.4 + rng.uniform(0, 255, 3) * 0.6
    img += rng.normal(0, 6, img.shape)
    return PIL.Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_jpegs(n: int, size: tuple[int, int], directory: str, quality: int = 90) -> tuple[list[str], str]:
    """``n`` JPEG files of ``size`` in ``directory``; returns (paths, description of the source)."""
    sources = sorted(glob.glob(str(REAL_IMAGES / "*" / "*.jpg")))
    paths = []
    if sources:
        step = max(1, len(sources) // n)
        picked = sources[::step][:n]
        source = f"{len(picked)} real photos from {REAL_IMAGES} (227x227), bicubic-upscaled"
        for i, src in enumerate(picked):
            with PIL.Image.open(src) as im:
                img = im.convert("RGB").resize(size, PIL.Image.Resampling.BICUBIC)
            paths.append(os.path.join(directory, f"{size[0]}x{size[1]}_{i:04d}.jpg"))
            img.save(paths[-1], quality=quality)
    else:
        print(f"note: {REAL_IMAGES} not found; using synthetic photo-like images instead")
        rng = np.random.default_rng(0)
        source = "synthetic photo-like images (real sample absent)"
        for i in range(n):
            paths.append(os.path.join(directory, f"{size[0]}x{size[1]}_{i:04d}.jpg"))
            _synthetic_photo(rng, *size).save(paths[-1], quality=quality)
    return paths, f"{source} to {size[0]}x{size[1]}, JPEG q{quality}"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# ---- pipelines --------------------------------------------------------------------------------------------------


def naive_seed_pipeline():
    """The seed project's chain: PIL decode, full-resolution float tensor, torchvision v1 transforms."""
    from torchvision import transforms as T

    chain = T.Compose(
        [
            T.ToTensor(),
            T.RandomResizedCrop(224, scale=(0.08, 1.0)),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.4, 0.4, 0.4, 0.1),
            T.RandomRotation(15),
            T.RandomApply([T.GaussianBlur(13, sigma=(0.1, 2.0))], p=0.1),
            T.Normalize(MEAN, STD),
            T.RandomErasing(p=0.25),
        ]
    )

    def run(data: bytes) -> torch.Tensor:
        with PIL.Image.open(io.BytesIO(data)) as im:
            return chain(im.convert("RGB"))

    return run


def _stock_ops() -> dict:
    """The train recipe's augmentations as stock torchvision v2 ops, keyed by the custom kernel each one faces."""
    return {
        FusedColorJitter: v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
        RandomRotationNearest: v2.RandomRotation(15),
        RandomGaussianBlur: v2.RandomApply([v2.GaussianBlur(13, sigma=(0.1, 2.0))], p=0.1),
    }


def stock_v2_pipeline(on_pil: bool):
    """The train recipe from stock v2 ops: on the decoded uint8 tensor, or on the PIL image (converted to a
    tensor after the blur, as torchvision's reference presets do)."""
    stock = _stock_ops()
    ops = [v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(), *stock.values()]
    ops += [v2.PILToTensor()] if on_pil else []
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD), v2.RandomErasing(0.25)]
    chain = v2.Compose(ops)
    if not on_pil:
        return lambda data: chain(decode_image(data))

    def run(data: bytes) -> torch.Tensor:
        with PIL.Image.open(io.BytesIO(data)) as im:
            return chain(im.convert("RGB"))

    return run


def preset_with_stock(kernel: type) -> TrainPreset:
    """``TrainPreset()`` with the custom ``kernel`` replaced by the stock v2 op it stands for."""
    preset = TrainPreset()
    ops = preset.transforms.transforms
    ops[[type(op) for op in ops].index(kernel)] = _stock_ops()[kernel]
    return preset


def _pil_full(data: bytes) -> torch.Tensor:
    with PIL.Image.open(io.BytesIO(data)) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)


def reduced_decode(min_side: int):
    """The removed reduced decode: JPEGs whose shorter side is >= 2 * ``min_side`` through PIL ``draft`` with the
    largest DCT reduction (1/2, 1/4, 1/8) keeping the shorter side >= ``min_side``; the rest as ``decode_image``."""

    def run(data: bytes) -> torch.Tensor:
        with PIL.Image.open(io.BytesIO(data)) as im:
            if min(im.size) < 2 * min_side:
                return decode_image(data)
            scale = min_side / min(im.size)
            im.draft("RGB", (max(1, int(im.width * scale)), max(1, int(im.height * scale))))
            return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)

    return run


# ---- sections ---------------------------------------------------------------------------------------------------


def bench_train(datas: list[bytes], rounds: int) -> dict:
    ours = TrainPreset()
    candidates = {
        "naive_seed": naive_seed_pipeline(),
        "stock_v2_tensor": stock_v2_pipeline(on_pil=False),
        "stock_v2_pil": stock_v2_pipeline(on_pil=True),
        "ours": ours,
        **{f"ours_stock_{k.__name__}": preset_with_stock(k) for k in _stock_ops()},
    }
    res = compare_throughput(candidates, datas, rounds=rounds)
    out = {f"{name}_img_s": round(r["best"], 1) for name, r in res.items()}
    out["ours_float32_img_s"] = out.pop("ours_img_s")  # the key benchmarks/run_all.py reads
    out["speedup_float32"] = round(res["ours"]["best"] / res["naive_seed"]["best"], 2)
    out["speedup_vs_stock_v2"] = round(
        res["ours"]["best"] / max(res["stock_v2_tensor"]["best"], res["stock_v2_pil"]["best"]), 2
    )
    out["median_speedup_float32"] = round(res["ours"]["median"] / res["naive_seed"]["median"], 2)
    out["target_speedup"] = TARGET_SPEEDUP
    out["meets_target"] = out["speedup_float32"] >= TARGET_SPEEDUP
    sample = ours(datas[0])
    out["output"] = f"{sample.dtype} {list(sample.shape)}"
    return out


def bench_ops(datas: list[bytes], repeat: int) -> dict:
    """Per-op cost at 224 px (ms): stock v2 on the uint8 tensor and on the PIL image vs our kernel on the tensor."""
    full = decode_image(datas[0])
    small = v2.functional.resize(full, [224, 224], antialias=True).contiguous()
    small_pil = v2.functional.to_pil_image(small)
    torch.manual_seed(0)
    ops = {
        "RandomResizedCrop (from 500x375)": (v2.RandomResizedCrop(224, antialias=True), full, None),
        "ColorJitter(.4,.4,.4,.1)": (v2.ColorJitter(0.4, 0.4, 0.4, 0.1), small, FusedColorJitter(0.4, 0.4, 0.4, 0.1)),
        "RandomRotation(15)": (v2.RandomRotation(15), small, RandomRotationNearest(15)),
        "GaussianBlur(13, 0.1-2) (always)": (
            v2.GaussianBlur(13, (0.1, 2.0)),
            small,
            RandomGaussianBlur(13, (0.1, 2.0), p=1.0),
        ),
        "ToDtype + Normalize (uint8 -> float)": (
            v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]),
            small,
            None,
        ),
    }
    out = {}
    for name, (tv_op, tensor, our_op) in ops.items():
        pil = small_pil if tensor is small else v2.functional.to_pil_image(tensor)
        row = {"v2_uint8_tensor_ms": 1e3 * time_call(lambda op=tv_op, x=tensor: op(x), repeat=repeat, number=10)}
        if not name.startswith("ToDtype"):
            row["v2_pil_ms"] = 1e3 * time_call(lambda op=tv_op, x=pil: op(x), repeat=repeat, number=10)
        if our_op is not None:
            row["ours_uint8_tensor_ms"] = 1e3 * time_call(lambda op=our_op, x=tensor: op(x), repeat=repeat, number=10)
        out[name] = {k: round(v, 3) for k, v in row.items()}
    return out


def bench_decode(sets: dict[str, list[bytes]], rounds: int) -> dict:
    """Full-size vs DCT-reduced decode, alone and under the presets (img/s, one core)."""
    full, reduced = decode_image, reduced_decode
    train, evaluate = TrainPreset(), EvalPreset()
    candidates = {
        "decode_pil": _pil_full,
        "decode_full": full,
        "decode_reduced_m224": reduced(224),
        "train_full": train,
        "train_reduced_m792": lambda d: train(reduced(792)(d)),
        "train_reduced_m224": lambda d: train(reduced(224)(d)),
        "eval_full": evaluate,
        "eval_reduced_m256": lambda d: evaluate(reduced(256)(d)),
    }
    out = {
        name: {k: round(v["best"], 1) for k, v in compare_throughput(candidates, datas, rounds=rounds).items()}
        for name, datas in sets.items()
    }
    out["note"] = (
        "img/s, one core. decode_full is decode_image (torchvision's libjpeg-turbo decoder); reduced = PIL draft "
        "keeping the shorter side >= m where that reduces (else decode_image), fed to the preset as a tensor."
    )
    return out


def bench_eval(datas: list[bytes], rounds: int) -> dict:
    res = compare_throughput({"eval": EvalPreset(), "tta5": TTAPreset(num_views=5)}, datas, rounds=rounds)
    return {
        "eval_img_s": round(res["eval"]["best"], 1),
        "tta5_img_s": round(res["tta5"]["best"], 1),
        "tta5_views_s": round(5 * res["tta5"]["best"], 1),
    }


def bench_loader(datas: list[bytes], *, batch_size: int, batches: int, num_workers: int) -> dict:
    import datasets
    from torch.utils.data import DataLoader

    warmup = max(2, num_workers)
    # Enough rows that an epoch holds every measured batch: epoch boundaries are not what is measured here.
    reps = -(-(batches + warmup + 4 * max(num_workers, 1)) * batch_size // len(datas))
    rows = [datas[i % len(datas)] for i in range(reps * len(datas))]
    split = datasets.Dataset.from_dict(
        {"image": [{"bytes": d, "path": None} for d in rows], "label": [i % 1000 for i in range(len(rows))]},
        features=datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")}),
    )
    ds = ImageClassificationDataset(split, TrainPreset(AugmentationConfig()), seed=0)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        drop_last=True,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers else None,
        collate_fn=ImageClassificationCollator(),
    )
    it = iter(loader)
    for _ in range(warmup):  # start workers (their first batches include start-up)
        next(it)
    start = time.perf_counter()
    seen = 0
    for _ in range(batches):
        batch = next(it)
        seen += batch["pixel_values"].shape[0]
    seconds = time.perf_counter() - start
    desc = f"{batch['pixel_values'].dtype} {list(batch['pixel_values'].shape)}"
    del it, loader
    return {
        "num_workers": num_workers,
        "batch_size": batch_size,
        "img_s": round(seen / seconds, 1),
        "batch": desc,
        "main_rss_mb": round(rss_mb()),
    }


def bench_mixup(per_image_ms: float, repeat: int) -> dict:
    from timm.data import Mixup

    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=10_000)
    x = torch.randn(64, 3, 224, 224)
    y = torch.randint(0, 10_000, (64,))
    seconds = time_call(lambda: mixup(x.clone(), y), repeat=repeat)
    clone_s = time_call(lambda: x.clone(), repeat=repeat)
    mix_ms = 1e3 * max(seconds - clone_s, 0.0)
    worker_ms = 64 * per_image_ms
    return {
        "mixup_cutmix_batch64_cpu_ms": round(mix_ms, 1),
        "worker_batch64_pipeline_ms": round(worker_ms, 1),
        "mixup_share_of_worker_batch": round(mix_ms / worker_ms, 3),
    }


# ---- driver -----------------------------------------------------------------------------------------------------


def run(quick: bool = False) -> dict:
    torch.set_num_threads(1)
    n_images = 48 if quick else 192
    rounds = 3 if quick else 5
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        paths, source = make_jpegs(n_images, (500, 375), tmp)
        large_paths, _ = make_jpegs(n_images // 2, (800, 600), tmp)
        datas = [_read(p) for p in paths]
        large = [_read(p) for p in large_paths]
        result: dict = {
            "images": source,
            "n_images": len(datas),
            "rounds": rounds,
            "mean_jpeg_kb": round(sum(map(len, datas)) / len(datas) / 1024, 1),
        }
        result["train"] = bench_train(datas, rounds)
        result["ops_224px_ms"] = bench_ops(datas, repeat=3 if quick else 5)
        result["decode_img_s"] = bench_decode({"500x375": datas[: len(large)], "800x600": large}, rounds)
        result["eval"] = bench_eval(datas, rounds)
        torch.set_num_threads(os.cpu_count() or 1)
        workers = min(2, os.cpu_count() or 1)
        result["loader_float32"] = bench_loader(
            datas, batch_size=32 if quick else 64, batches=8 if quick else 24, num_workers=workers
        )
        torch.set_num_threads(1)
        result["mixup"] = bench_mixup(1e3 / result["train"]["ours_float32_img_s"], repeat=3 if quick else 5)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def print_result(result: dict) -> None:
    tr = result["train"]
    print(f"\ninputs: {result['n_images']} x {result['images']} (~{result['mean_jpeg_kb']} KB each)")
    seed = tr["naive_seed_img_s"]
    rows = [
        ("naive seed chain (PIL + v1 float)", "naive_seed_img_s"),
        ("stock v2 on the uint8 tensor", "stock_v2_tensor_img_s"),
        ("stock v2 on the PIL image", "stock_v2_pil_img_s"),
        ("ours (TrainPreset)", "ours_float32_img_s"),
        *[(f"ours, {k.__name__} -> stock v2", f"ours_stock_{k.__name__}_img_s") for k in _stock_ops()],
    ]
    print_table(
        "train pipeline, one core (img/s, float32 3x224x224 out)",
        [(name, tr[key], f"{tr[key] / seed:.2f}x") for name, key in rows]
        + [
            (
                "target (ours vs seed)",
                "",
                f">= {tr['target_speedup']:.1f}x: {'met' if tr['meets_target'] else 'NOT met'}",
            )
        ],
    )
    print_table(
        "per op at 224 px, one core (ms)",
        [
            (name, row["v2_uint8_tensor_ms"], row.get("v2_pil_ms", "-"), row.get("ours_uint8_tensor_ms", "-"))
            for name, row in result["ops_224px_ms"].items()
        ],
        header=("op", "v2 uint8 tensor", "v2 PIL", "ours uint8 tensor"),
    )
    dec = result["decode_img_s"]
    sizes = [k for k in dec if k != "note"]
    print_table(
        "full vs DCT-reduced decode, one core (img/s)",
        [(k, *(dec[s][k] for s in sizes)) for k in dec[sizes[0]]],
        header=("decode / preset", *sizes),
    )
    ev = result["eval"]
    print_table(
        "eval / TTA, one core",
        [
            ("eval preset", f"{ev['eval_img_s']} img/s"),
            ("TTA 5 views", f"{ev['tta5_img_s']} img/s ({ev['tta5_views_s']} views/s)"),
        ],
    )
    ld = result["loader_float32"]
    print_table(
        "DataLoader (ImageClassificationDataset(TrainPreset), all cores)",
        [(f"num_workers={ld['num_workers']}, batch {ld['batch_size']}", f"{ld['img_s']} img/s", ld["batch"])],
    )
    mx = result["mixup"]
    print_table(
        "mixup/cutmix on CPU vs worker time per batch of 64",
        [
            ("timm Mixup (one core)", f"{mx['mixup_cutmix_batch64_cpu_ms']} ms"),
            ("train pipeline for 64 images (one core)", f"{mx['worker_batch64_pipeline_ms']} ms"),
            ("share", f"{100 * mx['mixup_share_of_worker_batch']:.1f} %"),
        ],
    )
    print(f"\nwall: {result['wall_s']} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print_result(result)
    write_results("data", result)


if __name__ == "__main__":
    main()
