"""``evaluate.py``: score a checkpoint on a dataset split (optionally with TTA) and write a report folder.

    python scripts/evaluate.py --model_dir runs/demo/model --dataset_dir runs/demo/prepared --split val \\
        --tta_views 5 --report_both --output_dir runs/demo/eval

writes ``runs/demo/eval/test_results_<TIMESTAMP>/`` (layout: ``inat_hf/inference/reports.py``). On an unlabeled
split (``public_test``) accuracy metrics are skipped and ``--submission`` writes the competition file.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Literal

from ..cli import CommandParser, option, run_command, summary_line
from ..data.source import DataArguments
from ..data.tta_views import TTA_VIEWS
from ..inference.backoff import DEFAULT_BACKOFF_THRESHOLD
from ..inference.errors import InferenceError
from .predict import same_as_predict


@dataclasses.dataclass
class EvaluateArguments:
    model_dir: str = same_as_predict("model_dir")
    split: str = option("val", "Split to evaluate (val, public_test, ...).")
    tta: bool = option(True, "Test-time augmentation with --tta_views views (--no_tta: one center view).")
    tta_views: int = same_as_predict("tta_views")
    tta_average: Literal["prob", "logit"] = option("prob", "Average the views' probabilities (default) or logits.")
    report_both: bool = option(False, "Metrics without and with TTA (one forward pass: view 0 is the no-TTA view).")
    batch_size: int = option(32, "Images per batch (x views with TTA).")
    num_workers: int | None = option(None, "DataLoader worker processes decoding images (default: min(8, CPUs)).")
    bf16: bool = same_as_predict("bf16")
    channels_last: bool = same_as_predict("channels_last")
    max_samples: int | None = option(None, "Evaluate only the first N images of the split (quick checks).")
    output_dir: str = option("outputs/evaluate", "Reports go to OUTPUT_DIR/test_results_<TIMESTAMP>/.")
    submission: bool = option(False, "Also write submission.csv (Id,Predicted: top-5 original iNat category ids).")
    calibration_bins: int = option(15, "Equal-width confidence bins for ECE and the reliability diagram.")
    max_confusion_labels: int = option(
        50,
        "Full confusion matrix up to this many labels; above it most_confused.csv plus the confusion at a coarser "
        "rank (order, or class).",
    )
    device: str | None = same_as_predict("device")
    progress: bool = option(True, "Progress bar (--no_progress to hide).")
    geo_prior: str | None = option(
        None,
        "A location/date prior (scripts/train_geo_prior.py): also report prior-only and fused (image x prior, "
        "weight = the model's calibrated fusion_weight, else the prior's) metrics, from the split's coordinates/dates.",
    )
    backoff_threshold: float = option(
        DEFAULT_BACKOFF_THRESHOLD,
        "Taxonomic back-off: the answer is the finest rank whose best taxon has at least this summed probability; "
        "the report gives per-rank precision and coverage (backoff.csv, precision_coverage.png).",
    )

    unusual_below: float = same_as_predict("unusual_below")

    def __post_init__(self):
        if self.tta and not 2 <= self.tta_views <= len(TTA_VIEWS):
            raise ValueError(
                f"--tta_views must be in 2..{len(TTA_VIEWS)}, got {self.tta_views} (use --no_tta for one view)."
            )
        if self.report_both and not self.tta:
            raise ValueError("--report_both compares scores without and with TTA; it cannot be used with --no_tta.")
        lowest = dict(batch_size=1, calibration_bins=1, max_confusion_labels=1, max_samples=1, num_workers=0)
        for name, low in lowest.items():
            if getattr(self, name) is not None and getattr(self, name) < low:
                raise ValueError(f"--{name} must be >= {low}, got {getattr(self, name)}.")
        if self.num_workers is None:
            self.num_workers = min(8, os.cpu_count() or 1)
        if not 0 < self.backoff_threshold <= 1:
            raise ValueError(f"--backoff_threshold must be in (0, 1], got {self.backoff_threshold}.")

    @property
    def num_views(self) -> int:
        return self.tta_views if self.tta else 1


def load_split(data: DataArguments, args: EvaluateArguments, label_rank: str):
    """The split to evaluate (its first --max_samples images) and where it came from."""
    from ..data.source import load_data

    if data.data_dir is not None:  # prepared with the model's label rank
        data = dataclasses.replace(data, rank=label_rank)
    split = load_data(data, [args.split]).dataset[args.split]
    if args.max_samples is not None and args.max_samples < split.num_rows:
        split = split.select(range(args.max_samples))
    return split, data.dataset_dir or data.data_dir


def run_evaluation(args: EvaluateArguments, data: DataArguments) -> dict:
    """Everything :func:`main` does, raising instead of printing errors; returns the summary dict."""
    import datetime

    from ..data.taxonomy import Taxonomy
    from ..inference.evaluator import check_label_sets, compute_metrics, evaluate_split
    from ..inference.predictor import Predictor, load_config, load_image_processor
    from ..inference.reports import make_run_dir, write_evaluation_report
    from ..inference.submission import category_id_lookup

    # Cheap checks first (config, processor, submission ids, data, label set), before loading weights.
    config = load_config(args.model_dir)
    load_image_processor(args.model_dir)
    taxonomy = Taxonomy.from_config(config)
    lookup = category_id_lookup(taxonomy) if args.submission else None
    split, source = load_split(data, args, getattr(config, "label_rank", "species"))
    names = getattr(split.features.get("label"), "names", None)
    if names is None:
        raise InferenceError("the dataset's 'label' column is not a ClassLabel: its label names are unknown.")
    check_label_sets(taxonomy.labels, names, model=args.model_dir, dataset=f"{source} [{args.split}]")

    options = dict(device=args.device, bf16=args.bf16, channels_last=args.channels_last, average=args.tta_average)
    predictor = Predictor.from_pretrained(args.model_dir, **options)
    geo, locations, geo_info = _load_geo(args, split, predictor)
    groups = predictor.backoff_groups
    evaluation = evaluate_split(
        predictor,
        split,
        num_views=args.num_views,
        report_both=args.report_both,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        progress=args.progress,
        geo=geo,
        locations=locations,
        backoff=groups,
    )
    rank_groups = taxonomy.rank_groups()
    metrics = {
        name: compute_metrics(preds, config.num_labels, rank_groups=rank_groups, n_bins=args.calibration_bins)
        for name, preds in evaluation.runs.items()
    }
    primary = "tta" if args.num_views > 1 else "no_tta"
    info = {
        "model_dir": args.model_dir,
        "dataset": source,
        "split": args.split,
        "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "num_labels": config.num_labels,
        "tta": {
            "enabled": args.num_views > 1,
            "num_views": args.num_views,
            "views": [name for name, *_ in TTA_VIEWS[: args.num_views]],
            "average": args.tta_average,
        },
        "seconds": round(evaluation.seconds, 4),
        "seconds_per_image": evaluation.seconds / max(evaluation.num_images, 1),
        "images_per_second": evaluation.num_images / evaluation.seconds,
        "timing": "wall time of the whole pass (decoding included); with --report_both one pass serves both runs",
        "device": str(predictor.device),
        **{key: getattr(args, key) for key in ("batch_size", "num_workers", "bf16", "channels_last", "max_samples")},
    }
    run_dir = make_run_dir(args.output_dir)
    if geo_info is not None:
        info["geo"] = geo_info
    if evaluation.prior_ratio is not None and evaluation.runs["fused"].labeled.any():
        geo_info["unusual"] = unusual_rates(
            evaluation.prior_ratio, evaluation.runs["fused"], locations.has_location, args.unusual_below
        )
    if evaluation.backoff and evaluation.runs[primary].labeled.any():  # precision needs labels
        info["backoff"] = _write_backoff(run_dir, evaluation.backoff, groups.ranks, args.backoff_threshold)
    summary = write_evaluation_report(
        run_dir,
        runs=evaluation.runs,
        metrics=metrics,
        primary=primary,
        taxonomy=taxonomy,
        image_ids=split["image_id"] if "image_id" in split.column_names else list(range(split.num_rows)),
        files=split["file_name"] if "file_name" in split.column_names else [""] * split.num_rows,
        info=info,
        max_confusion_labels=args.max_confusion_labels,
        submission_lookup=lookup,
    )
    summary["run_dir"] = str(run_dir)
    return summary


def _load_geo(args: EvaluateArguments, split, predictor):
    """The prior aligned to the model's labels (fused with its calibrated weight) and the split's locations (bad
    ones counted, not used)."""
    if args.geo_prior is None:
        return None, None, None
    from ..geo.fusion import GeoFusion, split_locations

    geo = GeoFusion.for_predictor(args.geo_prior, predictor)
    locations = split_locations(split, f"{args.split} split")
    note = "fused = image run x prior; images without a location keep the image answer (prior-only: the training "
    note += "label frequencies)"
    return geo, locations, {"prior": args.geo_prior, **geo.summary(), "counts": locations.counts, "note": note}


def unusual_rates(ratio, fused, located, threshold: float) -> dict:
    """How often "unusual here and now" fires on the fused top-1 answers that are right and on those that are wrong
    (labeled images with a location)."""
    import numpy as np

    keep = fused.labeled & np.asarray(located, dtype=bool)
    flagged, correct = ratio[keep] < threshold, (fused.predictions == fused.labels)[keep]

    def rate(mask):
        return float(flagged[mask].mean()) if mask.any() else None

    return {
        "threshold": threshold,
        "images": int(keep.sum()),
        "fires": rate(np.ones_like(correct)),
        "fires_on_correct": rate(correct),
        "fires_on_wrong": rate(~correct),
        "precision_of_flag_for_errors": float((~correct[flagged]).mean()) if flagged.any() else None,
    }


def _write_backoff(run_dir, backoff: dict, ranks: list[str], threshold: float) -> dict:
    """backoff.csv (per run and rank: coverage, precision) + precision_coverage.png; returns the summary entry."""
    import pandas as pd

    from ..inference.backoff import backoff_table, plot_precision_coverage

    tables = {name: backoff_table(conf, correct, ranks, threshold) for name, (conf, correct) in backoff.items()}
    rows = [
        {"run": name, "rank": rank, **stats}
        for name, table in tables.items()
        for rank, stats in table["per_rank"].items()
    ]
    pd.DataFrame(rows).to_csv(os.path.join(run_dir, "backoff.csv"), index=False)
    plot_precision_coverage(backoff, ranks, threshold, os.path.join(run_dir, "precision_coverage.png"))
    return {"threshold": threshold, "runs": tables, "files": ["backoff.csv", "precision_coverage.png"]}


def format_summary(summary: dict) -> str:
    lines = [
        f"{summary['num_images']} images of {summary['dataset']} [{summary['split']}], model {summary['model_dir']}",
        f"{summary['images_per_second']:.1f} images/s ({summary['seconds_per_image'] * 1e3:.1f} ms/image), "
        f"TTA: {summary['tta']['num_views'] if summary['tta']['enabled'] else 'off'}",
    ]
    for name, run in summary["runs"].items():
        if "top1" not in run:
            lines.append(f"  {name}: {run.get('accuracy_metrics', 'no accuracy metrics')}")
            continue
        hier = run.get("hierarchical_accuracy", {})
        lines.append(
            f"  {name:<7} top-1 {run['top1']:.4f}  top-3 {run['top3']:.4f}  top-5 {run['top5']:.4f}  "
            f"ECE {run['ece']:.4f}  macro-F1 {run['macro_f1']:.4f}"
        )
        if hier:
            lines.append("          " + "  ".join(f"{rank} {acc:.4f}" for rank, acc in hier.items()))
    unusual = summary.get("geo", {}).get("unusual")
    if unusual and unusual["images"]:
        show = {k: "-" if unusual[k] is None else f"{unusual[k]:.1%}" for k in ("fires_on_correct", "fires_on_wrong")}
        lines.append(
            f"  unusual here (prior ratio < {unusual['threshold']:g}) fires on {show['fires_on_correct']} of right and "
            f"{show['fires_on_wrong']} of wrong fused answers ({unusual['images']} images with a location)"
        )
    for name, table in summary.get("backoff", {}).get("runs", {}).items():
        stops = ", ".join(
            f"{rank} {s['coverage']:.0%}" + (f" ({s['precision']:.0%} right)" if s["precision"] is not None else "")
            for rank, s in table["per_rank"].items()
            if s["images"]
        )
        lines.append(f"  back-off ≥ {table['threshold']:g} [{name}]: stops at {stops}")
    counts = summary.get("geo", {}).get("counts")
    if counts:  # fused runs score these images from the image alone: say how many
        unusable = counts["records"] - counts["with_location"]
        lines.append(
            f"  location prior: {unusable} of {counts['records']} images had no usable location (missing "
            f"{counts['without_location']}, invalid {counts['bad_location_skipped']}): scored from the image alone"
        )
    lines.append(f"report: {summary['run_dir']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser((EvaluateArguments, DataArguments), prog="evaluate.py", description=summary_line(__doc__))
    args, data, extra = parser.parse(argv)
    from ..data import InatDataError

    def body() -> int:
        print(format_summary(run_evaluation(args, data)))
        return 0

    return run_command(body, user_errors=(InferenceError, InatDataError), debug=extra.show_traceback)


if __name__ == "__main__":
    sys.exit(main())
