"""YAML recipes + command-line overrides, the resolved recipe, and errors that must come before training."""

import pytest
import yaml

from inat_hf.training.recipe import RECIPE_FILE, RecipeError, load_recipe_file, parse_recipe, save_recipe
from inat_hf.training.run import check_recipe


def test_sections_overrides_and_types(write_recipe):
    path = write_recipe()
    # PyYAML alone reads an unquoted 1e-4 as a string (YAML 1.1 wants 1.0e-4): the recipe loader reads a float
    path.write_text(path.read_text() + "learning_rate: 1e-4\n")
    recipe = parse_recipe([str(path), "--num_train_epochs", "5", "--head_hidden_sizes", "32", "8", "--hflip", "0"])
    assert recipe.training.learning_rate == 1e-4 and isinstance(recipe.training.learning_rate, float)
    assert recipe.training.num_train_epochs == 5  # CLI wins over the file
    assert recipe.model.head_hidden_sizes == [32, 8] and recipe.model.backbone == "resnet10t"
    assert recipe.augmentation.hflip == 0.0 and recipe.augmentation.image_size == 32
    assert recipe.training.remove_unused_columns is False
    assert recipe.source == str(path) and "--num_train_epochs" in recipe.overrides


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("training", "learning_rate", "fast", r"section 'training' of .*: learning_rate: invalid float value: 'fast'"),
        (
            "training",
            "per_device_train_batch_size",
            "eight",
            r"per_device_train_batch_size: invalid int value: 'eight'",
        ),
        ("training", "max_steps", 4.5, r"max_steps: invalid int value: 4.5"),
        ("training", "num_train_epochs", True, r"num_train_epochs: invalid float value: True"),
        ("training", "channels_last", "off", r"channels_last: invalid bool value: 'off'"),
        ("training", "bf16", 1, r"bf16: invalid bool value: 1"),
        ("training", "save_total_limit", "2", r"save_total_limit: invalid int value: '2'"),
        ("model", "head_hidden_sizes", [16, "x"], r"head_hidden_sizes: invalid int value: \[16, 'x'\]"),
        ("model", "attn_layer", "sse", r"attn_layer: invalid choice: 'sse' \(choose from 'se', 'eca'"),
        ("augmentation", "scale", "0.5", r"scale: invalid float value: '0.5'"),
    ],
)
def test_recipe_values_are_type_checked(write_recipe, section, key, value, message):
    path = write_recipe(**{section: {key: value}})
    with pytest.raises(RecipeError, match=message):
        parse_recipe([str(path)])


def test_quoted_number_is_a_string_and_refused(write_recipe):
    path = write_recipe()
    path.write_text(path.read_text() + 'learning_rate: "1e-4"\n')
    with pytest.raises(RecipeError, match=r"learning_rate: invalid float value: '1e-4'"):
        parse_recipe([str(path)])


def test_bad_recipe_value_exits_2_naming_the_key(write_recipe):
    from tests.training.conftest import run_script

    path = write_recipe(training={"learning_rate": "fast"})
    result = run_script("scripts/train.py", path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "learning_rate: invalid float value: 'fast'" in result.stderr
    assert "Traceback" not in result.stderr


def test_flat_recipe_and_cli_only(prepared_demo, tmp_path):
    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump({"dataset_dir": str(prepared_demo), "backbone": "resnet18", "output_dir": "x"}))
    assert parse_recipe([str(path)]).model.backbone == "resnet18"
    cli = parse_recipe(["--dataset_dir", str(prepared_demo), "--output_dir", str(tmp_path), "--attn_layer", "eca"])
    assert cli.source is None and cli.model.attn_layer == "eca"


@pytest.mark.parametrize(
    "section, key, message",
    [
        (
            "training",
            "lerning_rate",
            r"Unknown key 'lerning_rate' in section 'training' .*did you mean 'learning_rate'\?",
        ),
        ("model", "atn_layer", r"Unknown key 'atn_layer' in section 'model' .*did you mean 'attn_layer'\?"),
        ("augmentation", "mixup", r"Unknown key 'mixup' in section 'augmentation' .*did you mean 'mixup_alpha'\?"),
    ],
)
def test_config_typo_is_an_error_with_a_suggestion(write_recipe, section, key, message):
    path = write_recipe(**{section: {key: 1}})
    with pytest.raises(ValueError, match=message):
        parse_recipe([str(path)])


def test_unknown_section_and_cli_typo(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trainng:\n  learning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"Unknown key 'trainng' in .*did you mean 'training'\?"):
        load_recipe_file(str(path))
    with pytest.raises(RecipeError, match=r"^unknown option --lerning_rate; did you mean --learning_rate\?$"):
        parse_recipe(["--dataset_dir", "x", "--lerning_rate", "1"])


