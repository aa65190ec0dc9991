"""inat_hf.app without a browser: the page's answer equals predict.py's, bad input becomes a message, model facts."""

import json
import shutil
import struct
import zlib

import pytest
import yaml
from PIL import ExifTags, Image

from inat_hf.app import ClassifierPage, PageInputs, _model_yaml, model_summary
from inat_hf.commands.predict import main as predict_main


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds no pixels: "huge" for whoever trusts its header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def page(trained_model_dir):
    return ClassifierPage.from_pretrained(str(trained_model_dir), tta_views=5)


@pytest.fixture
def photos(demo_root):
    return sorted((demo_root / "val").rglob("*.jpg"))[::5][:3]


@pytest.mark.parametrize("tta", [False, True])
def test_page_answer_equals_predict_py(page, trained_model_dir, photos, tmp_path, tta):
    out = tmp_path / "preds.json"
    args = ["--model_dir", str(trained_model_dir), "--quiet", "--output", str(out), *map(str, photos)]
    assert predict_main(args + (["--tta", "--tta_views", "5"] if tta else [])) == 0
    expected = json.loads(out.read_text())
    for photo, reference in zip(photos, expected):
        result = page.classify(PageInputs(photo=str(photo), tta=tta))
        assert result.error is None
        shown = [(p["label"], p["probability"]) for p in reference["predictions"]]
        assert [name.split(" (")[0] for name in result.label] == [label for label, _ in shown]
        assert list(result.label.values()) == pytest.approx([prob for _, prob in shown], abs=1e-6)
        first = result.html.split('data-rank="2"')[0]
        assert f"<i>{shown[0][0]}</i>" in first and f"{shown[0][1]:.1%}" in first
        assert ("5-view test-time augmentation" in result.html) == tta
        assert result.preview.size[0] <= 384 and result.preview.size[1] <= 384
        # the taxonomic back-off answer of predict.py (no prior needed), in its words
        assert result.prediction.backoff == pytest.approx(reference["backoff"])
        b = reference["backoff"]
        assert f"pretty sure: {b['rank']} {b['taxon']} ({b['probability']:.1%})" in result.html
        assert "location" not in result.html  # no prior: nothing about locations


def test_bad_files_become_messages_and_the_page_keeps_working(page, photos, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    text = tmp_path / "notes.txt"
    text.write_text("not an image at all")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(20_000, 20_000))  # 400 MP: PIL refuses to open it (decompression bomb)
    large = tmp_path / "large.png"
    large.write_bytes(png_header(10_000, 10_000))  # 100 MP: PIL would try; the page's limit refuses it
    cases = {
        corrupt: ["could not decode image corrupt.jpg", "expected an encoded image file"],
        text: ["could not decode image notes.txt", "PIL cannot decode"],
        bomb: ["bomb.png is too large to classify here", "decompression bomb"],
        large: ["large.png is 10000×10000 px (100 MP)", "accepts images up to 89 MP"],
    }
    for path, fragments in cases.items():
        # Gradio hands the page a temporary copy: the message names the file as the visitor knows it.
        upload = tmp_path / "gradio_upload_dir" / path.name
        upload.parent.mkdir(exist_ok=True)
        shutil.copy(path, upload)
        result = page.classify(PageInputs(photo=str(upload), display_name=path.name))
        assert result.label is None and result.preview is None
        for fragment in fragments:
            assert fragment in result.error and fragment in result.html
        assert str(upload.parent) not in result.error
        assert 'class="inat-error"' in result.html
    ok = page.classify(PageInputs(photo=str(photos[0])))
    assert ok.error is None and len(ok.label) == 5
    assert page.classify(PageInputs(photo=None)).html == ""  # cleared upload: an empty page, no error


def test_html_escapes_names(page, photos):
    labels = page.predictor.taxonomy.labels
    original = labels[:]
    try:
        labels[:] = [f"<b>{n}</b>" for n in original]
        result = page.classify(PageInputs(photo=str(photos[0])))
        assert "<b>" not in result.html and "&lt;b&gt;" in result.html
    finally:
        labels[:] = original


