"""``predict.py``: top-k species (scientific + common name, full taxonomy) for image files, folders or globs.

    python scripts/predict.py --model_dir runs/demo/model photos/ 'more/**/*.jpg' --top_k 3 --output preds.csv

Prints a table per image; ``--output`` writes CSV (one row per image and rank) or JSON; ``--submission FILE``
writes the competition format with the file stem as ``Id``. A file that cannot be read is reported on stderr and
skipped; the exit status is then 1 (after predicting every other file). Bad arguments (no such file, empty folder,
unmatched glob, model without an image processor) fail with status 2 before any prediction.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..cli import CommandParser, run_command, summary_line
from ..data.tta_views import TTA_VIEWS
from ..files import atomic_write, printable_path
from ..geo.arguments import DEFAULT_UNUSUAL_BELOW
from ..inference.backoff import DEFAULT_BACKOFF_THRESHOLD, describe_backoff
from ..inference.errors import InferenceError

FAILED_FILES_EXIT = 1


@dataclasses.dataclass
class PredictArguments:
    model_dir: str = dataclasses.field(
        metadata={"help": "Checkpoint: a local folder written by save_pretrained / the Trainer, or a Hub id."}
    )
    inputs: list[str] = dataclasses.field(
        default_factory=list,
        metadata={
            "help": "Image files, folders (searched recursively) or glob patterns; may also be given positionally."
        },
    )
    top_k: int = dataclasses.field(default=5, metadata={"help": "Predictions per image."})
    tta: bool = dataclasses.field(default=False, metadata={"help": "Test-time augmentation (--tta_views views)."})
    tta_views: int = dataclasses.field(
        default=5,
        metadata={"help": f"TTA views, 2..{len(TTA_VIEWS)}: " + ", ".join(name for name, *_ in TTA_VIEWS) + "."},
    )
    batch_size: int = dataclasses.field(default=32, metadata={"help": "Images per forward pass."})
    num_workers: int = dataclasses.field(default=0, metadata={"help": "DataLoader worker processes decoding images."})
    output: str | None = dataclasses.field(
        default=None, metadata={"help": "Also write the predictions to this .csv or .json file."}
    )
    submission: str | None = dataclasses.field(
        default=None,
        metadata={"help": "Write a competition file (Id,Predicted: top-5 iNat category ids; Id = file name stem)."},
    )
    bf16: bool = dataclasses.field(default=False, metadata={"help": "bf16 autocast for the forward pass."})
    channels_last: bool = dataclasses.field(default=False, metadata={"help": "Channels-last model and inputs."})
    device: str | None = dataclasses.field(
        default=None, metadata={"help": "torch device (default: cuda when available, else cpu)."}
    )
    backend: str = dataclasses.field(
        default="torch",
        metadata={
            "help": "torch: --model_dir is a checkpoint run with PyTorch. onnx: --model_dir is a folder written by "
            "`inat-export --format onnx`, run with ONNX Runtime on the CPU, without importing torch.",
            "choices": ["torch", "onnx"],
        },
    )
    quiet: bool = dataclasses.field(default=False, metadata={"help": "Do not print the table."})
    geo_prior: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "A location/date prior (scripts/train_geo_prior.py) fused with the image model. The location "
            "comes from --lat/--lon[/--date] or else from each photo's EXIF (GPS, DateTimeOriginal); a photo "
            "without one is predicted from the image alone. The output says per image what was used."
        },
    )
    lat: float | None = dataclasses.field(
        default=None, metadata={"help": "Latitude of every photo (decimal degrees)."}
    )
    lon: float | None = dataclasses.field(
        default=None, metadata={"help": "Longitude of every photo (decimal degrees)."}
    )
    date: str | None = dataclasses.field(default=None, metadata={"help": "Date of every photo (YYYY-MM-DD)."})
    backoff_threshold: float = dataclasses.field(
        default=DEFAULT_BACKOFF_THRESHOLD,
        metadata={
            "help": "Taxonomic back-off: also report the finest rank (species, genus, family, ...) whose summed "
            "probability reaches this value ('pretty sure it is in the genus ...')."
        },
    )

    unusual_below: float = dataclasses.field(
        default=DEFAULT_UNUSUAL_BELOW,
        metadata={
            "help": "With --geo_prior: flag the top answer as 'unusual here and now' when the prior finds it this many "
            "times less likely at the photo's place and date than on average (p(y|place,date)/p(y) below it)."
        },
    )

    def __post_init__(self):
        if self.top_k < 1:
            raise ValueError(f"--top_k must be >= 1, got {self.top_k}.")
        if self.tta and not 2 <= self.tta_views <= len(TTA_VIEWS):
            raise ValueError(f"--tta_views must be in 2..{len(TTA_VIEWS)}, got {self.tta_views}.")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError("--batch_size must be >= 1 and --num_workers >= 0.")
        if self.output is not None and Path(self.output).suffix.lower() not in (".csv", ".json"):
            raise ValueError(f"--output must end in .csv or .json, got {self.output!r}.")
        if self.submission is not None and Path(self.submission).suffix.lower() != ".csv":
            raise ValueError(f"--submission must end in .csv, got {self.submission!r}.")
        if not 0 < self.backoff_threshold <= 1:
            raise ValueError(f"--backoff_threshold must be in (0, 1], got {self.backoff_threshold}.")
        if not self.unusual_below >= 0:
            raise ValueError(f"--unusual_below must be >= 0 (0: never flag), got {self.unusual_below}.")
        if (self.lat is not None or self.lon is not None or self.date is not None) and self.geo_prior is None:
            raise ValueError("--lat/--lon/--date are used by the location prior: pass --geo_prior DIR too.")


def same_as_predict(name: str):
    """A field of another command that means what ``predict.py``'s does: one default and one help text per knob."""
    f = next(f for f in dataclasses.fields(PredictArguments) if f.name == name)
    return dataclasses.field(default=f.default, metadata=dict(f.metadata))


