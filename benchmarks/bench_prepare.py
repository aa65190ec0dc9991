"""Scale benchmark of the dataset builder: an iNat-2021-sized ``train.json`` → prepared Arrow folder.

Generates a ``train.json`` with 2,686,843 image records over 10,000 categories (paths only, no image files,
~1 GB, the size of the real release), then times, each in a fresh process:

1. ``prepare_data.py --no_verify_files --output_dir OUT`` (parse, filter, label, write the Arrow cache,
   writing the load_from_disk folder) — targets: ≤ 60 s wall, ≤ 4 GB peak RSS on the 2-core reference machine;
2. reopening ``OUT`` — targets: ≤ 1 s, ≤ 500 MB RSS — with ``datasets.load_from_disk`` (what any consumer of the
   folder does; the process holds only datasets/pyarrow) and with ``inat_hf.data.load_prepared`` (whose process
   also imports torch and transformers, as ``import inat_hf`` registers the model classes; reported separately);
3. for reference, ``json.load`` of the same file (the naive baseline the builder avoids).

Usage: ``python -m benchmarks.bench_prepare [--quick]`` (quick: a tenth of the records).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time

from benchmarks.common import REPO_ROOT, peak_rss_of, print_table, write_results

FULL_IMAGES = 2_686_843
NUM_CATEGORIES = 10_000
KINGDOMS = ("Animalia", "Plantae", "Fungi")


def make_categories(n: int, rnd: random.Random) -> list[dict]:
    categories = []
    for cid in range(n):
        kingdom = "Animalia" if cid < int(n * 0.5388) else KINGDOMS[1 + cid % 2]  # 5,388 of 10,000 are animals
        genus = f"Genus{cid // 3}"
        ranks = [
            kingdom,
            f"Phylum{cid % 13}",
            f"Class{cid % 51}",
            f"Order{cid % 273}",
            f"Family{cid % 1103}",
            genus,
            f"epithet{cid}",
        ]
        categories.append(
            {
                "id": cid,
                "name": f"{genus} epithet{cid}",
                "common_name": f"Common {cid}",
                "supercategory": "Animals" if kingdom == "Animalia" else kingdom,
                **dict(zip(("kingdom", "phylum", "class", "order", "family", "genus", "specific_epithet"), ranks)),
                "image_dir_name": f"{cid:05d}_" + "_".join(ranks),
            }
        )
    rnd.shuffle(categories)  # the builder must not rely on order
    return categories


def generate_train_json(path: str, num_images: int, seed: int = 0) -> int:
    """Write an iNat-2021-shaped train.json quickly (string templates, no json.dumps per record)."""
    rnd = random.Random(seed)
    categories = make_categories(NUM_CATEGORIES, rnd)
    dirs = {c["id"]: c["image_dir_name"] for c in categories}
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"info": {"year": 2021, "version": "2021"}, "licenses": [], "categories": ')
        f.write(json.dumps(categories))
        f.write(', "images": [')
        for i in range(num_images):
            cid = i % NUM_CATEGORIES
            lat = "null" if i % 9 == 0 else f"{rnd.uniform(-60, 70):.5f}"
            lon = "null" if i % 9 == 0 else f"{rnd.uniform(-180, 180):.5f}"
            unc = "null" if i % 5 == 0 else str(rnd.randint(1, 30000))
            f.write(
                f'{"," if i else ""}{{"id": {i}, "width": 500, "height": {rnd.choice((333, 375, 500))}, '
                f'"file_name": "train/{dirs[cid]}/{rnd.getrandbits(128):032x}.jpg", "license": {1 + i % 6}, '
                f'"rights_holder": "user{i % 100000}", "date": "2019-0{1 + i % 9}-1{i % 10} 1{i % 10}:35:00+00:00", '
                f'"latitude": {lat}, "longitude": {lon}, "location_uncertainty": {unc}}}'
            )
        f.write('], "annotations": [')
        for i in range(num_images):
            f.write(f'{"," if i else ""}{{"id": {i}, "image_id": {i}, "category_id": {i % NUM_CATEGORIES}}}')
        f.write("]}")
    return os.path.getsize(path)


REOPEN = textwrap.dedent(
    """
    import json, sys, time

    def rss_mb():  # current resident set (not the peak), from /proc
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    t0 = time.perf_counter()
    from inat_hf.data import load_prepared
    t1 = time.perf_counter()
    rss_import = rss_mb()
    prepared = load_prepared(sys.argv[1])
    n = sum(ds.num_rows for ds in prepared.dataset.values())
    row = prepared.dataset["train"].select_columns(["label", "species", "file_name"])[12345]  # no files here: no decode
    t2 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "reopen_s": t2 - t1, "rows": n, "rss_import_mb": rss_import,
                      "rss_mb": rss_mb()}))
    """
)

# What any consumer of the interface does: datasets alone, no torch/transformers in the process.
LOAD_FROM_DISK = textwrap.dedent(
    """
    import json, sys, time
    import datasets

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    t = time.perf_counter()
    ds = datasets.load_from_disk(sys.argv[1])
    n = sum(split.num_rows for split in ds.values())
    row = ds["train"].select_columns(["label", "species", "file_name"])[12345]
    print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": rss_mb(), "rows": n}))
    """
)

JSON_LOAD = textwrap.dedent(
    """
    import json, resource, sys, time
    t = time.perf_counter()
    with open(sys.argv[1]) as f:
        data = json.load(f)
    print(json.dumps({"seconds": time.perf_counter() - t,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def run(quick: bool = False, workdir: str | None = None) -> dict:
    num_images = FULL_IMAGES // 10 if quick else FULL_IMAGES
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = os.path.join(tmp, "inat")
        os.makedirs(root)
        t = time.perf_counter()
        size = generate_train_json(os.path.join(root, "train.json"), num_images)
        gen_s = time.perf_counter() - t
        out = os.path.join(tmp, "prepared")
        cmd = [
            sys.executable,
            str(REPO_ROOT / "scripts" / "prepare_data.py"),
            "--data_dir",
            root,
            "--output_dir",
            out,
            "--splits",
            "train",
            "--no_verify_files",
            "--cache_dir",
            os.path.join(tmp, "cache"),
        ]
        prepare_s, prepare_rss = peak_rss_of(cmd, env=env)
        reopen = json.loads(
            subprocess.run([sys.executable, "-c", REOPEN, out], env=env, check=True, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        plain = json.loads(
            subprocess.run(
                [sys.executable, "-c", LOAD_FROM_DISK, out], env=env, check=True, capture_output=True, text=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        baseline = json.loads(
            subprocess.run(
                [sys.executable, "-c", JSON_LOAD, os.path.join(root, "train.json")],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
    return {
        "images": num_images,
        "json_mb": round(size / 2**20),
        "generate_s": round(gen_s, 1),
        "prepare_s": round(prepare_s, 1),
        "prepare_peak_rss_mb": round(prepare_rss),
        "load_from_disk_s": round(plain["seconds"], 3),
        "load_from_disk_rss_mb": round(plain["rss_mb"]),
        "reopen_s": round(reopen["reopen_s"], 3),
        "reopen_import_s": round(reopen["import_s"], 2),
        "reopen_rss_mb": round(reopen["rss_mb"]),
        "reopen_rss_delta_mb": round(reopen["rss_mb"] - reopen["rss_import_mb"]),
        "rows_after_filter": reopen["rows"],
        "baseline_json_load_s": round(baseline["seconds"], 1),
        "baseline_json_load_rss_mb": round(baseline["rss_mb"]),
        "targets": {"prepare_s": 60, "prepare_peak_rss_mb": 4096, "reopen_s": 1.0, "reopen_rss_mb": 500},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the records")
    parser.add_argument("--workdir", default=None, help="where to write the ~1 GB JSON (default: system temp)")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, workdir=args.workdir)
    print_table(
        "prepare (no file checks)",
        [
            ("images in train.json", f"{result['images']:,}", ""),
            ("train.json size", f"{result['json_mb']:,} MB", ""),
            (
                "baseline: json.load",
                f"{result['baseline_json_load_s']} s",
                f"{result['baseline_json_load_rss_mb']:,} MB RSS",
            ),
            (
                "prepare_data.py (fresh process)",
                f"{result['prepare_s']} s",
                f"{result['prepare_peak_rss_mb']:,} MB peak RSS",
            ),
            (
                "reopen: datasets.load_from_disk",
                f"{result['load_from_disk_s']} s",
                f"{result['load_from_disk_rss_mb']:,} MB RSS (whole process)",
            ),
            ("reopen: inat_hf load_prepared", f"{result['reopen_s']} s", f"{result['reopen_rss_mb']:,} MB RSS"),
            (
                "  of which import inat_hf.data",
                f"{result['reopen_import_s']} s (not in reopen)",
                f"{result['reopen_rss_mb'] - result['reopen_rss_delta_mb']:,} MB RSS",
            ),
        ],
    )
    write_results("prepare", result)


if __name__ == "__main__":
    main()