def test_model_summary(trained_model_dir, tmp_path, page):
    summary = page.summary
    assert "`resnet10t`, 32 px input" in summary
    assert "labels: **8** at rank **species**" in summary and "phylum 2" in summary and "class 3" in summary
    assert "training data" not in summary  # the tiny test model has no recipe next to it

    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    recipe = {"data": {"dataset_dir": "runs/demo/prepared", "train_split": "train", "max_train_samples": 100}}
    (model / "run_config.yaml").write_text(yaml.safe_dump(recipe))
    index = [
        {
            "name": "m",
            "results": [
                {
                    "dataset": {"name": "iNaturalist 2021", "split": "val"},
                    "metrics": [{"name": "top-1 accuracy", "value": 0.667}, {"name": "top-5 accuracy", "value": 0.98}],
                }
            ],
        }
    ]
    card = "---\n" + yaml.safe_dump({"model-index": index}) + "---\n# m\n"
    (model / "README.md").write_text(card)
    summary = model_summary(str(model), page.predictor.config, page.predictor.taxonomy)
    assert "training data: `runs/demo/prepared`, split `train`, first 100 images" in summary
    assert "reported on iNaturalist 2021 `val`: top-1 accuracy 0.667, top-5 accuracy 0.98" in summary


def test_missing_or_malformed_model_facts_are_absent_not_fatal(page, tmp_path):
    assert _model_yaml("someone/not-cached-anywhere", "README.md") == {}  # a Hub id, offline
    (tmp_path / "run_config.yaml").write_text("data: [unclosed")
    (tmp_path / "README.md").write_text("---\n- a list, not a mapping\n---\n# m\n")
    summary = model_summary(str(tmp_path), page.predictor.config, page.predictor.taxonomy)
    assert "labels: **8**" in summary and "training data" not in summary and "reported on" not in summary


# --------------------------------------------------------------------------------------------------------------
# With the location/date prior: the same answer as predict.py --geo_prior, typed-in location or EXIF
# --------------------------------------------------------------------------------------------------------------

WHERE = {"latitude": 42.0, "longitude": -95.0, "date": "2019-06-01"}  # moves the demo prior's answer (test_fusion)


@pytest.fixture(scope="module")
def geo_page(trained_model_dir, demo_prior):
    return ClassifierPage.from_pretrained(str(trained_model_dir), geo_prior=str(demo_prior), tta_views=5)


@pytest.fixture
def gps_photo(photos, tmp_path):
    """A demo photo with GPS coordinates and DateTimeOriginal in its EXIF."""
    path = tmp_path / "gps.jpg"
    with Image.open(photos[0]) as im:
        exif = Image.Exif()
        exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (42.0, 0.0, 0.0), 3: "W", 4: (95.0, 0.0, 0.0)}
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2019:06:01 12:00:00"
        im.save(path, exif=exif, quality=95)
    return path


def _predict_py(args, tmp_path) -> dict:
    out = tmp_path / "predict.json"
    assert predict_main([*map(str, args), "--quiet", "--output", str(out)]) == 0
    (reference,) = json.loads(out.read_text())
    return reference


def _assert_same_answer(result, reference):
    assert result.error is None, result.error
    assert [name.split(" (")[0] for name in result.label] == [p["label"] for p in reference["predictions"]]
    assert list(result.label.values()) == pytest.approx([p["probability"] for p in reference["predictions"]], abs=1e-6)
    assert result.prediction.backoff == pytest.approx(reference["backoff"])
    b = reference["backoff"]
    if b["rank"] is not None:
        assert f"pretty sure: {b['rank']} {b['taxon']} ({b['probability']:.1%})" in result.html


