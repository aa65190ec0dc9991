"""The prepared dataset folder: :class:`PreparedInat`, its safe atomic writing, reopening, and the summary."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import datasets

from ..files import PREPARED_MANIFEST, explain_storage_errors
from .builder import REPORT_FILE, TAXONOMY_FILE
from .inat_json import InatDataError
from .taxonomy import RANKS, Taxonomy

logger = logging.getLogger(__name__)

# Marks a folder written by save_prepared and lists every entry and every file it wrote there: the only ones a later
# run may remove. Anything else in the folder or inside its split folders (a user's notes, a model trained into
# P/train) is never deleted: prepare refuses to replace a split folder that holds a file it did not write.
_MANIFEST_FILES = {PREPARED_MANIFEST, PREPARED_MANIFEST + ".tmp"}  # the manifest and its temporary rewrite
_MANIFEST_FORMAT = 2  # 1: top-level entries only (files inferred with _LAYOUT)
# What save_prepared writes besides one folder per split.
_FILES = (datasets.config.DATASETDICT_JSON_FILENAME, TAXONOMY_FILE, REPORT_FILE, PREPARED_MANIFEST)
# The files of a split folder in the save_to_disk layout: what a format-1 or pre-manifest folder owns inside them.
_LAYOUT = re.compile(r"data-\d{5}-of-\d{5}\.arrow|state\.json|dataset_info\.json")
_STAGING_TAG = ".prepare-"  # hidden sibling folders ".<name>.prepare-new-<id>" / "-old-<id>" of the output folder
_LOCK_SUFFIX = ".prepare.lock"  # the hidden sibling file ".<name>.prepare.lock", locked while prepare writes <name>


@dataclasses.dataclass
class PreparedInat:
    """A prepared dataset with its label taxonomy and preparation report."""

    dataset: datasets.DatasetDict
    taxonomy: Taxonomy
    report: dict[str, Any]
    path: str | None = None  # the save_to_disk folder, when there is one


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


@dataclasses.dataclass
class _Owned:
    """What a previous :func:`save_prepared` wrote in a folder."""

    entries: set[str]  # top-level names
    files: set[str] | None  # every file under them, relative ('train/state.json'); None: a staging folder still
    # being written (all of it is this run's)

    def foreign_inside(self, folder: str) -> list[str]:
        """Paths inside the entry folders that prepare did not write (e.g. 'val/notes.txt')."""
        if self.files is None:
            return []
        owned_dirs = set()  # every folder above an owned file
        for path in self.files:
            while os.path.dirname(path):
                path = os.path.dirname(path)
                owned_dirs.add(path)
        found = []
        for entry in sorted(self.entries):
            path = os.path.join(folder, entry)
            if not os.path.isdir(path) or os.path.islink(path):
                continue
            for root, dirs, names in os.walk(path):
                for name in dirs + names:
                    rel = os.path.relpath(os.path.join(root, name), folder)
                    if rel not in self.files and rel not in owned_dirs:
                        found.append(rel)
                dirs[:] = [d for d in dirs if os.path.relpath(os.path.join(root, d), folder) in owned_dirs]
        return found


def _layout_files(folder: str, entries: set[str]) -> set[str]:
    """The files ``entries`` stand for in a folder written without a file list: top-level files, and in each split
    folder the save_to_disk layout (:data:`_LAYOUT`)."""
    files = set()
    for entry in entries:
        path = os.path.join(folder, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            files |= {f"{entry}/{name}" for name in os.listdir(path) if _LAYOUT.fullmatch(name)}
        else:
            files.add(entry)
    return files


def _owned(folder: str) -> _Owned | None:
    """What a previous :func:`save_prepared` wrote in ``folder`` (from its manifest), or None."""
    manifest = os.path.join(folder, PREPARED_MANIFEST)
    try:
        with open(manifest, encoding="utf-8") as f:
            data = json.load(f)
        entries, files = data["entries"], data.get("files")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InatDataError(f"{manifest} is damaged ({err}); remove the folder by hand or choose another.") from None
    if not isinstance(entries, list) or not all(_relative(e) and os.sep not in e for e in entries):
        raise InatDataError(f"{manifest} is damaged (bad 'entries'); remove the folder by hand or choose another.")
    if files is not None and (not isinstance(files, list) or not all(_relative(f) for f in files)):
        raise InatDataError(f"{manifest} is damaged (bad 'files'); remove the folder by hand or choose another.")
    entries = set(entries) | _MANIFEST_FILES
    if data.get("format", 1) < 2:
        return _Owned(entries, _layout_files(folder, entries) | _MANIFEST_FILES)
    return _Owned(entries, None if files is None else set(files) | _MANIFEST_FILES)


def _relative(path: Any) -> bool:
    return isinstance(path, str) and bool(path) and not os.path.isabs(path) and ".." not in path.split(os.sep)


def _legacy_entries(folder: str) -> set[str] | None:
    """A dataset prepared before the manifest existed: ``dataset_dict.json`` + ``taxonomy.json`` + its splits."""
    if not os.path.isfile(os.path.join(folder, TAXONOMY_FILE)):
        return None
    try:
        with open(os.path.join(folder, datasets.config.DATASETDICT_JSON_FILENAME), encoding="utf-8") as f:
            splits = [s for s in json.load(f)["splits"] if isinstance(s, str) and os.sep not in s]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {*_FILES, *splits}


def check_output_dir(
    output_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None,
    *,
    overwrite: bool = False,
    entries: list[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> list[str]:
    """Refuse (:class:`InatDataError`) an output folder that is, holds or lies in the data root, holds the
    datasets ``cache_dir``, is not a folder, is a non-empty foreign folder without ``overwrite``, holds a file
    prepare did not write inside a folder it wrote (a split folder), or holds a foreign file one of our ``entries``
    would replace. Returns the existing entries that are not ours (kept across the replacement)."""
    out = _real(output_dir)
    if data_dir is not None:
        root = _real(data_dir)
        common = os.path.commonpath([out, root])
        if common in (out, root):
            relation = "is" if out == root else ("lies inside" if common == root else "contains")
            raise InatDataError(
                f"output folder {os.fspath(output_dir)} {relation} the data root {os.fspath(data_dir)}: writing "
                "the prepared dataset there could replace the image folders. Choose an output folder outside "
                "the data root."
            )
    if cache_dir is not None and os.path.commonpath([out, _real(cache_dir)]) == out:
        relation = "is" if _real(cache_dir) == out else "lies inside"
        raise InatDataError(
            f"the datasets cache {os.fspath(cache_dir)} {relation} the output folder {os.fspath(output_dir)}: the "
            "cache would be built into the folder the prepared dataset replaces. Choose a --cache_dir outside the "
            "output folder (or leave it out: HF_DATASETS_CACHE)."
        )
    _check_writable(out, output_dir)
    if not os.path.lexists(out):
        return []
    if not os.path.isdir(out):
        raise InatDataError(f"output folder {os.fspath(output_dir)} exists and is not a folder.")
    present = os.listdir(out)
    owned = _owned(out)
    if owned is None and present:
        legacy = _legacy_entries(out)
        if not overwrite:
            what = f"holds {_some(present)}"
            if legacy:
                what = f"looks like a dataset prepared by an older version (no {PREPARED_MANIFEST})"
            raise InatDataError(
                f"output folder {os.fspath(output_dir)} is not empty and is not a prepared dataset: it {what}. "
                "Choose a new or empty folder, or pass --overwrite to write into it (prepare then replaces only "
                "what it wrote itself; every other file is kept)."
            )
        owned = _Owned(legacy or set(), _layout_files(out, legacy or set()))
    owned = owned or _Owned(set(), set())
    inside = owned.foreign_inside(out)
    if inside:
        raise InatDataError(
            f"output folder {os.fspath(output_dir)} holds {_some(inside)}, which prepare did not write, inside "
            "folders it wrote and would replace. Nothing was changed; move them out (a model or notes belong in "
            "a folder of their own, outside the prepared dataset) and run prepare again."
        )
    foreign = sorted(set(present) - owned.entries)
    clashes = sorted(set(foreign) & set(entries or ()))
    if clashes:
        raise InatDataError(
            f"output folder {os.fspath(output_dir)} holds {_some(clashes)}, which prepare did not write and would "
            "have to replace. Nothing was changed; move them away or choose another output folder."
        )
    return foreign


def _check_writable(out: str, output_dir: str | os.PathLike) -> None:
    """Before the (long) build: prepare writes beside ``out`` (staging, lock) and into it (a rerun)."""
    folders = [out] if os.path.isdir(out) else []
    parent = os.path.dirname(out)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    for folder in [parent, *folders]:
        if not os.access(folder, os.W_OK | os.X_OK):
            read_only = hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY
            what = "is on a read-only file system" if read_only else "is not writable (permission denied)"
            raise InatDataError(
                f"cannot write the output folder {os.fspath(output_dir)}: {folder} {what}. Nothing was changed; "
                "choose a folder you can write to."
            )


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in sorted(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), b)


def _remove_owned(folder: str) -> list[str]:
    """Delete the files ``folder``'s manifest lists (the manifest last) and the folders they leave empty, and
    ``folder`` if that empties it; returns what is left (never deleted: prepare did not write it)."""
    owned = _owned(folder) or _Owned(set(), set())
    if owned.files is None:  # a staging folder still being written: all of it is this run's
        for entry in sorted(owned.entries - _MANIFEST_FILES):
            path = os.path.join(folder, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
    else:
        for rel in sorted(owned.files - _MANIFEST_FILES):
            path = os.path.join(folder, rel)
            if os.path.lexists(path) and not (os.path.isdir(path) and not os.path.islink(path)):
                os.unlink(path)
        for entry in sorted(owned.entries - _MANIFEST_FILES):  # the folders of those files, once empty
            if os.path.islink(os.path.join(folder, entry)):
                continue
            for root, _, _ in os.walk(os.path.join(folder, entry), topdown=False):
                if not os.listdir(root):
                    os.rmdir(root)
    for name in sorted(_MANIFEST_FILES):  # the manifest last: it marks the folder as ours
        if os.path.lexists(os.path.join(folder, name)):
            os.unlink(os.path.join(folder, name))
    left = os.listdir(folder)
    if not left:
        os.rmdir(folder)
    return left


def _clean_staging(out: str) -> None:
    """Finish what an interrupted earlier run left beside ``out``: files prepare did not write go back into
    ``out`` (a run killed after the swap leaves the user's files in the old folder), the rest is removed. Runs
    under :func:`output_lock`: no other prepare is writing ``out``, so every staging folder is a dead run's."""
    parent, name = os.path.split(out)
    prefix = f".{name}{_STAGING_TAG}"
    for entry in os.listdir(parent):
        path = os.path.join(parent, entry)
        if not entry.startswith(prefix) or not os.path.isdir(path) or os.path.islink(path):
            continue
        owned = _owned(path)
        if owned is None and set(os.listdir(path)) - _MANIFEST_FILES:
            continue  # not written by us (no manifest): not ours to touch
        if os.path.isdir(out):
            for item in set(os.listdir(path)) - (owned.entries if owned else set()):
                if not os.path.lexists(os.path.join(out, item)):
                    os.rename(os.path.join(path, item), os.path.join(out, item))
        left = _remove_owned(path)
        if left:
            logger.warning("%s holds files prepare did not write (%s); left in place.", path, _some(left))


@contextlib.contextmanager
def output_lock(out: str) -> Iterator[None]:
    """Held while prepare writes ``out``: an exclusive ``flock`` on the hidden file ``.<name>.prepare.lock`` beside
    it (the kernel releases it when the process dies, even by kill -9). A second prepare into the same folder stops
    at once with :class:`InatDataError` (it does not wait: the first may take hours). The file is removed while
    still locked; a run that locked a removed file retries on the new one."""
    import fcntl

    parent, name = os.path.split(_real(out))
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, f".{name}{_LOCK_SUFFIX}")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except BlockingIOError:
            os.close(fd)
            raise InatDataError(
                f"another prepare is writing {out} right now (it holds {path}). Wait for it to finish, or choose "
                "another --output_dir."
            ) from None
        except FileNotFoundError:  # the holder removed it just after we opened it
            pass
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)


