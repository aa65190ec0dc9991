"""``prepare_data.py``: iNat 2021 root (JSON + JPEG folders) → a prepared Arrow dataset folder."""

from __future__ import annotations

import dataclasses
import sys
from typing import Literal

from ..cli import CommandParser, run_command, summary_line
from ..data.taxonomy import RANKS


@dataclasses.dataclass
class PrepareArguments:
    data_dir: str = dataclasses.field(
        metadata={"help": "iNat 2021 root: split JSON files (train.json, val.json, …) next to the image folders."}
    )
    output_dir: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Write the DatasetDict here (datasets.load_from_disk) with taxonomy.json and prepare_report.json."
        },
    )
    splits: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Comma-separated splits, each 'name' (reads name.json) or 'name=file.json'. "
            "Default: every standard file present (train, train_mini, val, public_test)."
        },
    )
    rank: str = dataclasses.field(
        default="species", metadata={"help": "Taxonomic rank of the labels.", "choices": RANKS}
    )
    taxon: str = dataclasses.field(
        default="kingdom=Animalia",
        metadata={"help": "Category filter 'rank=value[|value…][,rank=value…]', e.g. class=Aves; 'none' keeps all."},
    )
    image_storage: Literal["path", "bytes"] | None = dataclasses.field(
        default=None,
        metadata={
            "help": "'path' stores file references (default), 'bytes' embeds JPEGs (default with --resize_shorter)."
        },
    )
    resize_shorter: int | None = dataclasses.field(
        default=None, metadata={"help": "Embed images re-encoded so their shorter side is at most this many px."}
    )
    jpeg_quality: int = dataclasses.field(default=90, metadata={"help": "JPEG quality of re-encoded images."})
    on_bad_image: Literal["error", "skip"] = dataclasses.field(
        default="error",
        metadata={"help": "'error' stops at the first bad image; 'skip' leaves it out and lists it in the report."},
    )
    verify_files: bool = dataclasses.field(
        default=True,
        metadata={"help": "Decode every image to find missing/corrupt files up front (--no_verify_files to skip)."},
    )
    max_image_pixels: int | None = dataclasses.field(
        default=None, metadata={"help": "Reject larger images as decompression bombs (default: PIL's limit)."}
    )
    num_workers: int | None = dataclasses.field(
        default=None, metadata={"help": "Processes checking/encoding images (default: one per core, up to 8)."}
    )
    cache_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "datasets cache root (default: HF_DATASETS_CACHE)."}
    )
    force_rebuild: bool = dataclasses.field(
        default=False, metadata={"help": "Rebuild even if a cache for these inputs and options exists."}
    )
    overwrite: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "Allow --output_dir to be a non-empty folder that is not a prepared dataset. Only what prepare "
            "wrote is ever replaced; other files are kept (a clash with them is an error)."
        },
    )
    follow_symlinks: bool = dataclasses.field(
        default=False,
        metadata={"help": "Accept images that are symbolic links to files outside --data_dir (default: bad image)."},
    )
    demo: bool = dataclasses.field(
        default=False, metadata={"help": "First write the synthetic demo dataset into --data_dir."}
    )
    demo_seed: int = dataclasses.field(default=0, metadata={"help": "Seed of the demo dataset."})

    def __post_init__(self):
        if self.resize_shorter is not None and self.resize_shorter < 1:
            raise ValueError(f"--resize_shorter must be a positive number of pixels, got {self.resize_shorter}.")
        if self.resize_shorter is not None and self.image_storage == "path":
            raise ValueError("--resize_shorter stores re-encoded JPEGs, which needs --image_storage bytes.")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg_quality must be in 1..100, got {self.jpeg_quality}.")


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(PrepareArguments, prog="prepare_data.py", description=summary_line(__doc__))
    args, extra = parser.parse(argv)
    # Only now the data package: it needs datasets/pyarrow (never torch), which --help need not wait for.
    from ..data import InatDataError

    return run_command(lambda: _prepare(args), user_errors=(InatDataError,), debug=extra.show_traceback)


def _prepare(args: PrepareArguments) -> int:
    from ..data import format_summary, prepare_inat, write_demo_dataset

    if args.demo:
        write_demo_dataset(args.data_dir, seed=args.demo_seed)
        print(f"Wrote the demo dataset to {args.data_dir}")
    prepared = prepare_inat(
        args.data_dir,
        splits=args.splits,
        rank=args.rank,
        taxon=args.taxon,
        image_storage=args.image_storage,
        resize_shorter=args.resize_shorter,
        jpeg_quality=args.jpeg_quality,
        on_bad_image=args.on_bad_image,
        verify_files=args.verify_files,
        max_image_pixels=args.max_image_pixels,
        num_workers=args.num_workers,
        cache_dir=args.cache_dir,
        force_rebuild=args.force_rebuild,
        output_dir=args.output_dir,
        overwrite=args.overwrite,
        follow_symlinks=args.follow_symlinks,
    )
    print()
    print(format_summary(prepared.report))
    if args.output_dir:
        print(f"\nPrepared dataset: {args.output_dir}  (datasets.load_from_disk; report: prepare_report.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