@functools.cache
def image_extensions() -> frozenset[str]:
    """The file suffixes of every format the installed Pillow (and its plugins) can open; not the save-only ones."""
    import PIL.Image

    PIL.Image.init()  # load every format plugin, so that the registry is complete
    return frozenset(ext for ext, fmt in PIL.Image.registered_extensions().items() if fmt in PIL.Image.OPEN)


def _skip_reason(path: Path) -> str | None:
    """Why a file found in a folder is not an input (None: it is one)."""
    if path.name.startswith("."):
        return "hidden file"
    if path.suffix.lower() not in image_extensions():
        return f"not a format the installed Pillow opens ({path.suffix or 'no suffix'})"
    return None


def expand_inputs(inputs: list[str], on_skip: Callable[[str, str], None] | None = None) -> list[str]:
    """Files as given; folders -> their files of a format Pillow opens (:func:`image_extensions`, recursive, sorted;
    ``on_skip(path, reason)`` hears of every other file); globs -> matches (``**`` recursive). :class:`InferenceError`
    for a missing path, a folder without images, a glob without match, or nothing at all."""
    if not inputs:
        raise InferenceError("no input images: give image files, folders or glob patterns.")
    files: list[str] = []
    for item in inputs:
        path = os.path.expanduser(item)
        if os.path.isdir(path):
            found = []
            for p in sorted(Path(path).rglob("*"), key=str):
                if not p.is_file():
                    continue
                reason = _skip_reason(p)
                if reason is None:
                    found.append(str(p))
                elif on_skip is not None:
                    on_skip(str(p), reason)
            if not found:
                raise InferenceError(
                    f"folder {item!r} contains no image files (of a format the installed Pillow opens)."
                )
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)  # an explicit file is always tried, whatever its extension
        elif any(c in item for c in "*?["):  # a glob pattern
            found = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
            if not found:
                raise InferenceError(f"the pattern {item!r} matched no files.")
            files.extend(found)
        else:
            raise InferenceError(f"no such file or folder: {item!r}.")
    # the same file named twice (a folder and a glob over it) is predicted once
    return list(dict.fromkeys(files))


