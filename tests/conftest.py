"""Shared fixtures. The suite runs offline: the Hugging Face Hub is unreachable on CI."""

import atexit
import os
import shutil
import tempfile

# Set before transformers/datasets/timm are imported anywhere: without these, hub calls retry for ~45 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Keep test caches out of the user's ~/.cache/huggingface (one private cache per test process).
_CACHE = tempfile.mkdtemp(prefix="inat_hf_tests_")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHE, "datasets")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
REAL_SAMPLE = SHARED / "data" / "real_sample"


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A tiny demo dataset (8 animal + 2 plant species, ≤ 64 px) shared read-only by the tests."""
    from inat_hf.data import write_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    write_demo_dataset(root, train_per_class=4, val_per_class=2, num_test=3, min_size=40, max_size=64)
    return root


@pytest.fixture
def demo_copy(demo_root, tmp_path) -> Path:
    """A private copy of the tiny demo dataset that a test may modify."""
    import shutil

    dst = tmp_path / "inat"
    shutil.copytree(demo_root, dst)
    return dst


@pytest.fixture(scope="session")
def prepared_demo(demo_root, tmp_path_factory) -> Path:
    """The tiny demo dataset prepared (train, val, public_test) into a folder for ``--dataset_dir``; read-only."""
    from inat_hf.data import prepare_inat

    tmp = tmp_path_factory.mktemp("prepared")
    prepare_inat(demo_root, cache_dir=tmp / "cache", output_dir=tmp / "prepared", preprocessing_num_workers=1)
    return tmp / "prepared"


@pytest.fixture(scope="session")
def trained_model_dir(prepared_demo, tmp_path_factory) -> Path:
    """A resnet10t checkpoint fitted on the demo data (confident, varied predictions); read-only."""
    from tests.inference.helpers import train_tiny_model

    return train_tiny_model(prepared_demo, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def demo_prior(prepared_demo, tmp_path_factory) -> Path:
    """A tiny location/date prior trained on the demo's synthetic ranges and seasons (the labels of
    ``trained_model_dir``); read-only."""
    from inat_hf.commands.train_geo import main as train_geo_main

    out = tmp_path_factory.mktemp("geo") / "prior"
    args = ["--dataset_dir", str(prepared_demo), "--output_dir", str(out), "--min_steps", "60", "--batch_size", "16"]
    assert train_geo_main([*args, "--hidden_size", "32", "--num_blocks", "1", "--learning_rate", "5e-3"]) == 0
    return out


@pytest.fixture
def real_sample() -> Path:
    if not (REAL_SAMPLE / "inat2021_json").is_dir():
        pytest.skip(f"real sample data not found at {REAL_SAMPLE} (../shared is only present in the project checkout)")
    return REAL_SAMPLE
