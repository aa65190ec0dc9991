"""Adaptive mixup/cutmix: the probability schedule, soft targets, and the focal loss on them."""

import pytest
import torch

from inat_hf import InatConfig, InatForImageClassification
from inat_hf.training.mixing import AdaptiveMixup, MixingConfig


def mixer(num_labels=6, label_smoothing=0.1, **kwargs):
    config = MixingConfig(**({"mix_prob": 1.0, "mix_prob_final": 0.2, "mix_off_epochs": 0} | kwargs))
    return AdaptiveMixup(config, num_labels=num_labels, label_smoothing=label_smoothing, num_epochs=10)


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("constant", {0: 1.0, 4: 1.0, 7.9: 1.0, 8: 0.0, 9.5: 0.0}),
        ("linear", {0: 1.0, 4: 0.6, 6: 0.4, 8: 0.0}),
        ("cosine", {0: 1.0, 4: 0.6, 8: 0.0}),
    ],
)
def test_probability_schedule_and_off_epochs(schedule, expected):
    m = mixer(mix_schedule=schedule, mix_off_epochs=2)  # active over [0, 8): linear 1.0 → 0.2
    for epoch, p in expected.items():
        assert m.probability(epoch) == pytest.approx(p), (schedule, epoch)
    assert mixer(mix_schedule="cosine", mix_off_epochs=2).probability(2) > mixer(
        mix_schedule="linear", mix_off_epochs=2
    ).probability(2)


def test_mixed_targets_are_distributions():
    torch.manual_seed(0)
    m = mixer(mixup_alpha=0.4, cutmix_alpha=1.0)
    x = torch.randn(8, 3, 16, 16)
    y = torch.randint(0, 6, (8,))
    mixed, targets = m(x.clone(), y, epoch=0.0)
    assert mixed.shape == x.shape and targets.shape == (8, 6) and targets.dtype == torch.float32
    torch.testing.assert_close(targets.sum(-1), torch.ones(8))
    assert (targets > 0).all()  # label smoothing reaches every class
    assert not torch.equal(mixed, x)


def test_no_mixing_when_off_or_odd_batch():
    m = mixer(mix_off_epochs=2)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 6, (4,))
    out_x, out_y = m(x, y, epoch=9.0)  # within the last 2 epochs
    assert out_x is x and out_y is y  # hard labels: the loss applies the smoothing
    odd_x, odd_y = torch.randn(5, 3, 8, 8), torch.randint(0, 6, (5,))
    out_x, out_y = m(odd_x, odd_y, epoch=0.0)  # timm pairs images: an odd (last) batch stays unmixed
    assert out_x is odd_x and out_y is odd_y


def test_soft_targets_give_a_finite_focal_loss_and_gradients():
    torch.manual_seed(0)
    config = InatConfig(backbone="resnet10t", head_hidden_sizes=[8], num_labels=6, image_size=32)
    model = InatForImageClassification(config).train()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 6, (4,))
    mixed, targets = mixer(num_labels=6, label_smoothing=config.label_smoothing)(x, y, epoch=0.0)
    loss = model(mixed, labels=targets).loss
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_invalid_schedule():
    with pytest.raises(ValueError, match=r"mix_schedule must be constant, linear or cosine, got 'step'"):
        mixer(mix_schedule="step")
