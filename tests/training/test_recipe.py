"""YAML recipes + command-line overrides, the resolved recipe, and errors that must come before training."""

import dataclasses
import inspect
import json
import re
import shutil

import pytest
import yaml

from inat_hf.training.checkpoints import CheckpointError, mark_checkpoint_complete
from inat_hf.training.recipe import (
    RECIPE_FILE,
    RecipeError,
    load_recipe_file,
    parse_recipe,
    recipe_to_dict,
    save_recipe,
)
from inat_hf.training.run import check_recipe
from tests.training.conftest import TINY_RECIPE


def test_sections_overrides_and_types(write_recipe):
    path = write_recipe()
    # PyYAML alone reads an unquoted 1e-4 as a string (YAML 1.1 wants 1.0e-4): the recipe loader reads a float
    path.write_text(re.sub(r"(?m)^  learning_rate: .*$", "  learning_rate: 1e-4", path.read_text()))
    recipe = parse_recipe([str(path), "--num_train_epochs", "5", "--head_hidden_sizes", "32", "8", "--hflip", "0"])
    assert recipe.training.learning_rate == 1e-4 and isinstance(recipe.training.learning_rate, float)
    assert recipe.training.num_train_epochs == 5  # CLI wins over the file
    assert recipe.model["head_hidden_sizes"] == [32, 8] and recipe.model["backbone"] == "resnet10t"
    assert recipe.augmentation.hflip == 0.0 and recipe.augmentation.image_size == 32  # the model's image_size
    assert recipe.source == str(path) and "--num_train_epochs" in recipe.overrides


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("training", "learning_rate", "fast", r"recipe.yaml: training.learning_rate: invalid float value: 'fast'$"),
        (
            "training",
            "per_device_train_batch_size",
            "eight",
            r"per_device_train_batch_size: invalid int value: 'eight'",
        ),
        ("training", "max_steps", 4.5, r"max_steps: invalid int value: 4.5"),
        ("training", "num_train_epochs", True, r"num_train_epochs: invalid float value: True"),
        ("training", "channels_last", "off", r"channels_last: invalid bool value: 'off'"),
        ("training", "seed", None, r"training.seed: null is not a value of this key; leave the key out"),
        ("training", "learning_rate", None, r"training.learning_rate: null is not a value of this key"),
        ("model", "head_hidden_sizes", [16, "x"], r"head_hidden_sizes: invalid int value: 'x'"),
        ("model", "attn_layer", "sse", r"attn_layer='sse' is not supported; valid choices: se, eca"),
        ("mixing", "mix_schedule", "step", r"mix_schedule must be constant, linear or cosine, got 'step'"),
        ("augmentation", "scale", 0.5, r"scale must be a \(min, max\) pair"),
    ],
)
def test_recipe_values_are_checked_as_on_the_command_line(write_recipe, section, key, value, message):
    path = write_recipe(**{section: {key: value}})
    with pytest.raises(RecipeError, match=message):
        parse_recipe([str(path)])


def test_null_is_none_where_a_key_takes_none(write_recipe):
    recipe = parse_recipe([str(write_recipe(training={"early_stopping_patience": None}, model={"crop_pct": None}))])
    assert recipe.training.early_stopping_patience is None and recipe.model["crop_pct"] is None


def test_bad_recipe_value_exits_2_naming_the_key(write_recipe):
    from tests.training.conftest import run_script

    path = write_recipe(training={"learning_rate": "fast"})
    result = run_script("scripts/train.py", path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "learning_rate: invalid float value: 'fast'" in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_outside_their_section_and_cli_only(prepared_demo, tmp_path):
    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump({"dataset_dir": str(prepared_demo), "backbone": "resnet18", "output_dir": "x"}))
    with pytest.raises(RecipeError, match=r"Key 'backbone' in .*flat.yaml belongs in section 'model'\.$"):
        parse_recipe([str(path)])
    cli = parse_recipe(["--dataset_dir", str(prepared_demo), "--output_dir", str(tmp_path), "--attn_layer", "eca"])
    assert cli.source is None and cli.model["attn_layer"] == "eca"


