"""Fusion with the location prior, EXIF locations and taxonomic back-off (library level and through the
evaluate / predict commands)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from inat_hf.commands.evaluate import main as evaluate_main
from inat_hf.commands.predict import main as predict_main
from inat_hf.data.taxonomy import Taxonomy
from inat_hf.geo.fusion import GeoFusion, exif_location, photo_locations
from inat_hf.geo.records import GeoRecords
from inat_hf.inference.backoff import RankGroups, backoff_answer, backoff_table, describe_backoff
from inat_hf.inference.errors import InferenceError
from inat_hf.models import GeoPriorConfig, GeoPriorModel

RANKS = {
    "kingdom": ["Animalia"] * 4,
    "family": ["Turdidae", "Turdidae", "Turdidae", "Paridae"],
    "genus": ["Turdus", "Turdus", "Catharus", "Parus"],
    "species": ["Turdus merula", "Turdus migratorius", "Catharus guttatus", "Parus major"],
}
NAMES = RANKS["species"]


def test_backoff_sums_species_up_the_ranks():
    groups = RankGroups.from_taxonomy(Taxonomy(rank="species", labels=NAMES, ranks=RANKS))
    # finest first, in the taxonomy's order; not the kingdom: every label is in Animalia, so it says nothing
    assert groups.ranks == ["species", "genus", "family"]
    probs = torch.tensor(
        [
            [0.90, 0.05, 0.03, 0.02],  # sure of the species
            [0.45, 0.40, 0.10, 0.05],  # sure of the genus only (0.85)
            [0.40, 0.05, 0.40, 0.15],  # family 0.85
            [0.30, 0.0, 0.30, 0.40],  # only the kingdom (every label's) reaches 0.8: not sure
        ]
    )
    answers = backoff_answer(probs, groups, 0.8)
    assert [(a["rank"], a["taxon"]) for a in answers] == [
        ("species", "Turdus merula"),
        ("genus", "Turdus"),
        ("family", "Turdidae"),
        (None, None),
    ]
    assert answers[1]["probability"] == pytest.approx(0.85)
    assert describe_backoff(answers[3], 0.8) == "not 80% sure of any rank"
    assert describe_backoff(answers[1], 0.8) == "pretty sure: genus Turdus (85.0%)"


def test_backoff_precision_and_coverage_per_rank():
    conf = np.array([[0.9, 0.95, 1.0], [0.5, 0.9, 1.0], [0.5, 0.85, 1.0], [0.3, 0.5, 1.0]])  # species, genus, kingdom
    correct = np.array([[True, True, True], [False, True, True], [False, False, True], [False, False, True]])
    table = backoff_table(conf, correct, ["species", "genus", "kingdom"], 0.8)
    assert table["per_rank"]["species"] == {"coverage": 0.25, "precision": 1.0, "images": 1}
    assert table["per_rank"]["genus"] == {"coverage": 0.5, "precision": 0.5, "images": 2}
    assert table["per_rank"]["kingdom"] == {"coverage": 0.25, "precision": 1.0, "images": 1}
    assert table["overall_precision"] == 0.75 and table["no_answer"] == 0


def prior_for(names, **kwargs):
    config = GeoPriorConfig(id2label=dict(enumerate(names)), hidden_size=8, num_blocks=1, **kwargs)
    return GeoPriorModel(config).eval()


def test_fusion_matches_labels_by_name_and_keeps_image_only_rows():
    prior = prior_for(list(reversed(NAMES)) + ["Extra species"], class_prior=[1, 2, 3, 4, 5])
    fusion = GeoFusion(prior, NAMES)
    records = GeoRecords(
        np.array([48.0, np.nan]), np.array([2.0, np.nan]), np.array([100.0, np.nan]), np.zeros(2, int), np.arange(2)
    )
    scores = torch.randn(2, 4)
    fused = fusion.fuse(scores, records)
    ratio = prior.log_prior_ratio(torch.tensor([48.0]), torch.tensor([2.0]), torch.tensor([100.0]))[0]
    expected0 = scores[0].log_softmax(-1) + ratio[[3, 2, 1, 0]]  # reversed order in the prior
    torch.testing.assert_close(fused[0], expected0)
    torch.testing.assert_close(fused[1], scores[1].log_softmax(-1))  # no location: the image model's answer
    with pytest.raises(InferenceError, match="does not know 1 of the image model's 4 labels.*'Parus major'"):
        GeoFusion(prior_for(NAMES[:3]), NAMES)


def exif_photo(path, gps=None, date=None, colour=(200, 30, 30)):
    image = Image.new("RGB", (56, 48), colour)
    exif = Image.Exif()
    if gps is not None:
        exif[ExifTags.IFD.GPSInfo] = gps
    if date is not None:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = date
    image.save(path, exif=exif)
    return path


def test_exif_location(tmp_path):
    gps = {1: "S", 2: (33.0, 51.0, 36.0), 3: "W", 4: (151.0, 12.0, 0.0)}
    loc = exif_location(exif_photo(tmp_path / "a.jpg", gps, "2020:07:15 10:00:00"))
    assert (loc.latitude, loc.longitude, loc.date) == (pytest.approx(-33.86), pytest.approx(-151.2), "2020-07-15")
    assert loc.location_source == loc.date_source == "exif"
    bad = exif_location(exif_photo(tmp_path / "b.jpg", {1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (1.0, 0, 0)}, "junk"))
    assert not bad.has_location and bad.date is None  # an impossible latitude is ignored, never used
    assert exif_location(tmp_path / "missing.jpg").to_dict()["location_used"] is False


@pytest.mark.parametrize(
    "gps, problem",
    [
        ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (1.0, 0, 0)}, "EXIF GPS latitude 95 outside [-90, 90]"),
        ({1: "N", 2: (10.0, IFDRational(30, 0), 0.0), 3: "E", 4: (1.0, 0, 0)}, "a zero denominator?"),
        ({1: "X", 2: (10.0, 0.0, 0.0), 3: "E", 4: (1.0, 0, 0)}, "EXIF GPS latitude reference 'X' (expected N or S)"),
        ({1: "N", 2: (10.0, 0.0, 0.0), 3: "E", 4: (1.0, 99.0, 0)}, "EXIF GPS longitude 1° 99' 0\" (minutes, seconds"),
        ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0, 0)}, "EXIF GPS position (0, 0): what cameras write without"),
        ({1: "N", 2: (10.0, 0.0, 0.0)}, "incomplete EXIF GPS (no GPSLongitudeRef, GPSLongitude)"),
    ],
)
def test_invalid_exif_gps_is_refused_with_the_reason(tmp_path, gps, problem):
    loc = exif_location(exif_photo(tmp_path / "a.jpg", gps, "2020:07:15 10:00:00"))
    assert not loc.has_location and loc.location_problem is not None and problem in loc.location_problem
    assert loc.to_dict()["location_problem"] == loc.location_problem and loc.date == "2020-07-15"


def test_exif_date_is_when_the_photo_was_taken_never_the_edit_time(tmp_path):
    def photo(name, **tags):
        image, exif = Image.new("RGB", (8, 8)), Image.Exif()
        exif[ExifTags.Base.DateTime] = "2024:01:02 03:04:05"  # the last edit: never the date
        for tag, value in tags.items():
            if tag == "GPSDateStamp":
                exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSDateStamp] = value
            else:
                exif.get_ifd(ExifTags.IFD.Exif)[getattr(ExifTags.Base, tag)] = value
        image.save(tmp_path / name, exif=exif)
        return exif_location(tmp_path / name).date

    assert photo("edited.jpg") is None
    assert photo("digitized.jpg", DateTimeDigitized="2019:05:06 07:08:09") == "2019-05-06"
    assert photo("gps.jpg", GPSDateStamp="2018:03:04") == "2018-03-04"
    both = dict(DateTimeOriginal="2017:01:01 00:00:00", DateTimeDigitized="2019:05:06 07:08:09")
    assert photo("original.jpg", GPSDateStamp="2018:03:04", **both) == "2017-01-01"


def test_photo_locations_given_values_replace_exif_and_are_checked(tmp_path):
    photo = exif_photo(tmp_path / "a.jpg", {1: "N", 2: (42.0, 0.0, 0.0), 3: "W", 4: (95.0, 0.0, 0.0)}, "2020:07:15")
    assert photo_locations([photo, photo]) == [exif_location(photo)] * 2
    (given,) = photo_locations([photo], 10.0, 20.0, None, source="typed in")
    assert (given.latitude, given.longitude, given.date, given.location_source) == (10.0, 20.0, None, "typed in")
    (dated,) = photo_locations([photo], date="2019-06-01")  # a date alone: no EXIF location paired with it
    assert not dated.has_location and dated.date == "2019-06-01" and dated.date_source == "arguments"
    assert photo_locations([photo], date=" ") == [exif_location(photo)]  # an empty field is no value
    with pytest.raises(InferenceError, match="latitude and longitude go together"):
        photo_locations([photo], lon=20.0)  # a longitude alone is an error, never silently replaced by EXIF
    with pytest.raises(InferenceError, match=r"expected longitude in \[-180, 180\] \(decimal degrees\), got inf"):
        photo_locations([photo], 10.0, float("inf"))
    with pytest.raises(InferenceError, match="the date '2019-02-30' does not parse: expected YYYY-MM-DD"):
        photo_locations([photo], 10.0, 20.0, "2019-02-30")


def test_evaluate_reports_image_prior_and_fused_side_by_side(
    trained_model_dir, prepared_demo, demo_prior, tmp_path, capsys
):
    out = tmp_path / "eval"
    args = ["--model_dir", str(trained_model_dir), "--dataset_dir", str(prepared_demo), "--split", "val"]
    code = evaluate_main(
        [*args, "--no_tta", "--geo_prior", str(demo_prior), "--output_dir", str(out), "--num_workers", "0"]
    )
    assert code == 0
    (run_dir,) = out.glob("test_results_*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["runs"]) == {"no_tta", "geo_prior", "fused"}
    for run in summary["runs"].values():
        assert {"top1", "top3", "top5", "hierarchical_accuracy"} <= set(run)
    assert summary["geo"]["fusion_weight"] == 1.0 and summary["geo"]["loss"] == "softmax"
    counts = summary["geo"]["counts"]
    assert counts["records"] == 16
    unusable = 16 - counts["with_location"]
    assert f"location prior: {unusable} of 16 images had no usable location (missing " in capsys.readouterr().out
    unusual = summary["geo"]["unusual"]  # how often "unusual here and now" fires on right and wrong fused answers
    assert unusual["threshold"] == 0.1 and 0 < unusual["images"] <= 16 and 0 <= unusual["fires"] <= 1
    hier = pd.read_csv(run_dir / "hierarchical_accuracy.csv")
    assert {"no_tta", "geo_prior", "fused"} <= set(hier.columns)
    backoff = summary["backoff"]
    assert backoff["threshold"] == 0.8 and set(backoff["runs"]) == {"no_tta", "fused"}
    for table in backoff["runs"].values():
        assert sum(s["coverage"] for s in table["per_rank"].values()) + table["no_answer"] / 16 == pytest.approx(1)
    csv = pd.read_csv(run_dir / "backoff.csv")
    for _, run in csv.groupby("run"):  # finest first, as the taxonomy goes up the tree; the demo is all Animalia
        assert run["rank"].tolist() == ["species", "genus", "family", "order", "class", "phylum"]
    assert (run_dir / "precision_coverage.png").stat().st_size > 1000
    # The fused run is exactly the image run where the prior is neutral and differs where it is not.
    image = pd.read_csv(run_dir / "predictions.csv")
    fused = pd.read_csv(run_dir / "predictions_fused.csv")
    assert len(image) == len(fused) == 16 and not np.allclose(image["top1_prob"], fused["top1_prob"])


def test_predict_with_location_from_exif_and_arguments(trained_model_dir, demo_root, demo_prior, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    source = sorted((demo_root / "val").rglob("*.jpg"))[0]
    plain = photos / "a_plain.jpg"
    shutil.copy(source, plain)
    with Image.open(source) as im:
        exif = Image.Exif()
        exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (42.0, 0.0, 0.0), 3: "W", 4: (95.0, 0.0, 0.0)}
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2019:06:01 12:00:00"
        im.save(photos / "b_gps.jpg", exif=exif, quality=95)
        exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}
        im.save(photos / "c_no_fix.jpg", exif=exif, quality=95)
    base = ["--model_dir", str(trained_model_dir), str(photos), "--top_k", "8"]
    assert predict_main([*base, "--output", str(tmp_path / "image.json")]) == 0
    out = tmp_path / "fused.json"
    assert predict_main([*base, "--geo_prior", str(demo_prior), "--output", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "image only (no location)" in stdout and "from exif" in stdout and "pretty sure:" in stdout
    assert "image only (invalid location: EXIF GPS position (0, 0): what cameras write without a GPS fix)" in stdout
    image_only = {p["file"]: p for p in json.loads((tmp_path / "image.json").read_text())}
    fused = {p["file"]: p for p in json.loads(out.read_text())}
    a, b = fused[str(plain)], fused[str(photos / "b_gps.jpg")]
    assert a["location"]["location_used"] is False and a["predictions"] == image_only[str(plain)]["predictions"]
    assert b["location"] == {
        "location_used": True,
        "latitude": 42.0,
        "longitude": -95.0,
        "location_source": "exif",
        "location_problem": None,
        "date_used": True,
        "date": "2019-06-01",
        "date_source": "exif",
    }
    assert b["predictions"] != image_only[str(photos / "b_gps.jpg")]["predictions"]
    assert a["backoff"]["rank"] in {"species", "genus", "family", "order", "class", "phylum", "kingdom"}
    # Arguments win over EXIF, for every photo.
    out2 = tmp_path / "args.csv"
    assert (
        predict_main([*base, "--geo_prior", str(demo_prior), "--lat", "50", "--lon", "10", "--output", str(out2)]) == 0
    )
    table = pd.read_csv(out2)
    assert set(table["geo_location_source"]) == {"arguments"} and table["geo_location_used"].all()
    assert predict_main([*base, "--geo_prior", str(demo_prior), "--lat", "91", "--lon", "10"]) == 2
    assert "latitude in [-90, 90]" in capsys.readouterr().err


def test_unusual_rates_split_by_right_and_wrong_answers():
    from inat_hf.commands.evaluate import unusual_rates
    from inat_hf.inference.evaluator import TopKPredictions

    labels = np.array([0, 1, 2, 3, 0, -1])
    fused = TopKPredictions(np.array([[0], [1], [0], [0], [0], [0]]), np.ones((6, 1)), labels)  # right, right, wrong..
    ratio = np.array([0.05, 2.0, 0.01, 0.5, 1.0, 0.01])
    located = np.array([True, True, True, True, False, True])  # image 4: no location; image 5: unlabeled
    out = unusual_rates(ratio, fused, located, 0.1)
    assert out["images"] == 4 and out["fires_on_correct"] == 0.5 and out["fires_on_wrong"] == 0.5
    assert out["fires"] == 0.5 and out["precision_of_flag_for_errors"] == 0.5
