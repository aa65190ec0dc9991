"""The declared dependency ranges admit only releases that have the APIs the code calls."""

import re

import pytest

from tests.conftest import REPO_ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")


def _lower_bounds() -> dict[str, tuple[int, ...]]:
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        match = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", dep)
        if match:
            out[match.group(1).lower()] = tuple(int(p) for p in match.group(2).split("."))
    return out


def test_torchvision_lower_bound_has_the_public_transform_api():
    # inat_hf.data.transforms subclasses v2.Transform through make_params()/transform(), public from 0.21 on
    # (earlier releases call _get_params()/_transform() and never reach ours); torchvision 0.21 needs torch 2.6.
    bounds = _lower_bounds()
    assert bounds["torchvision"] >= (0, 21)
    assert bounds["torch"] >= (2, 6)
    assert bounds["transformers"] >= (5, 0) and bounds["timm"] >= (1, 0, 15)
