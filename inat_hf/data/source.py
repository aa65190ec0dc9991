"""Where the data comes from, for every command: :class:`DataArguments` and :func:`load_data`.

A prepared folder (``--dataset_dir``, written by ``prepare_data.py``) or a raw iNat 2021 root (``--data_dir``,
prepared on the fly into the datasets cache with the options below): prepare, train, evaluate and
train_geo_prior all parse this one dataclass and call this one loader, as transformers' examples share one
``DataTrainingArguments``. Importing this module is cheap (no datasets, no torch): ``--help`` does not wait.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from ..cli import option
from ..files import explain_storage_errors
from .inat_json import InatDataError
from .taxonomy import RANKS, check_rank, parse_taxon_filter

if TYPE_CHECKING:
    from .prepare import PreparedInat


@dataclasses.dataclass
class DataArguments:
    """A prepared folder (``dataset_dir``) XOR a raw iNat 2021 root (``data_dir``) and how to prepare it."""

    dataset_dir: str | None = option(None, "A folder written by prepare_data.py --output_dir.")
    data_dir: str | None = option(None, "Raw iNat 2021 root, prepared on the fly (cached).")
    splits: str | None = option(
        None,
        "With --data_dir: 'name' (name.json) or 'name=file.json', comma-separated (default: those the command uses; "
        "prepare_data.py: every standard file present).",
    )
    rank: str = option("species", "With --data_dir: label rank (evaluate.py: the model's).", choices=RANKS)
    taxon: str = option(
        "kingdom=Animalia",
        "With --data_dir: category filter 'rank=value[|value…][,rank=value…]', e.g. class=Aves; 'none' keeps all.",
    )
    image_storage: Literal["path", "bytes"] | None = option(
        None, "'path' stores file references (default), 'bytes' embeds JPEGs (default with --resize_shorter)."
    )
    resize_shorter: int | None = option(None, "Embed images re-encoded to this shorter side (px).")
    jpeg_quality: int = option(90, "Quality of re-encoded JPEGs.")
    on_bad_image: Literal["error", "skip"] = option(
        "error", "'error' stops at the first bad image; 'skip' leaves it out and lists it in the report."
    )
    on_bad_record: Literal["error", "skip"] = option(
        "error",
        "A record with an invalid location (NaN, infinite, out of range, only one of the two) or, for the location "
        "prior, a date that does not parse: 'error' stops naming the image ids; 'skip' keeps the image without that "
        "location (or date) and lists it in the report.",
    )
    verify_files: bool = option(True, "Decode every image first (finds bad files).")
    follow_symlinks: bool = option(False, "Accept images linked from outside --data_dir.")
    max_image_pixels: int | None = option(None, "Decompression-bomb pixel limit (default: PIL's).")
    preprocessing_num_workers: int | None = option(None, "Image-checking processes (default: cores, ≤ 8).")
    cache_dir: str | None = option(None, "datasets cache root (default: HF_DATASETS_CACHE).")
    force_rebuild: bool = option(False, "Rebuild even if the cache has these inputs.")

    def __post_init__(self):
        if (self.data_dir is None) == (self.dataset_dir is None):
            raise ValueError(
                "Give exactly one data source: --data_dir (a raw iNat 2021 root) or --dataset_dir (a folder written "
                f"by scripts/prepare_data.py); got data_dir={self.data_dir!r}, dataset_dir={self.dataset_dir!r}."
            )
        check_rank(self.rank)
        parse_taxon_filter(self.taxon)  # a bad filter fails here, before any work
        if self.image_storage is None:
            self.image_storage = "bytes" if self.resize_shorter else "path"
        for name, allowed in (
            ("image_storage", ("path", "bytes")),
            ("on_bad_image", ("error", "skip")),
            ("on_bad_record", ("error", "skip")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}.")
        if self.resize_shorter is not None and self.resize_shorter < 1:
            raise ValueError(f"--resize_shorter must be a positive number of pixels, got {self.resize_shorter}.")
        if self.resize_shorter is not None and self.image_storage != "bytes":
            raise ValueError(
                "--resize_shorter stores re-encoded JPEGs in the dataset, which needs --image_storage bytes "
                f"(got {self.image_storage!r})."
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg_quality must be in 1..100, got {self.jpeg_quality}.")


def load_data(args: DataArguments, splits: Sequence[str] | None = None) -> PreparedInat:
    """The splits and taxonomy ``args`` describe: the prepared folder (memory-mapped), or the raw root prepared
    (or reused from the datasets cache). ``splits``: the names the caller needs; a missing one is an error naming
    those available. With ``data_dir`` and no ``args.splits``, only these are prepared."""
    from .prepare import load_prepared

    if args.dataset_dir is not None:
        prepared = load_prepared(args.dataset_dir)
    else:
        prepared = _prepare(args, args.splits or (",".join(splits) if splits else None))
    for name in splits or ():
        if name not in prepared.dataset:
            raise InatDataError(
                f"split {name!r} not found in {args.dataset_dir or args.data_dir}; available: "
                f"{', '.join(prepared.dataset)}" + (" (--splits names what is prepared)." if args.data_dir else ".")
            )
    return prepared


def _prepare(args: DataArguments, splits: str | None) -> PreparedInat:
    import datasets

    from .builder import InatBuilder
    from .prepare import PreparedInat

    start = time.perf_counter()
    cache = args.cache_dir or datasets.config.HF_DATASETS_CACHE
    with explain_storage_errors(cache, InatDataError):  # a full or read-only cache disk: one line saying so
        builder = InatBuilder(args, splits)
    reused = os.path.isfile(os.path.join(builder.cache_dir, datasets.config.DATASET_INFO_FILENAME))
    reused = reused and not args.force_rebuild
    # A forced rebuild: datasets re-verifies split sizes against the old cache's info unless told not to.
    rebuild = dict(download_mode="force_redownload", verification_mode="no_checks") if args.force_rebuild else {}
    try:
        with explain_storage_errors(cache, InatDataError):
            builder.download_and_prepare(**rebuild)
    except datasets.exceptions.DatasetGenerationError as err:
        # The builder's own errors are the informative ones: surface them instead of datasets' wrapper.
        cause = err.__cause__
        while cause is not None and not isinstance(cause, InatDataError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise
    report = builder.read_report()
    report.update(cache_dir=builder.cache_dir, reused_cache=reused, seconds=round(time.perf_counter() - start, 2))
    return PreparedInat(dataset=builder.as_dataset(), taxonomy=builder.read_taxonomy(), report=report)


def prepare_inat(
    data: DataArguments | str | os.PathLike, *, output_dir=None, overwrite: bool = False, **options
) -> PreparedInat:
    """Prepare (or reuse from the datasets cache) a raw iNat 2021 root: ``data`` is a :class:`DataArguments` or
    the root with ``options``, its fields (defaults and checks included). With ``output_dir``, also write it there
    (:func:`~inat_hf.data.prepare.save_prepared`), that folder checked before the (long) build; ``overwrite``:
    it may be a non-empty folder that is not a prepared dataset (its files are kept)."""
    from .prepare import check_output_dir, save_prepared

    args = data if isinstance(data, DataArguments) else DataArguments(data_dir=os.fspath(data), **options)
    if args.data_dir is None:
        raise InatDataError(f"{args.dataset_dir} is prepared already; preparing reads a raw root (--data_dir).")
    if output_dir is not None:  # before the (long) build
        import datasets

        cache_dir = args.cache_dir or datasets.config.HF_DATASETS_CACHE
        check_output_dir(output_dir, args.data_dir, overwrite=overwrite, cache_dir=cache_dir)
    prepared = load_data(args)
    if output_dir is not None:
        save_prepared(prepared, output_dir, overwrite=overwrite)
    return prepared