def check_output_files(args: PredictArguments, files: list[str]) -> None:
    """No input is ever an output: ``--output``/``--submission`` may not name an input image, each other, or an
    existing file that is not a previous output of the same kind (an empty file is fine: nothing to lose)."""
    inputs = {os.path.realpath(f) for f in files}
    seen = set()
    for option, path, kind in (
        ("--output", args.output, "predictions"),
        ("--submission", args.submission, "submission"),
    ):
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in inputs:
            raise InferenceError(
                f"{option} {path!r} is one of the input images: writing it would replace the photo. Give the "
                f"{kind} a file name of its own (a shell glob such as photos/*.jpg expands into every name after "
                f"{option}; put the option after the images or quote the pattern)."
            )
        if real in seen:
            raise InferenceError(f"--output and --submission name the same file {path!r}: give each its own name.")
        seen.add(real)
        if os.path.lexists(path) and not _previous_output(path, kind):
            raise InferenceError(
                f"{option} {path!r} exists and is not a {kind} file written by predict.py: it is never replaced. "
                "Choose another file name, or move the file away."
            )


def _previous_output(path: str, kind: str) -> bool:
    """``path`` is an empty file or one that predict.py wrote as ``kind`` (the only files it replaces)."""
    from ..inference.submission import SUBMISSION_HEADER

    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            if kind == "predictions" and path.lower().endswith(".json"):
                text = f.read()
                entries = json.loads(text) if text.strip() else []
                return isinstance(entries, list) and all(isinstance(e, dict) and "predictions" in e for e in entries)
            first = f.readline().strip()
    except (OSError, ValueError):
        return False
    if kind == "submission":
        return first in ("", ",".join(SUBMISSION_HEADER))
    return first == "" or first.startswith("file,rank,")  # _rows' first columns


def _rows(predictions, taxonomy):
    """One flat row per (image, rank) for CSV; location and back-off columns when they were computed."""
    for pred in predictions:
        extra = {
            f"{prefix}_{k}": "" if v is None else v
            for prefix, values in (("geo", pred.location), ("backoff", pred.backoff), ("geo", pred.unusual))
            for k, v in (values or {}).items()
        }
        for rank, (index, prob) in enumerate(zip(pred.indices, pred.probs), start=1):
            info = taxonomy.describe(index)
            yield {
                "file": printable_path(pred.source),
                "rank": rank,
                "label_index": info["index"],
                "label": info["label"],
                "common_name": info["common_name"] or "",
                "probability": round(float(prob), 6),
                "category_id": info["category_id"] if info["category_id"] is not None else "",
                **info["taxonomy"],
                **extra,
            }


def _describe_location(location: dict) -> str:
    if not location["location_used"]:
        problem = location.get("location_problem")
        return f"image only (invalid location: {problem})" if problem else "image only (no location)"
    where = f"location {location['latitude']:.4f}, {location['longitude']:.4f} from {location['location_source']}"
    when = f", date {location['date']} from {location['date_source']}" if location["date_used"] else ", no date"
    return where + when


def _print_table(pred, taxonomy, backoff_threshold: float) -> None:
    print(printable_path(pred.source))
    if pred.location is not None:
        print(f"  [{_describe_location(pred.location)}]")
    for rank, (index, prob) in enumerate(zip(pred.indices, pred.probs), start=1):
        info = taxonomy.describe(index)
        common = f" ({info['common_name']})" if info["common_name"] else ""
        lineage = " > ".join(v for r, v in info["taxonomy"].items() if r != taxonomy.rank)
        print(f"  {rank}. {prob:6.1%}  {info['label']}{common}" + (f"   [{lineage}]" if lineage else ""))
    backoff = describe_backoff(pred.backoff, backoff_threshold)
    if backoff is not None:
        print(f"  {backoff}")
    if pred.unusual is not None:
        from ..geo.fusion import describe_unusual

        note = describe_unusual(pred.unusual, taxonomy.labels[pred.indices[0]])
        if note is not None:
            print(f"  ⚠ {note}")


def _write_output(path: str, predictions, taxonomy) -> None:
    """CSV or JSON, written atomically: a failure never leaves a truncated file (an existing one stays as it was)."""
    import pandas as pd

    if path.lower().endswith(".json"):
        payload = [
            {
                "file": printable_path(p.source),
                "predictions": [
                    {**taxonomy.describe(i), "probability": round(float(prob), 6)}
                    for i, prob in zip(p.indices, p.probs)
                ],
                **({"location": p.location} if p.location is not None else {}),
                **({"backoff": p.backoff} if p.backoff is not None else {}),
                **({"unusual": p.unusual} if p.unusual is not None else {}),
            }
            for p in predictions
        ]
        text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
        with atomic_write(path) as f:
            f.write(text)
    else:
        frame = pd.DataFrame(list(_rows(predictions, taxonomy)))
        with atomic_write(path, newline="") as f:
            frame.to_csv(f, index=False)


