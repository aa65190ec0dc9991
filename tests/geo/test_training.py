"""The location/date prior's records (inat_hf.geo.records), training and k-NN baseline (inat_hf.geo.training), and
the inat-train-geo command: synthetic ranges always, the real iNat 2021 records when ../shared is present."""

import json

import numpy as np
import pytest
import torch

from inat_hf.commands.train_geo import main
from inat_hf.data.inat_json import InatDataError
from inat_hf.data.source import DataArguments, load_data
from inat_hf.geo.arguments import GeoTrainingArguments
from inat_hf.geo.records import GeoRecords, clean_records, day_of_year, split_records
from inat_hf.geo.training import (
    KNN_DATE_WEIGHTS,
    epoch_order,
    evaluate_prior,
    knn_baseline,
    knn_scores,
    train_geo_prior,
)
from inat_hf.models import GeoPriorConfig, GeoPriorModel


def test_day_of_year_formats_and_bad_dates():
    day, bad = day_of_year(
        ["2019-04-20 22:35:00+00:00", "2019:04:20 10:00:00", "2020-12-31", None, "", "yesterday", "2019-13-01"]
    )
    assert day[:3].tolist() == [110, 110, 366]
    assert np.isnan(day[3:]).all()
    assert bad.tolist() == [False, False, False, False, False, True, True]


def test_clean_records_errors_name_the_records_and_skips_are_counted():
    lat = [10.0, 90.5, None, 20.0, float("nan"), 1.0]
    lon = [10.0, 0.0, None, None, float("nan"), 181.0]
    dates = ["2019-01-01", "2019-01-01", None, "2019-01-01", "bad", "2019-02-01"]
    with pytest.raises(InatDataError, match=r"3 record\(s\) have an invalid location.*102 \(lat=90.5") as err:
        clean_records(lat, lon, dates, [0] * 6, [101, 102, 103, 104, 105, 106], where="x.json")
    assert "104" in str(err.value) and "106" in str(err.value) and "--on_bad_record skip" in str(err.value)
    with pytest.raises(InatDataError, match=r"date that does not parse.*105 \('bad'\)"):
        clean_records([1.0] * 6, [1.0] * 6, dates, [0] * 6, [101, 102, 103, 104, 105, 106])
    recs = clean_records(lat, lon, dates, [0, 1, 2, 3, 4, 5], np.arange(6), on_bad_record="skip")
    assert recs.counts == {
        "records": 6,
        "with_location": 1,
        "without_location": 2,
        "bad_location_skipped": 3,
        "with_date": 4,
        "bad_date_skipped": 1,
    }
    assert recs.labels.tolist() == [0, 2, 4]  # the bad locations are gone, the missing ones stay (neutral)
    kept = clean_records(lat, lon, dates, [0] * 6, np.arange(6), on_bad_record="skip", keep_rows=True)
    assert len(kept) == 6 and np.isnan(kept.latitude[[1, 3, 5]]).all()  # evaluation keeps rows aligned


# (latitude, longitude, peak day of the year or None: all year, records per n) of each species.
# Two species on different continents, two at one place in different seasons.
TWO_SEASONS = [(50, 10, None, 1), (40, -100, None, 1), (-20, 130, 30, 1), (-20, 130, 210, 1)]
# At the third place a year-round species (twice as many records) and a winter-only one: without a date the answer
# there is about 2:1.
COMMON_AND_WINTER = [(50, 10, None, 1), (40, -100, None, 1), (-20, 130, None, 2), (-20, 130, 20, 1)]


def synthetic_ranges(n, seed, species=TWO_SEASONS):
    rng = np.random.default_rng(seed)
    lat, lon, day, labels = [], [], [], []
    for label, (la, lo, peak, share) in enumerate(species):
        m = n * share
        lat.append(rng.normal(la, 4, m))
        lon.append(rng.normal(lo, 4, m))
        day.append(rng.normal(peak, 15, m) % 365 + 1 if peak else rng.uniform(1, 366, m))
        labels.append(np.full(m, label))
    cat = np.concatenate
    return GeoRecords(cat(lat), cat(lon), cat(day), cat(labels), np.arange(len(cat(labels))))


def small_prior(train, **config):
    """A 4-label prior trained for 150 steps on ``train``."""
    torch.manual_seed(0)
    model = GeoPriorModel(
        GeoPriorConfig(id2label={i: str(i) for i in range(4)}, hidden_size=32, num_blocks=1, **config)
    )
    args = GeoTrainingArguments(output_dir="unused", num_epochs=1, min_steps=150, batch_size=64, learning_rate=5e-3)
    train_geo_prior(model, train, args, log=None)
    return model


