import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from inat_hf.models import focal_loss

# p = softmax([0, ln 3]) = [0.25, 0.75]: closed forms are easy to write down.
LOGITS = torch.tensor([[0.0, math.log(3.0)]])
P = (0.25, 0.75)


def _t(value):
    return torch.tensor(value, dtype=torch.float32)


def test_gamma_zero_without_smoothing_equals_cross_entropy():
    logits = torch.randn(16, 7, generator=torch.Generator().manual_seed(0)) * 5
    target = torch.randint(0, 7, (16,), generator=torch.Generator().manual_seed(1))
    assert_close(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target))
    assert_close(
        focal_loss(logits, target, gamma=0.0, reduction="sum"), F.cross_entropy(logits, target, reduction="sum")
    )
    assert_close(
        focal_loss(logits, target, gamma=0.0, reduction="none"), F.cross_entropy(logits, target, reduction="none")
    )
    # with smoothing too: the target distribution is the one F.cross_entropy uses
    assert_close(
        focal_loss(logits, target, gamma=0.0, label_smoothing=0.1),
        F.cross_entropy(logits, target, label_smoothing=0.1),
    )


def test_hard_target_closed_form():
    # (1 - p_y)^gamma * -log p_y with y=1, gamma=2
    expected = (1 - P[1]) ** 2 * -math.log(P[1])
    assert_close(focal_loss(LOGITS, torch.tensor([1]), gamma=2.0), _t(expected))


def test_hard_target_with_alpha_and_smoothing_closed_form():
    gamma, eps, alpha = 2.0, 0.1, (0.25, 0.75)
    q = (eps / 2, 1 - eps + eps / 2)  # smoothed one-hot of class 1
    expected = -sum(alpha[c] * q[c] * (1 - P[c]) ** gamma * math.log(P[c]) for c in range(2))
    loss = focal_loss(LOGITS, torch.tensor([1]), gamma=gamma, alpha=list(alpha), label_smoothing=eps)
    assert_close(loss, _t(expected))


def test_soft_target_closed_form_and_no_extra_smoothing():
    q = torch.tensor([[0.3, 0.7]])
    expected = -sum(q[0, c].item() * (1 - P[c]) ** 2 * math.log(P[c]) for c in range(2))
    assert_close(focal_loss(LOGITS, q, gamma=2.0), _t(expected))
    # soft targets are used as given: label_smoothing does not change them
    assert_close(focal_loss(LOGITS, q, gamma=2.0, label_smoothing=0.3), _t(expected))
    # alpha weighs each class term
    expected_alpha = -sum(a * q[0, c].item() * (1 - P[c]) ** 2 * math.log(P[c]) for c, a in enumerate((2.0, 0.5)))
    assert_close(focal_loss(LOGITS, q, gamma=2.0, alpha=[2.0, 0.5]), _t(expected_alpha))


def test_soft_one_hot_equals_hard():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 3, 1, 2, 3])
    assert_close(focal_loss(logits, F.one_hot(target, 4).float()), focal_loss(logits, target))


def test_reductions():
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    per_sample = focal_loss(logits, target, reduction="none")
    assert per_sample.shape == (6,)
    assert_close(focal_loss(logits, target, reduction="mean"), per_sample.mean())
    assert_close(focal_loss(logits, target, reduction="sum"), per_sample.sum())


def test_focusing_down_weights_easy_examples():
    easy = torch.tensor([[10.0, 0.0]])
    assert focal_loss(easy, torch.tensor([0]), gamma=2.0) < 1e-6 * F.cross_entropy(easy, torch.tensor([0]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(4)) * 20
    target = torch.randint(0, 5, (8,), generator=torch.Generator().manual_seed(5))
    loss = focal_loss(logits.to(dtype), target, label_smoothing=0.1)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert_close(loss, focal_loss(logits.to(dtype).float(), target, label_smoothing=0.1))


def test_stable_for_extreme_logits_and_small_gamma():
    logits = torch.tensor([[200.0, -200.0, 0.0]], requires_grad=True)
    loss = focal_loss(logits, torch.tensor([0]), gamma=0.5, label_smoothing=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    "kwargs, target, match",
    [
        (
            dict(reduction="avg"),
            torch.tensor([0]),
            r"reduction='avg' is not supported; valid choices: mean, sum, none",
        ),
        (dict(gamma=-1.0), torch.tensor([0]), r"gamma=-1.0 must be >= 0"),
        (dict(label_smoothing=1.0), torch.tensor([0]), r"label_smoothing=1.0 must be in \[0, 1\)"),
        (
            dict(alpha=[1.0, 2.0, 3.0]),
            torch.tensor([0]),
            r"alpha must have one weight per class \(2\), got shape \(3,\)",
        ),
        ({}, torch.tensor([[0.5, 0.25, 0.25]]), r"Soft targets must have the logits' shape .* got \[1, 3\]"),
        ({}, torch.tensor([[0]]), r"Class-index targets must have shape \[batch\] = \[1\], got \[1, 1\]"),
    ],
)
def test_bad_arguments(kwargs, target, match):
    with pytest.raises(ValueError, match=match):
        focal_loss(LOGITS, target, **kwargs)
