"""The README's Quick start as a newcomer runs it: a fresh clone, the install command, the demo, the test command.

Usage: ``python -m benchmarks.bench_quickstart [--keep DIR]`` (full mode only: it installs a 6.5 GB environment and runs
the whole test suite; pip's wheel cache makes the install as fast as the machine's cache allows).

The commands below ARE the README's: ``benchmarks/report.py`` writes the README's Quick-start block from this
module's constants and the figures of its last run, so the commands a reader copies are the ones that were timed,
and the demo table, the install and demo times and the test count come from that run (``tests/test_benchmarks.py``
fails when the README and ``results.json`` disagree). The clone is of the committed ``HEAD``; ``../shared`` is
linked beside it so the tests that read the real sample data run as they do in the checkout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO_ROOT, write_results

INSTALL = (
    "python3.11 -m venv .venv && . .venv/bin/activate && pip install torch==2.14.1 torchvision==0.29.1 "
    '&& pip install -e ".[dev]"'
)
DEMO = "bash scripts/demo.sh"
TESTS = "HF_HUB_OFFLINE=1 python -m pytest -n 2 --dist loadfile -q"


def _timed(command: str, cwd: Path, log: Path) -> tuple[float, str]:
    """Run ``command`` in bash (the clone's venv active once it exists); its wall seconds and output."""
    activate = ". .venv/bin/activate && " if (cwd / ".venv").is_dir() else ""
    start = time.perf_counter()
    done = subprocess.run(["bash", "-c", activate + command], cwd=cwd, capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 1)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"`{command}` failed with status {done.returncode}; its output: {log}")
    return seconds, done.stdout


def demo_table(stdout: str) -> list[str]:
    """The Markdown table the demo prints last (its evaluation's ``results.md``)."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    if len(lines) < 3:
        raise ValueError("the demo printed no results table")
    return lines


def pytest_counts(stdout: str) -> dict[str, int]:
    """``{"passed": n, "skipped": m, ...}`` from pytest's last line."""
    last = [line for line in stdout.splitlines() if re.search(r"\d+ passed", line)][-1]
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (\w+)", last)}


def run(keep: str | None = None) -> dict:
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="inat_quickstart_"))
    clone = root / "inat_hf"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    shared = REPO_ROOT.parent / "shared"
    if shared.is_dir() and not (root / "shared").exists():
        os.symlink(shared, root / "shared")
    try:
        install_s, _ = _timed(INSTALL, clone, root / "install.log")
        demo_s, demo_out = _timed(DEMO, clone, root / "demo.log")
        tests_s, tests_out = _timed(TESTS, clone, root / "tests.log")
        venv_gb = sum(f.stat().st_size for f in (clone / ".venv").rglob("*") if f.is_file()) / 1e9
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "commit": commit.stdout.strip(),
        "commands": {"install": INSTALL, "demo": DEMO, "tests": TESTS},
        "install_s": install_s,
        "demo_s": demo_s,
        "tests_s": tests_s,
        "venv_gb": round(venv_gb, 1),
        "tests": pytest_counts(tests_out),
        "demo_table": demo_table(demo_out),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="refused: the Quick start has no small size")
    parser.add_argument("--keep", help="work in this folder and keep the clone, its venv and the logs")
    args = parser.parse_args(argv)
    if args.quick:
        parser.error("the Quick start runs at one size only: run it without --quick")
    result = run(args.keep)
    print(
        f"install {result['install_s']} s, demo {result['demo_s']} s, tests {result['tests_s']} s "
        f"({result['tests']}), .venv {result['venv_gb']} GB"
    )
    print("\n".join(result["demo_table"]))
    write_results("quickstart", result)


if __name__ == "__main__":
    main()
