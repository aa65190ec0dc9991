"""GeoPriorConfig / GeoPriorModel: encoding, input checks, losses, fusion term, save/load, trust_remote_code."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoConfig, AutoModel

from inat_hf.models import GeoPriorConfig, GeoPriorModel
from inat_hf.models.modeling_geo import encode_inputs

LABELS = {i: f"Genus{i // 2} species{i}" for i in range(6)}


def tiny(**kwargs):
    return GeoPriorConfig(id2label=LABELS, hidden_size=16, num_blocks=1, **kwargs)


def test_encoding_is_periodic_and_marks_missing_dates():
    lat = torch.tensor([10.0, 10.0, 90.0, -90.0])
    lon = torch.tensor([-180.0, 180.0, 0.0, 0.0])
    day = torch.tensor([1.0, 366.25, float("nan"), 100.0])
    enc = encode_inputs(lat, lon, day, use_date=True)
    assert enc.shape == (4, 6)
    torch.testing.assert_close(enc[0, :4], enc[1, :4], atol=1e-5, rtol=0)  # the date line is not an edge
    torch.testing.assert_close(enc[0, 4:], enc[1, 4:], atol=1e-4, rtol=0)  # 1 January follows 31 December
    torch.testing.assert_close(enc[2, :4], enc[3, :4], atol=1e-5, rtol=0)  # the paper's wrap: the poles meet
    assert torch.equal(enc[2, 4:], torch.zeros(2))  # unknown date: (0, 0), not a point of the year circle
    assert enc[3, 4:].norm() == pytest.approx(1.0)
    assert encode_inputs(lat, lon, None, use_date=False).shape == (4, 4)


@pytest.mark.parametrize(
    ("lat", "lon", "message"),
    [
        (91.0, 0.0, "latitude in \\[-90, 90\\]"),
        (0.0, -180.5, "longitude in \\[-180, 180\\]"),
        (float("inf"), 0.0, "not a location"),
        (float("nan"), 3.0, "needs both"),
    ],
)
def test_bad_coordinates_are_errors(lat, lon, message):
    model = GeoPriorModel(tiny()).eval()
    with pytest.raises(ValueError, match=message):
        model.log_prior_ratio(torch.tensor([1.0, lat]), torch.tensor([1.0, lon]))


def test_missing_location_is_neutral_and_training_needs_locations():
    model = GeoPriorModel(tiny(class_prior=[1, 2, 3, 4, 5, 6])).eval()
    lat = torch.tensor([45.0, float("nan")])
    lon = torch.tensor([7.0, float("nan")])
    ratio = model.log_prior_ratio(lat, lon)
    assert torch.equal(ratio[1], torch.zeros(6)) and ratio[0].abs().sum() > 0
    probs = model.probabilities(lat, lon)
    torch.testing.assert_close(probs[1], torch.tensor([1, 2, 3, 4, 5, 6.0]) / 21)  # the label frequencies
    with pytest.raises(ValueError, match="no location"):
        model(lat, lon)


def test_softmax_ratio_divides_by_the_class_prior():
    """softmax fusion term = w * (log p(y|l) - log p(y)), p(y) the saved training frequencies."""
    model = GeoPriorModel(tiny(class_prior=[1, 1, 1, 1, 2, 4], fusion_weight=0.5)).eval()
    lat, lon, day = torch.tensor([30.0]), torch.tensor([60.0]), torch.tensor([200.0])
    logits = model(lat, lon, day).logits
    prior = torch.tensor([1, 1, 1, 1, 2, 4.0]) / 10
    expected = 0.5 * (logits.log_softmax(-1) - prior.log())
    torch.testing.assert_close(model.log_prior_ratio(lat, lon, day), expected)


def test_presence_loss_pushes_up_the_observed_label_only():
    torch.manual_seed(0)
    model = GeoPriorModel(tiny(loss="presence", drop_rate=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    lat, lon, labels = torch.tensor([40.0] * 8), torch.tensor([-100.0] * 8), torch.full((8,), 3)
    for _ in range(60):
        loss = model(lat, lon, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    here = torch.sigmoid(model(lat[:1], lon[:1]).logits)[0]
    far = torch.sigmoid(model(torch.tensor([-40.0]), torch.tensor([80.0])).logits)[0]
    assert here[3] > 0.8 and here[torch.arange(6) != 3].max() < 0.2  # present here, the others absent
    assert far[3] < here[3]  # and less so at a random place on the other side of the globe


def test_sampled_negatives_score_only_the_drawn_labels():
    """With more labels than ``loss_negatives``, a training step scores the batch's labels + the drawn ones only."""
    torch.manual_seed(0)
    model = GeoPriorModel(tiny(loss_negatives=2)).train()
    lat, lon, labels = torch.tensor([10.0, 20.0]), torch.tensor([30.0, 40.0]), torch.tensor([0, 0])
    out = model(lat, lon, labels=labels)
    assert out.logits is None and torch.isfinite(out.loss)
    out.loss.backward()
    touched = (model.classifier.weight.grad.abs().sum(1) > 0).sum()
    assert 1 <= touched <= 3  # label 0 + at most 2 drawn, of 6
    # Exact when the draw would cover every other label, and at evaluation (full scores, exact loss).
    assert GeoPriorModel(tiny(loss_negatives=5)).train()(lat, lon, labels=labels).logits.shape == (2, 6)
    assert model.eval()(lat, lon, labels=labels).logits.shape == (2, 6)


