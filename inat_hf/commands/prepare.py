"""``prepare_data.py``: iNat 2021 root (JSON + JPEG folders) → a prepared Arrow dataset folder."""

from __future__ import annotations

import dataclasses
import sys

from ..cli import CommandParser, option, run_command, summary_line
from ..data.source import DataArguments


@dataclasses.dataclass
class PrepareArguments:
    """Where the prepared dataset goes (what is prepared: :class:`DataArguments`)."""

    output_dir: str | None = option(
        None, "Write the DatasetDict here (datasets.load_from_disk) with taxonomy.json and prepare_report.json."
    )
    overwrite: bool = option(
        False,
        "Allow --output_dir to be a non-empty folder that is not a prepared dataset. Only what prepare wrote is "
        "ever replaced; other files are kept (a clash with them is an error).",
    )
    demo: bool = option(False, "First write the synthetic demo dataset into --data_dir.")
    demo_seed: int = option(0, "Seed of the demo dataset.")


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(
        (DataArguments, PrepareArguments), prog="prepare_data.py", description=summary_line(__doc__)
    )
    data, args, extra = parser.parse(argv)
    if data.data_dir is None:
        parser.error(
            "prepare_data.py reads a raw iNat 2021 root: pass --data_dir (--dataset_dir is prepared already)."
        )
    # Only now the data package: it needs datasets/pyarrow (never torch), which --help need not wait for.
    from ..data import InatDataError

    return run_command(lambda: _prepare(data, args), user_errors=(InatDataError,), debug=extra.show_traceback)


def _prepare(data: DataArguments, args: PrepareArguments) -> int:
    from ..data import format_summary, prepare_inat, write_demo_dataset

    if args.demo:
        write_demo_dataset(data.data_dir, seed=args.demo_seed)
        print(f"Wrote the demo dataset to {data.data_dir}")
    prepared = prepare_inat(data, output_dir=args.output_dir, overwrite=args.overwrite)
    print()
    print(format_summary(prepared.report))
    if args.output_dir:
        print(f"\nPrepared dataset: {args.output_dir}  (datasets.load_from_disk; report: prepare_report.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