@pytest.mark.parametrize(
    "section, key, message",
    [
        (
            "training",
            "lerning_rate",
            r"Unknown key 'lerning_rate' in section 'training' .*did you mean 'learning_rate'\?",
        ),
        ("model", "atn_layer", r"Unknown key 'atn_layer' in section 'model' .*did you mean 'attn_layer'\?"),
        ("mixing", "mixup", r"Unknown key 'mixup' in section 'mixing' .*did you mean 'mixup_alpha'\?"),
        ("augmentation", "mixup_alpha", r"Key 'mixup_alpha' in section 'augmentation' .* belongs in section 'mixing'"),
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
    for section in ("model", "model_run", "data", "augmentation", "mixing"):
        assert getattr(again, section) == getattr(recipe, section), section


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
            r"metric_for_best_model must be one of top1, top3, top5, loss \(or fused_top1/3/5 with geo_prior\); "
            r"got 'accuracy'",
        ),
        (["--metric_for_best_model", "fused_top1"], r"'fused_top1' is a fused metric: it needs geo_prior"),
        (
            [
                "--geo_prior",
                "prior/",
                "--eval_split",
                "none",
                "--eval_strategy",
                "no",
                "--load_best_model_at_end",
                "0",
            ],
            r"geo_prior adds fused metrics to the evaluation: it needs an eval_split",
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
    with pytest.raises(CheckpointError, match=r"resume_from_checkpoint: no such checkpoint directory: .*nope"):
        resolve_resume(str(tmp_path / "nope"), str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty is an empty folder; expected a checkpoint-N folder"):
        resolve_resume(str(tmp_path / "empty"), str(tmp_path))
    (tmp_path / "run" / "checkpoint-4").mkdir(parents=True)
    mark_checkpoint_complete(str(tmp_path / "run" / "checkpoint-4"), 4, 1.0)
    with pytest.raises(CheckpointError, match=r"run is a run folder, not a checkpoint: .* is .*run/checkpoint-4"):
        resolve_resume(str(tmp_path / "run"), str(tmp_path))


@pytest.mark.parametrize(
    "change, model, message",
    [
        ({}, {}, "holds a model with attn_layer='none', this recipe builds attn_layer='se'"),
        ({"backbone": "resnet18"}, {"attn_layer": "none", "head_hidden_sizes": []}, "backbone='resnet18'"),
        (
            {"id2label": "7"},
            {"attn_layer": "none", "head_hidden_sizes": []},
            "first difference is at index 7: model 'Formica rufa', dataset 'Coccinella septempunctata'",
        ),
    ],
)
def test_resuming_a_checkpoint_of_another_model_fails_before_anything_is_written(
    trained_model_dir, write_recipe, tmp_path, capsys, change, model, message
):
    from inat_hf.commands.train import main

    checkpoint = tmp_path / "checkpoint-9"
    shutil.copytree(trained_model_dir, checkpoint)
    (checkpoint / "trainer_state.json").write_text("{}")
    config = json.loads((checkpoint / "config.json").read_text())
    if "id2label" in change:
        config["id2label"][change["id2label"]] = "Formica rufa"
        config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}
    config.update({k: v for k, v in change.items() if k != "id2label"})
    (checkpoint / "config.json").write_text(json.dumps(config))
    recipe = write_recipe(model=model, training={"resume_from_checkpoint": str(checkpoint)})
    assert main([str(recipe)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 2 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


# A value other than the default for every key the `model` and `augmentation` sections take from InatConfig and
# AugmentationConfig. The fields the data decides (labels, rank, class weights) and the three the augmentation takes
# from the model (one image_size, mean and std) are not recipe keys of their own.
FROM_DATA = ("label_rank", "taxonomy", "focal_alpha")
FROM_CALIBRATION = ("temperature", "fusion_weight")  # fitted after training (calibrate.py), not recipe keys
FROM_MODEL = {"image_size": "image_size", "mean": "image_mean", "std": "image_std"}
EXAMPLES = {
    "model": {
        "backbone": "resnet18",
        "model_args": {"zero_init_last": False},
        "drop_path_rate": 0.05,
        "attn_layer": "eca",
        "rd_ratio": 0.125,
        "head_hidden_sizes": [8, 4],
        "drop_rate": 0.15,
        "head_batch_norm": False,
        "focal_gamma": 1.0,
        "label_smoothing": 0.05,
        "image_size": 48,
        "crop_pct": 0.9,
        "interpolation": "bilinear",
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.25, 0.25, 0.25],
    },
    "augmentation": {
        "scale": [0.3, 0.9],
        "ratio": [0.8, 1.25],
        "train_interpolation": "bicubic",
        "hflip": 0.3,
        "color_jitter": [0.0, 0.0, 0.0],  # auto_augment replaces colour jitter
        "hue": 0.05,
        "color_jitter_impl": "torchvision",
        "rotation": 5.0,
        "blur_prob": 0.2,
        "blur_sigma": [0.2, 1.0],
        "blur_kernel_size": 5,
        "re_prob": 0.1,
        "re_scale": [0.05, 0.2],
        "re_ratio": [0.5, 2.0],
        "auto_augment": "rand-m9-mstd0.5-inc1",
    },
}


def _default(field: dataclasses.Field):
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def _option(section: str, key: str, value) -> list[str]:
    flag = f"--{key}"  # no key is in two sections
    if isinstance(value, dict):
        return [flag, json.dumps(value)]
    if isinstance(value, list):
        return [flag, *map(str, value)]
    return [flag, str(value).lower() if isinstance(value, bool) else str(value)]


def test_every_config_field_is_a_recipe_key_an_option_a_saved_value_and_in_the_help(write_recipe, tmp_path, capsys):
    from inat_hf.commands.train import main
    from inat_hf.data.augmentation import AugmentationConfig
    from inat_hf.models import InatConfig

    own = inspect.get_annotations(InatConfig)  # its own fields; PreTrainedConfig's generic ones are not keys
    inat_fields = {
        f.name: f
        for f in dataclasses.fields(InatConfig)
        if f.name in own and f.name not in FROM_DATA + FROM_CALIBRATION
    }
    augmentation_keys = [f.name for f in dataclasses.fields(AugmentationConfig) if f.name not in FROM_MODEL]
    assert sorted(EXAMPLES["model"]) == sorted(inat_fields), "give each InatConfig field an example value here"
    assert sorted(EXAMPLES["augmentation"]) == sorted(augmentation_keys), "and each AugmentationConfig field"
    for name, value in EXAMPLES["model"].items():
        assert value != _default(inat_fields[name]), name
    for f in dataclasses.fields(AugmentationConfig):
        default = list(_default(f)) if isinstance(_default(f), tuple) else _default(f)
        assert f.name in FROM_MODEL or EXAMPLES["augmentation"][f.name] != default, f.name

    from_yaml = parse_recipe([str(write_recipe(**EXAMPLES))])
    options = [
        arg for section, values in EXAMPLES.items() for k, v in values.items() for arg in _option(section, k, v)
    ]
    from_cli = parse_recipe([str(write_recipe()), *options])
    for recipe in (from_yaml, from_cli, parse_recipe([save_recipe(from_cli, str(tmp_path / "run"))])):
        saved = recipe_to_dict(recipe)
        for section, values in EXAMPLES.items():
            for key, value in values.items():
                saved_value = saved[section][key]
                assert (list(saved_value) if isinstance(saved_value, tuple) else saved_value) == value, key
                if section == "augmentation":  # ... and the built config holds it
                    built = getattr(recipe.augmentation, key)
                    assert built == (tuple(value) if isinstance(value, list) else value), key
                else:
                    assert recipe.model[key] == value, key
        # one image_size, mean and std: the model's, for the training crop too
        for field, model_key in FROM_MODEL.items():
            expected = EXAMPLES["model"][model_key]
            assert getattr(recipe.augmentation, field) == (tuple(expected) if isinstance(expected, list) else expected)

    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for section, values in EXAMPLES.items():
        for key in values:
            assert _option(section, key, values[key])[0] + " " in text, key


def test_keys_a_recipe_leaves_out_keep_the_config_classes_defaults(write_recipe):
    from inat_hf.data.augmentation import AugmentationConfig
    from inat_hf.models import InatConfig

    recipe = parse_recipe([str(write_recipe())])
    fields = {f.name: f for f in dataclasses.fields(InatConfig)}
    for key, value in recipe.model.items():
        if key not in TINY_RECIPE["model"]:
            assert value == _default(fields[key]), key
    for f in dataclasses.fields(AugmentationConfig):
        if f.name not in (*TINY_RECIPE["augmentation"], *FROM_MODEL):
            default = tuple(_default(f)) if isinstance(_default(f), list) else _default(f)
            if f.name == "color_jitter":  # one value: the float form
                default = default[0]
            assert getattr(recipe.augmentation, f.name) == default, f.name


def test_no_key_needs_a_section_and_one_value_is_the_float_form(write_recipe):
    from inat_hf.training.recipe import recipe_parser

    keys = [key for names in recipe_parser().sections.values() for key in names]
    assert len(keys) == len(set(keys))  # (argparse would also refuse a second --key)
    recipe = parse_recipe([str(write_recipe()), "--train_interpolation", "bicubic", "--color_jitter", "0.3"])
    assert recipe.augmentation.train_interpolation == "bicubic" and recipe.model["interpolation"] is None
    assert recipe.augmentation.color_jitter == 0.3  # one number on the command line: the float form


def test_every_recipe_key_has_help():
    """``--help`` shows each key's ``metadata["help"]``: the config classes' fields carry one."""
    from inat_hf.data.augmentation import AugmentationConfig
    from inat_hf.models import InatConfig
    from inat_hf.training.arguments import ModelRunArguments, TrainDataArguments
    from inat_hf.training.mixing import MixingConfig

    own = inspect.get_annotations(InatConfig)
    for cls in (InatConfig, AugmentationConfig, MixingConfig, ModelRunArguments, TrainDataArguments):
        for f in dataclasses.fields(cls):
            if cls is not InatConfig or f.name in own:
                assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"
