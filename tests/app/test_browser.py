"""The web page in a real browser: scripts/app.py served on 127.0.0.1, driven by headless Chromium (Selenium).

Runs wherever chromium + chromedriver are installed; on CI (``CI=true``, where ``.ci/run`` installs them) a missing
browser is a failure, not a skip.
"""

import concurrent.futures
import json
import os
from pathlib import Path

import numpy as np
import pytest

from inat_hf.commands.predict import expand_inputs
from inat_hf.commands.predict import main as predict_main
from tests.app.browser import AppPage, chromium, find_browser, serve
from tests.conftest import REAL_SAMPLE

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(message: str):
    """Skip where a piece is not installed, but fail on CI: .ci/run installs everything this test needs."""
    if ON_CI:
        pytest.fail(f"{message}; .ci/run installs it, so on CI the browser test must run.", pytrace=False)
    pytest.skip(message, allow_module_level=True)


try:
    import gradio  # noqa: F401
    import selenium  # noqa: F401
except ImportError as err:
    _missing(f"the app test needs gradio and selenium (pip install -e '.[dev]'): {err}")


def _predict_top(model_dir, files, tmp_path, *, name="predict.json", tta=False, extra=()) -> list[tuple[str, float]]:
    """predict.py's top-1 (label, probability) for each file, through its command line entry point."""
    out = tmp_path / name
    args = ["--model_dir", str(model_dir), "--quiet", "--output", str(out), *map(str, extra), *map(str, files)]
    assert predict_main(args + (["--tta", "--tta_views", "5"] if tta else [])) == 0
    return [(p["predictions"][0]["label"], p["predictions"][0]["probability"]) for p in json.loads(out.read_text())]


