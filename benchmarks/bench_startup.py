"""Start-up: how long until a command answers ``--help``, and what ``import inat_hf`` costs.

Usage: ``python -m benchmarks.bench_startup [--quick]`` (quick: one run of each instead of the best of three).

Each command runs in a fresh process, as a user starts it (``python scripts/<name>.py --help``); the figure is the
best wall time of the runs and that run's peak RSS. Baselines in the same run: a bare interpreter, and
``import torch`` (what every command paid before it could parse its arguments). The target (≤ 1.5 s on the 2-core
reference machine) lives here, not in tests; ``tests/test_package.py`` checks what is imported.

Also: the project's metrics through the ``evaluate`` module against the numpy functions underneath.
"""

from __future__ import annotations

import argparse
import sys
import time

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


def run(quick: bool = False) -> dict:
    repeats = 1 if quick else 3
    return {
        "repeats": repeats,
        "baselines": {name: _best(args, repeats) for name, args in BASELINES.items()},
        "commands": {name: _best(args, repeats) for name, args in COMMANDS.items()},
        "metrics_module": _metrics_module(10_000 if quick else 100_000),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run of each instead of the best of three")
    result = run(quick=parser.parse_args(argv).quick)
    rows = [
        (name, r["seconds"], r["peak_rss_mb"]) for name, r in {**result["baselines"], **result["commands"]}.items()
    ]
    print_table("start-up (best wall time, its peak RSS)", rows, header=("command", "s", "MB"))
    m = result["metrics_module"]
    print(f"\nmetrics of {m['num_images']:,} images: numpy {m['numpy_s']} s, evaluate module {m['evaluate_s']} s")
    write_results("startup", result)


if __name__ == "__main__":
    main()
