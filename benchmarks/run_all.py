"""Run the benchmarks, merge their figures into ``benchmarks/results.json`` and write ``results.md`` from it.

    python -m benchmarks                 # = python -m benchmarks.run_all (full sizes)
    python -m benchmarks --quick         # < 5 minutes (skips `learning`, `quickstart`); writes results_quick.md/.json beside
                                         # the full results, never over them
    python -m benchmarks --only data,infer   # re-measure some; the others' entries stay as they were
    python -m benchmarks --render        # rewrite results.md from results.json, measuring nothing
    python -m benchmarks --only geo --geo_real_only   # the prior on real records; iNat-size figures kept

Each benchmark runs in its own process (thread settings and imports of one cannot skew another) and writes its raw
figures to ``benchmarks/_work/results/<name>.json``; this runner copies them, with their date, mode, wall time and
machine, into one entry per benchmark of ``results.json``, and ``benchmarks/report.py`` writes every table of
``results.md`` from that file (nothing in it is written by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import REPO_ROOT, RESULTS_DIR, machine_info
from benchmarks.report import render, render_readme

BENCHMARKS = ("quickstart", "prepare", "data", "train", "infer", "deploy", "learning", "geo", "calibration", "startup")
# Not run by --quick: `learning` and `calibration` train models to the end on real photos (minutes, not seconds);
# `quickstart` installs a fresh clone and runs the demo and the test suite in it (a quarter of an hour).
FULL_ONLY = ("quickstart", "learning", "calibration")


def output_paths(quick: bool) -> tuple[Path, Path, Path]:
    """(table, JSON, raw-figures folder): a quick run writes beside the committed full-size results, not over them."""
    suffix = "_quick" if quick else ""
    bench = REPO_ROOT / "benchmarks"
    return (
        bench / f"results{suffix}.md",
        bench / f"results{suffix}.json",
        RESULTS_DIR.with_name(RESULTS_DIR.name + suffix),
    )


def _entry(results_dir: Path, name: str, quick: bool, seconds: float, cpu_seconds: float) -> dict | None:
    """One benchmark's ``results.json`` entry from the raw figures its process just wrote (None if it wrote none)."""
    path = results_dir / f"{name}.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    created = raw["created"][:16].replace("T", " ")
    return {
        "created": created,
        "quick": quick,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "machine": raw["machine"],
        "results": raw["results"],
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # of the finished benchmark processes and theirs
    return usage.ru_utime + usage.ru_stime


def write_report(results_md: Path, results_json: Path, doc: dict) -> None:
    results_json.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    results_md.write_text(render(doc))
    if not (doc.get("meta") or {}).get("quick"):  # the README quotes the full-size results only
        readme = REPO_ROOT / "README.md"
        readme.write_text(render_readme(readme.read_text(), doc))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole suite in under 5 minutes")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {BENCHMARKS}")
    parser.add_argument("--render", action="store_true", help="only rewrite results.md from results.json")
    parser.add_argument(
        "--geo_real_only",
        action="store_true",
        help="bench_geo --real_only: keep its iNat-size figures, re-measure the rest",
    )
    args = parser.parse_args(argv)
    selected = [b.strip() for b in args.only.split(",") if b.strip()]
    if args.quick:
        selected = [b for b in selected if b not in FULL_ONLY]
    unknown = sorted(set(selected) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    results_md, results_json, results_dir = output_paths(args.quick)
    doc = json.loads(results_json.read_text()) if results_json.is_file() else {}
    doc.setdefault("benchmarks", {})  # (a file of the older one-run format starts afresh)
    if args.render:
        write_report(results_md, results_json, doc)
        print(f"written: {results_md.relative_to(REPO_ROOT)}")
        return 0
    env = dict(os.environ, HF_HUB_OFFLINE="1", INAT_BENCH_RESULTS_DIR=str(results_dir))
    start, failed, seconds, cpu_seconds = time.perf_counter(), [], {}, {}
    for name in selected:
        (results_dir / f"{name}.json").unlink(missing_ok=True)  # a failed run must not pass off an old file
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}"] + (["--quick"] if args.quick else [])
        cmd += ["--real_only"] if name == "geo" and args.geo_real_only else []
        print(f"\n######## {' '.join(cmd[1:])}", flush=True)
        t, cpu = time.perf_counter(), _children_cpu_seconds()
        if subprocess.run(cmd, cwd=REPO_ROOT, env=env).returncode != 0:
            failed.append(name)
        seconds[name] = round(time.perf_counter() - t, 1)
        cpu_seconds[name] = round(_children_cpu_seconds() - cpu, 1)  # less sensitive to others' load than wall time
        entry = _entry(results_dir, name, args.quick, seconds[name], cpu_seconds[name])
        if entry is not None and name not in failed:
            doc["benchmarks"][name] = entry
    doc["meta"] = {
        "created": time.strftime("%Y-%m-%d %H:%M"),
        "quick": args.quick,
        "seconds": round(time.perf_counter() - start, 1),
        "seconds_per_benchmark": seconds,
        "cpu_seconds_per_benchmark": cpu_seconds,
        "machine": machine_info(),
        "failed": failed,
    }
    write_report(results_md, results_json, doc)
    print("\n" + results_md.read_text())
    print(f"wall seconds per benchmark: {seconds}; total {doc['meta']['seconds']} s")
    print(f"CPU seconds per benchmark (its processes): {cpu_seconds}")
    print(f"written: {results_md.relative_to(REPO_ROOT)}, {results_json.relative_to(REPO_ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