@pytest.mark.parametrize("loss", ["softmax", "presence"])
@pytest.mark.parametrize("loss_negatives", [None, 8])
def test_one_seed_gives_one_prior(loss, loss_negatives):
    """Two trainings with the same seed end with bit-identical weights, sampled negatives included: labels repeat
    within a batch, and the gradient of ``weight[labels]`` sums them in a thread-dependent order on CPU."""
    labels = {i: str(i) for i in range(40)}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the order only varies with more than one thread
    try:
        runs = []
        for _ in range(2):
            torch.manual_seed(0)
            config = GeoPriorConfig(id2label=labels, hidden_size=64, num_blocks=1, loss=loss)
            config.loss_negatives = loss_negatives
            model = GeoPriorModel(config).train()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for _ in range(5):
                lat, lon = torch.rand(512) * 180 - 90, torch.rand(512) * 360 - 180
                model(lat, lon, labels=torch.randint(0, 40, (512,))).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            runs.append(model.classifier.weight.detach().clone())
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("loss", ["softmax", "presence"])
def test_sampled_loss_estimates_the_full_loss(loss):
    """softmax: exp(loss) of one row is its normaliser estimate over exp(s_y), unbiased; presence: the loss itself
    is unbiased. Monte Carlo means over draws against the exact loss (mean over draws of the random location)."""
    torch.manual_seed(0)
    labels = {i: str(i) for i in range(40)}
    exact = GeoPriorModel(GeoPriorConfig(id2label=labels, hidden_size=8, num_blocks=1, drop_rate=0.0, loss=loss))
    exact.config.loss_negatives = None
    sampled = GeoPriorModel(exact.config.__class__(**{**exact.config.to_dict(), "loss_negatives": 5}))
    sampled.load_state_dict(exact.state_dict())
    with torch.no_grad():
        sampled.classifier.weight.mul_(8)  # spread the scores so that a wrong weighting shows
        exact.classifier.weight.copy_(sampled.classifier.weight)
    lat, lon, day, label = torch.tensor([35.0]), torch.tensor([-5.0]), torch.tensor([90.0]), torch.tensor([7])
    transform = torch.exp if loss == "softmax" else (lambda x: x)
    draws = {
        name: torch.stack([transform(m.train()(lat, lon, day, labels=label).loss.detach()) for _ in range(1000)])
        for name, m in (("exact", exact), ("sampled", sampled))
    }
    assert sampled.train()(lat, lon, day, labels=label).logits is None
    error = (draws["sampled"].var() / 1000 + draws["exact"].var() / 1000).sqrt()
    assert (draws["sampled"].mean() - draws["exact"].mean()).abs() < 4 * error + 1e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "focal"}, "loss='focal'"),
        ({"drop_rate": 1.0}, "drop_rate"),
        ({"date_drop_rate": 1.5}, "date_drop_rate"),
        ({"class_prior": [1.0, 2.0]}, "class_prior has 2 entries"),
        ({"class_prior": [0.0] * 6}, "positive"),
        ({"fusion_weight": -1.0}, "fusion_weight"),
        ({"loss_negatives": 0}, "loss_negatives"),
        ({"label_rank": "tribe"}, "label_rank"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_dates_are_dropped_in_training_only_and_pos_weight_follows_geo_prior():
    model = GeoPriorModel(tiny(date_drop_rate=0.5))
    day = torch.full((10_000,), 100.0)
    assert 0.45 < model.train().drop_dates(day).isnan().float().mean() < 0.55
    assert not model.eval().drop_dates(day).isnan().any()
    assert model.config.pos_weight == model.config.num_labels  # geo_prior's pos_weight = num_classes
    assert tiny(presence_pos_weight=2048.0).pos_weight == 2048.0  # SINR's


def test_save_and_auto_load(tmp_path):
    model = GeoPriorModel(tiny(class_prior=[1] * 6, loss="presence")).eval()
    model.save_pretrained(tmp_path)
    shipped = {"modeling_geo.py", "configuration_geo.py", "configuration_inat.py"}  # the last: the rank order
    assert shipped <= {p.name for p in tmp_path.iterdir()}
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, GeoPriorModel) and AutoConfig.from_pretrained(tmp_path).loss == "presence"
    lat, lon = torch.tensor([1.0, 50.0]), torch.tensor([2.0, -3.0])
    torch.testing.assert_close(loaded.log_prior_ratio(lat, lon), model.log_prior_ratio(lat, lon))


def test_trust_remote_code_without_inat_hf(tmp_path):
    model = GeoPriorModel(tiny()).eval()
    model.save_pretrained(tmp_path / "prior")
    lat, lon = torch.tensor([12.0]), torch.tensor([-70.0])
    expected = model(lat, lon).logits
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["inat_hf"] = None
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / "prior")!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        torch.save(model(torch.tensor([12.0]), torch.tensor([-70.0])).logits, {str(tmp_path / "out.pt")!r})
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env=env, timeout=300)
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected)
