"""Run every benchmark and write one results table: ``benchmarks/results.md`` + ``benchmarks/results.json``.

    python -m benchmarks                 # = python -m benchmarks.run_all (full sizes)
    python -m benchmarks --quick         # < 5 minutes (skips `learning`); writes results_quick.md/.json beside
                                         # the full results, never over them
    python -m benchmarks --only data,infer

Each benchmark runs in its own process (thread settings and imports of one cannot skew another) and writes its raw
figures to ``benchmarks/_work/results/<name>.json``; the table puts each baseline, measured in the same run, next
to our figure, with the ratio and the target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import REPO_ROOT, RESULTS_DIR, machine_info

BENCHMARKS = ("prepare", "data", "train", "infer", "learning", "geo", "startup")
# Not run by --quick: it trains two models to the end on real photos (minutes, not seconds).
FULL_ONLY = ("learning",)


def output_paths(quick: bool) -> tuple[Path, Path, Path]:
    """(table, JSON, raw-figures folder): a quick run writes beside the committed full-size results, not over them."""
    suffix = "_quick" if quick else ""
    bench = REPO_ROOT / "benchmarks"
    return (
        bench / f"results{suffix}.md",
        bench / f"results{suffix}.json",
        RESULTS_DIR.with_name(RESULTS_DIR.name + suffix),
    )


def _load(results_dir: Path, name: str) -> dict | None:
    path = results_dir / f"{name}.json"
    return json.loads(path.read_text())["results"] if path.is_file() else None


def _row(what, baseline, ours, ratio, target, met):
    return {"measure": what, "baseline": baseline, "ours": ours, "ratio": ratio, "target": target, "met": met}


def summary_rows(results: dict[str, dict | None]) -> list[dict]:
    """The comparison table: one row per target, baseline and ours from the same run."""
    rows = []
    prep = results.get("prepare")
    if prep:
        n = f"{prep['images']:,} records ({prep['json_mb']} MB)"
        rows.append(
            _row(
                f"prepare train.json, {n}: wall",
                f"json.load alone {prep['baseline_json_load_s']} s",
                f"{prep['prepare_s']} s",
                None,
                "≤ 60 s (full size)",
                prep["prepare_s"] <= 60 if prep["images"] > 2_000_000 else None,
            )
        )
        rows.append(
            _row(
                f"prepare train.json, {n}: peak RSS",
                f"json.load alone {prep['baseline_json_load_rss_mb']:,} MB",
                f"{prep['prepare_peak_rss_mb']:,} MB",
                None,
                "≤ 4096 MB (full size)",
                prep["prepare_peak_rss_mb"] <= 4096 if prep["images"] > 2_000_000 else None,
            )
        )
        rows.append(
            _row(
                "reopen prepared dataset (datasets.load_from_disk, fresh process)",
                "",
                f"{prep['load_from_disk_s']} s, {prep['load_from_disk_rss_mb']} MB RSS",
                None,
                "≤ 1 s, ≤ 500 MB",
                prep["load_from_disk_s"] <= 1 and prep["load_from_disk_rss_mb"] <= 500,
            )
        )
        rows.append(
            _row(
                "reopen with load_prepared after `import inat_hf.data` (torch, transformers)",
                "",
                f"{prep['reopen_s']} s (+{prep['reopen_import_s']} s import), {prep['reopen_rss_mb']} MB RSS "
                f"(+{prep['reopen_rss_delta_mb']} MB for the dataset)",
                None,
                "",
                None,
            )
        )
    data = results.get("data")
    if data:
        t = data["train"]
        rows.append(
            _row(
                "train transform per core (500×375 JPEG → float32 3×224×224)",
                f"{t['naive_seed_img_s']} img/s (seed: PIL + float v1 chain)",
                f"{t['ours_float32_img_s']} img/s",
                t["speedup_float32"],
                "≥ 3.0×",
                t["speedup_float32"] >= 3.0,
            )
        )
        loader = data["loader_float32"]
        train = results.get("train") or {}
        model_rate = train.get("plain_img_s")
        rows.append(
            _row(
                f"DataLoader, {loader['num_workers']} workers (img/s delivered) vs model training step",
                f"model: {model_rate} img/s ({train.get('backbone')} @ {train.get('image_size')} px fp32)"
                if model_rate
                else "",
                f"{loader['img_s']} img/s",
                round(loader["img_s"] / model_rate, 1) if model_rate else None,
                "loader faster than the model",
                loader["img_s"] > model_rate if model_rate else None,
            )
        )
    train = results.get("train")
    if train:
        rows.append(
            _row(
                f"training step, {train['backbone']} @ {train['image_size']} px, batch {train['batch_size']}",
                f"{train['plain_img_s']} img/s (plain PyTorch loop)",
                f"{train['trainer_img_s']} img/s (InatTrainer)",
                train["trainer_vs_plain"],
                "≥ 0.95",
                train["trainer_vs_plain"] >= 0.95,
            )
        )
        rows.append(
            _row(
                "bf16 + channels_last vs fp32 training step (CPU)",
                f"{train['fp32_img_s']} img/s fp32",
                f"{train['bf16_channels_last_img_s']} img/s",
                train["bf16_channels_last_speedup"],
                "report (native bf16: " + str(train.get("cpu_has_native_bf16")) + ")",
                None,
            )
        )
        families = train.get("families")
        if families:
            resnet = families["rates"]["resnet"]
            for family, v in families["rates"].items():
                if family == "resnet":
                    continue
                rows.append(
                    _row(
                        f"training step, {family} ({v['backbone']}) @ {families['image_size']} px, fp32",
                        f"{resnet['img_s']} img/s ({resnet['backbone']})",
                        f"{v['img_s']} img/s",
                        round(v["img_s"] / resnet["img_s"], 2),
                        "report",
                        None,
                    )
                )
    infer = results.get("infer")
    if infer:
        cfg = infer["config"]
        through = {(r["dtype"], r["batch"], r["mode"]): r for r in infer["throughput"]}
        for tta in infer["tta"]:
            if tta["dtype"] != "fp32":
                continue
            single = through[("fp32", tta["batch"], "single view")]
            batched = through[("fp32", tta["batch"], "TTA x5 batched")]
            label = f"5-view TTA cost, {cfg['backbone']} @ {cfg['image_size']} px, batch {tta['batch']}"
            if tta["batch"] >= 32:
                rows.append(
                    _row(
                        label,
                        f"{single['images_per_s']:.1f} img/s single view",
                        f"{batched['images_per_s']:.2f} img/s",
                        round(tta["tta_cost_ratio"], 2),
                        "≤ 5.0 (× single view)",
                        tta["tta_cost_ratio"] <= 5.0,
                    )
                )
                rows.append(
                    _row(
                        "  same, against one forward over as many distinct images",
                        "",
                        "",
                        round(tta["tta_vs_same_compute"], 2),
                        "≈ 1.0 (no TTA overhead)",
                        None,
                    )
                )
            else:
                seq = through[("fp32", tta["batch"], "TTA x5 sequential")]
                rows.append(
                    _row(
                        f"batched vs sequential TTA, batch {tta['batch']}",
                        f"{seq['images_per_s']:.2f} img/s (5 passes)",
                        f"{batched['images_per_s']:.2f} img/s",
                        round(tta["batched_vs_sequential_speedup"], 2),
                        "> 1",
                        tta["batched_vs_sequential_speedup"] > 1,
                    )
                )
        mem = infer.get("streaming_memory")
        if mem:
            rows.append(
                _row(
                    f"evaluation memory, {mem['num_images']:,} images × {mem['num_classes']:,} classes",
                    f"{mem['full_logits_mb']:.0f} MB (full logits)",
                    f"{mem['kept_mb']:.1f} MB kept, +{mem['rss_growth_mb']:.1f} MB RSS",
                    None,
                    "≤ 1 GB extra RSS",
                    mem["rss_growth_mb"] <= 1024,
                )
            )
    geo = results.get("geo")
    if geo:
        real = geo.get("real", {})
        if "skipped" not in real and real:
            best = real["best_loss"]
            knn = real[best]["knn"]
            for loss in ("softmax", "presence"):
                prior = real[loss]["prior"]
                rows.append(
                    _row(
                        f"location prior ({loss} loss), real iNat 2021 records train_60 → val_20 ({prior['num_scored']} "
                        "scored): top-1 / top-5",
                        f"k-NN (great circle, best k={knn['best_k_by_top5']}): {knn['best_top1']:.3f} / "
                        f"{knn['best_top5']:.3f}; chance {real['chance_top1']:.2f} / {real['chance_top5']:.2f}",
                        f"{prior['top1']:.3f} / {prior['top5']:.3f}",
                        None,
                        "top-5 ≥ best k-NN top-5",
                        prior["top5"] >= knn["best_top5"],
                    )
                )
        cost = geo.get("training_cost")
        if cost:
            rows.append(
                _row(
                    f"location prior training, {cost['records']:,} records × {cost['species']:,} species, "
                    f"{cost['epochs']} epoch(s) = {cost['steps']} steps of {cost['batch_size']:,} (one CPU thread): "
                    "wall, peak RSS",
                    f"val k-NN top-5 {cost['knn']['best_top5']:.4f}",
                    f"{cost['wall_s']} s ({cost['train_loop_s']} s training, {cost['records_per_second']:,.0f} "
                    f"records/s), {cost['peak_rss_mb']:,} MB; val top-5 {cost['prior']['top5']:.4f}",
                    None,
                    "reported",
                    None,
                )
            )
    startup = results.get("startup")
    if startup:
        base = startup["baselines"]
        for name, run in startup["commands"].items():
            rows.append(
                _row(
                    f"start-up: `{name}` (fresh process, best of {startup['repeats']})",
                    f"`import torch` {base['import torch']['seconds']} s; bare Python {base['python -c pass']['seconds']} s",
                    f"{run['seconds']} s, {run['peak_rss_mb']:,.0f} MB",
                    None,
                    "≤ 1.5 s",
                    run["seconds"] <= 1.5,
                )
            )
        m = startup["metrics_module"]
        rows.append(
            _row(
                f"metrics of {m['num_images']:,} images (top-k + ECE) via the `evaluate` module",
                f"numpy functions: {m['numpy_s']} s",
                f"{m['evaluate_s']} s",
                round(m["evaluate_s"] / max(m["numpy_s"], 1e-9), 1),
                "reported",
                None,
            )
        )
    learning = results.get("learning")
    if learning and "skipped" not in learning:
        n = (
            f"{learning['settings']['backbone']} from scratch @ {learning['settings']['image_size']} px, "
            f"{learning['train_images']} real photos / {learning['classes']} classes, "
            f"{learning['settings']['epochs']} epochs"
        )
        rows.append(
            _row(
                f"learning: final top-1 (top-5), {n}",
                f"{learning['plain_top1']:.1%} ({learning['plain_top5']:.1%}) plain PyTorch loop",
                f"{learning['trainer_top1']:.1%} ({learning['trainer_top5']:.1%}) InatTrainer",
                None,
                "≥ plain − 2 points",
                learning["top1_difference_points"] >= -2.0,
            )
        )
        rows.append(
            _row(
                "learning: training img/s, same run (epochs alternated)",
                f"{learning['plain_img_s']} img/s plain loop",
                f"{learning['trainer_img_s']} img/s InatTrainer",
                learning["trainer_vs_plain_img_s"],
                "≥ 0.95",
                learning["trainer_vs_plain_img_s"] >= 0.95,
            )
        )
    return rows


def render_markdown(rows: list[dict], meta: dict) -> str:
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return "yes" if v else "**no**"
        return f"{v}×" if isinstance(v, float) else str(v)

    lines = [
        f"# Benchmark results ({'quick' if meta['quick'] else 'full'} mode)",
        "",
        f"Measured {meta['created']} on {meta['machine'].get('cpu_count')} CPU cores "
        f"({meta['machine'].get('platform')}), torch {meta['machine'].get('torch')}; "
        f"`python -m benchmarks{' --quick' if meta['quick'] else ''}` ({meta['seconds']:.0f} s). "
        "Baselines are measured in the same run.",
        "",
        "| measure | baseline | ours | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['measure']} | {cell(r['baseline'])} | {cell(r['ours'])} | {cell(r['ratio'])} | "
        f"{cell(r['target'])} | {cell(r['met'])} |"
        for r in rows
    ]
    if meta.get("failed"):
        lines += ["", "Failed benchmarks: " + ", ".join(meta["failed"])]
    lines += ["", "Raw figures per benchmark: `benchmarks/results.json` (and `benchmarks/_work/results/*.json`)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole suite in under 5 minutes")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {BENCHMARKS}")
    args = parser.parse_args(argv)
    selected = [b.strip() for b in args.only.split(",") if b.strip()]
    if args.quick:
        selected = [b for b in selected if b not in FULL_ONLY]
    unknown = sorted(set(selected) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    results_md, results_json, results_dir = output_paths(args.quick)
    env = dict(os.environ, HF_HUB_OFFLINE="1", INAT_BENCH_RESULTS_DIR=str(results_dir))
    start, failed, seconds = time.perf_counter(), [], {}
    for name in selected:
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}"] + (["--quick"] if args.quick else [])
        print(f"\n######## {' '.join(cmd[1:])}", flush=True)
        t = time.perf_counter()
        if subprocess.run(cmd, cwd=REPO_ROOT, env=env).returncode != 0:
            failed.append(name)
        seconds[name] = round(time.perf_counter() - t, 1)
    results = {name: _load(results_dir, name) for name in BENCHMARKS}
    meta = {
        "created": time.strftime("%Y-%m-%d %H:%M"),
        "quick": args.quick,
        "seconds": time.perf_counter() - start,
        "seconds_per_benchmark": seconds,
        "machine": machine_info(),
        "failed": failed,
    }
    rows = summary_rows(results)
    results_md.write_text(render_markdown(rows, meta))
    results_json.write_text(
        json.dumps({"meta": meta, "summary": rows, "results": results}, indent=2, default=str) + "\n"
    )
    print("\n" + results_md.read_text())
    print(f"written: {results_md.relative_to(REPO_ROOT)}, {results_json.relative_to(REPO_ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
