"""Location/date prior: accuracy on the real iNat 2021 sample records and training cost at full iNat size.

    python -m benchmarks.bench_geo [--quick]

1. Real records (``../shared/data/real_sample/inat2021_json``, 100 species; skipped with a reason when absent):
   train on ``train_60.json``, score on ``val_20.json``: the prior with the softmax loss and with the paper's
   presence-only loss, the great-circle k-NN baseline (every k, best reported) and chance, all in this run.
   Target: the prior's top-5 >= the best k-NN top-5.
2. Training cost: ``inat-train-geo`` with its default schedule on a synthetic iNat-size JSON (2,686,843 records,
   10,000 species, as the 2021 ``train.json``; quick mode: 100,000 records, 1,000 species, 2 epochs) plus a
   10,000-record val JSON from the same ranges: wall time and peak RSS of the whole process (JSON parsing,
   training, the val evaluation and its k-NN baseline), the training loop's own time, and prior vs k-NN on that
   val split.
   Everything runs on one torch thread (``THREADS``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from benchmarks.common import REPO_ROOT, peak_rss_of, print_table, write_results

REAL_DIR = REPO_ROOT.parent / "shared" / "data" / "real_sample" / "inat2021_json"
FULL_RECORDS, FULL_SPECIES, VAL_RECORDS = 2_686_843, 10_000, 10_000
# One torch thread: on the shared 2-core box, two OpenMP threads per process under load slow a step down ~10x.
THREADS = 1


def real_records(quick: bool) -> dict:
    if not (REAL_DIR / "train_60.json").is_file():
        return {"skipped": f"real sample records not found at {REAL_DIR}"}
    from inat_hf.data.source import DataArguments
    from inat_hf.geo.arguments import GeoTrainingArguments
    from inat_hf.geo.training import train_prior

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = DataArguments(
            data_dir=str(REAL_DIR), splits="train=train_60.json,val=val_20.json", taxon="none", cache_dir=tmp
        )
        for loss in ("softmax", "presence"):
            report = train_prior(
                data,
                GeoTrainingArguments(
                    output_dir=os.path.join(tmp, loss),
                    min_steps=300 if quick else 1000,
                    batch_size=256,
                    num_threads=THREADS,
                ),
                loss=loss,
            )
            out[loss] = {
                "prior": report["prior"],
                "knn": report["knn"],
                "training": report["training"],
                "counts": report["counts"],
            }
            out["chance_top1"], out["chance_top5"] = report["chance_top1"], report["chance_top5"]
    out["best_loss"] = max(("softmax", "presence"), key=lambda k: (out[k]["prior"]["top5"], out[k]["prior"]["top1"]))
    return out


def synthetic_json(path: Path, num_records: int, num_species: int, seed: int = 0) -> None:
    """An images-only iNat-style JSON: species folders in file_name, clustered per-species ranges (the same for
    every ``seed``), dates; ``seed`` draws the records."""
    centres = np.random.default_rng(0)
    centre_lat = np.degrees(np.arcsin(centres.uniform(-0.8, 0.95, num_species)))
    centre_lon = centres.uniform(-180, 180, num_species)
    rng = np.random.default_rng(seed)
    species = rng.integers(0, num_species, num_records)
    lat = np.clip(centre_lat[species] + rng.normal(0, 5, num_records), -90, 90).round(5)
    lon = ((centre_lon[species] + rng.normal(0, 8, num_records) + 180) % 360 - 180).round(5)
    day = rng.integers(0, 365, num_records)
    dates = (np.datetime64("2019-01-01") + day).astype(str)
    with open(path, "w") as f:
        f.write('{"images": [')
        for i in range(num_records):
            s = int(species[i])
            name = f"{s:05d}_Animalia_Chordata_Aves_Order{s % 50}_Family{s % 400}_Genus{s % 3000}_sp{s}"
            f.write(
                ("," if i else "")
                + f'{{"id": {i}, "file_name": "train/{name}/{i}.jpg", "date": "{dates[i]} 12:00:00+00:00", '
                f'"latitude": {lat[i]}, "longitude": {lon[i]}}}'
            )
        f.write("]}")


def training_cost(quick: bool) -> dict:
    records, species = (100_000, 1_000) if quick else (FULL_RECORDS, FULL_SPECIES)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_json(Path(tmp) / "train.json", records, species, seed=1)
        synthetic_json(Path(tmp) / "val.json", VAL_RECORDS, species, seed=2)
        cmd = [
            sys.executable,
            "-m",
            "inat_hf.commands.train_geo",
            "--data_dir",
            tmp,
            "--splits",
            "train=train.json,val=val.json",
            "--taxon",
            "none",
            "--num_threads",
            str(THREADS),
            "--cache_dir",
            str(Path(tmp) / "cache"),
            "--output_dir",
            str(Path(tmp) / "prior"),
        ] + (["--min_steps", "0"] if quick else [])  # 2 epochs, as at full size (where min_steps never binds)
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        seconds, rss = peak_rss_of(cmd, env=env, cwd=REPO_ROOT)
        report = json.loads((Path(tmp) / "prior" / "geo_report.json").read_text())
    training = report["training"]
    return {
        "records": records,
        "species": species,
        "epochs": training["epochs"],
        "steps": training["steps"],
        "batch_size": training["batch_size"],
        "sampled_negatives": report["config"]["sampled_negatives"],
        "wall_s": round(seconds, 1),
        "train_loop_s": training["seconds"],
        "records_per_second": training["records_per_second"],
        "peak_rss_mb": round(rss),
        "val_records": VAL_RECORDS,
        "prior": report["prior"],
        "knn": {k: v for k, v in report["knn"].items() if k != "per_k"},
    }


def run(quick: bool) -> dict:
    return {"quick": quick, "real": real_records(quick), "training_cost": training_cost(quick)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.quick)
    real = result["real"]
    if "skipped" not in real:
        rows = [
            [f"prior ({loss} loss)", f"{real[loss]['prior']['top1']:.4f}", f"{real[loss]['prior']['top5']:.4f}"]
            for loss in ("softmax", "presence")
        ]
        knn = real["softmax"]["knn"]
        rows.append([f"k-NN, best k={knn['best_k_by_top5']}", f"{knn['best_top1']:.4f}", f"{knn['best_top5']:.4f}"])
        rows.append(["chance", f"{real['chance_top1']:.4f}", f"{real['chance_top5']:.4f}"])
        print_table("real iNat 2021 records: train_60 -> val_20", rows, ["model", "top-1", "top-5"])
    else:
        print(real["skipped"])
    cost = result["training_cost"]
    print_table(
        "prior training cost (default schedule, one thread)",
        [
            [
                f"{cost['records']:,} records, {cost['species']:,} species: {cost['epochs']} epoch(s), "
                f"{cost['steps']} steps",
                cost["wall_s"],
                cost["train_loop_s"],
                cost["records_per_second"],
                cost["peak_rss_mb"],
                f"{cost['prior']['top1']:.4f} / {cost['prior']['top5']:.4f}",
                f"{cost['knn']['best_top1']:.4f} / {cost['knn']['best_top5']:.4f}",
            ]
        ],
        ["input", "wall s", "training s", "records/s", "peak RSS MB", "val prior top-1/5", "val k-NN top-1/5"],
    )
    write_results("geo", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
