"""predict.py outputs: written atomically, and file names that are not valid UTF-8 are written escaped."""

import json
import os
import shutil

import pandas as pd
import pytest

from inat_hf.commands.predict import main
from inat_hf.files import atomic_write, printable_path


@pytest.fixture
def odd_names(demo_root, tmp_path):
    """Two demo images, one under a name that is not valid UTF-8 (b'photo_\\xff.jpg': legal on Linux)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    first, second = sorted((demo_root / "val").rglob("*.jpg"))[:2]
    shutil.copy(first, folder / "plain.jpg")
    with open(os.path.join(os.fsencode(folder), b"photo_\xff.jpg"), "wb") as f:
        f.write(second.read_bytes())
    return folder


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_undecodable_file_name_is_written_escaped_and_the_old_output_replaced(
    trained_model_dir, odd_names, tmp_path, suffix, capsys
):
    out = tmp_path / f"preds{suffix}"
    out.write_text("[]\n" if suffix == ".json" else "file,rank,label_index\nold.jpg,1,0\n")  # a previous output
    assert main(["--model_dir", str(trained_model_dir), str(odd_names), "--output", str(out)]) == 0
    if suffix == ".json":
        files = [entry["file"] for entry in json.loads(out.read_text(encoding="utf-8"))]
    else:
        files = list(pd.read_csv(out)["file"].unique())
    assert sorted(os.path.basename(f) for f in files) == ["photo_\\xff.jpg", "plain.jpg"]
    assert "photo_\\xff.jpg" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == sorted(["photos", out.name])  # no temporary file left


def test_submission_id_of_an_undecodable_name(trained_model_dir, odd_names, tmp_path):
    out = tmp_path / "sub.csv"
    assert main(["--model_dir", str(trained_model_dir), str(odd_names), "--submission", str(out), "--quiet"]) == 0
    assert sorted(pd.read_csv(out)["Id"]) == ["photo_\\xff", "plain"]


def test_a_failing_write_leaves_the_existing_file_untouched(tmp_path):
    target = tmp_path / "preds.json"
    target.write_text("old content")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("half of the new")
        raise RuntimeError("disk trouble")
    assert target.read_text() == "old content" and os.listdir(tmp_path) == ["preds.json"]
    with atomic_write(target) as f:
        f.write("new")
    assert target.read_text() == "new" and oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_printable_path_round_trips_through_the_escape():
    name = os.fsdecode(b"dir/caf\xe9.jpg")  # Latin-1 bytes in a UTF-8 system: not decodable
    text = printable_path(name)
    assert text == "dir/caf\\xe9.jpg" and text.encode("utf-8")
    assert printable_path("dir/café.jpg") == "dir/café.jpg"  # valid names are left alone
    assert printable_path("lone \ud800 surrogate").encode("utf-8")


def _unescape(text: str) -> bytes:
    """printable_path's inverse (its docstring's rule), to show that no two names print alike."""
    out, i = bytearray(), 0
    while i < len(text):
        if text[i] != "\\":
            out += text[i].encode("utf-8")
            i += 1
            continue
        kind = text[i + 1]
        if kind == "\\":
            out += b"\\"
            i += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}[kind]
        code = int(text[i + 2 : i + 2 + width], 16)
        out += bytes([code]) if kind == "x" and code >= 0x80 else chr(code).encode("utf-8", "surrogatepass")
        i += 2 + width
    return bytes(out)


TRICKY_NAMES = [
    b"plain.jpg",
    b"a\xffb.jpg",  # an undecodable byte
    b"a\\xffb.jpg",  # a name that spells out that byte's escape
    b"a\\\\xffb.jpg",
    b"two\nlines.jpg",
    b"\x1b[31mred\x1b[0m.jpg",  # an ANSI escape sequence
    b"tab\there.jpg",
    "nel\x85.jpg".encode(),  # a C1 control (valid UTF-8)
    b"nel\x85.jpg",  # the same code as a raw byte
    "caf\u00e9 \u5c71.jpg".encode(),  # printable text of any script is kept
    "rtl\u202eoverride.jpg".encode(),
]


def test_printable_path_is_one_line_and_reversible():
    shown = [printable_path(os.fsdecode(name)) for name in TRICKY_NAMES]
    assert len(set(shown)) == len(shown)  # no two names print alike
    for name, text in zip(TRICKY_NAMES, shown):
        assert text.isprintable() and text.encode("utf-8") and _unescape(text) == name, (name, text)
    assert shown[1] == "a\\xffb.jpg" and shown[2] == "a\\\\xffb.jpg" and shown[4] == "two\\x0alines.jpg"
    assert shown[9] == "café 山.jpg" and printable_path(b"a\xffb.jpg") == shown[1]


def test_file_names_cannot_forge_lines_in_any_output(trained_model_dir, demo_root, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    image = sorted((demo_root / "val").rglob("*.jpg"))[0].read_bytes()
    names = [b"a\xffb.jpg", b"a\\xffb.jpg", b"two\nlines.jpg", b"\x1b[2J\x1b[31mred.jpg", b"ok.jpg"]
    for name in names:
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(image)
    with open(os.path.join(os.fsencode(folder), b"bad\nfile.jpg"), "wb") as f:
        f.write(b"not an image")
    csv, js, sub = tmp_path / "p.csv", tmp_path / "p.json", tmp_path / "sub.csv"
    argv = ["--model_dir", str(trained_model_dir), str(folder), "--top_k", "1", "--output", str(csv)]
    assert main([*argv, "--submission", str(sub)]) == 1  # bad\nfile.jpg fails, the others are predicted
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err
    headers = [line for line in out.splitlines() if line.startswith(str(folder))]
    expected = {printable_path(os.path.join(os.fsencode(folder), name)) for name in names}
    assert set(headers) == expected and len(expected) == len(names)  # one header line per photo, all different
    error_lines = [line for line in err.splitlines() if "bad" in line]
    assert len(error_lines) == 1 and "bad\\x0afile.jpg" in error_lines[0]
    files = pd.read_csv(csv)["file"]
    assert set(files) == expected and len(csv.read_text(encoding="utf-8").splitlines()) == 1 + len(names)
    assert main([*argv[:-1], str(js), "--quiet"]) == 1
    assert {entry["file"] for entry in json.loads(js.read_text(encoding="utf-8"))} == expected
    lines = sub.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(names)  # header + one line per photo: no id spans two lines
    ids = {line.rsplit(",", 1)[0] for line in lines[1:]}
    assert ids == {printable_path(os.fsdecode(name[:-4])) for name in names}


# ------------------------------------------------------------------ no input is ever an output
def test_a_glob_expanded_after_submission_never_replaces_a_photo(trained_model_dir, odd_names, capsys):
    """``predict.py --submission photos/*.jpg``: the shell makes the first photo the submission path."""
    photos = sorted(odd_names.glob("*.jpg"))
    before = [p.read_bytes() for p in photos]
    with pytest.raises(SystemExit) as exit_:
        main(["--model_dir", str(trained_model_dir), "--submission", *map(str, photos)])
    assert exit_.value.code == 2
    assert "--submission must end in .csv" in capsys.readouterr().err
    assert [p.read_bytes() for p in photos] == before


@pytest.mark.parametrize("option", ["--submission", "--output"])
def test_outputs_never_replace_an_input_or_a_file_predict_did_not_write(
    trained_model_dir, odd_names, tmp_path, option, capsys
):
    model = ["--model_dir", str(trained_model_dir), "--quiet"]
    photo = odd_names / "shot.csv"  # a photo whose name has an output's suffix, given as an input
    shutil.copy(odd_names / "plain.jpg", photo)
    assert main([*model, str(photo), option, str(photo)]) == 2
    assert "is one of the input images" in capsys.readouterr().err
    assert photo.read_bytes() == (odd_names / "plain.jpg").read_bytes()

    config = trained_model_dir / "config.json"  # an existing file of another kind: the model's own config
    notes = tmp_path / "notes.csv"
    notes.write_text("species,count\nParus major,3\n")
    config_text = config.read_text()
    for target in (notes, config) if option == "--output" else (notes,):  # (a submission must end in .csv)
        assert main([*model, str(odd_names), option, str(target)]) == 2
        assert f"{option} '{target}' exists and is not a" in capsys.readouterr().err
    assert notes.read_text() == "species,count\nParus major,3\n" and config.read_text() == config_text

    out = tmp_path / "out.csv"
    assert main([*model, str(odd_names), "--output", str(out), "--submission", str(out)]) == 2
    assert "name the same file" in capsys.readouterr().err
    # a previous output of the same kind is replaced (reruns work)
    assert main([*model, str(odd_names), option, str(out)]) == 0
    assert main([*model, str(odd_names), option, str(out)]) == 0
