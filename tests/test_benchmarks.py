"""The benchmark runner keeps quick-mode results apart from the committed full-size ones."""

from benchmarks.run_all import output_paths


def test_quick_results_never_overwrite_full_results():
    full, quick = output_paths(quick=False), output_paths(quick=True)
    assert full[0].name == "results.md" and full[1].name == "results.json"
    assert quick[0].name == "results_quick.md" and quick[1].name == "results_quick.json"
    assert quick[2] != full[2]  # the raw per-benchmark figures too
