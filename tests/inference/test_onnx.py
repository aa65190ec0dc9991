"""ONNX deployment: export + validation, static int8, the ONNX backend of the one Predictor (no torch on its path),
its PIL/numpy preprocessing, and the ONNX Space."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra (pip install -e '.[onnx]') is not installed")

import onnx  # noqa: E402
import torch  # noqa: E402

from inat_hf.commands.export import main as export_main  # noqa: E402
from inat_hf.commands.predict import main as predict_main  # noqa: E402
from inat_hf.data.array_preset import ArrayPreset  # noqa: E402
from inat_hf.data.transforms import EvalPreset, TTAPreset  # noqa: E402
from inat_hf.inference.errors import InferenceError  # noqa: E402
from inat_hf.inference.onnx_export import compare, export_onnx  # noqa: E402
from inat_hf.inference.predictor import Predictor  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402


@pytest.fixture(scope="module")
def photos(demo_root):
    return sorted(str(p) for p in (demo_root / "val").rglob("*.jpg"))


@pytest.fixture(scope="module")
def exported(trained_model_dir, photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "model"
    assert export_main(["--model_dir", str(trained_model_dir), "--output_dir", str(out)]) == 0
    return out


def _same_predictions(reference, candidate, *, atol):
    """Top-k equality (indices) and probabilities within ``atol``, image by image, plus the back-off answers."""
    for r, c in zip(reference, candidate, strict=True):
        assert r.error is None and c.error is None
        np.testing.assert_array_equal(r.indices, c.indices, err_msg=r.source)
        np.testing.assert_allclose(r.probs, c.probs, atol=atol, err_msg=r.source)
        assert (r.backoff or {}).get("rank") == (c.backoff or {}).get("rank")


def test_export_folder_is_self_describing_and_validated(exported, trained_model_dir):
    assert {p.name for p in exported.iterdir()} >= {
        "model.onnx",
        "config.json",
        "preprocessor_config.json",
        "export.json",
        "README.md",
    }
    record = json.loads((exported / "export.json").read_text())
    assert record["precision"] == "fp32" and record["dynamic_batch"] and record["opset"] == 17
    assert record["validation"]["passed"] and record["validation"]["top1_agreement"] == 1.0
    graph = onnx.load(exported / "model.onnx")
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # dynamic batch
    config = json.loads((exported / "config.json").read_text())
    assert config["taxonomy"] == json.loads((trained_model_dir / "config.json").read_text())["taxonomy"]


def test_onnx_backend_gives_the_pytorch_top_k(exported, trained_model_dir, photos):
    torch_predictor = Predictor.from_pretrained(trained_model_dir, device="cpu")
    onnx_predictor = Predictor.from_pretrained(exported, backend="onnx")
    for views in (1, 5):  # TTA: one session run over B x V views, averaged by the same tta.score
        kwargs = dict(top_k=3, num_views=views, batch_size=4, backoff=torch_predictor.backoff_groups)
        reference = list(torch_predictor.predict(photos, **kwargs))
        _same_predictions(reference, list(onnx_predictor.predict(photos, **kwargs)), atol=0.02)


def test_parity_and_validation_fail_for_a_perturbed_graph(exported, trained_model_dir, photos, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    graph = onnx.load(broken / "model.onnx")
    num_labels = len(json.loads((exported / "config.json").read_text())["id2label"])
    bias = next(t for t in graph.graph.initializer if list(t.dims) == [num_labels])  # the classifier's bias
    values = onnx.numpy_helper.to_array(bias).copy()
    values[np.argmin(values)] += 5.0  # one label's logit pushed up: a wrong graph that still runs
    bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))
    onnx.save(graph, broken / "model.onnx")
    reference = Predictor.from_pretrained(trained_model_dir, device="cpu")
    candidate = Predictor.from_pretrained(broken, backend="onnx")
    with pytest.raises(AssertionError):
        _same_predictions(
            list(reference.predict(photos, top_k=3)), list(candidate.predict(photos, top_k=3)), atol=0.02
        )
    pixel_values = np.stack([ArrayPreset(**candidate.preset_kwargs)(p) for p in photos])
    logits = reference.scores(torch.from_numpy(pixel_values))[0][:, 0].numpy()
    good = compare(logits, Predictor.from_pretrained(exported, backend="onnx").model(pixel_values)[:, 0], TOL)
    bad = compare(logits, candidate.model(pixel_values)[:, 0], TOL)
    assert not good.failures and bad.failures and bad.top1_agreement < 1


TOL = {"max_prob_diff": 1e-3, "top1_agreement": 1.0, "top5_overlap": 0.99}


def test_export_refuses_what_it_cannot_do(trained_model_dir, exported, photos, tmp_path, capsys):
    cases = [
        (["--output_dir", str(exported)], "is not an empty folder"),  # never mixes with / replaces files
        (["--output_dir", str(tmp_path / "a"), "--quantize", "int8"], "needs --calibration_dir"),
        (["--output_dir", str(tmp_path / "b"), "--max_prob_diff", "0"], "disagrees with PyTorch beyond"),
        (
            ["--output_dir", str(tmp_path / "c"), "--validation_dir", str(tmp_path / "none")],
            "--validation_dir: no such",
        ),
    ]
    for extra, message in cases:
        try:
            status = export_main(["--model_dir", str(trained_model_dir), *extra])
        except SystemExit as exit:  # argument errors exit from the parser, as every command's
            status = exit.code
        assert status == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if "error: " in line]  # (transformers' loading bar aside)
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.*"))  # a failed export leaves nothing


def test_unsupported_operator_is_named(trained_model_dir, tmp_path):
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(trained_model_dir)
    model.head.register_forward_hook(
        lambda m, i, out: out + torch.linalg.eigvals(out[:, :2, None] * out[:, None, :2]).real.sum()
    )
    with pytest.raises(InferenceError, match=r"resnet10t.*the operator aten::linalg_eigvals is not supported"):
        export_onnx(model, str(tmp_path / "x.onnx"), image_size=32)


def test_static_int8_export(trained_model_dir, demo_root, photos, tmp_path):
    out = tmp_path / "int8"
    calibration = demo_root / "train"
    args = ["--model_dir", str(trained_model_dir), "--output_dir", str(out), "--quantize", "int8"]
    args += ["--calibration_dir", str(calibration), "--validation_dir", str(demo_root / "val")]
    # a 32 px resnet10t is far from what int8 is for: one demo photo's probabilities move by ~0.4 (top-1 kept)
    assert export_main([*args, "--max_prob_diff", "0.5"]) == 0
    record = json.loads((out / "export.json").read_text())
    assert record["precision"] == "int8" and record["quantization"]["calibration_images"] > 0
    ops = {node.op_type for node in onnx.load(out / "model.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops  # static QDQ: the convolutions are quantized
    assert record["validation"]["passed"]


def test_array_preset_matches_the_torch_presets(photos):
    kwargs = dict(
        image_size=32, resize_size=36, interpolation=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    for views in (1, 5):
        torch_preset = EvalPreset(**kwargs) if views == 1 else TTAPreset(num_views=views, **kwargs)
        for path in photos[:6]:
            expected, got = torch_preset(path).numpy(), ArrayPreset(num_views=views, **kwargs)(path)
            assert got.shape == expected.shape and got.dtype == np.float32
            diff = np.abs(got - expected)
            # PIL's and torchvision's uint8 bicubic kernels round differently: a level or two on a few pixels
            assert diff.max() < 3 / 255 / 0.224 and diff.mean() < 2e-3, (path, diff.max(), diff.mean())


def test_temperature_from_the_config_is_applied(exported, photos, tmp_path):
    folder = tmp_path / "calibrated"
    shutil.copytree(exported, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "temperature": 3.0}))
    plain, hot = (Predictor.from_pretrained(f, backend="onnx") for f in (exported, folder))
    pixel_values = np.stack([ArrayPreset(**plain.preset_kwargs)(p) for p in photos[:4]])[:, None]
    logits, runs = plain.scores(pixel_values)
    _, hot_runs = hot.scores(pixel_values)
    np.testing.assert_allclose(hot_runs["image"], logits[:, 0] / 3.0, rtol=1e-6)


def test_predict_backend_onnx_imports_no_torch(exported, trained_model_dir, photos, tmp_path):
    out = tmp_path / "onnx.json"
    code = (
        "import sys; from inat_hf.commands.predict import main; "
        "rc = main(['--backend', 'onnx', '--model_dir', sys.argv[1], '--tta', '--quiet', '--output', sys.argv[2], "
        "*sys.argv[3:]]); print(rc, 'torch' in sys.modules, 'transformers.configuration_utils' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(exported), str(out), *photos], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-3:] == ["0", "False", "False"]  # exit 0; neither torch nor transformers' configs
    expected = tmp_path / "torch.json"
    args = ["--model_dir", str(trained_model_dir), "--tta", "--quiet", "--device", "cpu", "--output", str(expected)]
    assert predict_main([*args, *photos]) == 0
    for a, b in zip(json.loads(expected.read_text()), json.loads(out.read_text()), strict=True):
        assert [p["label"] for p in a["predictions"]] == [p["label"] for p in b["predictions"]]


def test_onnx_space_runs_without_torch(exported, trained_model_dir, photos, tmp_path, capsys):
    pytest.importorskip("gradio")
    from inat_hf.commands.app import main as app_main
    from tests.app.test_command import _run_in_space

    args = ["--backend", "onnx", "--model_dir", str(exported), "--export_space"]
    assert app_main([*args, str(tmp_path / "geo"), "--geo_prior", str(exported)]) == 2  # the prior needs torch
    assert "the location prior is a PyTorch model" in capsys.readouterr().err
    space = tmp_path / "space"
    assert app_main([*args, str(space)]) == 0
    names = {r.split("==")[0].lower() for r in (space / "requirements.txt").read_text().split()}
    assert "onnxruntime" in names and not names & {"torch", "torchvision", "timm", "transformers", "datasets"}
    assert (space / "model" / "model.onnx").is_file()
    code = (
        "import json, sys, app; from inat_hf.app import PageInputs; "
        "r = app.page.classify(PageInputs(photo=sys.argv[1])); "
        "print(json.dumps({'top1': next(iter(r.label)), 'torch': 'torch' in sys.modules, "
        "'transformers': 'transformers.configuration_utils' in sys.modules}))"
    )
    shown = _run_in_space(space, code, photos[0])
    (expected,) = Predictor.from_pretrained(trained_model_dir, device="cpu").predict([photos[0]], top_k=1)
    label = json.loads((exported / "config.json").read_text())["id2label"][str(expected.indices[0])]
    assert shown["top1"].startswith(label) and not shown["torch"] and not shown["transformers"]


def test_onnx_backend_fuses_the_location_prior(exported, trained_model_dir, demo_prior, photos):
    from inat_hf.geo.fusion import GeoFusion, photo_locations

    runs = []
    for predictor in (Predictor.from_pretrained(trained_model_dir, device="cpu"), Predictor.from_pretrained(exported, backend="onnx")):  # fmt: skip
        geo = GeoFusion.for_predictor(demo_prior, predictor)
        locations = photo_locations(photos, 45.0, 5.0, "2021-06-01")
        runs.append(list(predictor.predict(photos, top_k=3, geo=geo, locations=locations)))
    _same_predictions(*runs, atol=0.02)
    image_only = list(Predictor.from_pretrained(exported, backend="onnx").predict(photos, top_k=3))
    assert any(not np.allclose(a.probs, b.probs, atol=0.02) for a, b in zip(runs[1], image_only))  # the prior counted


def test_a_calibrated_checkpoint_exports_raw_logits_and_both_backends_agree(trained_model_dir, photos, tmp_path):
    """The temperature is applied once, by tta.score, on both paths: the graph holds the raw logits (the model's
    eval-mode forward would divide them for pipeline())."""
    calibrated = tmp_path / "calibrated"
    shutil.copytree(trained_model_dir, calibrated)
    config = json.loads((calibrated / "config.json").read_text())
    (calibrated / "config.json").write_text(json.dumps({**config, "temperature": 3.0}))
    out = tmp_path / "onnx"
    assert export_main(["--model_dir", str(calibrated), "--output_dir", str(out)]) == 0
    torch_predictor = Predictor.from_pretrained(calibrated, device="cpu")
    kwargs = dict(top_k=3, num_views=1, batch_size=4)
    reference = list(torch_predictor.predict(photos[:8], **kwargs))
    _same_predictions(
        reference, list(Predictor.from_pretrained(out, backend="onnx").predict(photos[:8], **kwargs)), atol=0.02
    )