@pytest.mark.parametrize("loss", ["softmax", "presence"])
def test_prior_learns_ranges_and_uses_the_season(loss):
    train, val = synthetic_ranges(60, 0), synthetic_ranges(20, 1)
    results = {
        use_date: evaluate_prior(small_prior(train, loss=loss, use_date=use_date), val) for use_date in (True, False)
    }
    # Location alone separates species 0, 1 and {2, 3}: at most 75 % top-1; the season separates 2 from 3.
    assert results[False]["top1"] < 0.8
    assert results[True]["top1"] > 0.9
    assert results[True]["num_scored"] == 80


@pytest.mark.parametrize("loss", ["softmax", "presence"])
def test_date_less_answer_matches_a_location_only_prior(loss):
    # Every training record has a date, so the "no date" input is only ever seen through the default date dropout;
    # without it the date-less answer is an extrapolation (total variation ~0.2-0.26 from the place-only answer on
    # this data, against <= 0.06 with it).
    train, val = synthetic_ranges(60, 0, COMMON_AND_WINTER), synthetic_ranges(20, 1, COMMON_AND_WINTER)
    lat, lon = (torch.tensor(c, dtype=torch.float32) for c in (val.latitude, val.longitude))
    probs = {
        use_date: small_prior(train, loss=loss, use_date=use_date).probabilities(lat, lon, day_of_year=None)
        for use_date in (True, False)
    }
    total_variation = 0.5 * (probs[True] - probs[False]).abs().sum(1)
    assert total_variation.mean() < 0.1


def test_epoch_order_caps_records_per_label():
    labels = torch.tensor([0] * 50 + [1] * 3 + [2] * 10)
    order = epoch_order(labels, torch.Generator().manual_seed(0), max_per_class=5)
    assert torch.bincount(labels[order]).tolist() == [5, 3, 5] and len(set(order.tolist())) == 13
    assert sorted(epoch_order(labels, torch.Generator().manual_seed(0), None).tolist()) == list(range(63))


def test_knn_baseline_votes_by_great_circle_distance():
    # Two clusters astride the date line: by great-circle distance they are neighbours across it, in raw
    # (lat, lon) they would be 360 degrees apart.
    train = GeoRecords(
        np.array([0.0, 0.0, 0.0, 60.0, 60.0]),
        np.array([179.5, -179.5, 179.0, 0.0, 1.0]),
        np.full(5, np.nan),
        np.array([1, 1, 1, 0, 0]),
        np.arange(5),
    )
    val = GeoRecords(
        np.array([0.0, 59.0]), np.array([-179.8, 0.5]), np.full(2, np.nan), np.array([1, 0]), np.arange(2)
    )
    result = knn_scores(train, val, num_labels=2, ks=(1, 3))
    assert result[1]["top1"] == 1.0 and result[3]["top1"] == 1.0


def test_place_and_date_knn_separates_seasons_with_k_and_weight_chosen_on_another_split():
    train, select, report = synthetic_ranges(60, 0), synthetic_ranges(20, 1), synthetic_ranges(20, 2)
    ks, weights = (1, 10, 25), KNN_DATE_WEIGHTS
    place = knn_baseline(train, report, 4, select=select, ks=ks)
    both = knn_baseline(train, report, 4, select=select, date_weights=weights, ks=ks)
    assert place["date_weight"] == 0 and place["top1"] < 0.8  # species 2 and 3 share a place
    assert both["date_weight"] > 0 and both["top1"] > 0.9  # their seasons differ
    assert both["num_scored"] == 80 and both["selection"]["num_scored"] == 80
    # Chosen on `select`, whatever the reported split says: where the seasons of 2 and 3 are swapped, the date
    # misleads, the smallest weight wins, and the reported split pays for it.
    swapped = [TWO_SEASONS[0], TWO_SEASONS[1], TWO_SEASONS[3], TWO_SEASONS[2]]
    misled = knn_baseline(train, report, 4, select=synthetic_ranges(20, 1, swapped), date_weights=weights, ks=ks)
    assert misled["date_weight"] == min(weights) and misled["top1"] < 0.8
    held_out = knn_baseline(train, report, 4, date_weights=weights, ks=ks)  # no select: a fifth of train
    assert held_out["selection"]["num_scored"] < 0.3 * len(train) and held_out["top1"] > 0.9


