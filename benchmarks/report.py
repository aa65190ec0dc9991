"""``results.md`` is written from ``results.json`` by this module, never by hand.

``results.json`` holds one entry per benchmark, ``{"created", "quick", "seconds", "machine", "results"}`` (plus
``"source"`` where the figures were carried over from an earlier file rather than written by the runner);
:func:`render` turns the whole file into Markdown: a summary (one row per target, each baseline from the run of the
figure beside it) and one section per benchmark, whose tables are written from that benchmark's own figures.
``python -m benchmarks`` merges the benchmarks it ran into the file and re-renders it; ``python -m benchmarks
--render`` re-renders only. Light on purpose: no torch, no inat_hf (the tests render without a model in sight).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable

from benchmarks.bench_quickstart import DEMO, INSTALL, TESTS
from benchmarks.bench_startup import TIMM_TRAIN

# Benchmarks in the order they run and appear; train_families only holds a separate `bench_train --families` run.
ORDER = (
    "quickstart",
    "prepare",
    "data",
    "train",
    "train_families",
    "infer",
    "deploy",
    "learning",
    "geo",
    "calibration",
)
ORDER += ("startup",)


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    return str(v)


def table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table (cells through :func:`_cell`: None blank, bools yes / **no**)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _n(v, spec: str = "") -> str:
    """A number as text (``–`` where the run did not record it)."""
    return "–" if v is None else format(v, spec)


def _row(what, baseline, ours, ratio, target, met):
    return {"measure": what, "baseline": baseline, "ours": ours, "ratio": ratio, "target": target, "met": met}


# ---- summary ----------------------------------------------------------------------------------------------------


def _prepare_rows(prep: dict, _: dict) -> list[dict]:
    n = f"{prep['images']:,} records ({prep['json_mb']} MB)"
    full = prep["images"] > 2_000_000
    return [
        _row(
            f"prepare train.json, {n}: wall",
            f"json.load alone {prep['baseline_json_load_s']} s",
            f"{prep['prepare_s']} s",
            None,
            "≤ 60 s (full size)",
            prep["prepare_s"] <= 60 if full else None,
        ),
        _row(
            f"prepare train.json, {n}: peak RSS",
            f"json.load alone {prep['baseline_json_load_rss_mb']:,} MB",
            f"{prep['prepare_peak_rss_mb']:,} MB",
            None,
            "≤ 4096 MB (full size)",
            prep["prepare_peak_rss_mb"] <= 4096 if full else None,
        ),
        _row(
            "reopen prepared dataset (datasets.load_from_disk, fresh process)",
            "",
            f"{prep['load_from_disk_s']} s, {prep['load_from_disk_rss_mb']} MB RSS",
            None,
            "≤ 1 s, ≤ 500 MB",
            prep["load_from_disk_s"] <= 1 and prep["load_from_disk_rss_mb"] <= 500,
        ),
        _row(
            "reopen with load_prepared after `import inat_hf.data` (torch, transformers)",
            "",
            f"{prep['reopen_s']} s (+{prep['reopen_import_s']} s import), {prep['reopen_rss_mb']} MB RSS "
            f"(+{prep['reopen_rss_delta_mb']} MB for the dataset)",
            None,
            "",
            None,
        ),
    ]


def _data_rows(data: dict, results: dict) -> list[dict]:
    t, loader = data["train"], data["loader_float32"]
    train = results.get("train") or {}
    model_rate = train.get("plain_img_s")
    return [
        _row(
            "train transform per core (500×375 JPEG → float32 3×224×224)",
            f"{t['naive_seed_img_s']} img/s (seed: PIL + float v1 chain)",
            f"{t['ours_float32_img_s']} img/s",
            t["speedup_float32"],
            f"≥ {t['target_speedup']}×",
            t["speedup_float32"] >= t["target_speedup"],
        ),
        _row(
            f"DataLoader, {loader['num_workers']} workers (img/s delivered) vs model training step (train benchmark)",
            f"model: {model_rate} img/s ({train.get('backbone')} @ {train.get('image_size')} px fp32)"
            if model_rate
            else "",
            f"{loader['img_s']} img/s",
            round(loader["img_s"] / model_rate, 1) if model_rate else None,
            "loader faster than the model",
            loader["img_s"] > model_rate if model_rate else None,
        ),
    ]


def _train_rows(train: dict, _: dict) -> list[dict]:
    return [
        _row(
            f"training step, {train['backbone']} @ {train['image_size']} px, batch {train['batch_size']}",
            f"{train['plain_img_s']} img/s (plain PyTorch loop)",
            f"{train['trainer_img_s']} img/s (InatTrainer)",
            train["trainer_vs_plain"],
            "≥ 0.95",
            train["trainer_vs_plain"] >= 0.95,
        ),
    ] + (
        []
        if "bf16_skipped" in train
        else [
            _row(
                "bf16 + channels_last vs fp32 training step (CPU)",
                f"{train['fp32_img_s']} img/s fp32",
                f"{train['bf16_channels_last_img_s']} img/s",
                train["bf16_channels_last_speedup"],
                f"report (native bf16: {train.get('cpu_has_native_bf16')})",
                None,
            )
        ]
    )


def _infer_rows(infer: dict, _: dict) -> list[dict]:
    cfg, rows = infer["config"], []
    through = {(r["dtype"], r["batch"], r["mode"]): r for r in infer["throughput"]}
    for tta in infer["tta"]:
        if tta["dtype"] != "fp32":
            continue
        single = through[("fp32", tta["batch"], "single view")]
        batched = through[("fp32", tta["batch"], "TTA x5 batched")]
        if tta["batch"] >= 32:
            rows.append(
                _row(
                    f"5-view TTA cost, {cfg['backbone']} @ {cfg['image_size']} px, batch {tta['batch']}",
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
    return rows


def _mean_sd(v: dict, key: str) -> str:
    m = v[key]
    return f"{m['mean']:.3f}" + (f" ± {m['sd']:.3f}" if m.get("sd") is not None else "")


def _seeds(v: dict) -> str:
    return f"{len(v['runs'])} seed{'s' if len(v['runs']) > 1 else ''}"


def _deploy_rows(deploy: dict, _: dict) -> list[dict]:
    s = deploy["speed"]
    eager = s["paths"]["eager fp32"]
    where = f"{s['backbone']} @ {s['image_size']} px, {s['threads']} threads"
    baselines = {
        "ONNX fp32 vs eager, single image": f"eager {eager['single_p50_ms']} ms ({where})",
        "ONNX int8 vs eager, single image": f"eager {eager['single_p50_ms']} ms ({where})",
        "5-view TTA with int8, ms per image": f"eager {eager['tta5_p50_ms']} ms",
        "ONNX int8 top-1 change on held-out photos (points)": "eager top-1 "
        + (f"{deploy['accuracy']['paths']['eager fp32']['top1']:.1%}" if deploy.get("accuracy") else "–"),
    }
    rows = []
    for t in deploy["targets"]:
        ratio = t["value"] if t["target"].endswith("×") else None
        ours = "–" if t["value"] is None else (f"{t['value']}×" if ratio is not None else str(t["value"]))
        rows.append(_row(t["measure"], baselines[t["measure"]], ours, None, t["target"], t["met"]))
    return rows


def _geo_rows(geo: dict, _: dict) -> list[dict]:
    rows, real = [], geo.get("real") or {}
    if real and "skipped" not in real:
        prior, place_only = real["variants"]["prior"], real["variants"]["place-only prior"]
        knn = real["knn"]
        where = f"real iNat 2021 records {real['train']} → {real['scored']} ({real['num_scored']:,} scored)"
        rows.append(
            _row(
                f"location prior, {where}, {_seeds(prior)}: mean top-1 / top-5",
                f"k-NN over place + date (k={knn['place_date']['k']}, α={knn['place_date']['date_weight']:g}, chosen on "
                f"{real['select']}): {knn['place_date']['top1']:.3f} / {knn['place_date']['top5']:.3f}; over place "
                f"only: {knn['place']['top1']:.3f} / {knn['place']['top5']:.3f}",
                f"{prior['top1']['mean']:.3f} / {prior['top5']['mean']:.3f}",
                None,
                "top-5 ≥ place+date k-NN top-5",
                prior["top5"]["mean"] >= knn["place_date"]["top5"],
            )
        )
        rows.append(
            _row(
                f"location prior without the date, {where}, {_seeds(prior)}: mean top-1 / top-5",
                f"place-only prior ({_seeds(place_only)}): {place_only['top1']['mean']:.3f} / "
                f"{place_only['top5']['mean']:.3f}",
                f"{prior['without_date_top1']['mean']:.3f} / {prior['without_date_top5']['mean']:.3f}",
                None,
                "top-5 ≥ place-only prior top-5",
                prior["without_date_top5"]["mean"] >= place_only["top5"]["mean"],
            )
        )
    cost = geo.get("training_cost")
    if cost:
        carried = (
            f" (carried over from the run of {cost['carried_over_from']})" if cost.get("carried_over_from") else ""
        )
        rows.append(
            _row(
                f"location prior training, {cost['records']:,} records × {cost['species']:,} species, "
                f"{cost['epochs']} epoch(s) = {cost['steps']:,} steps of {cost['batch_size']:,} (one CPU thread): "
                f"wall, peak RSS{carried}",
                None,
                f"{cost['wall_s']} s ({cost['train_loop_s']} s training, {cost['records_per_second']:,.0f} "
                f"records/s), {cost['peak_rss_mb']:,} MB; val top-5 {cost['prior']['top5']:.4f}",
                None,
                "reported",
                None,
            )
        )
    return rows


def _calibration_rows(cal: dict, _: dict) -> list[dict]:
    rows = []
    for part, what in (("demo", "demo model, demo val"), ("real_photos", "real bird photos, their val split")):
        r = cal.get(part) or {}
        if not r or "skipped" in r:
            continue
        for name, run in r["runs"].items():
            before, after = run["before"]["ece"], run["after"]["ece"]
            rows.append(
                _row(
                    f"calibration ({what}; {name}): ECE on the {r['report_images']} held-out images, fit on the "
                    f"other {r['fit_images']}",
                    f"{before:.4f} uncalibrated",
                    f"{after:.4f} (T = {r['temperature']['after']:.3g})",
                    None,
                    "lower after",
                    after < before,
                )
            )
    return rows


def _startup_rows(startup: dict, _: dict) -> list[dict]:
    base, rows = startup["baselines"], []
    for name, run in startup["commands"].items():
        rows.append(
            _row(
                f"start-up: `{name}` (fresh process, best of {startup['repeats']})",
                f"`import torch` {base['import torch']['seconds']} s; bare Python {base['python -c pass']['seconds']} s"
                + (f"; timm `train.py --help` {base[TIMM_TRAIN]['seconds']} s" if TIMM_TRAIN in base else ""),
                f"{run['seconds']} s, {run['peak_rss_mb']:,.0f} MB",
                None,
                run["target"],
                run["met"],
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
    return rows


def _learning_rows(learning: dict, _: dict) -> list[dict]:
    if "skipped" in learning:
        return []
    s = learning["settings"]
    n = (
        f"{s['backbone']} from scratch @ {s['image_size']} px, {learning['train_images']} real photos / "
        f"{learning['classes']} classes, {s['epochs']} epochs"
    )
    return [
        _row(
            f"learning: final top-1 (top-5), {n}",
            f"{learning['plain_top1']:.1%} ({learning['plain_top5']:.1%}) plain PyTorch loop",
            f"{learning['trainer_top1']:.1%} ({learning['trainer_top5']:.1%}) InatTrainer",
            None,
            "≥ plain − 2 points",
            learning["top1_difference_points"] >= -2.0,
        ),
        _row(
            "learning: training img/s, same run (epochs alternated)",
            f"{learning['plain_img_s']} img/s plain loop",
            f"{learning['trainer_img_s']} img/s InatTrainer",
            learning["trainer_vs_plain_img_s"],
            "≥ 0.95",
            learning["trainer_vs_plain_img_s"] >= 0.95,
        ),
    ]


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60):02d} s"


def _quickstart_rows(q: dict, _: dict) -> list[dict]:
    tests = ", ".join(f"{n} {kind}" for kind, n in q["tests"].items())
    return [
        _row(
            "Quick start from a fresh clone: install + demo, wall",
            f"install {_minutes(q['install_s'])}",
            f"demo {_minutes(q['demo_s'])}; together {_minutes(q['install_s'] + q['demo_s'])}",
            None,
            "≤ 15 min",
            q["install_s"] + q["demo_s"] <= 15 * 60,
        ),
        _row("the README's test command, same clone", "", f"{tests} in {_minutes(q['tests_s'])}", None, "≤ 10 min",
             q["tests_s"] <= 10 * 60),
    ]  # fmt: skip


SUMMARY: dict[str, Callable[[dict, dict], list[dict]]] = {
    "quickstart": _quickstart_rows,
    "prepare": _prepare_rows,
    "data": _data_rows,
    "train": _train_rows,
    "infer": _infer_rows,
    "deploy": _deploy_rows,
    "learning": _learning_rows,
    "geo": _geo_rows,
    "calibration": _calibration_rows,
    "startup": _startup_rows,
}


def summary_rows(results: dict[str, dict | None]) -> list[dict]:
    """The comparison table: one row per target, each with ``bench`` (the benchmark whose run measured it)."""
    rows = []
    for name, rows_of in SUMMARY.items():
        if results.get(name):
            rows += [{**r, "bench": name} for r in rows_of(results[name], results)]
    return rows


# ---- one section per benchmark ----------------------------------------------------------------------------------


def _prepare_section(r: dict) -> list[str]:
    return table(
        ["step (fresh process each)", "wall", "RSS"],
        [
            ["baseline: `json.load` of train.json", f"{r['baseline_json_load_s']} s", f"{r['baseline_json_load_rss_mb']:,} MB peak"],
            ["`prepare_data.py --no_verify_files`", f"{r['prepare_s']} s", f"{r['prepare_peak_rss_mb']:,} MB peak"],
            ["reopen: `datasets.load_from_disk`", f"{r['load_from_disk_s']} s", f"{r['load_from_disk_rss_mb']:,} MB"],
            [
                "reopen: `load_prepared` (after `import inat_hf.data`)",
                f"{r['reopen_s']} s (+{r['reopen_import_s']} s import)",
                f"{r['reopen_rss_mb']:,} MB (+{r['reopen_rss_delta_mb']} MB for the dataset)",
            ],
        ],
    )  # fmt: skip


_PIPELINES = {
    "naive_seed": "seed chain (PIL decode, full-resolution `ToTensor`, v1 float ops)",
    "stock_v2_tensor": "same recipe, stock torchvision v2 ops on the decoded uint8 tensor",
    "stock_v2_pil": "same recipe, stock torchvision v2 ops on the PIL image (reference-preset style)",
    "ours_float32": "`TrainPreset`",
}
_KERNELS = {
    "FusedColorJitter": "v2.ColorJitter",
    "RandomRotationNearest": "v2.RandomRotation",
    "RandomGaussianBlur": "v2.RandomApply(v2.GaussianBlur)",
}
_DECODES = {
    "decode_pil": "PIL decode",
    "decode_full": "`decode_image` (torchvision's libjpeg-turbo, full size)",
    "decode_reduced_m224": "reduced decode, m = 224",
    "train_full": "`TrainPreset`, full decode",
    "train_reduced_m792": "`TrainPreset`, reduced m = 792 (smallest crop keeps 224 px)",
    "train_reduced_m224": "`TrainPreset`, reduced m = 224",
    "eval_full": "`EvalPreset`, full decode",
    "eval_reduced_m256": "`EvalPreset`, reduced m = 256",
}


def _data_section(r: dict) -> list[str]:
    t = r["train"]
    seed, ours = t["naive_seed_img_s"], t["ours_float32_img_s"]
    rows = [[label, t[f"{key}_img_s"], f"{t[f'{key}_img_s'] / seed:.2f}×"] + [""] for key, label in _PIPELINES.items()]
    for kernel, stock in _KERNELS.items():
        rate = t[f"ours_stock_{kernel}_img_s"]
        rows.append([f"`TrainPreset`, `{kernel}` → `{stock}`", rate, f"{rate / seed:.2f}×", rate < ours])
    rows[3][3] = f"target ≥ {t['target_speedup']}×: {_cell(t['meets_target'])}"
    out = ["Train recipe, float32 3×224×224 out, one core (img/s):", ""]
    out += table(["pipeline", "img/s", "vs seed chain", "slower than `TrainPreset` (kernel kept)"], rows)
    out += ["", "Per op at 224 px, one core (ms; the preset's input is the uint8 tensor):", ""]
    out += table(
        ["op", "v2, uint8 tensor", "v2, PIL image", "ours, uint8 tensor"],
        [
            [op, _n(v.get("v2_uint8_tensor_ms")), _n(v.get("v2_pil_ms")), _n(v.get("ours_uint8_tensor_ms"))]
            for op, v in r["ops_224px_ms"].items()
        ],
    )
    dec = r["decode_img_s"]
    sizes = [k for k in dec if k != "note"]
    out += [
        "",
        "Full-size vs DCT-reduced JPEG decode (PIL `draft` keeping the shorter side ≥ m), one core (img/s):",
        "",
    ]
    out += table(
        ["decode / preset", *sizes], [[_DECODES.get(k, k), *(dec[s][k] for s in sizes)] for k in dec[sizes[0]]]
    )
    ev, ld, mx = r["eval"], r["loader_float32"], r["mixup"]
    out += ["", "Evaluation, loading and mixing:", ""]
    out += table(
        ["measure", "figure"],
        [
            ["`EvalPreset`, one core", f"{ev['eval_img_s']} img/s"],
            ["5-view `TTAPreset`, one core", f"{ev['tta5_img_s']} img/s ({ev['tta5_views_s']} views/s)"],
            [
                f"DataLoader as the Trainer builds it, {ld['num_workers']} workers, batch {ld['batch_size']}",
                f"{ld['img_s']} img/s",
            ],
            [
                "timm Mixup (mixup + cutmix, 10,000 classes) on a batch of 64, one core",
                f"{mx['mixup_cutmix_batch64_cpu_ms']} ms = {100 * mx['mixup_share_of_worker_batch']:.1f} % of a "
                f"worker's {mx['worker_batch64_pipeline_ms']} ms for that batch",
            ],
        ],
    )
    return out


def _families_table(f: dict) -> list[str]:
    rates = f["rates"]
    base = rates["resnet"]
    return [
        f"Plain PyTorch training step per backbone family, {f['image_size']} px, batch {f['batch_size']}, fp32:",
        "",
        *table(
            ["family", "backbone", "img/s", f"vs {base['backbone']}"],
            [[fam, v["backbone"], v["img_s"], f"{v['img_s'] / base['img_s']:.2f}×"] for fam, v in rates.items()],
        ),
    ]


def _train_section(r: dict) -> list[str]:
    rows = [
        [f"plain PyTorch loop, fp32, batch {r['batch_size']}", r["plain_img_s"], ""],
        [f"InatTrainer, fp32, batch {r['batch_size']}", r["trainer_img_s"], r["trainer_vs_plain"]],
    ]
    if "bf16_skipped" in r:
        rows.append([f"bf16 + channels_last: skipped, {r['bf16_skipped']}", "", ""])
    else:
        rows.append(["plain loop, fp32, batch 8", r["fp32_img_s"], ""])
        rows.append(
            [
                f"plain loop, bf16 + channels_last, batch 8 (native bf16: {r.get('cpu_has_native_bf16')})",
                r["bf16_channels_last_img_s"],
                r["bf16_channels_last_speedup"],
            ]
        )
    threads = f", {r['threads']} torch thread(s)" if r.get("threads") else ""
    out = [f"{r['backbone']} @ {r['image_size']} px{threads}:", "", *table(["loop", "img/s", "ratio"], rows)]
    return out + (["", *_families_table(r["families"])] if r.get("families") else [])


def _infer_section(r: dict) -> list[str]:
    out = table(
        ["dtype", "batch", "mode", "img/s", "ms/img"],
        [
            [t["dtype"], t["batch"], t["mode"], f"{t['images_per_s']:.2f}", f"{t['ms_per_image']:.1f}"]
            for t in r["throughput"]
        ],
    )
    out += [""] + table(
        ["dtype", "batch", "TTA cost (× single view)", "batched vs sequential", "vs same compute"],
        [
            [
                t["dtype"],
                t["batch"],
                f"{t['tta_cost_ratio']:.2f}",
                _n(t.get("batched_vs_sequential_speedup"), ".2f"),
                _n(t.get("tta_vs_same_compute"), ".2f"),
            ]
            for t in r["tta"]
        ],
    )
    return out + ["", *(f"Note: {n}" for n in r.get("notes", []))]


def _deploy_section(r: dict) -> list[str]:
    s = r["speed"]
    out = [
        f"{s['backbone']} @ {s['image_size']} px, {s['num_labels']:,} labels, {s['threads']} threads, model side:",
        "",
    ]
    out += table(
        ["path", "1 image p50 ms", "p95 ms", "× eager", "5-view TTA ms/image", "batch 32 img/s", "× eager", "graph MB"],
        [[p, v["single_p50_ms"], v["single_p95_ms"], v["speedup_single"], v["tta5_p50_ms"], v["batch32_img_s"],
          v["speedup_batch32"], s["graph_mb"].get(p, "")] for p, v in s["paths"].items()],
    )  # fmt: skip
    a = r.get("accuracy")
    if a:
        out += ["", f"Accuracy, end to end through `Predictor`: {a['model']}; int8 calibrated on "
                f"{a['calibration_images']} other photos; {a['test_images']} held-out photos:", ""]  # fmt: skip
        out += table(
            ["path", "top-1", "top-1 agreement with eager", "top-1 change (points)"],
            [[p, f"{v['top1']:.1%}", f"{v['agreement_with_eager']:.1%}", v["top1_change_points"]] for p, v in a["paths"].items()],
        )  # fmt: skip
    elif r.get("skipped_accuracy"):
        out += ["", f"Accuracy skipped: {r['skipped_accuracy']}"]
    return out


def _learning_section(r: dict) -> list[str]:
    if "skipped" in r:
        return [f"Skipped: {r['skipped']}"]
    out = table(
        ["loop", "top-1", "top-5", "training img/s", "training s"],
        [
            ["plain PyTorch loop", f"{r['plain_top1']:.1%}", f"{r['plain_top5']:.1%}", r["plain_img_s"], r["plain_seconds"]],
            ["InatTrainer", f"{r['trainer_top1']:.1%}", f"{r['trainer_top5']:.1%}", r["trainer_img_s"], r["trainer_seconds"]],
        ],
    )  # fmt: skip
    fixed = round(r["trainer_run_training_seconds"] - r["trainer_seconds"], 1)
    return out + [
        "",
        f"All of `run_training` (model build, Trainer set-up, final save, model card, curves): "
        f"{r['trainer_run_training_seconds']} s, of which {fixed} s around the loop.",
    ]


def _calibration_section(r: dict) -> list[str]:
    out = []
    for part, title in (("demo", "Demo"), ("real_photos", "Real bird photos")):
        p = r.get(part) or {}
        if "skipped" in p:
            out += [f"{title}: skipped: {p['skipped']}", ""]
            continue
        fitted = f"T {p['temperature']['before']:g} → {p['temperature']['after']:.3g}"
        if "fusion_weight" in p:
            fitted += f", w {p['fusion_weight']['before']:g} → {p['fusion_weight']['after']:.3g}"
        out += [f"{title} ({p.get('model') or p.get('command')}): fit on {p['fit_images']} images, {fitted}:", ""]
        rows = []
        for name, run in p["runs"].items():
            for when, m in run.items():
                backoff = m.get("backoff_precision")
                rows.append(
                    [
                        name,
                        when,
                        f"{m['ece']:.4f}",
                        f"{m['nll']:.3f}",
                        f"{m['top1']:.1%}",
                        f"{m['mean_confidence']:.1%}",
                    ]
                    + [
                        "" if "backoff_coverage" not in m else "-" if backoff is None else f"{backoff:.1%}",
                        f"{m['backoff_coverage']:.1%}" if "backoff_coverage" in m else "",
                    ]
                )
        out += table(
            ["run", "", "ECE", "NLL", "top-1", "mean confidence", "back-off precision", "back-off answers"], rows
        )
        out.append("")
    u = r.get("unusual_real_records") or {}
    if "skipped" in u:
        return out + [f"Unusual here: skipped: {u['skipped']}"]
    if u:
        out += [
            f'"Unusual here and now" on the real iNat 2021 records ({u["records"]:,} val_20 records with a location; '
            f"no images): how often p(answer | place, date) / p(answer) falls below the threshold. {u['simulation']}. "
            f"Default threshold: {u['default_threshold']:g}.",
            "",
        ]
        out += table(
            ["prior ratio below", "fires on right answers", "fires on wrong answers (simulated)"],
            [[t, f"{f['right']:.1%}", f"{f['wrong']:.1%}"] for t, f in u["fires"].items()],
        )
    return out


def _steps(training: dict) -> str:
    return f"{_n(training.get('steps'), ',')} × {_n(training.get('batch_size'), ',')}"


def _geo_section(r: dict) -> list[str]:
    out, real = [], r.get("real") or {}
    if "skipped" in real:
        out += [f"Real records skipped: {real['skipped']}", ""]
    elif real:
        rows = [
            [f"{name} ({_seeds(v)})", _mean_sd(v, "top1"), _mean_sd(v, "top5"), _mean_sd(v, "without_date_top1"),
             _mean_sd(v, "without_date_top5"), _n(statistics.fmean(x["seconds"] for x in v["runs"]), ".1f"),
             _steps(v["runs"][0])]
            for name, v in real["variants"].items()
        ]  # fmt: skip
        for key, what in (("place", "place"), ("place_date", "place + date")):
            m = real["knn"][key]
            rows.append([f"k-NN over {what}, k={m['k']}, α={m['date_weight']:g}", f"{m['top1']:.3f}",
                         f"{m['top5']:.3f}", "", "", "", ""])  # fmt: skip
        rows.append(["chance", f"{real['chance_top1']:.3f}", f"{real['chance_top5']:.3f}", "", "", "", ""])
        out += [
            f"Real iNat 2021 records, {real['train']} → {real['scored']} ({real['num_scored']:,} scored); mean ± sd "
            f'over seeds; the k-NNs\' k and date weight α chosen on {real["select"]}; "without date": the same '
            "records with their dates removed:",
            "",
        ]
        out += table(
            ["model", "top-1", "top-5", "top-1 without date", "top-5 without date", "training s", "steps × batch"],
            rows,
        ) + [""]
    c = r.get("training_cost")
    if c:
        carried = f" Carried over from the run of {c['carried_over_from']}." if c.get("carried_over_from") else ""
        out += [
            f"Default `inat-train-geo` run on {c['records']:,} synthetic records × {c['species']:,} species "
            f"(+ {c.get('val_records', 0):,} val records), one torch thread, whole process.{carried}",
            "",
        ]
        out += table(
            ["epochs", "steps × batch", "sampled negatives", "wall s", "training s", "records/s", "peak RSS MB",
             "val prior top-1 / top-5"],
            [[c["epochs"], f"{c['steps']:,} × {c['batch_size']:,}", _n(c.get("sampled_negatives"), ","), c["wall_s"],
              c["train_loop_s"], f"{c['records_per_second']:,.0f}", f"{c['peak_rss_mb']:,}",
              f"{c['prior']['top1']:.4f} / {c['prior']['top5']:.4f}"]],
        )  # fmt: skip
    return out


def _startup_section(r: dict) -> list[str]:
    rows = [
        [f"`{name}` (baseline)", v["seconds"], _n(v.get("peak_rss_mb"), ",.0f"), "", ""]
        for name, v in r["baselines"].items()
    ]
    rows += [
        [f"`{name}`", v["seconds"], f"{v['peak_rss_mb']:,.0f}", v["target"], v["met"]]
        for name, v in r["commands"].items()
    ]
    m = r["metrics_module"]
    return table([f"command (fresh process, best of {r['repeats']})", "wall s", "peak RSS MB", "target", "met"], rows) + [
        "",
        f"Metrics of {m['num_images']:,} images (top-k + ECE): numpy functions {m['numpy_s']} s, through the "
        f"`evaluate` module {m['evaluate_s']} s.",
    ]  # fmt: skip


def _quickstart_section(q: dict) -> list[str]:
    return [
        f"Commit {q['commit']}; `.venv` {q['venv_gb']} GB.",
        "",
        *table(
            ["step", "command", "wall"],
            [
                ["install", f"`{q['commands']['install']}`", _minutes(q["install_s"])],
                ["demo", f"`{q['commands']['demo']}`", _minutes(q["demo_s"])],
                ["tests", f"`{q['commands']['tests']}`", _minutes(q["tests_s"])],
            ],
        ),
        "",
        "The demo's table (its evaluation's `results.md`):",
        "",
        *q["demo_table"],
    ]


SECTIONS: dict[str, tuple[str, str, Callable[[dict], list[str]]]] = {
    "quickstart": (
        "Quick start",
        "The README's commands in a fresh clone of the repository, as a newcomer runs them (pip's wheel cache warm).",
        _quickstart_section,
    ),
    # name: (title, intro without figures, the tables)
    "prepare": (
        "Preparing an iNat-size train.json",
        "A generated train.json shaped as the 2021 release's (paths only; full mode: its size), prepared and reopened "
        "in fresh processes.",
        _prepare_section,
    ),
    "data": (
        "Data pipeline",
        "Real bird photos upscaled to iNat sizes, JPEG q90; candidates interleaved, best round of each. A custom "
        "kernel stays only where swapping it back for the stock op makes the preset slower.",
        _data_section,
    ),
    "train": (
        "Training step",
        "The same model, batches, optimizer groups, mixing and schedule through InatTrainer and a plain PyTorch "
        "loop, interleaved; median step after warm-up.",
        _train_section,
    ),
    "train_families": (
        "Training step per backbone family",
        "`bench_train --families`: the plain loop of the training-step benchmark for one backbone per family.",
        _families_table,
    ),
    "infer": (
        "Inference and TTA",
        "Model-side throughput on ready tensors (random weights, 10,000 labels), modes of one (dtype, batch) "
        "interleaved; then the streaming evaluator's memory.",
        _infer_section,
    ),
    "deploy": (
        "Deployment: PyTorch eager vs ONNX fp32 vs static int8",
        "The three paths interleaved round by round in one process (random weights for speed); accuracy from a "
        "small model trained on real photos, scored end to end on held-out ones.",
        _deploy_section,
    ),
    "learning": (
        "Learning on real photos",
        "InatTrainer and a plain PyTorch loop train the same model from scratch in one process with their epochs "
        "alternated, each with its own random streams; img/s counts the time inside the epochs.",
        _learning_section,
    ),
    "geo": (
        "Location/date prior",
        "The prior against k-NNs over place and over place and date, a place-only prior and chance on real records "
        "(also without the date), and the cost of a default training run at iNat size.",
        _geo_section,
    ),
    "calibration": (
        'Calibration and "unusual here"',
        "`calibrate.py`'s fit (temperature T, fusion weight w: minimum NLL) on a seeded half of val, scored before and "
        'after on the other half; and how often the "unusual here and now" flag fires.',
        _calibration_section,
    ),
    "startup": (
        "Start-up",
        "Each command in a fresh process as a user starts it; best wall time and that run's peak RSS.",
        _startup_section,
    ),
}


def run_line(entry: dict) -> str:
    """Where one benchmark's figures come from: date, mode, wall time, load, machine (and carried-over source)."""
    m = entry.get("machine") or {}
    parts = [
        f"Measured {entry['created']}",
        "quick mode" if entry.get("quick") else "full mode",
        f"{m.get('cpu_count', '?')} CPU cores",
        f"load average {m.get('load_avg_1m', '?')}",
    ]
    if m.get("torch"):
        parts.append(f"torch {m['torch']}")
    if entry.get("seconds") is not None:
        cpu = f" ({entry['cpu_seconds']:.0f} s CPU)" if entry.get("cpu_seconds") is not None else ""
        parts.append(f"{entry['seconds']:.0f} s{cpu}")
    line = ", ".join(parts) + "."
    return line + (f" {entry['source']}" if entry.get("source") else "")


