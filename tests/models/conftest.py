"""Shared fixtures: tiny configs and images so that the model tests run in seconds on a CPU."""

import os

# Never wait for the Hub in tests: timm/transformers look-ups fail immediately instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import inat_hf.models  # noqa: E402,F401  (registers the Auto classes)
from inat_hf.models import InatConfig, InatForImageClassification  # noqa: E402

LABELS = ["Apis mellifera", "Bombus terrestris", "Vespa crabro"]


def tiny_config(**overrides) -> InatConfig:
    """resnet10t, 3 labels, a small head, 32 px images."""
    kwargs = dict(
        backbone="resnet10t",
        id2label=dict(enumerate(LABELS)),
        head_hidden_sizes=[32, 16],
        image_size=32,
    )
    kwargs.update(overrides)
    return InatConfig(**kwargs)


@pytest.fixture
def config() -> InatConfig:
    return tiny_config()


@pytest.fixture
def model(config) -> InatForImageClassification:
    torch.manual_seed(0)
    return InatForImageClassification(config)


@pytest.fixture
def pixel_values() -> torch.Tensor:
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="session")
def saved_dir(tmp_path_factory):
    """A checkpoint saved with save_pretrained (weights, config, code files, image processor)."""
    torch.manual_seed(0)
    model = InatForImageClassification(tiny_config()).eval()
    # Non-trivial BN statistics, so that a load that resets them would be noticed.
    with torch.no_grad():
        model.train()(torch.randn(8, 3, 32, 32))
    model.eval()
    path = tmp_path_factory.mktemp("checkpoint")
    model.save_pretrained(path)
    return path
