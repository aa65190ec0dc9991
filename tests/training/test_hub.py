"""push_to_hub at the end of a run, with huggingface_hub.HfApi mocked (the Hub is unreachable here)."""

from pathlib import Path
from unittest import mock

from huggingface_hub.utils import filter_repo_objects

from inat_hf.data import load_prepared
from inat_hf.training.hub import write_model_card
from inat_hf.training.recipe import parse_recipe
from inat_hf.training.run import run_training


def test_push_to_hub_uploads_model_processor_and_card(write_recipe, tmp_path):
    recipe = parse_recipe(
        [
            str(write_recipe()),
            "--num_train_epochs",
            "1",
            "--push_to_hub",
            "true",
            "--hub_model_id",
            "someone/inat-demo",
            "--hub_token",
            "hf_fake",
        ]
    )
    with mock.patch("transformers.trainer.hf_api") as hf_api:
        api = hf_api.return_value
        api.create_repo.return_value = mock.Mock(repo_id="someone/inat-demo")
        api.upload_folder.return_value = mock.Mock(commit_url="https://hf.co/someone/inat-demo/commit/1")
        run = run_training(recipe)
    api.create_repo.assert_called_once_with("someone/inat-demo", token="hf_fake", private=None, exist_ok=True)
    api.upload_folder.assert_called_once()  # one upload, at the end
    kwargs = api.upload_folder.call_args.kwargs
    assert kwargs["repo_id"] == "someone/inat-demo" and kwargs["folder_path"] == run.output_dir
    assert kwargs["token"] == "hf_fake"
    # the token is never written to disk (training_args.bin is pickled into every checkpoint and uploaded)
    assert not [p for p in Path(run.output_dir).rglob("*") if p.is_file() and b"hf_fake" in p.read_bytes()]

    # what upload_folder would send, given its ignore patterns
    files = [str(p.relative_to(run.output_dir)) for p in Path(run.output_dir).rglob("*") if p.is_file()]
    uploaded = set(filter_repo_objects(files, ignore_patterns=kwargs["ignore_patterns"]))
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "README.md",
        "run_config.yaml",
        "modeling_inat.py",
        "configuration_inat.py",
    } <= uploaded
    assert not any(f.startswith("checkpoint-") for f in uploaded)

    card = (Path(run.output_dir) / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "pipeline_tag: image-classification" in card
    assert f"| {round(run.metrics['eval_top1'], 4)} |" in card and "| val (the data in `" in card  # final metrics
    assert "\n# someone/inat-demo\n" in card and 'model="someone/inat-demo"' in card  # the pushed repo's name
    assert "https://github.com/" not in card and "inaturalist-2021" not in card  # no placeholders, no false dataset
    assert "backbone: resnet10t" in card and "learning_rate" in card  # the recipe
    assert "hf_fake" not in card and "hf_fake" not in (Path(run.output_dir) / "run_config.yaml").read_text()


def _card(recipe, tmp_path, prepared_demo, **kwargs):
    metrics = {"eval_top1": 0.5, "eval_top3": 0.75, "eval_top5": 0.875}
    taxonomy = load_prepared(prepared_demo).taxonomy
    return Path(write_model_card(str(tmp_path / "run"), recipe=recipe, metrics=metrics, taxonomy=taxonomy, **kwargs))


def test_card_names_the_data_it_was_trained_on(write_recipe, prepared_demo, tmp_path):
    (tmp_path / "run").mkdir()
    local = parse_recipe([str(write_recipe()), "--dataset_name", "inat_hf synthetic demo data"])
    card = _card(local, tmp_path, prepared_demo).read_text()
    assert f"\n# {tmp_path / 'run'}\n" in card and f'model="{tmp_path / "run"}"' in card  # the path as given
    assert "inat_hf synthetic demo data" in card and "iNaturalist 2021" not in card and "inaturalist" not in card
    assert "| val (inat_hf synthetic demo data) | 0.5 | 0.75 | 0.875 |" in card

    inat = parse_recipe([str(write_recipe()), "--dataset_name", "iNaturalist 2021 (Animalia, train_mini)"])
    card = _card(inat, tmp_path, prepared_demo, hub_id="me/inat-r50").read_text()
    assert "datasets:\n- inaturalist-2021" in card and "\n# me/inat-r50\n" in card and 'model="me/inat-r50"' in card


def test_card_says_where_the_weights_started(write_recipe, prepared_demo, tmp_path):
    (tmp_path / "run").mkdir()
    scratch = _card(parse_recipe([str(write_recipe())]), tmp_path, prepared_demo).read_text()
    assert "trained from random initialisation" in scratch and "fine-tuned" not in scratch
    weights = parse_recipe([str(write_recipe()), "--pretrained_weights", "backbone.safetensors"])
    card = _card(weights, tmp_path, prepared_demo).read_text()
    assert "fine-tuned from the backbone weights `backbone.safetensors`" in card
