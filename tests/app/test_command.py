"""scripts/app.py (inat_hf.commands.app): arguments to the page, a missing gradio, the Hugging Face Spaces export."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from inat_hf.app import ClassifierPage
from inat_hf.commands.app import main
from inat_hf.commands.predict import main as predict_main


def _run_in_space(space, code: str, photo) -> dict:
    """Run ``code`` as Spaces run the app (from its folder, nothing of this checkout on the path); its last JSON line."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(photo)], cwd=space, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_without_gradio_the_command_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    # A model folder that does not exist: the missing gradio must be reported first, before any loading.
    for extra in ([], ["--export_space", str(tmp_path / "space")]):
        assert main(["--model_dir", str(tmp_path / "no_model"), *extra]) == 2
        err = capsys.readouterr().err
        assert "the web app needs gradio, which is not installed" in err and 'pip install -e ".[app]"' in err
    assert not (tmp_path / "space").exists()


@pytest.fixture
def demo_run(trained_model_dir, demo_root, tmp_path):
    """A run folder laid out as scripts/demo.sh writes it: RUN/model and RUN/inat_root/public_test."""
    run = tmp_path / "run"
    shutil.copytree(trained_model_dir, run / "model")
    shutil.copytree(demo_root / "public_test", run / "inat_root" / "public_test")
    return run


def test_arguments_reach_the_page(demo_run, monkeypatch):
    pytest.importorskip("gradio")
    served = []
    monkeypatch.setattr(ClassifierPage, "launch", lambda self, **kwargs: served.append((self, kwargs)))
    assert main(["--model_dir", str(demo_run / "model"), "--port", "8123", "--tta_views", "3"]) == 0
    (page, kwargs), *_ = served
    assert kwargs == {"host": "127.0.0.1", "port": 8123, "share": False, "max_file_size": "20mb"}
    assert page.tta_views == 3 and page.model_id == str(demo_run / "model")
    # the demo's unlabeled photos are the default examples
    assert page.examples == sorted(str(p) for p in (demo_run / "inat_root" / "public_test").glob("*.jpg"))
    assert len(page.examples) == 3

    served.clear()
    one = page.examples[0]
    assert main(["--model_dir", str(demo_run / "model"), "--examples", one, "--host", "0.0.0.0"]) == 0
    assert served[0][0].examples == [one] and served[0][1]["host"] == "0.0.0.0"
    assert served[0][0].geo is None and served[0][0].backoff_threshold == 0.8  # predict.py's default


def test_geo_prior_reaches_the_page(trained_model_dir, demo_prior, tmp_path, monkeypatch, capsys):
    pytest.importorskip("gradio")
    served = []
    monkeypatch.setattr(ClassifierPage, "launch", lambda self, **kwargs: served.append(self))
    base = ["--model_dir", str(trained_model_dir), "--examples", str(trained_model_dir / "config.json")]
    assert main([*base, "--geo_prior", str(demo_prior), "--backoff_threshold", "0.6"]) == 0
    (page,) = served
    assert page.geo is not None and page.geo.model.name_or_path == str(demo_prior) and page.backoff_threshold == 0.6
    assert main([*base, "--geo_prior", str(tmp_path)]) == 2  # a folder without a prior in it
    assert "is not a saved prior (no config.json)" in capsys.readouterr().err