@pytest.mark.parametrize("source", ["typed in", "exif"])
def test_page_with_location_prior_equals_predict_py(
    geo_page, page, trained_model_dir, demo_prior, photos, gps_photo, tmp_path, source
):
    base = ["--model_dir", trained_model_dir, "--geo_prior", demo_prior]
    if source == "typed in":
        flags = ["--lat", WHERE["latitude"], "--lon", WHERE["longitude"], "--date", WHERE["date"]]
        reference = _predict_py([*base, *flags, photos[0]], tmp_path)
        result = geo_page.classify(PageInputs(photo=str(photos[0]), **WHERE))
        assert reference["location"]["location_source"] == "arguments"
    else:
        reference = _predict_py([*base, gps_photo], tmp_path)
        result = geo_page.classify(PageInputs(photo=str(gps_photo)))
    _assert_same_answer(result, reference)
    expected_location = {**reference["location"], "location_source": source, "date_source": source}
    assert result.prediction.location == pytest.approx(expected_location)
    shown = "from EXIF" if source == "exif" else source
    assert f"location prior used: location 42.0000, -95.0000 ({shown}), date 2019-06-01 ({shown})" in result.html
    # the location changed the answer (else this test could not tell a page that ignores it)
    image_only = page.classify(PageInputs(photo=str(photos[0])))
    assert list(result.label.values()) != pytest.approx(list(image_only.label.values()), abs=1e-6)


def test_page_shows_the_top_answers_range_with_the_photo_marked(geo_page, page, photos, monkeypatch):
    import inat_hf.geo.range_map as range_map

    drawn = []
    render = range_map.render_range_map
    monkeypatch.setattr(range_map, "render_range_map", lambda *a, **k: drawn.append((a, k)) or render(*a, **k))
    result = geo_page.classify(PageInputs(photo=str(photos[0]), **WHERE))
    (model, label), kwargs = drawn[0]
    top = result.prediction.indices[0]
    assert model.config.id2label[label] == geo_page.predictor.taxonomy.labels[top]  # the prior's own index
    assert kwargs["mark"] == (WHERE["latitude"], WHERE["longitude"]) and kwargs["month"] == 6
    assert result.range_map.format == "PNG" and result.range_map.width > 300
    no_location = geo_page.classify(PageInputs(photo=str(photos[0])))
    assert drawn[-1][1]["mark"] is None and drawn[-1][1]["month"] is None and no_location.range_map is not None
    assert page.classify(PageInputs(photo=str(photos[0]))).range_map is None  # no prior, no map


def test_model_facts_name_the_prior(geo_page, page, demo_prior):
    assert f"location/date prior: `{demo_prior}` (softmax loss, 8 labels, fusion weight 1)" in geo_page.summary
    assert "location/date prior" not in page.summary
    assert "taxonomic back-off threshold: 0.8" in page.summary


def test_page_with_location_prior_without_location_is_image_only(
    geo_page, page, trained_model_dir, demo_prior, photos, tmp_path
):
    reference = _predict_py(["--model_dir", trained_model_dir, "--geo_prior", demo_prior, photos[0]], tmp_path)
    result = geo_page.classify(PageInputs(photo=str(photos[0]), date="  "))  # an empty field is no date
    _assert_same_answer(result, reference)
    assert result.label == page.classify(PageInputs(photo=str(photos[0]))).label
    assert result.prediction.location["location_used"] is False
    assert "image only: no location" in result.html


@pytest.mark.parametrize(
    "where, fragment",
    [
        ({"latitude": 95.0, "longitude": 10.0}, "expected latitude in [-90, 90] (decimal degrees), got 95.0"),
        ({"latitude": 45.0, "longitude": -190.0}, "expected longitude in [-180, 180] (decimal degrees), got -190.0"),
        ({"latitude": float("nan"), "longitude": 10.0}, "expected latitude in [-90, 90]"),
        ({"latitude": 45.0}, "latitude and longitude go together"),
        ({"latitude": 45.0, "longitude": 10.0, "date": "2019-13-45"}, "the date '2019-13-45' does not parse"),
        ({"date": "last summer"}, "the date 'last summer' does not parse: expected YYYY-MM-DD"),
    ],
)
def test_bad_location_becomes_a_message_and_the_page_keeps_working(geo_page, photos, where, fragment):
    result = geo_page.classify(PageInputs(photo=str(photos[0]), **where))
    assert result.label is None and fragment in result.error and 'class="inat-error"' in result.html
    assert "Correct the location fields" in result.error
    ok = geo_page.classify(PageInputs(photo=str(photos[0]), **WHERE))
    assert ok.error is None and len(ok.label) == 5


def test_a_location_without_a_prior_is_not_silently_dropped(page, photos):
    result = page.classify(PageInputs(photo=str(photos[0]), **WHERE))
    assert result.label is None and "this page has no location prior" in result.error
