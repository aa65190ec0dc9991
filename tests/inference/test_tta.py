"""inat_hf.inference.tta: one batched forward, averaging, flip invariance, bf16 / channels-last."""

import glob

import pytest
import torch

from inat_hf.data.transforms import EvalPreset, TTAPreset
from inat_hf.inference.tta import average_views, tta_logits, view_logits
from inat_hf.models import InatConfig, InatForImageClassification

S = 32


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = InatConfig(
        backbone="resnet10t", id2label={i: f"c{i}" for i in range(6)}, head_hidden_sizes=[16], image_size=S
    )
    model = InatForImageClassification(config)
    with torch.no_grad():  # scale the classifier so that probabilities are far from uniform
        model.head.classifier.weight.mul_(1000)
    return model.eval()


@pytest.fixture(scope="module")
def views():
    # [B=3, V=4, 3, S, S]; views of different contrast, so that their predictions differ
    x = torch.randn(3, 4, 3, S, S, generator=torch.Generator().manual_seed(0))
    return x * torch.tensor([0.5, 1.0, 2.0, 4.0]).view(1, 4, 1, 1, 1)


def test_one_batched_forward_equals_v_separate_forwards(model, views):
    calls, sizes = [], []

    def hook(module, args, kwargs):
        calls.append(1)
        sizes.append(kwargs["pixel_values"].shape[0])

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        per_view = view_logits(model, views)  # [B, V, C]
    finally:
        handle.remove()
    assert calls == [1] and sizes == [3 * 4]  # ONE forward over B x V images
    assert per_view.shape == (3, 4, 6) and per_view.dtype == torch.float32
    with torch.no_grad():
        separate = torch.stack([model(pixel_values=views[:, v]).logits for v in range(4)], dim=1)
    torch.testing.assert_close(per_view, separate, atol=1e-5, rtol=1e-5)


def test_prob_and_logit_averaging(model, views):
    with torch.no_grad():
        logits = torch.stack([model(pixel_values=views[:, v]).logits for v in range(4)], dim=1)
    prob = tta_logits(model, views)  # log(mean softmax)
    torch.testing.assert_close(prob.softmax(-1), logits.softmax(-1).mean(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(prob.exp(), logits.softmax(-1).mean(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tta_logits(model, views, average="logit"), logits.mean(1), atol=1e-4, rtol=1e-5)
    # the two averages genuinely differ (otherwise this test could not tell them apart)
    assert not torch.allclose(prob.softmax(-1), logits.mean(1).softmax(-1), atol=1e-3)
    # one view: "prob" is log-softmax of the logits
    torch.testing.assert_close(average_views(logits[:, :1]), logits[:, 0].log_softmax(-1))


def test_runs_under_inference_mode(model, views):
    out = tta_logits(model, views)
    assert torch.is_inference(out) and not out.requires_grad


def test_bad_average_fails_before_the_forward(model, views):
    calls = []
    handle = model.register_forward_pre_hook(lambda *args: calls.append(1) and None)
    try:
        with pytest.raises(ValueError, match="average"):
            tta_logits(model, views, average="median")
    finally:
        handle.remove()
    assert calls == []
    with pytest.raises(ValueError, match=r"\[B, V, 3, H, W\]"):
        tta_logits(model, views[0, 0])


def test_channels_last_and_bf16(model, views):
    reference = view_logits(model, views)
    cl_model = InatForImageClassification(model.config)
    cl_model.load_state_dict(model.state_dict())
    cl_model = cl_model.eval().to(memory_format=torch.channels_last)
    torch.testing.assert_close(view_logits(cl_model, views, channels_last=True), reference, atol=1e-4, rtol=1e-4)
    bf16 = view_logits(model, views, bf16=True)
    assert bf16.dtype == torch.float32 and bf16.shape == reference.shape
    # bf16 has ~3 significant digits: same ranking where the margin is clear
    margin = reference.topk(2, dim=-1).values
    clear = (margin[..., 0] - margin[..., 1]) > 0.1 * reference.abs().amax(-1)
    assert clear.any()
    assert torch.equal(bf16.argmax(-1)[clear], reference.argmax(-1)[clear])


class FlipInvariant(torch.nn.Module):
    """g(x) + g(mirror(x)): the same logits for an image and its mirror."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, pixel_values):
        return self.inner(pixel_values=pixel_values).logits + self.inner(pixel_values=pixel_values.flip(-1)).logits


def test_two_view_tta_of_a_flip_invariant_model_equals_no_tta(model, demo_root):
    files = sorted(glob.glob(str(demo_root / "val" / "*" / "*.jpg")))[:6]
    kwargs = dict(image_size=S, crop_pct=0.875)
    single = torch.stack([EvalPreset(**kwargs)(f) for f in files])  # [B, 3, S, S]
    two = torch.stack([TTAPreset(num_views=2, **kwargs)(f) for f in files])  # [B, 2, 3, S, S]: center + mirror
    invariant = FlipInvariant(model).eval()
    with torch.no_grad():
        plain = invariant(single).softmax(-1)
    torch.testing.assert_close(tta_logits(invariant, two).softmax(-1), plain, atol=1e-5, rtol=1e-5)
    # ... which is a property of the invariance, not of TTA: the plain model's 2-view average differs
    with torch.no_grad():
        not_invariant = model(pixel_values=single).logits.softmax(-1)
    assert not torch.allclose(tta_logits(model, two).softmax(-1), not_invariant, atol=1e-4)


def test_temperature_divides_each_view_before_averaging(model, views):
    with torch.no_grad():
        raw = torch.stack([model(pixel_values=views[:, v]).logits for v in range(4)], dim=1)
    model.config.temperature = 2.5
    try:
        # the raw logits (as an exported graph gives them); score() divides them, once, for both backends
        torch.testing.assert_close(view_logits(model, views), raw, atol=1e-5, rtol=1e-5)
        expected = (raw / 2.5).softmax(-1).mean(1)  # the average of the calibrated views' probabilities
        torch.testing.assert_close(tta_logits(model, views).softmax(-1), expected, atol=1e-5, rtol=1e-5)
    finally:
        model.config.temperature = 1.0
