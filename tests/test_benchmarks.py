"""The benchmark runner keeps quick-mode results apart from the full ones, and results.md is generated."""

import json

from benchmarks import report, run_all
from benchmarks.common import REPO_ROOT
from benchmarks.run_all import BENCHMARKS, output_paths


def test_quick_results_never_overwrite_full_results():
    full, quick = output_paths(quick=False), output_paths(quick=True)
    assert full[0].name == "results.md" and full[1].name == "results.json"
    assert quick[0].name == "results_quick.md" and quick[1].name == "results_quick.json"
    assert quick[2] != full[2]  # the raw per-benchmark figures too


def test_committed_results_md_is_generated_from_results_json():
    # Fails on any hand edit of results.md, and on a benchmark whose figures no longer reach its table.
    doc = json.loads((REPO_ROOT / "benchmarks" / "results.json").read_text())
    assert (REPO_ROOT / "benchmarks" / "results.md").read_text() == report.render(doc)
    assert set(doc["benchmarks"]) <= set(report.ORDER)


def test_readme_figures_are_generated_from_results_json():
    # Fails on a hand edit of a generated README block, and on results.json moving on without the README.
    doc = json.loads((REPO_ROOT / "benchmarks" / "results.json").read_text())
    readme = (REPO_ROOT / "README.md").read_text()
    assert readme == report.render_readme(readme, doc)


def test_the_readme_shows_the_quickstart_commands_that_were_timed():
    from benchmarks.bench_quickstart import DEMO, INSTALL, TESTS

    readme = (REPO_ROOT / "README.md").read_text()
    assert f"{INSTALL} && {DEMO}" in readme and TESTS in readme
    doc = {"benchmarks": {"quickstart": {"created": "2026-12-07 15:00", "results": {
        "commands": {"install": INSTALL, "demo": "bash other.sh", "tests": TESTS}}}}}  # fmt: skip
    assert "Not timed since these commands last changed" in "\n".join(report.README_BLOCKS["quickstart"](doc))


def test_every_benchmark_has_its_tables():
    for name in BENCHMARKS:
        assert name in report.SUMMARY and name in report.SECTIONS, name
    assert set(report.SECTIONS) == set(report.ORDER)


STARTUP = {
    "repeats": 1,
    "baselines": {"python -c pass": {"seconds": 0.05, "peak_rss_mb": 16.3}, "import torch": {"seconds": 2.5, "peak_rss_mb": 600}},
    "commands": {"train.py --help": {"seconds": 1.7, "peak_rss_mb": 62.4, "target": "≤ 1.5 s", "met": False}},
    "metrics_module": {"num_images": 10000, "numpy_s": 0.01, "evaluate_s": 0.2},
}  # fmt: skip

EXPECTED = """\
# Benchmark results (quick mode)

Written by `python -m benchmarks --quick` from `benchmarks/results_quick.json`; do not edit by hand. Each section says which run measured it; a baseline is measured in the same run as the figure beside it unless its row names another benchmark.

## Summary

| measure | baseline | ours | ratio | target | met | run |
|---|---|---|---|---|---|---|
| start-up: `train.py --help` (fresh process, best of 1) | `import torch` 2.5 s; bare Python 0.05 s | 1.7 s, 62 MB |  | ≤ 1.5 s | **no** | startup 2026-12-07 |
| metrics of 10,000 images (top-k + ECE) via the `evaluate` module | numpy functions: 0.01 s | 0.2 s | 20.0× | reported |  | startup 2026-12-07 |

Failed in the last run: geo

## Start-up (`bench_startup`)

Each command in a fresh process as a user starts it; best wall time and that run's peak RSS. Measured 2026-12-07 06:00, quick mode, 2 CPU cores, load average 3.5, 12 s.

| command (fresh process, best of 1) | wall s | peak RSS MB | target | met |
|---|---|---|---|---|
| `python -c pass` (baseline) | 0.05 | 16 |  |  |
| `import torch` (baseline) | 2.5 | 600 |  |  |
| `train.py --help` | 1.7 | 62 | ≤ 1.5 s | **no** |

Metrics of 10,000 images (top-k + ECE): numpy functions 0.01 s, through the `evaluate` module 0.2 s.
"""


def test_render_writes_each_benchmarks_tables_from_its_figures():
    entry = {
        "created": "2026-12-07 06:00",
        "quick": True,
        "seconds": 12.3,
        "machine": {"cpu_count": 2, "load_avg_1m": 3.5},
        "results": STARTUP,
    }
    doc = {"meta": {"quick": True, "failed": ["geo"]}, "benchmarks": {"startup": entry}}
    assert report.render(doc) == EXPECTED


def test_a_benchmarks_raw_figures_become_its_entry(tmp_path):
    raw = {
        "benchmark": "startup",
        "created": "2026-12-07T06:00:12+0000",
        "machine": {"cpu_count": 2},
        "results": STARTUP,
    }
    (tmp_path / "startup.json").write_text(json.dumps(raw))
    entry = run_all._entry(tmp_path, "startup", True, 12.3, 20.1)
    assert entry == {
        "created": "2026-12-07 06:00",
        "quick": True,
        "seconds": 12.3,
        "cpu_seconds": 20.1,
        "machine": {"cpu_count": 2},
        "results": STARTUP,
    }
    assert (
        run_all._entry(tmp_path, "geo", True, 1.0, 1.0) is None
    )  # a benchmark that wrote nothing keeps its old entry


def test_bench_gpu_runs_on_cpu(tmp_path, monkeypatch):
    # prepared for an accelerator; run here on the CPU, tiny, so that the script cannot rot
    from benchmarks import bench_gpu, common

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert bench_gpu.main(["--device", "cpu", "--quick"]) == 0
    result = json.loads((tmp_path / "gpu.json").read_text())["results"]
    assert result["loader_img_s"] > 0
    assert {mode: "img_s" in r for mode, r in result["training"].items()} == {"eager": True, "compile": True}
    for run in result["evaluation"].values():
        assert run["model_img_s"] > 0 and run["end_to_end_img_s"] > 0
