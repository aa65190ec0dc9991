"""The prepared dataset folder: :class:`PreparedInat`, its safe atomic writing, reopening, and the summary."""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import errno
import json
import logging
import os
import shutil
import uuid
from typing import Any

import datasets

from .builder import REPORT_FILE, TAXONOMY_FILE
from .inat_json import InatDataError
from .taxonomy import RANKS, Taxonomy

logger = logging.getLogger(__name__)

# Marks a folder written by save_prepared and lists every entry it wrote there: the only entries a later run may
# remove. Anything else in the folder (a user's notes, a foreign dataset) is never deleted.
PREPARED_MANIFEST = "inat_prepared.json"
# What save_prepared writes besides one folder per split.
_FILES = (datasets.config.DATASETDICT_JSON_FILENAME, TAXONOMY_FILE, REPORT_FILE, PREPARED_MANIFEST)
_STAGING_TAG = ".prepare-"  # hidden sibling folders ".<name>.prepare-new-<id>" / "-old-<id>" of the output folder


@dataclasses.dataclass
class PreparedInat:
    """A prepared dataset with its label taxonomy and preparation report."""

    dataset: datasets.DatasetDict
    taxonomy: Taxonomy
    report: dict[str, Any]
    path: str | None = None  # the save_to_disk folder, when there is one


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


def _owned_entries(folder: str) -> set[str] | None:
    """The entries a previous :func:`save_prepared` wrote in ``folder`` (from its manifest), or None."""
    manifest = os.path.join(folder, PREPARED_MANIFEST)
    try:
        with open(manifest, encoding="utf-8") as f:
            entries = json.load(f)["entries"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InatDataError(f"{manifest} is damaged ({err}); remove the folder by hand or choose another.") from None
    if not isinstance(entries, list) or not all(isinstance(e, str) and os.sep not in e for e in entries):
        raise InatDataError(f"{manifest} is damaged (bad 'entries'); remove the folder by hand or choose another.")
    return set(entries) | {PREPARED_MANIFEST}


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
    datasets ``cache_dir``, is not a folder, is a non-empty foreign folder without ``overwrite``, or holds a foreign
    file one of our ``entries`` would replace. Returns the existing entries that are not ours (kept across the
    replacement)."""
    out = _real(output_dir)
    if cache_dir is not None and os.path.commonpath([out, _real(cache_dir)]) == out:
        relation = "is" if _real(cache_dir) == out else "lies inside"
        raise InatDataError(
            f"the datasets cache {os.fspath(cache_dir)} {relation} the output folder {os.fspath(output_dir)}: the "
            "cache would be built into the folder the prepared dataset replaces. Choose a --cache_dir outside the "
            "output folder (or leave it out: HF_DATASETS_CACHE)."
        )
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
    if not os.path.lexists(out):
        return []
    if not os.path.isdir(out):
        raise InatDataError(f"output folder {os.fspath(output_dir)} exists and is not a folder.")
    present = os.listdir(out)
    owned = _owned_entries(out)
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
        owned = legacy or set()
    foreign = sorted(set(present) - (owned or set()))
    clashes = sorted(set(foreign) & set(entries or ()))
    if clashes:
        raise InatDataError(
            f"output folder {os.fspath(output_dir)} holds {_some(clashes)}, which prepare did not write and would "
            "have to replace. Nothing was changed; move them away or choose another output folder."
        )
    return foreign


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
    """Delete the entries ``folder``'s manifest lists (the manifest last), and the folder if that empties it;
    returns what is left (never deleted: prepare did not write it)."""
    owned = _owned_entries(folder) or set()
    for entry in [*sorted(owned - {PREPARED_MANIFEST}), PREPARED_MANIFEST]:  # the manifest last: it marks ours
        path = os.path.join(folder, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
    left = os.listdir(folder)
    if not left:
        os.rmdir(folder)
    return left


def _clean_staging(out: str) -> None:
    """Finish what an interrupted earlier run left beside ``out``: files prepare did not write go back into
    ``out`` (a run killed after the swap leaves the user's files in the old folder), the rest is removed."""
    parent, name = os.path.split(out)
    prefix = f".{name}{_STAGING_TAG}"
    for entry in os.listdir(parent):
        path = os.path.join(parent, entry)
        if not entry.startswith(prefix) or not os.path.isdir(path) or os.path.islink(path):
            continue
        owned = _owned_entries(path)
        if owned is None and os.listdir(path):
            continue  # not written by us (no manifest): not ours to touch
        if os.path.isdir(out):
            for item in set(os.listdir(path)) - (owned or set()):
                if not os.path.lexists(os.path.join(out, item)):
                    os.rename(os.path.join(path, item), os.path.join(out, item))
        left = _remove_owned(path)
        if left:
            logger.warning("%s holds files prepare did not write (%s); left in place.", path, _some(left))


def save_prepared(prepared: PreparedInat, output_dir: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``prepared`` as a ``datasets.load_from_disk`` folder plus ``taxonomy.json`` and ``prepare_report.json``.

    Checked first (:func:`check_output_dir`), written into a hidden sibling folder and swapped in at the end (one
    atomic rename exchange on Linux): a reader, or a run killed at any point, sees the old dataset or the new one.
    Of the old folder only what a previous prepare wrote (:data:`PREPARED_MANIFEST`) is removed; other files stay.
    """
    out = os.path.abspath(os.fspath(output_dir)).rstrip(os.sep)
    entries = [*prepared.dataset, *_FILES]
    data_dir = prepared.report.get("data_dir")
    check_output_dir(out, data_dir, overwrite=overwrite, entries=entries)  # refuse before touching anything
    parent, name = os.path.split(out)
    os.makedirs(parent, exist_ok=True)
    _clean_staging(out)
    foreign = check_output_dir(out, data_dir, overwrite=overwrite, entries=entries)
    staging = os.path.join(parent, f".{name}{_STAGING_TAG}new-{uuid.uuid4().hex[:12]}")
    os.mkdir(staging)
    try:
        # The manifest goes first: it marks the staging folder as ours, so an interrupted run's leftovers can be
        # recognised and removed by the next one.
        with open(os.path.join(staging, PREPARED_MANIFEST), "w", encoding="utf-8") as f:
            json.dump({"format": 1, "entries": entries}, f, indent=2)
        for split, dataset in prepared.dataset.items():
            _save_split(dataset, os.path.join(staging, split), split)
        with open(os.path.join(staging, datasets.config.DATASETDICT_JSON_FILENAME), "w", encoding="utf-8") as f:
            json.dump({"splits": list(prepared.dataset)}, f)
        prepared.taxonomy.save(os.path.join(staging, TAXONOMY_FILE))
        with open(os.path.join(staging, REPORT_FILE), "w", encoding="utf-8") as f:
            json.dump(prepared.report, f, indent=2, ensure_ascii=False)
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
    repaired = collections.Counter()
    for s in splits.values():
        repaired.update(s.get("repaired", {}))
    if repaired:
        lines.append("Repaired on the way in: " + ", ".join(f"{k} ×{v}" for k, v in sorted(repaired.items())))
    if "seconds" in report:
        lines.append(f"Done in {report['seconds']:.1f} s.")
    return "\n".join(lines)
