"""train.py's command line: short help by recipe section, user mistakes as one error line (exit 2)."""

import subprocess
import sys

import pytest

from inat_hf.commands.train import main


def test_help_shows_project_options_by_section_first(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: train.py [RECIPE.yaml] [--key value ...]")
    for heading in ("recipe section 'model'", "recipe section 'data'", "recipe section 'augmentation'", "'mixing'"):
        assert heading in text
    assert "--backbone_learning_rate" in text and "--unfreeze_schedule" in text and "--mixup_alpha" in text
    assert "--adam_beta1" not in text and "--help_all" in text and "``" not in text
    assert len(text.splitlines()) < 250


def test_help_imports_neither_torch_nor_transformers():
    """The help renders at once: nothing heavy is imported (the time itself is benchmarks/bench_startup.py's)."""
    code = (
        "import sys; from inat_hf.commands.train import main; main(['--help']); "
        "print('heavy:', sorted(m for m in ('torch', 'transformers', 'timm') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "recipe section 'mixing'" in result.stdout and result.stdout.rstrip().endswith("heavy: []")


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
        (["--output_dir", "o"], "Give exactly one data source"),
    ],
)
def test_user_mistakes_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    if message is None:  # no arguments at all: the help, and a failing status
        assert "recipe section 'model'" in captured.out
        return
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("train.py: error: ") and message in lines[0], captured.err
    assert len(lines) == 2 and "Traceback" not in captured.err


def test_yaml_typo_is_one_line(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text("training:\n  lerning_rate: 0.1\ndata:\n  dataset_dir: x\n")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'learning_rate'?" in err and "Traceback" not in err


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError, match="Give exactly one data source"):
        main(["--output_dir", "o", "--traceback"])
