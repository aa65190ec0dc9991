"""Location/date prior: accuracy on the real iNat 2021 sample records and training cost at full iNat size.

    python -m benchmarks.bench_geo [--quick] [--real_only]

1. Real records (``../shared/data/real_sample/inat2021_json``, 100 species; skipped with a reason when absent):
   train on ``train_60.json``, score on ``test_20.json``: the prior (defaults, softmax loss) over :data:`SEEDS`, a
   prior on place only (``use_date=False``) over the same seeds, the presence loss with geo_prior's positive weight
   (``num_labels``) and SINR's (2048) on one seed each; every prior also scored with the dates removed (a photo
   without a date). Baselines in the same run: a k-NN over place and one over place and date, k and the date weight
   chosen on ``val_20.json`` (never on the scored split), and chance.
   Targets: the prior's mean top-5 >= the place+date k-NN's; its date-less mean top-5 >= the place-only prior's.
2. Training cost: ``inat-train-geo`` with its default schedule on a synthetic iNat-size JSON (2,686,843 records,
   10,000 species, as the 2021 ``train.json``; quick mode: 100,000 records, 1,000 species, 2 epochs) plus a
   10,000-record val JSON from the same ranges: wall time and peak RSS of the whole process (JSON parsing,
   training, the val evaluation and its k-NN baselines), the training loop's own time, and prior vs k-NN on that
   val split. ``--real_only`` skips it (12 minutes at full size) and carries the last measured figures over from
   ``results.json``, with their date.
   Everything runs on one torch thread (``THREADS``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
SEEDS = (0, 1, 2)
# name -> (GeoPriorConfig options, seeds): the default prior, the place-only prior the date-less answer must match,
# and the presence loss under each anchor's positive weight.
VARIANTS = {
    "prior": ({}, SEEDS),
    "place-only prior": ({"use_date": False}, SEEDS),
    "presence, pos_weight num_labels (geo_prior)": ({"loss": "presence"}, SEEDS[:1]),
    "presence, pos_weight 2048 (SINR)": ({"loss": "presence", "presence_pos_weight": 2048.0}, SEEDS[:1]),
}


def _spread(runs: list[dict], key: str) -> dict[str, float]:
    values = [r[key] for r in runs]
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else None}


def real_records(quick: bool) -> dict:
    if not (REAL_DIR / "train_60.json").is_file():
        return {"skipped": f"real sample records not found at {REAL_DIR}"}
    from inat_hf.data.source import DataArguments
    from inat_hf.geo.arguments import GeoTrainingArguments
    from inat_hf.geo.training import train_prior

    out = {"train": "train_60.json", "select": "val_20.json", "scored": "test_20.json", "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = DataArguments(
            data_dir=str(REAL_DIR),
            splits="train=train_60.json,val=val_20.json,test=test_20.json",
            taxon="none",
            cache_dir=tmp,
        )
        for name, (config, seeds) in VARIANTS.items():
            runs = []
            for seed in seeds[:1] if quick else seeds:
                args = GeoTrainingArguments(
                    output_dir=os.path.join(tmp, "prior"),
                    eval_split="test",
                    select_split="val",
                    min_steps=300 if quick else 1000,
                    batch_size=256,
                    num_threads=THREADS,
                    seed=seed,
                )
                report = train_prior(data, args, **config)
                t = report["training"]
                runs.append(
                    {"seed": seed, "top1": report["prior"]["top1"], "top5": report["prior"]["top5"]}
                    | {f"without_date_{k}": report["prior_without_date"][k] for k in ("top1", "top5")}
                    | {"seconds": t["seconds"], "steps": t["steps"], "batch_size": t["batch_size"]}
                )
                print(name, runs[-1], flush=True)
            keys = ("top1", "top5", "without_date_top1", "without_date_top5")
            out["variants"][name] = {"config": config, "runs": runs} | {k: _spread(runs, k) for k in keys}
        out["knn"], out["counts"] = report["knn"], report["counts"]  # chosen on val, the same in every run
        out["num_scored"] = report["prior"]["num_scored"]
        out["chance_top1"], out["chance_top5"] = report["chance_top1"], report["chance_top5"]
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
        "knn": {name: {k: v for k, v in m.items() if k != "selection"} for name, m in report["knn"].items()},
    }


def carried_training_cost(quick: bool) -> dict | None:
    """The last measured training cost in ``results.json`` (``results_quick.json``), with its date."""
    path = REPO_ROOT / "benchmarks" / ("results_quick.json" if quick else "results.json")
    entry = json.loads(path.read_text()).get("benchmarks", {}).get("geo") if path.is_file() else None
    cost = (entry or {}).get("results", {}).get("training_cost")
    if cost is None:
        return None
    return cost | {"carried_over_from": cost.get("carried_over_from") or entry["created"]}


def run(quick: bool, real_only: bool = False) -> dict:
    cost = carried_training_cost(quick) if real_only else training_cost(quick)
    return {"quick": quick, "real": real_records(quick), "training_cost": cost}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--real_only", action="store_true", help="skip the iNat-size run; keep its last figures")
    args = parser.parse_args(argv)
    result = run(args.quick, args.real_only)
    real = result["real"]
    if "skipped" not in real:
        rows = []
        for name, v in real["variants"].items():
            n = len(v["runs"])
            rows.append([f"{name} ({n} seed{'s' * (n > 1)})", f"{v['top1']['mean']:.4f}", f"{v['top5']['mean']:.4f}",
                         f"{v['without_date_top1']['mean']:.4f}", f"{v['without_date_top5']['mean']:.4f}"])  # fmt: skip
        for key, what in (("place", "place"), ("place_date", "place + date")):
            knn = real["knn"][key]
            rows.append([f"k-NN over {what} (k={knn['k']}, α={knn['date_weight']:g})", f"{knn['top1']:.4f}",
                         f"{knn['top5']:.4f}", "", ""])  # fmt: skip
        rows.append(["chance", f"{real['chance_top1']:.4f}", f"{real['chance_top5']:.4f}", "", ""])
        print_table(
            "real iNat 2021 records: train_60 -> test_20 (k-NN chosen on val_20)",
            rows,
            ["model", "top-1", "top-5", "no date top-1", "no date top-5"],
        )
    else:
        print(real["skipped"])
    cost = result["training_cost"]
    if cost is not None:
        print_table(
            "prior training cost (default schedule, one thread)"
            + (f", carried over from {cost['carried_over_from']}" if cost.get("carried_over_from") else ""),
            [
                [
                    f"{cost['records']:,} records, {cost['species']:,} species: {cost['epochs']} epoch(s), "
                    f"{cost['steps']} steps",
                    cost["wall_s"],
                    cost["train_loop_s"],
                    cost["records_per_second"],
                    cost["peak_rss_mb"],
                    f"{cost['prior']['top1']:.4f} / {cost['prior']['top5']:.4f}",
                ]
            ],
            ["input", "wall s", "training s", "records/s", "peak RSS MB", "val prior top-1/5"],
        )
    write_results("geo", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
