"""Shared benchmark helpers: timing with same-run baselines, memory (RSS), machine info, results as JSON.

Benchmarks live in ``benchmarks/bench_*.py``; each exposes ``run(quick: bool) -> dict`` (for a runner that calls
them all) and a ``main()`` that prints a table and calls :func:`write_results`. Run them from the repo root as
modules (``python -m benchmarks.bench_data --quick``). Speed targets live here, in benchmarks, never in tests; the
tables of ``results.md`` are written from the results files by ``benchmarks/report.py``.

The dev box is small and shared (2 cores), so compare candidates *interleaved* in one run
(:func:`compare_throughput`) and report the best round of each, not numbers from different runs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(os.environ.get("INAT_BENCH_RESULTS_DIR", REPO_ROOT / "benchmarks" / "_work" / "results"))

__all__ = [
    "REPO_ROOT",
    "RESULTS_DIR",
    "compare_throughput",
    "machine_info",
    "peak_rss_mb",
    "peak_rss_of",
    "print_table",
    "rss_mb",
    "time_call",
    "write_results",
]


# ---- memory -----------------------------------------------------------------------------------------------------


def rss_mb() -> float:
    """Current resident set size of this process, in MiB (Linux ``/proc``; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def peak_rss_of(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float | None = None,
) -> tuple[float, float]:
    """Run ``cmd`` to completion; return ``(wall seconds, peak RSS MiB)`` of that process (its own rusage).

    Output goes to a temp file, shown (tail) in the ``CalledProcessError`` raised on a non-zero exit."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), env=dict(env) if env is not None else None, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = None if timeout is None else start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise subprocess.TimeoutExpired(list(cmd), timeout)
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            tail = log.read()[-4000:].decode(errors="replace")
            raise subprocess.CalledProcessError(proc.returncode, list(cmd), output=tail)
    return seconds, usage.ru_maxrss / 1024


# ---- timing -----------------------------------------------------------------------------------------------------


def time_call(fn: Callable[[], Any], *, repeat: int = 5, number: int = 1, warmup: int = 1) -> float:
    """Best-of-``repeat`` seconds per call of ``fn`` (each sample averages ``number`` calls)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def compare_throughput(
    candidates: Mapping[str, Callable[[Any], Any]], items: Iterable[Any], *, rounds: int = 3, warmup: int = 1
) -> dict[str, dict[str, float]]:
    """Items per second of each ``candidates[name](item)`` over ``items``, measured interleaved (round-robin
    passes, so that background load hits every candidate alike). Returns, per name, ``best`` (the fastest
    round, the usual figure of merit on a shared machine), ``median`` and ``ms_per_item`` (of the best)."""
    items = list(items)
    for fn in candidates.values():
        for item in items[:warmup]:
            fn(item)
    rates: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            for item in items:
                fn(item)
            rates[name].append(len(items) / (time.perf_counter() - start))
    out = {}
    for name, values in rates.items():
        values.sort()
        best = values[-1]
        out[name] = {"best": best, "median": values[len(values) // 2], "ms_per_item": 1e3 / best}
    return out


# ---- reporting --------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Where the numbers come from (CPU count, platform, library versions that matter here)."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    with contextlib.suppress(AttributeError):  # not on macOS
        info["sched_cpus"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError):
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)  # others' work on a shared box skews timings
    for module, dist in (
        ("torch", "torch"),
        ("torchvision", "torchvision"),
        ("PIL", "pillow"),
        ("transformers", "transformers"),
        ("datasets", "datasets"),
        ("timm", "timm"),
    ):
        mod = sys.modules.get(module)
        try:  # without importing the package (run_all stays light)
            info[module] = mod.__version__ if mod is not None else importlib.metadata.version(dist)
        except (AttributeError, importlib.metadata.PackageNotFoundError):
            info[module] = "?"
    return info


def write_results(name: str, result: Mapping[str, Any], directory: str | os.PathLike | None = None) -> Path:
    """Write ``{"benchmark", "created", "machine", "results"}`` to ``<directory>/<name>.json`` (default
    ``benchmarks/_work/results``, git-ignored; override with ``INAT_BENCH_RESULTS_DIR``) and return the path."""
    directory = Path(directory) if directory is not None else RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    payload = {
        "benchmark": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "results": result,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"results written to {path}")
    return path


def print_table(title: str, rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None) -> None:
    """Print ``rows`` (sequences of cells) as an aligned plain-text table under ``title``."""
    rows = [[str(c) for c in row] for row in rows]
    if header is not None:
        rows.insert(0, [str(c) for c in header])
    width = max((len(r) for r in rows), default=0)
    rows = [r + [""] * (width - len(r)) for r in rows]
    sizes = [max(len(r[i]) for r in rows) for i in range(width)]
    print(f"\n== {title} ==")
    for k, row in enumerate(rows):
        print(
            "  ".join(cell.ljust(sizes[i]) if i == 0 else cell.rjust(sizes[i]) for i, cell in enumerate(row)).rstrip()
        )
        if header is not None and k == 0:
            print("  ".join("-" * s for s in sizes))