def _write_manifest(folder: str, entries: list[str], files: list[str] | None) -> None:
    """``files`` None: a staging folder still being written (marks it as ours first thing); replaced atomically."""
    tmp = os.path.join(folder, PREPARED_MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"format": _MANIFEST_FORMAT, "entries": entries, "files": files}, f, indent=2)
    os.replace(tmp, os.path.join(folder, PREPARED_MANIFEST))


def _files_under(folder: str) -> list[str]:
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.relpath(os.path.join(root, n), folder) for n in names]
    return sorted(set(found) - _MANIFEST_FILES)


def save_prepared(prepared: PreparedInat, output_dir: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``prepared`` as a ``datasets.load_from_disk`` folder plus ``taxonomy.json`` and ``prepare_report.json``.

    Checked first (:func:`check_output_dir`), locked (:func:`output_lock`), written into a hidden sibling folder
    and swapped in at the end (one atomic rename exchange on Linux): a reader, or a run killed at any point, sees
    the old dataset or the new one. Of the old folder only the files a previous prepare wrote
    (:data:`PREPARED_MANIFEST`) are removed; other files stay. A full disk or a read-only folder: one line saying
    what and where (:class:`InatDataError`).
    """
    out = os.path.abspath(os.fspath(output_dir)).rstrip(os.sep)
    entries = [*prepared.dataset, *_FILES]
    data_dir = prepared.report.get("data_dir")
    check_output_dir(out, data_dir, overwrite=overwrite, entries=entries)  # refuse before touching anything
    parent, name = os.path.split(out)
    with explain_storage_errors(out, InatDataError), output_lock(out):
        _clean_staging(out)
        foreign = check_output_dir(out, data_dir, overwrite=overwrite, entries=entries)
        staging = os.path.join(parent, f".{name}{_STAGING_TAG}new-{uuid.uuid4().hex[:12]}")
        os.mkdir(staging)
        try:
            # The manifest goes first: it marks the staging folder as ours, so an interrupted run's leftovers can
            # be recognised and removed by the next one. At the end it lists every file written.
            _write_manifest(staging, entries, None)
            for split, dataset in prepared.dataset.items():
                _save_split(dataset, os.path.join(staging, split), split)
            with open(os.path.join(staging, datasets.config.DATASETDICT_JSON_FILENAME), "w", encoding="utf-8") as f:
                json.dump({"splits": list(prepared.dataset)}, f)
            prepared.taxonomy.save(os.path.join(staging, TAXONOMY_FILE))
            with open(os.path.join(staging, REPORT_FILE), "w", encoding="utf-8") as f:
                json.dump(prepared.report, f, indent=2, ensure_ascii=False)
            _write_manifest(staging, entries, _files_under(staging))
        except Exception:
            _remove_owned(staging)
            raise
        _swap_in(staging, out, foreign)
    prepared.path = os.fspath(output_dir)


def _swap_in(staging: str, out: str, foreign: list[str]) -> None:
    if not os.path.lexists(out) or not os.listdir(out):
        os.rename(staging, out)  # onto nothing or an empty folder: one atomic rename
        return
    if _exchange(staging, out):
        old = staging  # after the exchange the staging path holds the previous dataset
    else:  # no atomic exchange on this system: two renames (between them the output folder is briefly absent)
        old = staging.replace(f"{_STAGING_TAG}new-", f"{_STAGING_TAG}old-")
        os.rename(out, old)
        os.rename(staging, out)
    for entry in foreign:  # the user's files stay in the output folder
        os.rename(os.path.join(old, entry), os.path.join(out, entry))
    _remove_owned(old)


def _save_split(dataset: datasets.Dataset, split_dir: str, split: str) -> None:
    """One split in the ``save_to_disk`` layout. ``Dataset.save_to_disk`` embeds local image files (it would copy
    every image of a reference-storage dataset); the builder's Arrow files already hold the rows, so they are
    hard-linked (or copied) and described with the ``state.json`` / ``dataset_info.json`` it writes."""
    # datasets has no public API for either: `_indices` (a select/shuffle view) and the private state.json keys
    # below were checked against datasets 5.2; test_saved_split_is_what_save_to_disk_writes fails when they change.
    files = [f["filename"] for f in dataset.cache_files]
    if dataset._indices is not None or not files:  # not a plain view of the builder's files: let datasets write it
        dataset.save_to_disk(split_dir)
        return
    os.mkdir(split_dir)
    names = []
    for i, source in enumerate(files):
        name = f"data-{i:05d}-of-{len(files):05d}.arrow"
        target = os.path.join(split_dir, name)
        try:
            os.link(source, target)
        except OSError:  # another file system (or no hard links): copy
            shutil.copyfile(source, target)
        names.append({"filename": name})
    keys = ("_fingerprint", "_format_columns", "_format_kwargs", "_format_type", "_output_all_columns")
    state = {key: dataset.__dict__[key] for key in keys} | {"_data_files": names, "_split": split}
    with open(os.path.join(split_dir, datasets.config.DATASET_STATE_JSON_FILENAME), "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2, sort_keys=True)
    dataset.info.write_to_directory(split_dir)


def load_prepared(path: str | os.PathLike) -> PreparedInat:
    """Reopen a folder written by ``prepare_data.py --output_dir`` (memory-mapped: fast, little RAM)."""
    path = os.fspath(path)
    taxonomy_file = os.path.join(path, TAXONOMY_FILE)
    if not os.path.isfile(taxonomy_file):
        raise InatDataError(
            f"{path} is not a prepared iNat dataset: {TAXONOMY_FILE} is missing. Create one with "
            f"`python scripts/prepare_data.py --data_dir ROOT --output_dir {path}`."
        )
    dataset = datasets.load_from_disk(path)
    if not isinstance(dataset, datasets.DatasetDict):
        raise InatDataError(f"{path} holds a single Dataset; expected the DatasetDict written by prepare_data.py.")
    report_file = os.path.join(path, REPORT_FILE)
    report = {}
    if os.path.isfile(report_file):
        with open(report_file, encoding="utf-8") as f:
            report = json.load(f)
    taxonomy = Taxonomy.load(taxonomy_file)
    for split, data in dataset.items():
        names = getattr(data.features.get("label"), "names", None)
        if names is not None and list(names) != list(taxonomy.labels):
            # Split and taxonomy come from different preparations: the model would be saved with wrong names.
            raise InatDataError(
                f"{path}: the labels in {TAXONOMY_FILE} ({len(taxonomy.labels)}, e.g. {taxonomy.labels[:3]}) do "
                f"not match those of split {split!r} ({len(names)}, e.g. {list(names[:3])}). The folder mixes "
                "two preparations; prepare it again."
            )
    return PreparedInat(dataset=dataset, taxonomy=taxonomy, report=report, path=path)


def format_summary(report: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of a preparation."""
    opts, per_rank, splits = report.get("options", {}), report.get("classes_per_rank", {}), report.get("splits", {})
    lines = [
        f"iNat 2021 → Arrow  |  rank={opts.get('rank')}  taxon={opts.get('taxon')}  storage={opts.get('image_storage')}"
        + (f" (shorter side ≤ {opts['resize_shorter']} px)" if opts.get("resize_shorter") else "")
        + ("  [reused cache]" if report.get("reused_cache") else ""),
        "",
        "Classes per rank (after the taxon filter)",
        "  " + "  ".join(f"{r:>8}" for r in RANKS),
        "  " + "  ".join(f"{per_rank.get(r, 0):>8,}" for r in RANKS),
        f"  labels at rank {opts.get('rank')}: {report.get('num_labels', 0):,}",
        "",
        "Images per split",
        f"  {'split':<12} {'in JSON':>10} {'filtered':>10} {'skipped':>9} {'written':>10}  labeled",
    ]
    for split, s in splits.items():
        lines.append(
            f"  {split:<12} {s['images_in_json']:>10,} {s['filtered_out']:>10,} {s['skipped']:>9,} {s['written']:>10,}"
            f"  {'yes' if s['labeled'] else 'no (label -1)'}"
        )
    reasons = report.get("skipped_by_reason", {})
    lines.append("")
    if reasons:
        lines.append("Skipped images by reason (every file is listed in prepare_report.json)")
        lines += [f"  {count:>8,}  {reason}" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])]
    else:
        lines.append("Skipped images: none")
    bad_locations = sum(s.get("bad_locations", 0) for s in splits.values())
    if bad_locations:
        lines.append(
            f"Invalid locations removed (--on_bad_record skip; images kept without one): {bad_locations:,}, listed "
            "in prepare_report.json"
        )
    repaired = collections.Counter()
    for s in splits.values():
        repaired.update(s.get("repaired", {}))
    if repaired:
        lines.append("Repaired on the way in: " + ", ".join(f"{k} ×{v}" for k, v in sorted(repaired.items())))
    if "seconds" in report:
        lines.append(f"Done in {report['seconds']:.1f} s.")
    return "\n".join(lines)
