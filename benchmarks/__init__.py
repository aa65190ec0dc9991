"""Benchmarks: python -m benchmarks [--quick] runs them all (see run_all.py)."""
