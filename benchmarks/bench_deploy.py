"""Deployment benchmark: PyTorch eager vs the ONNX export (fp32, static int8) on a 2-vCPU box (a free HF Space).

Speed (one process, the three paths interleaved round by round, so load from other jobs hits them alike): ResNet-50
(``InatForImageClassification``, default head, 5,388 labels, 224 px, random weights: speed does not depend on them)
at 2 threads (``torch.set_num_threads`` / ONNX Runtime's intra-op threads): single-image latency p50 / p95, batch-32
throughput, and 5-view TTA latency per image (the views as one batch + the :mod:`inat_hf.inference.tta` average),
model side on ready inputs. The int8 graph is ``inat-export --quantize int8``'s (static QDQ, per-channel weights),
calibrated on real photos.

Accuracy (valid on a busy machine too): random weights make top-1 agreement meaningless, so a small model is
trained here on the real bird photos (``../shared/data/real_sample/images``, 25 species; resnet18 at 64 px from
scratch, plain AdamW loop, flips + random crops) on 60% of each species, int8 is calibrated on another 20% and all
paths are scored on the last 20%, end to end through ``Predictor`` (torch backend vs ONNX backend: each its own
preprocessing): top-1 of each, top-1 agreement with eager, and the int8 top-1 change in points.

Targets (ratios, same run): ONNX fp32 >= 1.5x eager single-image speed; int8 >= 2.5x eager with <= 1 point top-1
change; 5-view TTA <= 100 ms per image with int8. Results: printed, and JSON (``write_results("deploy", ...)``).

Usage: ``python -m benchmarks.bench_deploy [--quick]``; quick: resnet18 at 112 px, fewer timing rounds, 2 training
epochs on 10 species (a smoke run: its figures are not the targets').
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/bench_deploy.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from benchmarks.common import REPO_ROOT, print_table, write_results

IMAGES = Path(os.environ.get("INAT_REAL_SAMPLE", REPO_ROOT.parent / "shared" / "data" / "real_sample")) / "images"
THREADS = 2
NUM_VIEWS = 5
TARGETS = {"onnx_fp32_speedup": 1.5, "onnx_int8_speedup": 2.5, "int8_top1_change_points": 1.0, "tta_int8_ms": 100.0}
PATHS = ("eager fp32", "ONNX fp32", "ONNX int8")


def _photos(classes: int | None) -> dict[str, list[Path]]:
    folders = sorted(p for p in IMAGES.iterdir() if p.is_dir())[:classes]
    return {f.name: sorted(f.glob("*.jpg")) for f in folders}


def _export(model, folder: Path, processor, calibration: list[Path] | None) -> Path:
    """``inat-export``'s steps (export, optional int8, the folder's files) for an in-memory model."""
    from inat_hf.inference import onnx_export

    folder.mkdir(parents=True)
    graph = folder / "model.onnx"
    fp32 = graph if calibration is None else folder / "fp32.onnx"
    onnx_export.export_onnx(model, str(fp32), image_size=model.config.image_size)
    if calibration is not None:
        onnx_export.quantize_int8(str(fp32), str(graph), onnx_export.preprocess(calibration, processor))
        fp32.unlink()
    model.config.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


def bench_speed(quick: bool, work: Path, calibration: list[Path]) -> dict:
    from inat_hf.inference import tta
    from inat_hf.inference.onnx_model import OnnxClassifier
    from inat_hf.models import InatConfig, InatForImageClassification

    backbone, size, labels = ("resnet18", 112, 5388) if quick else ("resnet50", 224, 5388)
    rounds, batch_rounds = (6, 2) if quick else (30, 5)
    torch.manual_seed(0)
    config = InatConfig(backbone=backbone, image_size=size, id2label={i: f"s{i}" for i in range(labels)})
    model = InatForImageClassification(config).eval()
    processor = model.create_image_processor()
    graphs = {
        "ONNX fp32": _export(model, work / "fp32", processor, None),
        "ONNX int8": _export(model, work / "int8", processor, calibration),
    }
    sessions = {name: OnnxClassifier.from_pretrained(path, threads=THREADS) for name, path in graphs.items()}
    rng = np.random.default_rng(0)
    one, views, batch = (rng.standard_normal((n, 3, size, size), dtype=np.float32) for n in (1, NUM_VIEWS, 32))

    def eager(x):
        return tta.view_logits(model, torch.from_numpy(x))

    runners = {"eager fp32": eager, **{name: (lambda x, s=s: s(x)) for name, s in sessions.items()}}
    cases = {
        "single": (one, rounds, lambda r, x: r(x)),
        "tta": (views, rounds, lambda r, x: tta.average_views(_as_views(r(x)))),
        "batch32": (batch, batch_rounds, lambda r, x: r(x)),
    }
    times: dict[str, dict[str, list[float]]] = {case: {p: [] for p in PATHS} for case in cases}
    for case, (x, n, call) in cases.items():
        for path in PATHS:  # warm-up (first-call allocations, ONNX Runtime's lazy initialisation)
            call(runners[path], x)
        for _ in range(n):
            for path in PATHS:  # interleaved
                start = time.perf_counter()
                call(runners[path], x)
                times[case][path].append(time.perf_counter() - start)
    rows = {}
    for path in PATHS:
        single, views_t, batch_t = (times[c][path] for c in ("single", "tta", "batch32"))
        rows[path] = {
            "single_p50_ms": round(_percentile(single, 50), 1),
            "single_p95_ms": round(_percentile(single, 95), 1),
            "tta5_p50_ms": round(_percentile(views_t, 50), 1),
            "batch32_img_s": round(32 / float(np.median(batch_t)), 1),
        }
    eager_ms = rows["eager fp32"]["single_p50_ms"]
    for path in PATHS:
        rows[path]["speedup_single"] = round(eager_ms / rows[path]["single_p50_ms"], 2)
        rows[path]["speedup_batch32"] = round(rows[path]["batch32_img_s"] / rows["eager fp32"]["batch32_img_s"], 2)
    sizes = {name: round((path / "model.onnx").stat().st_size / 2**20, 1) for name, path in graphs.items()}
    return {
        "backbone": backbone,
        "image_size": size,
        "num_labels": labels,
        "threads": THREADS,
        "rounds": rounds,
        "batch_rounds": batch_rounds,
        "calibration_images": len(calibration),
        "graph_mb": sizes,
        "paths": rows,
    }


def _as_views(logits):
    """``[V, 1, C]`` (one image's views as a batch) -> ``[1, V, C]`` for the views' average."""
    return logits.reshape(1, NUM_VIEWS, -1)


def _train_small_model(train: list[tuple[Path, int]], names: list[str], epochs: int, seed: int = 0):
    """resnet18 @ 64 px from scratch on ``train`` (path, label): AdamW, cosine, random crop + flip of 72 px images."""
    from inat_hf.data.transforms import EvalPreset
    from inat_hf.models import InatConfig, InatForImageClassification

    torch.manual_seed(seed)
    config = InatConfig(
        backbone="resnet18",
        image_size=64,
        attn_layer="none",
        head_hidden_sizes=[],
        drop_rate=0.0,
        id2label=dict(enumerate(names)),
    )
    model = InatForImageClassification(config)
    preset = EvalPreset(image_size=72, resize_size=72, mean=config.image_mean, std=config.image_std)
    images = torch.stack([preset(p) for p, _ in train])  # [N, 3, 72, 72], decoded once
    labels = torch.tensor([y for _, y in train])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    steps = epochs * (len(train) // 32)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=max(steps, 1))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train))
        for start in range(0, len(train) - 31, 32):
            rows = order[start : start + 32]
            top, left = torch.randint(0, 9, (2,))
            x = images[rows, :, top : top + 64, left : left + 64]
            x = torch.where(torch.rand(len(rows), 1, 1, 1) < 0.5, x.flip(-1), x)
            loss = torch.nn.functional.cross_entropy(model(pixel_values=x).logits, labels[rows], label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def bench_accuracy(quick: bool, work: Path) -> dict:
    from inat_hf.inference.predictor import Predictor

    per_class = _photos(10 if quick else None)
    names = sorted(per_class)
    train, calibration, test = [], [], []
    for label, name in enumerate(names):  # per species: 60% train, 20% calibration, 20% held out
        files = per_class[name]
        for i, path in enumerate(files):
            (train if i % 5 < 3 else calibration if i % 5 == 3 else test).append((path, label))
    epochs = 2 if quick else 12
    start = time.perf_counter()
    model = _train_small_model(train, names, epochs)
    train_s = time.perf_counter() - start
    checkpoint = work / "small"
    model.save_pretrained(checkpoint)
    processor = model.create_image_processor()
    _export(model, work / "small_fp32", processor, None)
    _export(model, work / "small_int8", processor, [p for p, _ in calibration])
    paths = [str(p) for p, _ in test]
    truth = np.array([y for _, y in test])
    predictors = {
        "eager fp32": Predictor.from_pretrained(checkpoint, device="cpu"),
        "ONNX fp32": Predictor.from_pretrained(work / "small_fp32", backend="onnx"),
        "ONNX int8": Predictor.from_pretrained(work / "small_int8", backend="onnx"),
    }
    top1 = {
        name: np.array([p.indices[0] for p in predictor.predict(paths, top_k=1, batch_size=32)])
        for name, predictor in predictors.items()
    }
    rows = {
        name: {
            "top1": round(float((pred == truth).mean()), 4),
            "agreement_with_eager": round(float((pred == top1["eager fp32"]).mean()), 4),
        }
        for name, pred in top1.items()
    }
    eager = rows["eager fp32"]["top1"]
    for row in rows.values():
        row["top1_change_points"] = round(100 * (row["top1"] - eager), 2)
    return {
        "model": f"resnet18 @ 64 px from scratch, {epochs} epochs on {len(train)} real photos ({len(names)} species)",
        "train_images": len(train),
        "calibration_images": len(calibration),
        "test_images": len(test),
        "train_seconds": round(train_s, 1),
        "paths": rows,
    }, [p for p, _ in calibration]


def targets(speed: dict, accuracy: dict | None) -> list[dict]:
    rows, paths = [], speed["paths"]
    fp32, int8 = paths["ONNX fp32"]["speedup_single"], paths["ONNX int8"]["speedup_single"]
    change = None if accuracy is None else accuracy["paths"]["ONNX int8"]["top1_change_points"]
    rows.append({"measure": "ONNX fp32 vs eager, single image", "value": fp32, "target": "≥ 1.5×", "met": fp32 >= 1.5})
    rows.append({"measure": "ONNX int8 vs eager, single image", "value": int8, "target": "≥ 2.5×", "met": int8 >= 2.5})
    rows.append(
        {
            "measure": "ONNX int8 top-1 change on held-out photos (points)",
            "value": change,
            "target": "≤ 1 point",
            "met": None if change is None else abs(change) <= TARGETS["int8_top1_change_points"],
        }
    )
    tta_ms = paths["ONNX int8"]["tta5_p50_ms"]
    rows.append(
        {"measure": "5-view TTA with int8, ms per image", "value": tta_ms, "target": "≤ 100 ms", "met": tta_ms <= 100}
    )
    return rows


def run(quick: bool = False) -> dict:
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        accuracy, calibration = None, None
        if IMAGES.is_dir():
            accuracy, calibration = bench_accuracy(quick, work)
        else:  # speed only: calibrate on generated images (the int8 speed does not depend on the photos)
            from inat_hf.inference.onnx_export import generated_images

            calibration = generated_images(16, 256)
        speed = bench_speed(quick, work, calibration[: 16 if quick else 64])
    result = {"quick": quick, "speed": speed, "accuracy": accuracy, "targets": targets(speed, accuracy)}
    if accuracy is None:
        result["skipped_accuracy"] = f"no real photos at {IMAGES}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="resnet18 at 112 px, 2 epochs on 10 species (smoke run)")
    args = parser.parse_args(argv)
    result = run(args.quick)
    s = result["speed"]
    print_table(
        f"{s['backbone']} @ {s['image_size']} px, {s['num_labels']} labels, {s['threads']} threads",
        [
            [
                p,
                r["single_p50_ms"],
                r["single_p95_ms"],
                f"{r['speedup_single']}×",
                r["tta5_p50_ms"],
                r["batch32_img_s"],
            ]
            for p, r in s["paths"].items()
        ],
        header=["path", "1 image p50 ms", "p95 ms", "vs eager", "5-view TTA ms", "batch 32 img/s"],
    )
    if result["accuracy"]:
        a = result["accuracy"]
        print_table(
            f"{a['model']}; {a['test_images']} held-out photos",
            [[p, r["top1"], r["agreement_with_eager"], r["top1_change_points"]] for p, r in a["paths"].items()],
            header=["path", "top-1", "top-1 agreement with eager", "change (points)"],
        )
    print_table(
        "targets",
        [[t["measure"], t["value"], t["target"], t["met"]] for t in result["targets"]],
        ["measure", "value", "target", "met"],
    )
    write_results("deploy", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
