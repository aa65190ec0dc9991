"""Inference benchmark: what does 5-view TTA cost, and does batching the views pay? (issue 5)

Model-side throughput (images/s, preprocessing excluded: the inputs are ready tensors) of
``InatForImageClassification`` with random-init weights (resnet50, default head, 10,000 labels, 224 px by
default), on CUDA when available, else CPU, in fp32 and bf16 autocast, at batch 1 and 32:

a. single view: one ``[B, 3, S, S]`` forward (``view_logits``);
b. 5-view TTA, batched: one ``[B*5, 3, S, S]`` forward + probability averaging (``tta_logits``);
c. 5-view TTA, sequential: five ``[B, 3, S, S]`` forwards, then the same averaging (batch 1 only: the naive way).

Reported: the TTA cost ratio ``time(b) / time(a)`` per image (target <= 5.0 at batch 32: TTA costs its compute
and nothing more) and the speed-up of batched over sequential TTA at batch 1. Then the streaming evaluator's
memory: top-k reduction of N x 10,000 scores (100k images; 20k in quick mode) must keep ~88 bytes per image, never
N x C (4 GB of float32 logits at 100k x 10k).

Usage: ``python -m benchmarks.bench_infer [--quick] [--backbone resnet18] [--image_size 160] [--device cpu]
[--threads 1]`` (on a shared CPU box pin ``--threads``: OpenMP threads next to another busy process are erratic).
Quick mode (resnet18 at 96 px, one thread unless ``--threads``, best of 2 rounds on a CPU) runs in well under
90 s on the 2-core dev box. Results are printed and written as JSON (``benchmarks/common.py: write_results``);
``run(quick)`` returns them as a dict.
"""

from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # `python benchmarks/bench_infer.py`: make `benchmarks` and `inat_hf` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from benchmarks.common import compare_throughput, print_table, rss_mb, write_results
from inat_hf.inference.evaluator import TopKAccumulator
from inat_hf.inference.tta import average_views, tta_logits, view_logits
from inat_hf.models import InatConfig, InatForImageClassification

TARGET_TTA_RATIO = 5.0
NUM_VIEWS = 5