def render(doc: dict) -> str:
    """``results.md`` from the content of ``results.json``."""
    entries = {name: doc["benchmarks"][name] for name in ORDER if doc["benchmarks"].get(name)}
    results = {name: e["results"] for name, e in entries.items()}
    if (results.get("train") or {}).get("families"):  # a full train run measures the families itself
        entries.pop("train_families", None)
    meta = doc.get("meta") or {}
    quick = bool(meta.get("quick"))
    lines = [
        f"# Benchmark results ({'quick' if quick else 'full'} mode)",
        "",
        f"Written by `python -m benchmarks{' --quick' if quick else ''}` from "
        f"`benchmarks/results{'_quick' if quick else ''}.json`; do not edit by hand. Each section says which run "
        "measured it; a baseline is measured in the same run as the figure beside it unless its row names another "
        "benchmark.",
        "",
        "## Summary",
        "",
    ]
    dates = {name: e["created"][:10] for name, e in entries.items()}
    lines += table(
        ["measure", "baseline", "ours", "ratio", "target", "met", "run"],
        [
            [r["measure"], r["baseline"], r["ours"], None if r["ratio"] is None else f"{r['ratio']}×", r["target"], r["met"], f"{r['bench']} {dates[r['bench']]}"]
            for r in summary_rows(results)
        ],
    )  # fmt: skip
    if meta.get("failed"):
        lines += ["", "Failed in the last run: " + ", ".join(meta["failed"])]
    for name, entry in entries.items():
        title, intro, tables = SECTIONS[name]
        lines += ["", f"## {title} (`bench_{name.split('_')[0]}`)", "", intro + " " + run_line(entry), ""]
        lines += tables(entry["results"])
        for extra in entry["results"].get("earlier_measurements", []):  # ad-hoc runs, kept with their date
            lines += [
                "",
                f"{extra['title']}; measured {extra['measured']}:",
                "",
                *table(extra["header"], extra["rows"]),
            ]
    return "\n".join(line.rstrip() for line in lines).rstrip() + "\n"