# With --output/--submission the file holds every prediction: the console shows the first few, not hundreds of lines.
SHOWN_WITH_FILE = 5


def run_prediction(args: PredictArguments, extra_inputs: list[str] = ()) -> int:
    """Everything :func:`main` does; raises ``InferenceError`` for bad arguments, returns the exit status."""
    import numpy as np

    from ..data.taxonomy import Taxonomy
    from ..inference.predictor import Predictor, load_config
    from ..inference.submission import category_id_lookup, write_submission

    files = expand_inputs(
        [*extra_inputs, *args.inputs],
        on_skip=lambda path, reason: print(f"skipped: {printable_path(path)} ({reason})", file=sys.stderr),
    )
    check_output_files(args, files)
    if args.backend == "torch":  # clear errors before loading weights (from_pretrained checks the rest)
        lookup = category_id_lookup(Taxonomy.from_config(load_config(args.model_dir))) if args.submission else None
    predictor = Predictor.from_pretrained(
        args.model_dir, backend=args.backend, device=args.device, bf16=args.bf16, channels_last=args.channels_last
    )
    if args.backend == "onnx":  # its config is read without transformers (which would import torch)
        lookup = category_id_lookup(predictor.taxonomy) if args.submission else None
    geo = locations = None
    if args.geo_prior is not None:  # aligned to the model's labels; one location per file: the arguments, else EXIF
        from ..geo.fusion import GeoFusion, photo_locations

        geo = GeoFusion.for_predictor(args.geo_prior, predictor)
        locations = photo_locations(files, args.lat, args.lon, args.date, source="arguments")
    num_views = args.tta_views if args.tta else 1
    top_k = max(args.top_k, 5) if args.submission else args.top_k  # the submission always needs 5
    done, trimmed, failed = [], [], []  # trimmed: the top_k shown and written; done keeps 5 for the submission
    for pred in predictor.predict(
        files,
        top_k=top_k,
        num_views=num_views,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        progress=len(files) > 1,
        geo=geo,
        locations=locations,
        backoff=predictor.backoff_groups,
        backoff_threshold=args.backoff_threshold,
        unusual_below=args.unusual_below,
    ):
        if pred.error is not None:
            failed.append(pred)
            print(f"error: {pred.error}", file=sys.stderr)  # names in it went through printable_path
            continue
        done.append(pred)
        trimmed.append(dataclasses.replace(pred, indices=pred.indices[: args.top_k], probs=pred.probs[: args.top_k]))
        if not args.quiet and (len(trimmed) <= SHOWN_WITH_FILE or not (args.output or args.submission)):
            _print_table(trimmed[-1], predictor.taxonomy, args.backoff_threshold)

    if not args.quiet and len(trimmed) > SHOWN_WITH_FILE and (args.output or args.submission):
        print(
            f"... {len(trimmed) - SHOWN_WITH_FILE} more not shown: all {len(trimmed)} are in {args.output or args.submission}"
        )

    if args.output:
        _write_output(args.output, trimmed, predictor.taxonomy)
        print(f"predictions written to {args.output}")
    if args.submission:
        ids = [printable_path(Path(p.source).stem) for p in done]
        indices = np.stack([p.indices for p in done]) if done else np.zeros((0, 5), dtype=np.int64)
        write_submission(args.submission, ids, indices, lookup)
        print(f"submission written to {args.submission}")
    if failed:
        print(
            f"error: {len(failed)} of {len(files)} images could not be predicted (see the messages above).",
            file=sys.stderr,
        )
        return FAILED_FILES_EXIT
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(PredictArguments, prog="predict.py", description=summary_line(__doc__))
    parser.add_argument("paths", nargs="*", help="Image files, folders or glob patterns (same as --inputs).")
    args, extra = parser.parse(argv)
    return run_command(
        lambda: run_prediction(args, extra.paths), user_errors=(InferenceError,), debug=extra.show_traceback
    )


if __name__ == "__main__":
    sys.exit(main())
