"""The prepared output folder: never destroys input or foreign files, and is replaced atomically."""

import builtins
import contextlib
import errno
import json
import os
import shutil

import pytest

from inat_hf.data import InatDataError, load_prepared, prepare_inat, save_prepared
from inat_hf.data import prepare as prepare_module


def _images(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))


def _prep(root, tmp_path, **kwargs):
    kwargs.setdefault("cache_dir", tmp_path / "cache")
    kwargs.setdefault("preprocessing_num_workers", 1)
    kwargs.setdefault("verify_files", False)
    return prepare_inat(root, **kwargs)


# ------------------------------------------------------------------ item 1: inputs and foreign files are safe
@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_output_overlapping_the_data_root_is_refused(demo_copy, tmp_path, where):
    out = {"same": demo_copy, "inside": demo_copy / "prepared", "contains": demo_copy.parent}[where]
    before = _images(demo_copy)
    relation = {"same": "is", "inside": "lies inside", "contains": "contains"}[where]
    with pytest.raises(InatDataError, match=f"{relation} the data root"):
        _prep(demo_copy, tmp_path, output_dir=out, overwrite=True)
    assert _images(demo_copy) == before and len(before) > 0


def test_prepare_command_refuses_the_data_root_and_keeps_every_image(demo_copy, tmp_path, capsys):
    from inat_hf.commands.prepare import main

    before = _images(demo_copy)
    code = main(["--data_dir", str(demo_copy), "--output_dir", str(demo_copy), "--cache_dir", str(tmp_path / "c")])
    assert code == 2 and "is the data root" in capsys.readouterr().err
    assert _images(demo_copy) == before


def test_foreign_folder_is_refused_and_never_emptied(demo_root, tmp_path):
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    (out / "train" / "mine.jpg").write_bytes(b"user data")
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InatDataError, match="not empty and is not a prepared dataset.*--overwrite"):
        _prep(demo_root, tmp_path, output_dir=out)
    # --overwrite still never removes what prepare did not write: a clash with its own train/ is an error
    with pytest.raises(InatDataError, match=r"train.*prepare did not write"):
        _prep(demo_root, tmp_path, output_dir=out, overwrite=True)
    assert (out / "train" / "mine.jpg").read_bytes() == b"user data"
    assert (out / "notes.txt").read_text() == "keep me"