# ---- the README's generated blocks ------------------------------------------------------------------------------

README_MARK = (
    "<!-- generated:{name}: `python -m benchmarks --render` writes this block from benchmarks/results.json -->"
)
README_END = "<!-- /generated:{name} -->"
README_RESULTS = ("learning", "geo", "calibration", "deploy")  # the benchmarks whose summary rows the README repeats


def _readme_quickstart(doc: dict) -> list[str]:
    """The Quick-start commands (bench_quickstart's, the ones it times) and what its last run measured."""
    entry = doc["benchmarks"].get("quickstart")
    lines = ["```bash", f"{INSTALL} && {DEMO}", "```", ""]
    if not entry or entry["results"]["commands"] != {"install": INSTALL, "demo": DEMO, "tests": TESTS}:
        lines.append("(Not timed since these commands last changed: `python -m benchmarks --only quickstart`.)")
    else:
        q, m = entry["results"], entry.get("machine") or {}
        tests = ", ".join(f"{n} {kind}" for kind, n in q["tests"].items())
        lines.append(
            f"Timed from a fresh clone (commit {q['commit']}, {entry['created'][:10]}, {m.get('cpu_count', '?')} "
            f"cores, load average {m.get('load_avg_1m', '?')} at the end, pip's wheel cache warm): install "
            f"{_minutes(q['install_s'])}, demo {_minutes(q['demo_s'])}; the `.venv` took {q['venv_gb']} GB; the "
            f"tests below: {tests} in {_minutes(q['tests_s'])}."
        )
    return lines + ["", "Then the tests (offline):", "", "```bash", f". .venv/bin/activate && {TESTS}", "```"]


