"""push_to_hub at the end of a run, with huggingface_hub.HfApi mocked (the Hub is unreachable here)."""

from unittest import mock

from huggingface_hub.utils import filter_repo_objects

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
    with mock.patch("inat_hf.training.hub.HfApi") as api_cls:
        api_cls.return_value.upload_folder.return_value = mock.Mock(
            commit_url="https://hf.co/someone/inat-demo/commit/1"
        )
        run = run_training(recipe)
    api_cls.assert_called_once_with(token="hf_fake")
    api = api_cls.return_value
    api.create_repo.assert_called_once_with(
        repo_id="someone/inat-demo", repo_type="model", private=None, exist_ok=True
    )
    kwargs = api.upload_folder.call_args.kwargs
    assert kwargs["repo_id"] == "someone/inat-demo" and kwargs["folder_path"] == run.output_dir

    # what upload_folder would send, given its ignore patterns
    from pathlib import Path

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
    assert f"| val | {round(run.metrics['eval_top1'], 4)} |" in card  # final metrics
    assert "backbone: resnet10t" in card and "learning_rate" in card  # the recipe
    assert "hf_fake" not in card and "hf_fake" not in (Path(run.output_dir) / "run_config.yaml").read_text()