def test_train_command_from_json_and_prepared_folder(demo_root, prepared_demo, tmp_path, capsys):
    common = ["--min_steps", "20", "--batch_size", "16", "--hidden_size", "16", "--num_blocks", "1"]
    out_json = tmp_path / "from_json"
    code = main(["--data_dir", str(demo_root), "--splits", "train,val", "--output_dir", str(out_json), *common])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "step 20/20 (epoch " in printed.out  # the log counts steps, as --min_steps does
    report = json.loads((out_json / "geo_report.json").read_text())
    assert report["num_labels"] == 8  # kingdom=Animalia, as prepare_data.py: the same labels as an image model
    train_counts = report["counts"]["train"]
    assert train_counts["records"] == 32 and train_counts["filtered_by_taxon"] == 8  # the 8 plant records
    assert train_counts["with_location"] + train_counts["without_location"] == 32
    assert set(report["knn"]) == {"place", "place_date"} and 0 <= report["prior"]["top5"] <= 1
    assert report["knn_chosen_on"] == "a held-out 20% of train"
    located = report["counts"]["val"]["with_location"]
    assert report["prior"]["num_scored"] == report["prior_without_date"]["num_scored"] == located
    assert report["knn"]["place"]["num_scored"] == report["knn"]["place_date"]["num_scored"] == located
    model = GeoPriorModel.from_pretrained(out_json)
    assert model.config.num_labels == 8 and len(model.config.class_prior) == 8

    out_prep = tmp_path / "from_prepared"
    assert main(["--dataset_dir", str(prepared_demo), "--output_dir", str(out_prep), *common]) == 0
    prepared = json.loads((out_prep / "geo_report.json").read_text())
    assert prepared["counts"]["val"] == report["counts"]["val"]  # the same records either way
    assert GeoPriorModel.from_pretrained(out_prep).config.id2label == model.config.id2label


def write_images_json(path, images):
    path.write_text(json.dumps({"images": images}))


def test_config_options_on_the_command_line(prepared_demo, tmp_path):
    out = tmp_path / "prior"
    args = ["--dataset_dir", str(prepared_demo), "--output_dir", str(out), "--eval_split", "none", "--min_steps", "2"]
    assert main([*args, "--hidden_size", "8", "--no_use_date", "--loss", "presence", "--loss_negatives", "0"]) == 0
    config = GeoPriorModel.from_pretrained(out).config
    assert (config.hidden_size, config.use_date, config.loss) == (8, False, "presence")
    assert config.loss_negatives is None and config.sampled_negatives is None  # 0 on the command line: every label
    # --max_per_class: the prior learns capped frequencies, so its p(y) is capped too (every demo label is seen).
    assert main([*args, "--max_per_class", "1", "--output_dir", str(tmp_path / "capped")]) == 0
    capped = GeoPriorModel.from_pretrained(tmp_path / "capped").config.class_prior
    assert capped == pytest.approx([1 / 8] * 8) and config.class_prior != pytest.approx(capped)


def test_help_documents_the_config_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert "--loss_negatives" in out and "Labels drawn as negatives per training step" in out


def test_bad_records_in_json(tmp_path, capsys):
    folder = "train/00007_Animalia_Arthropoda_Arachnida_Araneae_Araneidae_Agalenatea_redii"
    images = [
        {"id": i, "file_name": f"{folder}/{i}.jpg", "latitude": 10.0 + i, "longitude": 5.0, "date": "2019-05-01"}
        for i in range(5)
    ]
    images[2]["latitude"] = 123.0
    write_images_json(tmp_path / "train.json", images)
    args = ["--data_dir", str(tmp_path), "--splits", "train", "--eval_split", "none", "--min_steps", "2"]
    assert main([*args, "--output_dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "invalid location" in err and "2 (lat=123.0, lon=5.0)" in err
    assert main([*args, "--output_dir", str(tmp_path / "b"), "--on_bad_record", "skip"]) == 0
    counts = json.loads((tmp_path / "b" / "geo_report.json").read_text())["counts"]["train"]
    assert counts["bad_location_skipped"] == 1 and counts["with_location"] == 4


def test_real_records_knn_and_prior_beat_chance(real_sample, tmp_path):
    root = real_sample / "inat2021_json"
    data = DataArguments(
        data_dir=str(root),
        splits="train=train_60.json,val=val_20.json",
        taxon="none",
        verify_files=False,
        cache_dir=str(tmp_path),
    )
    prepared = load_data(data)
    splits = {name: split_records(prepared.dataset[name], name) for name in ("train", "val")}
    taxonomy = prepared.taxonomy
    assert taxonomy.num_labels == 100
    train, val = splits["train"], splits["val"]
    assert train.counts["records"] == 3600 and train.counts["without_location"] == 11
    knn = knn_baseline(train, val, taxonomy.num_labels)
    assert knn["top1"] > 0.1 and knn["top5"] > 0.3  # chance: 0.01 / 0.05
    torch.manual_seed(0)
    model = GeoPriorModel(GeoPriorConfig(id2label=dict(enumerate(taxonomy.labels)), hidden_size=64, num_blocks=2))
    train_geo_prior(
        model,
        train,
        GeoTrainingArguments(
            output_dir=str(tmp_path), num_epochs=1, min_steps=120, batch_size=256, learning_rate=2e-3
        ),
        log=None,
    )
    prior = evaluate_prior(model, val)
    assert prior["top5"] > 0.25 and prior["num_scored"] == knn["num_scored"] == 1195
