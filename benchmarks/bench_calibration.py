"""Calibration: does fitting the temperature (and the fusion weight) on one part of val lower ECE on the other part?
And how often does "unusual here and now" fire on right and on wrong answers?

    python -m benchmarks.bench_calibration [--quick]

1. Demo (``scripts/demo.sh``'s model flow, in a temporary folder): ``prepare_data.py --demo`` -> ``train.py
   configs/demo.yaml`` -> ``train_geo_prior.py`` -> ``calibrate.py --geo_prior`` (fit on a seeded half of val, report
   on the other half): ECE, NLL, top-1 and back-off before/after, image-only and fused with the prior.
2. Real bird photos (``../shared/data/real_sample/images``, 25 species; read in place): the plain-loop model of
   ``bench_learning`` (resnet18 from scratch at 64 px, label smoothing 0.1, mixup/cutmix: trained to be
   under-confident) for ``REAL_EPOCHS`` epochs on its training split, then the same fit/report halves of its
   validation split through the library (``collect_view_logits`` + ``calibrate``, as ``calibrate.py`` runs them).
   The photos have no taxonomy and no locations: image-only ECE/NLL/top-1.
3. "Unusual here" on the real iNat 2021 records (``inat2021_json``, 100 species; no images): the default prior
   trained on ``train_60``, then per ``val_20`` record the prior ratio ``p(y | place, date) / p(y)`` of (a) the true
   species, standing for a right answer, and (b) a species drawn from the training label frequencies, other than
   the true one, standing for a wrong answer that is unrelated to the place. Real confusions are often between
   species that live together, so (b) overstates how often a real wrong answer is flagged; (a) is exact for a
   right answer. Rates at several thresholds justify the default (``DEFAULT_UNUSUAL_BELOW``).

Target: ECE after < ECE before on the held-out half, on the demo and on the real photos.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from benchmarks.common import REPO_ROOT, print_table, write_results

REAL = Path(os.environ.get("INAT_REAL_SAMPLE", REPO_ROOT.parent / "shared" / "data" / "real_sample"))
REAL_EPOCHS = 8
THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.5)
METRICS = ("ece", "nll", "top1", "mean_confidence", "backoff_precision", "backoff_coverage")


def _before_after(report: dict) -> dict:
    """The figures of a calibration report that results.json keeps."""
    keep = {k: report[k] for k in ("fit_images", "report_images", "seed", "temperature") if k in report}
    if "fusion_weight" in report:
        keep["fusion_weight"] = report["fusion_weight"]
    keep["runs"] = {
        name: {when: {k: m[k] for k in METRICS if k in m} for when, m in run.items()}
        for name, run in report["runs"].items()
    }
    return keep


def demo(quick: bool, work: Path) -> dict:
    """The demo model flow, each step a project script (as scripts/demo.sh runs them), then calibrate.py."""
    py = [sys.executable]
    epochs = ["--num_train_epochs", "2"] if quick else []
    steps = [
        ["scripts/prepare_data.py", "--demo", "--data_dir", work / "inat_root", "--output_dir", work / "prepared"],
        ["scripts/train.py", "configs/demo.yaml", "--dataset_dir", work / "prepared", "--output_dir", work / "model"]
        + epochs,
        ["scripts/train_geo_prior.py", "--dataset_dir", work / "prepared", "--output_dir", work / "geo_prior"],
        ["scripts/calibrate.py", "--model_dir", work / "model", "--dataset_dir", work / "prepared", "--split", "val"]
        + ["--geo_prior", work / "geo_prior", "--no_progress"],
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))  # this checkout's inat_hf, whatever is installed
    for step in steps:
        subprocess.run([*py, *map(str, step)], cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((work / "model" / "calibration.json").read_text())
    return {"command": "scripts/calibrate.py --split val --geo_prior (demo model)", **_before_after(report)}


def real_photos(quick: bool) -> dict:
    images = REAL / "images"
    if not images.is_dir():
        return {"skipped": f"real photos not found at {images}"}
    from benchmarks import bench_learning as L
    from inat_hf.inference.calibration import calibrate, collect_view_logits
    from inat_hf.inference.predictor import Predictor

    classes, rows = L.split_files(images, max_classes=10 if quick else None)
    epochs = 2 if quick else REAL_EPOCHS
    torch.set_num_threads(1)
    loop = L.PlainLoop(rows["train"], len(classes), epochs)
    for _ in range(epochs):
        loop.run_epoch()
    model = loop.model.eval()
    predictor = Predictor(model, model.create_image_processor(), device="cpu")
    logits, labels = collect_view_logits(predictor, L.as_dataset(rows["val"]), progress=False)
    report = calibrate(logits, labels, temperature=model.config.temperature).report
    return {
        "model": f"{L.SETTINGS['backbone']} from scratch @ {L.SETTINGS['image_size']} px, {epochs} epochs, "
        f"label smoothing {L.SETTINGS['label_smoothing']}, mixup/cutmix (bench_learning's plain loop)",
        "classes": len(classes),
        "train_images": len(rows["train"]),
        **_before_after(report),
    }


def unusual_real_records(quick: bool, work: Path) -> dict:
    json_dir = REAL / "inat2021_json"
    if not (json_dir / "train_60.json").is_file():
        return {"skipped": f"real records not found at {json_dir}"}
    from inat_hf.data.source import DataArguments, load_data
    from inat_hf.geo.arguments import DEFAULT_UNUSUAL_BELOW, GeoTrainingArguments
    from inat_hf.geo.fusion import GeoFusion
    from inat_hf.geo.records import split_records
    from inat_hf.geo.training import train_prior
    from inat_hf.models import GeoPriorModel

    data = DataArguments(  # location columns only, as train_prior reads them: no image file is opened
        data_dir=str(json_dir),
        splits="train=train_60.json,val=val_20.json",
        taxon="none",
        cache_dir=str(work),
        verify_files=False,
        image_storage="path",
        resize_shorter=None,
    )
    # bench_geo's settings (one torch thread: two per process under load slow a step down ~10x)
    args = GeoTrainingArguments(
        output_dir=str(work / "prior"), min_steps=300 if quick else 1000, batch_size=256, num_threads=1
    )
    train_prior(data, args)
    val = split_records(load_data(data, ["val"]).dataset["val"], "val_20")
    val = val.subset(val.has_location)
    prior = GeoPriorModel.from_pretrained(args.output_dir)
    geo = GeoFusion(prior, [prior.config.id2label[i] for i in range(prior.config.num_labels)])  # its own labels
    frequencies = np.asarray(geo.model.config.class_prior)
    rng = np.random.default_rng(0)
    wrong = rng.choice(len(frequencies), size=len(val), p=frequencies / frequencies.sum())
    while (same := wrong == val.labels).any():  # a wrong answer is never the true species
        wrong[same] = rng.choice(len(frequencies), size=int(same.sum()), p=frequencies / frequencies.sum())
    ratio = {
        kind: geo.prior_ratio(val, slice(None), torch.from_numpy(answers)).numpy()
        for kind, answers in (("right", val.labels), ("wrong", wrong))
    }
    rows = {
        str(t): {kind: float((r < t).mean()) for kind, r in ratio.items()}
        for t in sorted({*THRESHOLDS, DEFAULT_UNUSUAL_BELOW})
    }
    return {
        "records": len(val),
        "default_threshold": DEFAULT_UNUSUAL_BELOW,
        "fires": rows,
        "median_ratio": {kind: float(np.median(r)) for kind, r in ratio.items()},
        "simulation": "right = the true species; wrong = a species drawn from the training label frequencies "
        "(not the true one), unrelated to the place: an upper bound on how often a real wrong answer is flagged",
    }


def run(quick: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "demo").mkdir()
        (Path(tmp) / "geo").mkdir()
        # The demo's steps are processes of their own: they run beside the in-process parts (wall time only).
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            demo_result = pool.submit(demo, quick, Path(tmp) / "demo")
            result = {"quick": quick, "real_photos": real_photos(quick)}
            result["unusual_real_records"] = unusual_real_records(quick, Path(tmp) / "geo")
            result["demo"] = demo_result.result()
        return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 training epochs, 10 photo classes, short prior")
    args = parser.parse_args(argv)
    result = run(args.quick)
    rows = []
    for part in ("demo", "real_photos"):
        r = result[part]
        if "skipped" in r:
            rows.append([part, r["skipped"]])
            continue
        for name, run_ in r["runs"].items():
            for when, m in run_.items():
                rows.append([part, name, when, f"{m['ece']:.4f}", f"{m['nll']:.4f}", f"{m['top1']:.4f}"])
    print_table("calibration on the held-out half", rows, ["data", "run", "", "ECE", "NLL", "top-1"])
    unusual = result["unusual_real_records"]
    if "skipped" not in unusual:
        print_table(
            "unusual here: fires on (simulated) right / wrong answers, real records",
            [[t, f"{f['right']:.1%}", f"{f['wrong']:.1%}"] for t, f in unusual["fires"].items()],
            ["prior ratio <", "right", "wrong"],
        )
    write_results("calibration", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
