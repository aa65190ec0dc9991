"""``calibrate.py``: fit a checkpoint's logit temperature (and a location prior's fusion weight) on held-out images.

    python scripts/calibrate.py --model_dir runs/demo/model --dataset_dir runs/demo/prepared --split val \\
        --geo_prior runs/demo/geo_prior

fits ``T`` (and ``w``) by minimum NLL on a seeded half of the split's images, reports ECE / NLL / top-1 / back-off
before and after on the OTHER half (console table + ``MODEL_DIR/calibration.json``), and writes the values into
``MODEL_DIR/config.json`` (``temperature``, ``fusion_weight``; atomically, weights untouched), where ``predict.py``,
``evaluate.py``, the web page and ``pipeline()`` read them. ``--dry_run`` reports without saving.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from ..cli import CommandParser, option, run_command, summary_line
from ..data.source import DataArguments
from ..files import atomic_write
from ..inference.errors import InferenceError
from .evaluate import EvaluateArguments, load_split
from .predict import same_as_predict


def _same_as_evaluate(name: str):
    f = next(f for f in dataclasses.fields(EvaluateArguments) if f.name == name)
    return dataclasses.field(default=f.default, metadata=dict(f.metadata))


@dataclasses.dataclass
class CalibrateArguments:
    model_dir: str = same_as_predict("model_dir")
    split: str = option("val", "Labeled split to fit on (one part) and report on (the other part).")
    fit_fraction: float = option(0.5, "Fraction of the split's images the fit uses; the rest is reported on.")
    seed: int = option(0, "Seed of the split into fit and report images.")
    tta: bool = same_as_predict("tta")
    tta_views: int = same_as_predict("tta_views")
    geo_prior: str | None = option(
        None, "A location/date prior (scripts/train_geo_prior.py): also fit its fusion weight w (after T)."
    )
    dry_run: bool = option(False, "Fit and report, but leave config.json as it is.")
    max_samples: int | None = _same_as_evaluate("max_samples")
    batch_size: int = _same_as_evaluate("batch_size")
    num_workers: int | None = _same_as_evaluate("num_workers")
    device: str | None = same_as_predict("device")
    backoff_threshold: float = same_as_predict("backoff_threshold")
    calibration_bins: int = _same_as_evaluate("calibration_bins")
    progress: bool = _same_as_evaluate("progress")

    def __post_init__(self):
        if not 0 < self.fit_fraction < 1:
            raise ValueError(f"--fit_fraction must be in (0, 1): the rest is reported on; got {self.fit_fraction}.")
        if self.num_workers is None:
            self.num_workers = min(8, os.cpu_count() or 1)

    @property
    def num_views(self) -> int:
        return self.tta_views if self.tta else 1


def run_calibration(args: CalibrateArguments, data: DataArguments) -> dict:
    """Everything :func:`main` does, raising instead of printing errors; returns the report."""
    from ..data.taxonomy import Taxonomy
    from ..inference.calibration import calibrate, collect_view_logits, save_calibration
    from ..inference.evaluator import check_label_sets
    from ..inference.predictor import Predictor, load_config, load_image_processor

    config = load_config(args.model_dir)
    load_image_processor(args.model_dir)
    if not args.dry_run and not os.path.isfile(os.path.join(os.path.expanduser(args.model_dir), "config.json")):
        raise InferenceError(f"{args.model_dir!r} is not a local checkpoint folder: pass --dry_run, or download it.")
    taxonomy = Taxonomy.from_config(config)
    split, source = load_split(data, args, getattr(config, "label_rank", "species"))
    names = getattr(split.features.get("label"), "names", None)
    if names is None:
        raise InferenceError("the dataset's 'label' column is not a ClassLabel: its label names are unknown.")
    check_label_sets(taxonomy.labels, names, model=args.model_dir, dataset=f"{source} [{args.split}]")
    labeled = [i for i, label in enumerate(split["label"]) if label >= 0]
    if len(labeled) < 2:
        raise InferenceError(f"calibration needs labeled images; {source} [{args.split}] has {len(labeled)}.")
    split = split.select(labeled)

    predictor = Predictor.from_pretrained(args.model_dir, device=args.device)
    logits, labels = collect_view_logits(
        predictor,
        split,
        num_views=args.num_views,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        progress=args.progress,
    )
    log_ratio = fusion_weight = None
    if args.geo_prior is not None:
        from ..geo.fusion import GeoFusion, split_locations

        geo = GeoFusion.for_predictor(args.geo_prior, predictor)
        log_ratio = geo.log_ratio(split_locations(split, f"{args.split} split"), weight=1.0).cpu()
        fusion_weight = geo.fusion_weight
    fit = calibrate(
        logits,
        labels,
        temperature=config.temperature,
        average=predictor.average,
        fit_fraction=args.fit_fraction,
        seed=args.seed,
        log_ratio=log_ratio,
        fusion_weight=fusion_weight,
        groups=predictor.backoff_groups,
        threshold=args.backoff_threshold,
        n_bins=args.calibration_bins,
    )
    report = {
        "model_dir": args.model_dir,
        "dataset": source,
        "split": args.split,
        "tta_views": args.num_views,
        "geo_prior": args.geo_prior,
        "backoff_threshold": args.backoff_threshold,
        **fit.report,
        "saved": not args.dry_run,
    }
    if not args.dry_run:
        save_calibration(args.model_dir, fit.temperature, fit.fusion_weight)
        report["report_file"] = os.path.join(os.path.expanduser(args.model_dir), "calibration.json")
        with atomic_write(report["report_file"]) as f:
            f.write(json.dumps(report, indent=2) + "\n")
    return report


def format_report(report: dict) -> str:
    """The before/after table of the held-out images, as ``calibrate.py`` prints it."""
    t = report["temperature"]
    lines = [
        f"fit on {report['fit_images']} images of [{report['split']}], reported on the other {report['report_images']}"
        f" (seed {report['seed']})",
        f"temperature T: {t['before']:.4g} -> {t['after']:.4g}",
    ]
    if "fusion_weight" in report:
        w = report["fusion_weight"]
        lines.append(f"fusion weight w: {w['before']:.4g} -> {w['after']:.4g}")
    header = f"  {'run':<7} {'':<7} {'ECE':>7} {'NLL':>7} {'top-1':>7} {'conf':>7}"
    backoff = any("backoff_precision" in m["before"] for m in report["runs"].values())
    if backoff:
        header += f" {'back-off precision':>19} {'answered':>9}"
    lines.append(header)
    for name, run in report["runs"].items():
        for when in ("before", "after"):
            m = run[when]
            line = (
                f"  {name:<7} {when:<7} {m['ece']:7.4f} {m['nll']:7.4f} {m['top1']:7.4f} {m['mean_confidence']:7.4f}"
            )
            if backoff:
                precision = "-" if m["backoff_precision"] is None else f"{m['backoff_precision']:.4f}"
                line += f" {precision:>19} {m['backoff_coverage']:9.4f}"
            lines.append(line)
    lines.append(
        f"saved to {report['model_dir']}/config.json (report: calibration.json)"
        if report["saved"]
        else "not saved (--dry_run)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser((CalibrateArguments, DataArguments), prog="calibrate.py", description=summary_line(__doc__))
    args, data, extra = parser.parse(argv)
    from ..data import InatDataError

    def body() -> int:
        print(format_report(run_calibration(args, data)))
        return 0

    return run_command(body, user_errors=(InferenceError, InatDataError), debug=extra.show_traceback)


if __name__ == "__main__":
    sys.exit(main())