def _build_model(backbone: str, image_size: int, num_labels: int, device: torch.device, channels_last: bool):
    torch.manual_seed(0)
    config = InatConfig(backbone=backbone, image_size=image_size, id2label={i: f"s{i}" for i in range(num_labels)})
    model = InatForImageClassification(config).eval().to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs on hardware units here (CUDA, or a CPU with AVX512-BF16 / AMX); else it is emulated."""
    if device.type == "cuda":
        return True
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def bench_throughput(model, *, image_size: int, cases, device, rounds: int, calls: int, channels_last: bool):
    """Images/s of single view, batched TTA and (batch 1) sequential TTA for each ``(dtype, batch)`` in ``cases``.

    The modes of one ``(dtype, batch)`` are timed interleaved (``compare_throughput``: round-robin rounds, best
    round kept), so background load on a shared machine hits them alike and their ratio stays meaningful."""
    rows = []
    for dtype, batch in cases:
        bf16 = dtype == "bf16"
        x = torch.randn(batch, NUM_VIEWS, 3, image_size, image_size, device=device)
        single = x[:, 0].contiguous()

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        def run_single(_, single=single, bf16=bf16):
            view_logits(model, single, bf16=bf16, channels_last=channels_last)
            sync()

        def run_batched(_, x=x, bf16=bf16):
            average_views(view_logits(model, x, bf16=bf16, channels_last=channels_last))
            sync()

        def run_sequential(_, x=x, bf16=bf16):
            # the naive way: one forward per view
            per_view = [view_logits(model, x[:, v], bf16=bf16, channels_last=channels_last) for v in range(NUM_VIEWS)]
            average_views(torch.cat(per_view, dim=1))
            sync()

        flat = x.flatten(0, 1).contiguous()  # [B*V, 3, S, S]: as many distinct images as the TTA forward sees

        def run_same_compute(_, flat=flat, bf16=bf16):
            view_logits(model, flat, bf16=bf16, channels_last=channels_last)
            sync()

        candidates = {"single view": run_single, f"TTA x{NUM_VIEWS} batched": run_batched}
        if batch == 1:
            candidates[f"TTA x{NUM_VIEWS} sequential"] = run_sequential
        else:
            candidates[f"single view, batch {batch * NUM_VIEWS}"] = run_same_compute
        measured = compare_throughput(candidates, range(calls), rounds=rounds, warmup=1)
        for mode, m in measured.items():
            n = batch * NUM_VIEWS if mode.startswith("single view, batch") else batch  # images per call
            rows.append(
                {
                    "dtype": dtype,
                    "batch": batch,
                    "mode": mode,
                    "images_per_s": m["best"] * n,
                    "ms_per_image": m["ms_per_item"] / n,
                    "median_images_per_s": m["median"] * n,
                }
            )
    return rows


def summarize(rows):
    """Per ``(dtype, batch)``: ``tta_cost_ratio`` (per-image time, batched TTA / single view), at batch 1
    ``batched_vs_sequential_speedup``, and for larger batches ``tta_vs_same_compute`` (batched TTA vs a single-view
    forward of ``B * V`` distinct images: 1.0 means no cost beyond the forward itself; the cost ratio can exceed
    ``V`` on a CPU whose per-image time grows with the batch, as activations fall out of cache)."""
    index = {(r["dtype"], r["batch"], r["mode"]): r["ms_per_image"] for r in rows}
    out = []
    for dtype, batch in sorted({(r["dtype"], r["batch"]) for r in rows}):
        single = index[(dtype, batch, "single view")]
        batched = index[(dtype, batch, f"TTA x{NUM_VIEWS} batched")]
        entry = {"dtype": dtype, "batch": batch, "tta_cost_ratio": batched / single}
        sequential = index.get((dtype, batch, f"TTA x{NUM_VIEWS} sequential"))
        if sequential is not None:
            entry["batched_vs_sequential_speedup"] = sequential / batched
        same = index.get((dtype, batch, f"single view, batch {batch * NUM_VIEWS}"))
        if same is not None:
            # TTA time vs V images' worth of forward at the SAME batch size: the overhead beyond compute (1.0 = none)
            entry["tta_vs_same_compute"] = batched / (NUM_VIEWS * same)
        out.append(entry)
    return out


def bench_streaming_memory(num_images: int, num_classes: int = 10_000, batch: int = 256) -> dict:
    """Top-k reduction of ``num_images x num_classes`` scores, batch by batch: RSS growth vs the N x C size."""
    acc = TopKAccumulator(k=5, capacity=num_images)  # as evaluate_split: the split size is known
    gen = torch.Generator().manual_seed(0)
    before = rss_mb()
    peak = before
    for start in range(0, num_images, batch):
        n = min(batch, num_images - start)
        acc.update(torch.randn(n, num_classes, generator=gen), torch.randint(0, num_classes, (n,), generator=gen))
        peak = max(peak, rss_mb())
    result = acc.result()
    kept = result.indices.nbytes + result.probs.nbytes + result.labels.nbytes
    return {
        "num_images": num_images,
        "num_classes": num_classes,
        "kept_mb": kept / 2**20,
        "bytes_per_image": kept / num_images,
        "rss_growth_mb": peak - before,
        "full_logits_mb": num_images * num_classes * 4 / 2**20,
    }


def run(
    quick: bool = False,
    *,
    backbone: str | None = None,
    image_size: int | None = None,
    num_labels: int = 10_000,
    device: str | None = None,
    channels_last: bool = False,
    threads: int | None = None,
) -> dict:
    if quick and threads is None:
        threads = 1  # the quick run is what the shared box runs most: pinned, as the comment below explains
    if threads:
        # On a shared 2-core box, 2 intra-op threads next to another busy process run ~15x slower than 1 (OpenMP
        # threads wait at barriers for a descheduled peer): pin the count to compare like with like.
        torch.set_num_threads(threads)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    backbone = backbone or ("resnet18" if quick else "resnet50")
    image_size = image_size or (96 if quick else 224)
    # rounds x calls forward passes per mode (+ 1 warm-up call)
    rounds, calls = ((2 if quick else 3), 1) if device.type == "cpu" else (5, 10)
    cases = [("fp32", 1), ("fp32", 32)]
    notes = []
    if native_bf16(device):
        cases += [("bf16", 1), ("bf16", 32)]
    elif quick:
        notes.append(
            "bf16 skipped in quick mode: this CPU has no native bf16 (AVX512-BF16/AMX), autocast emulates it "
            "at ~20x the fp32 time; run without --quick to measure it"
        )
    else:
        cases += [("bf16", 1)]
        notes.append(
            "bf16 measured at batch 1 only: this CPU has no native bf16 (AVX512-BF16/AMX), autocast emulates "
            "it at ~20x the fp32 time"
        )
    model = _build_model(backbone, image_size, num_labels, device, channels_last)
    # sanity: the batched path is the library's tta_logits
    x = torch.randn(2, NUM_VIEWS, 3, image_size, image_size, device=device)
    torch.testing.assert_close(tta_logits(model, x), average_views(view_logits(model, x)))

    rows = bench_throughput(
        model,
        image_size=image_size,
        cases=cases,
        device=device,
        rounds=rounds,
        calls=calls,
        channels_last=channels_last,
    )
    ratios = summarize(rows)
    memory = bench_streaming_memory(20_000 if quick else 100_000)
    return {
        "config": {
            "backbone": backbone,
            "image_size": image_size,
            "num_labels": num_labels,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "channels_last": channels_last,
            "rounds": rounds,
            "calls_per_round": calls,
            "quick": quick,
            "native_bf16": native_bf16(device),
        },
        "notes": notes,
        "throughput": rows,
        "tta": ratios,
        "target_tta_cost_ratio_at_batch_32": TARGET_TTA_RATIO,
        "streaming_memory": memory,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="resnet18 at 96 px, no emulated bf16 (< 90 s on CPU)")
    parser.add_argument("--backbone", default=None, help="timm ResNet (default: resnet50; resnet18 with --quick)")
    parser.add_argument("--image_size", type=int, default=None, help="input side (default 224; 96 with --quick)")
    parser.add_argument("--num_labels", type=int, default=10_000)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--channels_last", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    result = run(
        args.quick,
        backbone=args.backbone,
        image_size=args.image_size,
        num_labels=args.num_labels,
        device=args.device,
        channels_last=args.channels_last,
        threads=args.threads,
    )
    cfg = result["config"]
    print_table(
        f"{cfg['backbone']} @ {cfg['image_size']} px, {cfg['num_labels']} labels, {cfg['device']} "
        f"({cfg['threads']} threads), model only",
        [
            [r["dtype"], r["batch"], r["mode"], f"{r['images_per_s']:.1f}", f"{r['ms_per_image']:.1f}"]
            for r in result["throughput"]
        ],
        header=["dtype", "batch", "mode", "images/s", "ms/image"],
    )
    print_table(
        f"TTA x{NUM_VIEWS} cost (per-image time vs single view; target <= {TARGET_TTA_RATIO} at batch 32)",
        [
            [
                t["dtype"],
                t["batch"],
                f"{t['tta_cost_ratio']:.2f}",
                f"{t['batched_vs_sequential_speedup']:.2f}x" if "batched_vs_sequential_speedup" in t else "-",
                f"{t['tta_vs_same_compute']:.3f}" if "tta_vs_same_compute" in t else "-",
            ]
            for t in result["tta"]
        ],
        header=["dtype", "batch", "TTA cost ratio", "batched vs sequential", "vs same compute"],
    )
    for note in result["notes"]:
        print(f"note: {note}")
    mem = result["streaming_memory"]
    print_table(
        "streaming evaluation memory (top-5 of each batch of scores)",
        [
            [
                f"{mem['num_images']:,} x {mem['num_classes']:,}",
                f"{mem['kept_mb']:.1f}",
                f"{mem['bytes_per_image']:.0f}",
                f"{mem['rss_growth_mb']:.1f}",
                f"{mem['full_logits_mb']:,.0f}",
            ]
        ],
        header=["images x classes", "kept MB", "bytes/image", "RSS growth MB", "full logits MB"],
    )
    write_results("infer", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
