"""Python API around :class:`~inat_hf.data.builder.InatBuilder`: prepare, cache, save, reload, summarise."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Any

import datasets

from .builder import REPORT_FILE, TAXONOMY_FILE, InatBuilder
from .inat_json import InatDataError
from .taxonomy import RANKS, Taxonomy


@dataclasses.dataclass
class PreparedInat:
    """A prepared dataset with its label taxonomy and preparation report."""

    dataset: datasets.DatasetDict
    taxonomy: Taxonomy
    report: dict[str, Any]
    path: str | None = None  # the save_to_disk folder, when there is one


def prepare_inat(
    data_dir: str | os.PathLike,
    *,
    splits: str | list[str] | dict[str, str] | None = None,
    rank: str = "species",
    taxon: str | None = "kingdom=Animalia",
    image_storage: str | None = None,
    resize_shorter: int | None = None,
    jpeg_quality: int = 90,
    on_bad_image: str = "error",
    verify_files: bool = True,
    max_image_pixels: int | None = None,
    num_workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_rebuild: bool = False,
    output_dir: str | os.PathLike | None = None,
) -> PreparedInat:
    """Prepare (or reuse from cache) an iNat 2021 root as a :class:`datasets.DatasetDict`.

    Args:
        data_dir: the iNat 2021 root: split JSON files next to the image folders their ``file_name`` point to.
        splits: ``"train,val"``, ``"train=train_60.json,val=val_20.json"``, a list or a mapping; default: every
            standard file present (train, train_mini, val, public_test).
        rank: label rank (species, genus, family, order, class, phylum, kingdom).
        taxon: category filter, e.g. ``"kingdom=Animalia"`` (default), ``"class=Aves|Mammalia"``, ``"none"``.
        image_storage: ``"path"`` (references, default) or ``"bytes"`` (embedded JPEGs; default when resizing).
        resize_shorter: with bytes storage, shrink images so the shorter side is at most this many pixels.
        jpeg_quality: quality of re-encoded JPEGs (resized or repaired images).
        on_bad_image: ``"error"`` stops at the first bad image; ``"skip"`` leaves it out and reports it.
        verify_files: decode every image (at reduced scale) to find missing/corrupt files up front.
        max_image_pixels: images with more pixels are rejected as decompression bombs (default: PIL's limit).
        num_workers: processes that check/encode images (default: up to 8, one per core).
        cache_dir: datasets cache root (default: ``HF_DATASETS_CACHE``).
        force_rebuild: rebuild even if a cache for the same inputs and options exists.
        output_dir: if given, also ``save_to_disk`` there with ``taxonomy.json`` and ``prepare_report.json``.
    """
    if image_storage is None:
        image_storage = "bytes" if resize_shorter else "path"
    options = dict(
        rank=rank,
        taxon=taxon if taxon is not None else "none",
        image_storage=image_storage,
        resize_shorter=resize_shorter,
        jpeg_quality=jpeg_quality,
        on_bad_image=on_bad_image,
        verify_files=verify_files,
    )
    if max_image_pixels is not None:
        options["max_image_pixels"] = max_image_pixels
    start = time.perf_counter()
    builder = InatBuilder(
        data_dir=os.fspath(data_dir),
        splits=splits,
        num_workers=num_workers,
        cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
        **options,
    )
    reused = os.path.isfile(os.path.join(builder.cache_dir, datasets.config.DATASET_INFO_FILENAME))
    try:
        if force_rebuild:
            # datasets re-verifies split sizes against the old cache's info unless told not to.
            builder.download_and_prepare(download_mode="force_redownload", verification_mode="no_checks")
            reused = False
        else:
            builder.download_and_prepare()
    except datasets.exceptions.DatasetGenerationError as err:
        # The builder's own errors are the informative ones: surface them instead of datasets' wrapper.
        cause = err.__cause__
        while cause is not None and not isinstance(cause, InatDataError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise
    dataset = builder.as_dataset()
    report = builder.read_report()
    report.update(cache_dir=builder.cache_dir, reused_cache=reused, seconds=round(time.perf_counter() - start, 2))
    taxonomy = builder.read_taxonomy()
    prepared = PreparedInat(dataset=dataset, taxonomy=taxonomy, report=report)
    if output_dir is not None:
        save_prepared(prepared, output_dir)
    return prepared


def load_inat(data_dir: str | os.PathLike, **kwargs: Any) -> datasets.DatasetDict:
    """Prepare (or reuse) and return the :class:`datasets.DatasetDict`; see :func:`prepare_inat` for options."""
    return prepare_inat(data_dir, **kwargs).dataset


def save_prepared(prepared: PreparedInat, output_dir: str | os.PathLike) -> None:
    """Write ``prepared`` as a ``datasets.load_from_disk`` folder plus ``taxonomy.json`` and ``prepare_report.json``."""
    output_dir = os.fspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    for split, dataset in prepared.dataset.items():
        _save_split(dataset, os.path.join(output_dir, split), split)
    with open(os.path.join(output_dir, datasets.config.DATASETDICT_JSON_FILENAME), "w", encoding="utf-8") as f:
        json.dump({"splits": list(prepared.dataset)}, f)
    prepared.taxonomy.save(os.path.join(output_dir, TAXONOMY_FILE))
    with open(os.path.join(output_dir, REPORT_FILE), "w", encoding="utf-8") as f:
        json.dump(prepared.report, f, indent=2, ensure_ascii=False)
    prepared.path = output_dir


def _save_split(dataset: datasets.Dataset, split_dir: str, split: str) -> None:
    """One split in the ``save_to_disk`` layout, without copying the images.

    ``Dataset.save_to_disk`` (datasets ≥ 4) always embeds local image files into the Arrow data, which would copy
    the whole image collection (~200 GB for iNat 2021 train) into the output for reference storage. The builder's
    Arrow files already hold exactly the rows we want, so they are hard-linked (or copied across file systems)
    and described with the same ``state.json`` / ``dataset_info.json`` that ``save_to_disk`` writes.
    """
    files = [f["filename"] for f in dataset.cache_files]
    if dataset._indices is not None or not files:  # not a plain view of the builder's files: let datasets write it
        dataset.save_to_disk(split_dir)
        return
    if os.path.isdir(split_dir):
        shutil.rmtree(split_dir)
    os.makedirs(split_dir)
    names = []
    for i, source in enumerate(files):
        name = f"data-{i:05d}-of-{len(files):05d}.arrow"
        target = os.path.join(split_dir, name)
        try:
            os.link(source, target)
        except OSError:  # another file system (or no hard links): copy
            shutil.copyfile(source, target)
        names.append({"filename": name})
    state = {
        "_data_files": names,
        "_fingerprint": dataset._fingerprint,
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": split,
    }
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
    return PreparedInat(dataset=dataset, taxonomy=Taxonomy.load(taxonomy_file), report=report, path=path)


def format_summary(report: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of a preparation."""
    lines = []
    opts = report.get("options", {})
    lines.append(
        f"iNat 2021 → Arrow  |  rank={opts.get('rank')}  taxon={opts.get('taxon')}  storage={opts.get('image_storage')}"
        + (f" (shorter side ≤ {opts['resize_shorter']} px)" if opts.get("resize_shorter") else "")
        + ("  [reused cache]" if report.get("reused_cache") else "")
    )
    lines.append("")
    lines.append("Classes per rank (after the taxon filter)")
    per_rank = report.get("classes_per_rank", {})
    lines.append("  " + "  ".join(f"{r:>8}" for r in RANKS))
    lines.append("  " + "  ".join(f"{per_rank.get(r, 0):>8,}" for r in RANKS))
    lines.append(f"  labels at rank {opts.get('rank')}: {report.get('num_labels', 0):,}")
    lines.append("")
    header = f"  {'split':<12} {'in JSON':>10} {'filtered':>10} {'skipped':>9} {'written':>10}  labeled"
    lines.append("Images per split")
    lines.append(header)
    for split, s in report.get("splits", {}).items():
        lines.append(
            f"  {split:<12} {s['images_in_json']:>10,} {s['filtered_out']:>10,} {s['skipped']:>9,} {s['written']:>10,}"
            f"  {'yes' if s['labeled'] else 'no (label -1)'}"
        )
    reasons = report.get("skipped_by_reason", {})
    lines.append("")
    if reasons:
        lines.append("Skipped images by reason (every file is listed in prepare_report.json)")
        for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {count:>8,}  {reason}")
    else:
        lines.append("Skipped images: none")
    repaired: dict[str, int] = {}
    for s in report.get("splits", {}).values():
        for key, count in s.get("repaired", {}).items():
            repaired[key] = repaired.get(key, 0) + count
    if repaired:
        lines.append("Repaired on the way in: " + ", ".join(f"{k} ×{v}" for k, v in sorted(repaired.items())))
    if "seconds" in report:
        lines.append(f"Done in {report['seconds']:.1f} s.")
    return "\n".join(lines)
