"""train.py's command line: short help by recipe section, user mistakes as one error line (exit 2)."""

import re

import pytest

from inat_hf.commands.train import main


def test_help_shows_project_options_by_section_first(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: train.py [RECIPE.yaml] [--key value ...]")
    headings = [text.index(f"\n{section}:\n") for section in ("model", "data", "augmentation", "mixing", "training")]
    assert headings == sorted(headings)  # the recipe's sections, in its order
    assert "--backbone_learning_rate" in text and "--unfreeze_schedule" in text and "--mixup_alpha" in text
    assert "--train_interpolation" in text and "--eval_strategy" in text  # a project default of TrainingArguments
    assert "--adam_beta1" not in text and "--help_all" in text and "``" not in text
    assert "--id2label" not in text and "--dtype" not in text  # PreTrainedConfig's generic fields are not keys


def test_short_help_fits_one_line_per_option_and_starts_with_what_users_change(capsys, monkeypatch):
    from inat_hf.training.recipe import MOST_CHANGED

    monkeypatch.setenv("COLUMNS", "140")
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    first_screen = "\n".join(text.splitlines()[:12])
    assert all(option in first_screen for option in MOST_CHANGED) and "Example:" in first_screen
    options = text.split("\noptions:\n", 1)[1]
    listed = re.findall(r"^  (--\w+)(?: {2,}|$)", options, flags=re.MULTILINE)
    assert set(MOST_CHANGED) <= set(listed)  # each is also listed with its help
    assert len(listed) == len(set(listed)) and not any(o.startswith("--no_") for o in listed)  # one line, one spelling
    assert "--drop-path-rate" not in text and "DROP_PATH_RATE" not in text  # no alias, no metavar
    assert len(options.splitlines()) < 1.2 * len(listed) + 20  # one line each, but a few, and the group headings


def test_help_all_lists_every_training_argument(capsys):
    assert main(["--help_all"]) == 0
    assert "--adam_beta1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], None),
        (
            ["--dataset_dir", "x", "--lerning_rate", "1"],
            "unknown option --lerning_rate; did you mean --learning_rate?",
        ),
        (["--dataset_dir", "x", "--learning_rate", "fast"], "invalid float value: 'fast'"),
        (["missing.yaml"], "Recipe file not found: missing.yaml"),
        (
            ["--dataset_dir", "x", "--model_args", "{img_size: 64}"],
            "Expecting property name enclosed in double quotes",
        ),
        (["--output_dir", "o"], "Give exactly one data source"),
    ],
)
def test_user_mistakes_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    if message is None:  # no arguments at all: the help, and a failing status
        assert "\nmodel:\n" in captured.out
        return
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("train.py: error: ") and message in lines[0], captured.err
    assert len(lines) == 2 and "Traceback" not in captured.err


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("training:\n  lerning_rate: 0.1\n", "did you mean 'learning_rate'?"),
        ("training:\n  seed: null\n", "training.seed: null is not a value of this key"),
        ("training:\n  learning_rate: null\n", "training.learning_rate: null is not a value of this key"),
        # YAML 1.1 (PyYAML) would read these as false/true: a recipe takes the command line's boolean words
        ("training:\n  use_cpu: off\n", "training.use_cpu: invalid bool value: 'off'"),
        ("training:\n  use_cpu: On\n", "training.use_cpu: invalid bool value: 'On'"),
    ],
)
def test_yaml_mistakes_are_one_line(tmp_path, capsys, yaml_text, message):
    path = tmp_path / "r.yaml"
    path.write_text(yaml_text + "data:\n  dataset_dir: x\n")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 2


@pytest.mark.parametrize("word, value", [("true", True), ("False", False), ("yes", True), ("no", False)])
def test_yaml_booleans_are_the_command_lines(tmp_path, word, value):
    from inat_hf.training.recipe import parse_recipe

    path = tmp_path / "r.yaml"
    path.write_text(f"training:\n  use_cpu: {word}\ndata:\n  dataset_dir: x\n  dataset_name: no\n")
    recipe = parse_recipe([str(path)])
    assert recipe.training.use_cpu is value and recipe.data.dataset_name == "no"  # text stays text


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--learning_rate", "-0.1", "learning_rate must be > 0, got -0.1."),
        ("--learning_rate", "nan", "learning_rate must be > 0, got nan."),
        ("--per_device_train_batch_size", "0", "per_device_train_batch_size must be >= 1, got 0."),
        ("--per_device_eval_batch_size", "0", "per_device_eval_batch_size must be >= 1, got 0."),
        ("--gradient_accumulation_steps", "0", "gradient_accumulation_steps must be >= 1, got 0."),
        ("--weight_decay", "-1", "weight_decay must be >= 0, got -1.0."),
        ("--num_train_epochs", "0", "num_train_epochs must be > 0 (or max_steps > 0), got 0.0."),
        ("--dataloader_num_workers", "-1", "dataloader_num_workers must be >= 0, got -1."),
        ("--backbone_learning_rate", "-1", "backbone_learning_rate must be >= 0"),
    ],
)
def test_bad_numbers_are_refused_before_anything_is_written(prepared_demo, tmp_path, capsys, option, value, message):
    out = tmp_path / "run"
    assert main(["--dataset_dir", str(prepared_demo), "--output_dir", str(out), option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 2, err
    assert not out.exists()  # not even run_config.yaml


def test_list_stages(capsys):
    assert main(["--list_stages", "resnet18"]) == 0
    assert "layer4" in capsys.readouterr().out
    assert main(["--list_stages", "resnt18"]) == 2
    assert "Did you mean 'resnet18'" in capsys.readouterr().err


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError, match="Give exactly one data source"):
        main(["--output_dir", "o", "--traceback"])
