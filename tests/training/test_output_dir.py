"""Model output folders (train.py, train_geo_prior.py): never a prepared dataset, never another kind of model or
foreign files without --overwrite; the command's own earlier output is fine (reruns, resumes)."""

import json
import shutil

import pytest

from inat_hf.commands.train import main as train_main
from inat_hf.commands.train_geo import main as geo_main

GEO = ["--min_steps", "2", "--batch_size", "16", "--hidden_size", "8", "--num_blocks", "1", "--eval_split", "none"]


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def folders(trained_model_dir, demo_prior, tmp_path):
    """Copies of an image model folder and of a prior folder."""
    shutil.copytree(trained_model_dir, tmp_path / "image_model")
    shutil.copytree(demo_prior, tmp_path / "prior")
    return tmp_path / "image_model", tmp_path / "prior"


def test_a_prior_never_silently_replaces_an_image_model(folders, prepared_demo, capsys):
    image_model, _ = folders
    before = _tree(image_model)
    assert geo_main(["--dataset_dir", str(prepared_demo), "--output_dir", str(image_model), *GEO]) == 2
    err = capsys.readouterr().err
    assert "holds a model of another kind (config.json model_type 'inat', this command writes 'inat_geo')" in err
    assert "--overwrite" in err and _tree(image_model) == before
    # explicit --overwrite: written (same-name files replaced, the others kept)
    assert geo_main(["--dataset_dir", str(prepared_demo), "--output_dir", str(image_model), *GEO, "--overwrite"]) == 0
    assert json.loads((image_model / "config.json").read_text())["model_type"] == "inat_geo"
    assert (image_model / "preprocessor_config.json").read_bytes() == before["preprocessor_config.json"]


def test_an_image_model_never_silently_replaces_a_prior(folders, write_recipe, capsys):
    _, prior = folders
    before = _tree(prior)
    assert train_main([str(write_recipe()), "--output_dir", str(prior)]) == 2
    assert "holds a model of another kind (config.json model_type 'inat_geo', this command writes 'inat')" in (
        capsys.readouterr().err
    )
    assert _tree(prior) == before


def test_foreign_files_are_refused_and_own_output_is_reused(prepared_demo, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert geo_main(["--dataset_dir", str(prepared_demo), "--output_dir", str(out), *GEO]) == 2
    assert "holds files this command did not write: 'notes.txt'" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    fresh = tmp_path / "fresh"
    assert geo_main(["--dataset_dir", str(prepared_demo), "--output_dir", str(fresh), *GEO]) == 0
    assert geo_main(["--dataset_dir", str(prepared_demo), "--output_dir", str(fresh), *GEO]) == 0  # its own: fine


@pytest.mark.parametrize("where", ["", "train", "train/checkpoint-1"])
def test_no_model_is_written_into_a_prepared_dataset(prepared_demo, write_recipe, tmp_path, capsys, where):
    """`train.py --dataset_dir P --output_dir P/train`: the next prepare into P would have deleted the model."""
    dataset = tmp_path / "P"
    shutil.copytree(prepared_demo, dataset)
    before = _tree(dataset)
    out = dataset / where if where else dataset
    relation = "is" if not where else "lies inside"
    assert train_main([str(write_recipe()), "--dataset_dir", str(dataset), "--output_dir", str(out)]) == 2
    assert f"--output_dir {out} {relation} the prepared dataset {dataset}" in capsys.readouterr().err
    assert geo_main(["--dataset_dir", str(dataset), "--output_dir", str(out), *GEO, "--overwrite"]) == 2
    assert f"{relation} the prepared dataset" in capsys.readouterr().err
    assert _tree(dataset) == before


def test_the_output_is_never_an_input(trained_model_dir, write_recipe, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    before = _tree(model)
    assert train_main([str(write_recipe()), "--init_checkpoint", str(model), "--output_dir", str(model)]) == 2
    assert f"is also an input of this run ({model})" in capsys.readouterr().err
    assert _tree(model) == before