def _readme_demo(doc: dict) -> list[str]:
    entry = doc["benchmarks"].get("quickstart")
    return entry["results"]["demo_table"] if entry else ["(not measured yet)"]


def _readme_results(doc: dict) -> list[str]:
    entries = {name: doc["benchmarks"][name] for name in README_RESULTS if doc["benchmarks"].get(name)}
    rows = summary_rows({name: e["results"] for name, e in entries.items()})
    return table(
        ["measure", "baseline (same run)", "ours", "target", "met", "run"],
        [[r["measure"], r["baseline"], r["ours"], r["target"], r["met"], f"{r['bench']} {entries[r['bench']]['created'][:10]}"]
         for r in rows],
    )  # fmt: skip


README_BLOCKS: dict[str, Callable[[dict], list[str]]] = {
    "quickstart": _readme_quickstart,
    "demo": _readme_demo,
    "results": _readme_results,
}


def render_readme(readme: str, doc: dict) -> str:
    """``readme`` with every generated block rewritten from ``doc`` (the text between a block's two markers)."""
    for name, block in README_BLOCKS.items():
        start, end = README_MARK.format(name=name), README_END.format(name=name)
        pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), flags=re.S)
        if not pattern.search(readme):
            raise ValueError(f"README.md lacks the generated block {name!r}: put {start!r} and {end!r} where it goes")
        new = f"{start}\n" + "\n".join(block(doc)) + f"\n{end}"
        readme = pattern.sub(lambda _, new=new: new, readme)  # (a function: no backslash escapes in `new`)
    return readme