def test_overwrite_writes_beside_foreign_files_and_keeps_them(demo_root, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _prep(demo_root, tmp_path, output_dir=out, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"
    assert set(load_prepared(out).dataset) == {"train", "val", "public_test"}
    # a rerun into the (now prepared) folder replaces only what prepare wrote; a split it no longer makes goes
    _prep(demo_root, tmp_path, output_dir=out, splits="train,val", rank="genus")
    prepared = load_prepared(out)
    assert set(prepared.dataset) == {"train", "val"} and not (out / "public_test").exists()
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["cache", "out"]  # no staging folder left behind


def test_load_prepared_refuses_taxonomy_that_does_not_match_the_splits(demo_root, tmp_path):
    out = tmp_path / "out"
    _prep(demo_root, tmp_path, output_dir=out)
    genus = _prep(demo_root, tmp_path, rank="genus")
    genus.taxonomy.save(str(out / "taxonomy.json"))  # what an interrupted non-atomic rewrite used to leave
    with pytest.raises(InatDataError, match="labels in taxonomy.json.*do not match"):
        load_prepared(out)


@pytest.mark.parametrize("where", ["same", "inside"])
def test_a_cache_dir_in_the_output_folder_is_refused_before_building(demo_root, tmp_path, capsys, where):
    from inat_hf.commands.prepare import main

    out = tmp_path / "out"
    cache = out if where == "same" else out / "cache"
    code = main(["--data_dir", str(demo_root), "--output_dir", str(out), "--cache_dir", str(cache)])
    assert code == 2
    relation = "is" if where == "same" else "lies inside"
    assert f"the datasets cache {cache} {relation} the output folder {out}" in capsys.readouterr().err
    assert not out.exists()  # nothing was built


# ------------------------------------------------------------------ item 2: a kill at any write step
class _Killed(BaseException):
    """Stands for kill -9: not an Exception, so no cleanup handler of the code under test runs."""


_WRITE_STEPS = [
    (os, "rename"),
    (os, "replace"),
    (os, "link"),
    (os, "mkdir"),
    (os, "unlink"),
    (os, "remove"),
    (os, "rmdir"),
    (shutil, "rmtree"),
    (shutil, "copyfile"),
]


def _kill_at(monkeypatch, step: int | None) -> list[str]:
    """Patch every file-system write so that the ``step``-th one dies before it happens; returns the step log."""
    log: list[str] = []

    def guard(name, fn):
        def wrapper(*args, **kwargs):
            if step is not None and len(log) == step:
                raise _Killed(name)
            log.append(name)
            return fn(*args, **kwargs)

        return wrapper

    for module, name in _WRITE_STEPS:
        monkeypatch.setattr(module, name, guard(name, getattr(module, name)))
    if hasattr(prepare_module, "_exchange"):  # the atomic directory swap (renameat2)
        monkeypatch.setattr(prepare_module, "_exchange", guard("exchange", prepare_module._exchange))
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            return guard(f"open {os.path.basename(str(file))}", real_open)(file, mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    return log


def _state(out):
    """What a reader sees: splits, labels, rank; and every split's label names agree with taxonomy.json."""
    prepared = load_prepared(out)
    for split in prepared.dataset.values():
        assert split.features["label"].names == prepared.taxonomy.labels
    return sorted(prepared.dataset), prepared.taxonomy.labels, prepared.report["options"]["rank"]


def test_a_kill_at_any_write_step_leaves_the_old_or_the_new_dataset(demo_root, tmp_path, monkeypatch):
    old = _prep(demo_root, tmp_path)  # species, train/val/public_test
    new = _prep(demo_root, tmp_path, rank="genus", splits="train,val")
    reference = tmp_path / "ref"
    save_prepared(old, reference)
    old_state = _state(reference)
    save_prepared(new, reference)
    new_state = _state(reference)
    assert old_state != new_state

    with monkeypatch.context() as m:
        (tmp_path / "count").mkdir()
        save_prepared(old, tmp_path / "count" / "out")
        steps = _kill_at(m, None)
        save_prepared(new, tmp_path / "count" / "out")
    assert len(steps) > 10, steps
    seen = set()
    for step in range(len(steps) + 1):
        out = tmp_path / f"k{step}" / "out"
        out.parent.mkdir()
        save_prepared(old, out)
        (out / "notes.txt").write_text("user file")
        with monkeypatch.context() as m:
            _kill_at(m, step)
            with contextlib.suppress(_Killed):
                save_prepared(new, out)
        state = _state(out)
        assert state in (old_state, new_state), f"kill before step {step} ({steps[step : step + 1]}): mixed dataset"
        seen.add("old" if state == old_state else "new")
        # nothing the user wrote is lost: the notes file is in the output or in a staging folder beside it
        assert (out / "notes.txt").exists() or any(out.parent.rglob("notes.txt")), step
        # the next run completes and cleans up after the killed one
        save_prepared(new, out)
        assert _state(out) == new_state and (out / "notes.txt").read_text() == "user file"
        assert os.listdir(out.parent) == ["out"], (step, os.listdir(out.parent))
    assert seen == {"old", "new"}


def test_replacement_without_an_atomic_exchange_still_keeps_user_files(demo_root, tmp_path, monkeypatch):
    """Where renameat2 is missing (not Linux) the swap is two renames; the result is the same."""
    monkeypatch.setattr(prepare_module, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    _prep(demo_root, tmp_path, output_dir=out)
    (out / "notes.txt").write_text("keep me")
    _prep(demo_root, tmp_path, output_dir=out, rank="genus", splits="train")
    assert set(load_prepared(out).dataset) == {"train"} and (out / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["cache", "out"]


# ------------------------------------------------------------------ a rerun deletes only what the manifest lists
@pytest.mark.parametrize("manifest", ["current", "format 1"])
@pytest.mark.parametrize("foreign", ["val/notes.txt", "train/checkpoint-1/model.safetensors"])
def test_a_rerun_refuses_a_file_prepare_did_not_write_inside_its_split_folders(
    demo_root, tmp_path, capsys, foreign, manifest
):
    """`echo keep > P/val/notes.txt`, or `train.py --output_dir P/train`, then prepare into P again."""
    import json

    from inat_hf.commands.prepare import main

    out = tmp_path / "out"
    argv = ["--data_dir", str(demo_root), "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache")]
    assert main([*argv, "--preprocessing_num_workers", "1"]) == 0
    if manifest == "format 1":  # a folder written before the manifest listed files: split folders hold the layout
        data = json.loads((out / prepare_module.PREPARED_MANIFEST).read_text())
        (out / prepare_module.PREPARED_MANIFEST).write_text(json.dumps({"format": 1, "entries": data["entries"]}))
    (out / foreign).parent.mkdir(parents=True, exist_ok=True)
    (out / foreign).write_text("keep")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert main([*argv, "--rank", "genus"]) == 2
    err = capsys.readouterr().err
    assert f"holds '{foreign.split('/model')[0]}'" in err and "which prepare did not write, inside folders" in err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before  # nothing deleted, nothing written
    assert (out / foreign).read_text() == "keep" and sorted(os.listdir(tmp_path)) == ["cache", "out"]
    (out / foreign).unlink()
    if foreign.startswith("train/"):
        (out / foreign).parent.rmdir()
    assert main([*argv, "--rank", "genus"]) == 0  # once moved away, the rerun goes through
    assert load_prepared(out).taxonomy.rank == "genus"


def test_a_rerun_removes_exactly_the_files_the_manifest_lists(demo_root, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _prep(demo_root, tmp_path, output_dir=out)
    listed = json.loads((out / prepare_module.PREPARED_MANIFEST).read_text())["files"]
    on_disk = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()]
    assert sorted([*listed, prepare_module.PREPARED_MANIFEST]) == sorted(on_disk)
    removed = []
    real_unlink = os.unlink
    monkeypatch.setattr(os, "unlink", lambda path, *a, **k: (removed.append(str(path)), real_unlink(path, *a, **k)))
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: pytest.fail("no folder is removed wholesale"))
    _prep(demo_root, tmp_path, output_dir=out, rank="genus")
    old = [p for p in removed if "/.out.prepare-" in p]  # the previous dataset, after the swap
    assert sorted(p.split("/", 1)[1] for p in (os.path.relpath(p, tmp_path) for p in old)) == sorted(
        [*listed, prepare_module.PREPARED_MANIFEST]
    )


# ------------------------------------------------------------------ one prepare at a time per output folder
def test_a_second_prepare_into_a_locked_output_stops_at_once(demo_root, tmp_path, capsys):
    """Two prepares into one folder at once: the test holds the lock the first one would hold."""
    from inat_hf.commands.prepare import main

    out = tmp_path / "out"
    argv = ["--data_dir", str(demo_root), "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache")]
    with prepare_module.output_lock(str(out)):
        assert main([*argv, "--preprocessing_num_workers", "1"]) == 2
        assert f"another prepare is writing {out} right now" in capsys.readouterr().err
        assert not out.exists()
    assert main(argv) == 0 and sorted(os.listdir(tmp_path)) == ["cache", "out"]  # the lock file goes too


def test_a_live_runs_staging_folder_is_never_taken_for_a_leftover(demo_root, tmp_path):
    prepared = _prep(demo_root, tmp_path)
    out = tmp_path / "out"
    staging = tmp_path / ".out.prepare-new-0123456789ab"  # what a running prepare writes into
    staging.mkdir()
    prepare_module._write_manifest(str(staging), ["train"], None)
    (staging / "train").mkdir()
    (staging / "train" / "data-00000-of-00001.arrow").write_bytes(b"being written")
    with prepare_module.output_lock(str(out)), pytest.raises(InatDataError, match="another prepare is writing"):
        save_prepared(prepared, out)
    assert (staging / "train" / "data-00000-of-00001.arrow").read_bytes() == b"being written"
    save_prepared(prepared, out)  # no lock held: the writer is gone, its staging folder is a leftover
    assert sorted(os.listdir(tmp_path)) == ["cache", "out"]


# ------------------------------------------------------------------ a full disk, a read-only folder: one line
def _one_error_line(stderr: str) -> str:
    """The command's one error line (besides datasets' progress bars), and no traceback."""
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_while_writing_is_one_line_and_loses_nothing(
    demo_root, tmp_path, capsys, monkeypatch, code
):
    from inat_hf.commands.prepare import main

    out = tmp_path / "out"
    argv = ["--data_dir", str(demo_root), "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache")]
    assert main([*argv, "--preprocessing_num_workers", "1"]) == 0
    before = _state(out)

    def fail(dataset, split_dir, split):
        raise OSError(code, os.strerror(code), os.path.join(split_dir, "data-00000-of-00001.arrow"))

    monkeypatch.setattr(prepare_module, "_save_split", fail)
    assert main([*argv, "--rank", "genus"]) == 2
    err = _one_error_line(capsys.readouterr().err)
    if code == errno.ENOSPC:
        assert (
            err.startswith(f"error: Disk full: no space left on the device holding {out} (") and "unknown" not in err
        )
    else:
        assert err.startswith(f"error: cannot write {out}: ") and "is on a read-only file system" in err
    assert _state(out) == before and sorted(os.listdir(tmp_path)) == ["cache", "out"]


def test_a_full_cache_disk_is_one_line(demo_root, tmp_path, capsys, monkeypatch):
    from inat_hf.commands.prepare import main
    from inat_hf.data.builder import InatBuilder

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
        yield

    monkeypatch.setattr(InatBuilder, "_generate_tables", full)
    cache = tmp_path / "cache"
    assert main(["--data_dir", str(demo_root), "--cache_dir", str(cache), "--preprocessing_num_workers", "1"]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert err.startswith(f"error: Disk full: no space left on the device holding {cache} (")


def test_a_read_only_output_is_refused_before_the_build(demo_root, tmp_path, capsys, monkeypatch):
    from inat_hf.commands.prepare import main

    parent = tmp_path / "ro"
    parent.mkdir()
    if os.geteuid() == 0:  # root writes through any permission bits: stand in for the kernel's answer
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: os.fspath(p) != str(parent) and real_access(p, mode))
    else:
        parent.chmod(0o555)
    try:
        code = main(
            ["--data_dir", str(demo_root), "--output_dir", str(parent / "out"), "--cache_dir", str(tmp_path / "c")]
        )
    finally:
        parent.chmod(0o755)
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot write the output folder {parent / 'out'}: {parent} is not writable" in err
    assert not (tmp_path / "c").exists()  # refused before the build