def test_command_line_data_source_replaces_the_recipes(write_recipe, prepared_demo, tmp_path):
    path = write_recipe()  # has data.dataset_dir
    recipe = parse_recipe([str(path), "--data_dir", str(tmp_path / "root")])
    assert recipe.data.data_dir == str(tmp_path / "root") and recipe.data.dataset_dir is None
    recipe = parse_recipe([str(path), "--dataset_dir=" + str(tmp_path / "other")])
    assert recipe.data.dataset_dir == str(tmp_path / "other") and recipe.data.data_dir is None
    saved = save_recipe(recipe, str(tmp_path / "run"))
    assert parse_recipe([saved]).data.dataset_dir == str(tmp_path / "other")  # run_config.yaml shows the one used


def test_boolean_options_keep_true_false_values_and_never_swallow(write_recipe):
    recipe = parse_recipe([str(write_recipe()), "--push_to_hub", "false", "--channels_last", "--hflip", "0"])
    assert recipe.training.push_to_hub is False and recipe.training.channels_last is True
    assert recipe.augmentation.hflip == 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["--unfreeze_schedule", "layer9:1"],
            r"Unknown stage name 'layer9' in unfreeze_schedule; valid: stem, layer1",
        ),
        (["--frozen_stages", "stem", "layer5"], r"Unknown stage name\(s\) \['layer5'\] in frozen_stages"),
        (["--frozen_stages", "stem", "5"], r"Unknown stage name\(s\) \['5'\] in frozen_stages.* index into the 5"),
        (["--backbone", "convnext_atto"], r"Unknown stage name\(s\) \['layer1', .* valid: stem, stages\.0"),
        (["--backbone", "convnxt_atto"], r"'convnxt_atto' is not a timm model name\. Did you mean 'convnext_atto'"),
        (["--unfreeze_schedule", "layer4=1"], r"Invalid unfreeze_schedule term 'layer4=1': expected 'stage:epoch'"),
        (
            ["--frozen_stages", "stem", "--unfreeze_schedule", "layer4:1"],
            r"unfreezes 'layer4', which is not in frozen_stages",
        ),
        (["--remove_unused_columns", "true"], r"remove_unused_columns must be False"),
        (["--label_smoothing_factor", "0.1"], r"label_smoothing_factor=0.1 would smooth the targets a second time"),
        (["--mix_prob", "1.5"], r"--mix_prob is a probability in \[0, 1\], got 1.5"),
        (["--hflip", "2"], r"hflip is a probability in \[0, 1\]"),
    ],
)
def test_invalid_values_fail_at_parse_time(write_recipe, overrides, message):
    with pytest.raises(ValueError, match=message):
        parse_recipe([str(write_recipe()), *overrides])


def test_data_source_must_be_exactly_one(tmp_path):
    with pytest.raises(ValueError, match=r"Give exactly one data source: --data_dir .* or --dataset_dir"):
        parse_recipe(["--output_dir", str(tmp_path)])


def test_odd_batch_with_mixup_is_rejected_before_training(write_recipe):
    recipe = parse_recipe([str(write_recipe()), "--per_device_train_batch_size", "7"])
    with pytest.raises(ValueError, match=r"per_device_train_batch_size must be even; got 7"):
        check_recipe(recipe)
    # without mixing an odd batch is fine
    ok = parse_recipe(
        [str(write_recipe()), "--per_device_train_batch_size", "7", "--mixup_alpha", "0", "--cutmix_alpha", "0"]
    )
    check_recipe(ok)


def test_resolved_recipe_round_trips(write_recipe, tmp_path):
    recipe = parse_recipe([str(write_recipe()), "--learning_rate", "0.002", "--hub_token", "secret"])
    path = save_recipe(recipe, str(tmp_path / "run"))
    assert path.endswith(RECIPE_FILE)
    with open(path) as f:
        text = f.read()
    assert "secret" not in text and "--learning_rate 0.002" in text
    again = parse_recipe([path])
    assert again.training.learning_rate == 0.002
    assert again.model == recipe.model and again.augmentation == recipe.augmentation and again.data == recipe.data


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["--early_stopping_patience", "2", "--load_best_model_at_end", "false"],
            r"early_stopping_patience needs load_best_model_at_end and metric_for_best_model",
        ),
        (["--eval_split", "none"], r"No eval_split, but evaluation is configured"),
        (
            ["--metric_for_best_model", "accuracy"],
            r"metric_for_best_model must be one of top1, top3, top5, loss; got 'accuracy'",
        ),
    ],
)
def test_inconsistent_evaluation_settings_fail_before_training(write_recipe, overrides, message):
    recipe = parse_recipe([str(write_recipe()), *overrides])
    with pytest.raises(ValueError, match=message):
        check_recipe(recipe)


def test_resume_argument(tmp_path):
    from inat_hf.training.run import resolve_resume

    assert resolve_resume(None, str(tmp_path)) is None and resolve_resume("false", str(tmp_path)) is None
    assert resolve_resume("latest", str(tmp_path)) is None  # nothing to resume: start from scratch (warned)
    with pytest.raises(FileNotFoundError, match=r"resume_from_checkpoint: no such checkpoint directory: .*nope"):
        resolve_resume(str(tmp_path / "nope"), str(tmp_path))