@pytest.fixture(scope="module")
def browser():
    found = find_browser()
    if found is None:
        _missing("chromium and chromedriver not found (Debian: apt-get install chromium chromium-driver)")
    return found


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A real photo from the shared sample when present, else a generated one."""
    real = sorted((REAL_SAMPLE / "images").glob("*/*.jpg"))
    if real:
        return real[0]
    from inat_hf.data.demo import render_demo_image

    path = tmp_path_factory.mktemp("photo") / "generated.jpg"
    render_demo_image("triangle", (35, 35, 35), 160, 120, np.random.default_rng(0)).save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def server(trained_model_dir, demo_root, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "app.log"
    with serve(trained_model_dir, log=log, examples=[demo_root / "public_test"]) as running:
        yield running
    assert running.process.poll() is not None, "the app server is still running after the test"


def test_upload_in_chromium(browser, server, photo, trained_model_dir, demo_root, tmp_path):
    (expected,) = _predict_top(trained_model_dir, [photo], tmp_path)
    examples = expand_inputs([str(demo_root / "public_test")])
    (expected_example,) = _predict_top(trained_model_dir, examples[:1], tmp_path, name="example.json")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated JPEG")

    with chromium(*browser) as web:
        page = AppPage(web, server.url)
        page.open()
        assert "labels: 8 at rank species" in page.model_text()

        shown = page.upload(photo)
        assert shown.error is None and len(shown.rows) == 5
        assert shown.top1[0] == expected[0], f"page top-1 {shown.top1} != predict.py top-1 {expected}"
        assert shown.top1[1] == pytest.approx(expected[1], abs=0.0005)  # shown as 12.3 %
        screenshot = page.screenshot(tmp_path / "app_result.png")
        print(f"screenshot of the result page: {screenshot}")
        assert screenshot.stat().st_size > 10_000

        shown = page.upload(corrupt)
        assert shown.rows == [] and shown.error is not None
        assert "Could not classify" in shown.error and "corrupt.jpg" in shown.error
        assert "could not decode" in shown.error and "/tmp/gradio" not in shown.error  # the name the visitor knows

        shown = page.upload(photo)  # the server still serves, and the error is gone
        assert shown.error is None and shown.top1[0] == expected[0]

        (expected_tta,) = _predict_top(trained_model_dir, [photo], tmp_path, name="tta.json", tta=True)
        shown = page.set_tta(True)
        assert shown.top1[0] == expected_tta[0] and shown.top1[1] == pytest.approx(expected_tta[1], abs=0.0005)
        page.set_tta(False)

        shown = page.click_example(0)
        assert shown.error is None and shown.top1[0] == expected_example[0]


def test_concurrent_requests_are_queued(server, photo, trained_model_dir, demo_root, tmp_path):
    """Several visitors at once (one of them with a corrupt file): every request gets its own answer."""
    from gradio_client import Client, handle_file

    files = [photo, *expand_inputs([str(demo_root / "public_test")])[:2]]
    expected = _predict_top(trained_model_dir, files, tmp_path)
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    client = Client(server.url, verbose=False)
    jobs = [client.submit(handle_file(str(f)), False, api_name="/on_upload") for f in [*files, corrupt]]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: job.result(timeout=120), jobs))
    for (label, details_html, _preview), (name, _prob) in zip(results, expected):
        assert label["label"].startswith(name)  # gr.Label's top class: "Scientific name (Common name)"
        assert 'data-rank="1"' in details_html and f"<i>{name}</i>" in details_html.split('data-rank="2"')[0]
    label, details_html, preview = results[-1]
    assert "broken.png" in details_html and "Could not classify" in details_html and preview is None


@pytest.fixture(scope="module")
def geo_server(trained_model_dir, demo_prior, demo_root, tmp_path_factory):
    log = tmp_path_factory.mktemp("geo_server") / "app.log"
    extra = ["--geo_prior", str(demo_prior)]
    with serve(trained_model_dir, log=log, examples=[demo_root / "public_test"], extra_args=extra) as running:
        yield running
    assert running.process.poll() is not None, "the app server is still running after the test"


def test_location_in_chromium(browser, geo_server, photo, trained_model_dir, demo_prior, demo_root, tmp_path):
    """Type a location and date, upload: the page's top-1 is predict.py --geo_prior --lat --lon --date's."""
    where = ["--lat", "42", "--lon", "-95", "--date", "2019-06-01"]
    (expected,) = _predict_top(trained_model_dir, [photo], tmp_path, extra=["--geo_prior", demo_prior, *where])
    example = expand_inputs([str(demo_root / "public_test")])[:1]
    (expected_example,) = _predict_top(
        trained_model_dir, example, tmp_path, name="example.json", extra=["--geo_prior", demo_prior, *where]
    )
    (image_only,) = _predict_top(trained_model_dir, [photo], tmp_path, name="image.json")
    assert expected[1] != pytest.approx(image_only[1], abs=0.0005)  # else the page could ignore the location
    with chromium(*browser) as web:
        page = AppPage(web, geo_server.url)
        page.open()
        page.set_location(42, -95, "2019-06-01")
        shown = page.upload(photo)
        assert shown.error is None, shown.error
        assert shown.top1[0] == expected[0] and shown.top1[1] == pytest.approx(expected[1], abs=0.0005)
        assert "location 42.0000, -95.0000 (typed in), date 2019-06-01 (typed in)" in shown.location
        assert shown.backoff.startswith("pretty sure: ") or shown.backoff.startswith("not 80% sure")
        screenshot = page.screenshot(tmp_path / "app_location.png")
        print(f"screenshot of the result page with a location: {screenshot}")

        shown = page.click_example(0)  # an example is classified with the typed location too
        assert shown.top1[0] == expected_example[0] and shown.top1[1] == pytest.approx(expected_example[1], abs=5e-4)
        assert "(typed in)" in shown.location

        page.set_location(95, -95, "2019-06-01")
        shown = page.upload(photo)
        assert shown.rows == [] and "expected latitude in [-90, 90]" in shown.error

        page.set_location()  # empty fields: the photo's EXIF, as predict.py --geo_prior without --lat/--lon/--date
        (from_exif,) = _predict_top(
            trained_model_dir, [photo], tmp_path, name="exif.json", extra=["--geo_prior", demo_prior]
        )
        shown = page.upload(photo)
        assert shown.top1[0] == from_exif[0] and shown.top1[1] == pytest.approx(from_exif[1], abs=0.0005)
        assert "typed in" not in shown.location