def test_bad_model_dir_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("gradio")
    assert main(["--model_dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_space_builds_a_runnable_space(trained_model_dir, demo_root, tmp_path, capsys):
    gradio = pytest.importorskip("gradio")
    space = tmp_path / "space"
    assert main(["--model_dir", str(trained_model_dir), "--export_space", str(space)]) == 0
    assert f"Space written to {space}" in capsys.readouterr().out
    assert {p.name for p in space.iterdir()} == {"app.py", "requirements.txt", "README.md", "inat_hf"}
    front = yaml.safe_load((space / "README.md").read_text().split("---")[1])
    assert front["sdk"] == "gradio" and front["sdk_version"] == gradio.__version__ and front["app_file"] == "app.py"
    assert front["models"] == [str(trained_model_dir)]
    requirements = (space / "requirements.txt").read_text().split()
    names = {r.split("==")[0].lower() for r in requirements}
    assert {"torch", "torchvision", "transformers", "timm", "safetensors", "pillow"} <= names
    assert all("==" in r for r in requirements) and not names & {"pytest", "gradio", "ruff", "selenium"}
    assert (space / "inat_hf" / "app.py").is_file() and not list(space.rglob("__pycache__"))

    # The Space's own app, imported as Spaces run it (from its folder, nothing of this checkout on the path):
    photo = sorted((demo_root / "val").rglob("*.jpg"))[0]
    code = (
        "import json, sys, app, inat_hf; from inat_hf.app import PageInputs; "
        "r = app.page.classify(PageInputs(photo=sys.argv[1])); "
        "print(json.dumps({'package': inat_hf.__file__, 'blocks': type(app.demo).__name__, "
        "'top1': next(iter(r.label)), 'prob': next(iter(r.label.values()))}))"
    )
    shown = _run_in_space(space, code, photo)
    assert shown["package"].startswith(str(space)) and shown["blocks"] == "Blocks"

    out = tmp_path / "p.json"
    assert predict_main(["--model_dir", str(trained_model_dir), "--quiet", "--output", str(out), str(photo)]) == 0
    expected = json.loads(out.read_text())[0]["predictions"][0]
    assert shown["top1"].startswith(expected["label"]) and shown["prob"] == pytest.approx(expected["probability"])

    assert "GEO_PRIOR" not in (space / "app.py").read_text()  # no prior given: the page takes no location

    # a second export never overwrites the first
    assert main(["--model_dir", str(trained_model_dir), "--export_space", str(space)]) == 2
    assert "is not empty" in capsys.readouterr().err


def test_export_space_with_geo_prior(trained_model_dir, demo_prior, demo_root, tmp_path):
    pytest.importorskip("gradio")
    space = tmp_path / "space"
    assert (
        main(["--model_dir", str(trained_model_dir), "--geo_prior", str(demo_prior), "--export_space", str(space)])
        == 0
    )
    assert sorted(p.name for p in (space / "geo_prior").iterdir()) == sorted(p.name for p in demo_prior.iterdir())
    assert "location/date prior" in (space / "README.md").read_text()
    # The Space's page fuses its own copy of the prior: the same answer as predict.py --geo_prior --lat --lon --date.
    photo = sorted((demo_root / "val").rglob("*.jpg"))[0]
    where = {"latitude": 42.0, "longitude": -95.0, "date": "2019-06-01"}
    code = (
        "import json, sys, app; from inat_hf.app import PageInputs; "
        f"r = app.page.classify(PageInputs(photo=sys.argv[1], **{where!r})); "
        "print(json.dumps({'prior': app.page.geo.model.name_or_path, 'label': r.label, "
        "'backoff': r.prediction.backoff}))"
    )
    shown = _run_in_space(space, code, photo)
    assert shown["prior"] == str(space / "geo_prior")

    out = tmp_path / "p.json"
    flags = ["--geo_prior", str(demo_prior), "--lat", "42", "--lon", "-95", "--date", "2019-06-01"]
    args = ["--model_dir", str(trained_model_dir), *flags, "--quiet", "--output", str(out), str(photo)]
    assert predict_main(args) == 0
    (expected,) = json.loads(out.read_text())
    assert [n.split(" (")[0] for n in shown["label"]] == [p["label"] for p in expected["predictions"]]
    assert list(shown["label"].values()) == pytest.approx(
        [p["probability"] for p in expected["predictions"]], abs=1e-6
    )
    assert shown["backoff"] == pytest.approx(expected["backoff"])
