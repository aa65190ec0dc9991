"""The commands' parser (inat_hf/cli.py): flags without values, one-line errors with suggestions, config classes."""

import dataclasses

import pytest

from inat_hf import cli as _cli
from inat_hf.commands.predict import PredictArguments
from inat_hf.commands.predict import main as predict_main
from inat_hf.commands.prepare import main as prepare_main


@dataclasses.dataclass
class _Args:
    path: str = dataclasses.field(default="x", metadata={"help": "A path."})
    fast: bool = dataclasses.field(default=False, metadata={"help": "Go fast."})
    progress: bool = dataclasses.field(default=True, metadata={"help": "Show progress."})
    learning_rate: float = dataclasses.field(default=0.1, metadata={"help": "Step size."})

    def __post_init__(self):
        if self.learning_rate <= 0:
            raise ValueError(f"--learning_rate must be > 0, got {self.learning_rate}.")


def _parser():
    parser = _cli.CommandParser(_Args, prog="tool")
    parser.add_argument("paths", nargs="*")
    return parser


def test_boolean_flags_take_no_value_so_any_order_works():
    args, extra = _parser().parse(["--fast", "photos/", "--no_progress"])
    assert args.fast is True and args.progress is False and extra.paths == ["photos/"]
    args, extra = _parser().parse(["photos/", "--fast"])
    assert args.fast is True and args.progress is True and extra.paths == ["photos/"]


def test_predict_tta_flag_before_a_folder(tmp_path):
    parser = _cli.CommandParser(PredictArguments, prog="predict.py")
    parser.add_argument("paths", nargs="*")
    args, extra = parser.parse(["--model_dir", "m", "--tta", str(tmp_path)])
    assert args.tta is True and extra.paths == [str(tmp_path)]


def test_help_of_negative_flags_and_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--no_progress" in text and "Step size. (default: 0.1)" in text


def test_unknown_option_is_one_line_with_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse(["--lerning_rate", "0.2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "tool: error: unknown option --lerning_rate; did you mean --learning_rate?"
    assert len(err.splitlines()) == 2 and "usage:" not in err


def test_abbreviations_are_not_accepted(capsys):
    with pytest.raises(SystemExit):
        _parser().parse(["--learn", "0.2"])
    assert "unknown option --learn; did you mean --learning_rate?" in capsys.readouterr().err


def test_bad_value_and_failed_check_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse(["--learning_rate", "fast"])
    assert exit_info.value.code == 2
    assert "invalid float value: 'fast'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse(["--learning_rate", "-1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("tool: error: --learning_rate must be > 0, got -1.0.") and "Traceback" not in err


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError, match="must be > 0"):
        _parser().parse(["--learning_rate", "-1", "--debug"])


def test_user_errors_in_a_command_are_one_line(tmp_path, capsys):
    code = prepare_main(["--data_dir", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_predict_missing_model_argument_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["photo.jpg"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: --model_dir" in err and "usage:" not in err


@dataclasses.dataclass
class _Config:
    """Stands for a config class: only the fields it declares itself are options (not its base's)."""

    generic: int = 0


@dataclasses.dataclass
class _OwnConfig(_Config):
    sizes: list[int] = dataclasses.field(default_factory=lambda: [4, 2], metadata={"help": "Widths."})
    norm: bool = dataclasses.field(default=True, metadata={"help": "Use a norm."})
    kind: str | None = dataclasses.field(default=None, metadata={"help": "A kind."})
    data_decided: float | None = None


def test_config_keyword_arguments_are_options(capsys):
    parser = _cli.CommandParser(_Args, prog="tool")
    parser.add_config(_OwnConfig, "model", "The config's own fields.", skip=("data_decided",))
    args, extras = parser.parse(["--sizes", "8", "--no_norm", "--kind", "x", "--fast"])
    assert parser.config_kwargs(_OwnConfig, extras) == {"sizes": [8], "norm": False, "kind": "x"}
    assert args.fast is True and parser.config_kwargs(_OwnConfig, parser.parse([])[1])["sizes"] == [4, 2]
    for option in ("--generic", "--data_decided"):
        with pytest.raises(SystemExit):
            parser.parse([option, "1"])
        assert f"unknown option {option}" in capsys.readouterr().err


def test_inat_config_fields_are_options_without_the_generic_ones():
    from inat_hf.models import InatConfig

    parser = _cli.CommandParser([], prog="tool")
    parser.add_config(InatConfig, "model")
    (extras,) = parser.parse(["--backbone", "resnet18", "--head_hidden_sizes", "8", "--model_args", '{"a": 1}'])
    kwargs = parser.config_kwargs(InatConfig, extras)
    assert kwargs["backbone"] == "resnet18" and kwargs["head_hidden_sizes"] == [8]
    assert InatConfig(**{**kwargs, "model_args": None}).head_hidden_sizes == [8]
    assert "id2label" not in kwargs and "dtype" not in kwargs and "return_dict" not in kwargs
