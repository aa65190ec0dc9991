"""Start-up: how long until a command answers ``--help``, and what ``import inat_hf`` costs.

Usage: ``python -m benchmarks.bench_startup [--quick] [--timm_train PATH]`` (quick: one run of each instead of the
best of three).

Each command runs in a fresh process, as a user starts it (``python scripts/<name>.py --help``); the figure is the
best wall time of the runs and that run's peak RSS. Baselines measured in the same run: a bare interpreter,
``python -c "import torch"``, and timm's own ``train.py --help`` (the anchor: it imports torch, torchvision and timm
before parsing). timm's train.py is not part of the timm package: give a checkout's ``train.py`` with
``--timm_train`` or ``$TIMM_TRAIN_PY`` (it is looked for next to this repository too, at
``../pytorch-image-models/train.py``), run with the installed timm; without one the row says so. The targets live
here, not in tests (``tests/test_package.py`` checks what is imported): ≤ 1.5 s on the 2-core reference machine, except
for the commands whose help lists ``InatConfig``'s and ``TrainingArguments``' fields (both classes import torch; the
model package imports timm), which are held to the anchor's ``train.py --help`` of the same run.

Also: the project's metrics through the ``evaluate`` module against the numpy functions underneath.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from benchmarks.common import REPO_ROOT, peak_rss_of, print_table, write_results

COMMANDS = {
    "prepare_data.py --help": ["scripts/prepare_data.py", "--help"],
    "predict.py --help": ["scripts/predict.py", "--help"],
    "evaluate.py --help": ["scripts/evaluate.py", "--help"],
    "train.py --help": ["scripts/train.py", "--help"],
    "train_geo_prior.py --help": ["scripts/train_geo_prior.py", "--help"],
    "app.py --help": ["scripts/app.py", "--help"],
    "import inat_hf": ["-c", "import inat_hf"],
}
BASELINES = {"python -c pass": ["-c", "pass"], "import torch": ["-c", "import torch"]}
TIMM_TRAIN = "timm train.py --help"
ANCHORED = {"train.py --help", "train_geo_prior.py --help"}  # their help needs torch, timm and transformers
FAST_S = 1.5


def find_timm_train(path: str | None = None) -> Path | None:
    """timm's ``train.py`` (from a pytorch-image-models checkout): ``path``, ``$TIMM_TRAIN_PY``, or next to the repo."""
    for candidate in (path, os.environ.get("TIMM_TRAIN_PY"), REPO_ROOT.parent / "pytorch-image-models" / "train.py"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def _best(args: list[str], repeats: int) -> dict:
    runs = [peak_rss_of([sys.executable, *args], cwd=REPO_ROOT, timeout=300) for _ in range(repeats)]
    seconds, rss = min(runs)
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(rss, 1)}


def _metrics_module(num_images: int) -> dict:
    import evaluate
    import numpy as np

    from inat_hf.inference import INAT_METRICS_PATH
    from inat_hf.inference import metrics as M

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10_000, num_images)
    topk = rng.integers(0, 10_000, (num_images, 5))
    confidences = rng.random(num_images)
    start = time.perf_counter()
    M.topk_accuracy(topk, labels)
    M.expected_calibration_error(confidences, topk[:, 0] == labels)
    numpy_s = time.perf_counter() - start
    metric = evaluate.load(INAT_METRICS_PATH)
    start = time.perf_counter()
    metric.compute(predictions=topk, references=labels, confidences=confidences)
    evaluate_s = time.perf_counter() - start
    return {"num_images": num_images, "numpy_s": round(numpy_s, 4), "evaluate_s": round(evaluate_s, 3)}


def run(quick: bool = False, timm_train: str | None = None) -> dict:
    repeats = 1 if quick else 3
    baselines = {name: _best(args, repeats) for name, args in BASELINES.items()}
    timm_script = find_timm_train(timm_train)
    if timm_script is not None:  # run from its own folder, as `python train.py --help` in a checkout
        runs = [peak_rss_of([sys.executable, timm_script.name, "--help"], cwd=timm_script.parent, timeout=300)
                for _ in range(repeats)]  # fmt: skip
        seconds, rss = min(runs)
        baselines[TIMM_TRAIN] = {
            "seconds": round(seconds, 3),
            "peak_rss_mb": round(rss, 1),
            "script": str(timm_script),
        }
    commands = {name: _best(args, repeats) for name, args in COMMANDS.items()}
    for name, run in commands.items():
        if name not in ANCHORED:
            run.update(target=f"≤ {FAST_S} s", met=run["seconds"] <= FAST_S)
        elif TIMM_TRAIN in baselines:
            run.update(target=f"≤ {TIMM_TRAIN}", met=run["seconds"] <= baselines[TIMM_TRAIN]["seconds"])
        else:
            run.update(target=f"≤ {TIMM_TRAIN} (not measured)", met=None)
    return {
        "repeats": repeats,
        "baselines": baselines,
        "timm_train": str(timm_script) if timm_script else "not found: pass --timm_train PATH (see the docstring)",
        "commands": commands,
        "metrics_module": _metrics_module(10_000 if quick else 100_000),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run of each instead of the best of three")
    parser.add_argument("--timm_train", help="timm's train.py (a pytorch-image-models checkout's) to time as well")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, timm_train=args.timm_train)
    rows = [
        (name, r["seconds"], r["peak_rss_mb"]) for name, r in {**result["baselines"], **result["commands"]}.items()
    ]
    print_table("start-up (best wall time, its peak RSS)", rows, header=("command", "s", "MB"))
    print(f"timm's train.py: {result['timm_train']}")
    m = result["metrics_module"]
    print(f"\nmetrics of {m['num_images']:,} images: numpy {m['numpy_s']} s, evaluate module {m['evaluate_s']} s")
    write_results("startup", result)


if __name__ == "__main__":
    main()
