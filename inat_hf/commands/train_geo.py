"""``train_geo_prior.py`` (``inat-train-geo``): train the location/date prior from location columns only.

    python scripts/train_geo_prior.py --dataset_dir runs/demo/prepared --output_dir runs/demo/geo_prior
    python scripts/train_geo_prior.py --data_dir /data/inat2021 --splits train=train.json,val=val.json \\
        --output_dir runs/geo_prior [--loss softmax|presence] [--taxon none]

Reads latitude/longitude/date/label from a prepared folder (``--dataset_dir``; ``--train_split``/``--eval_split``)
or straight from iNat JSON (``--data_dir`` + ``--splits``, images-only JSON accepted, no image file needed). Writes
``OUTPUT_DIR``: the prior (``GeoPriorModel.save_pretrained``: config, weights, code for ``trust_remote_code``) and
``geo_report.json``: record counts (with/without coordinates, skipped), prior-only top-1/top-5 on the evaluation
split and, on the same records in the same run, a great-circle k-nearest-neighbour baseline and chance.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Literal

from ..cli import CommandParser, run_command, summary_line
from ..training.geo_arguments import GeoTrainingArguments


@dataclasses.dataclass
class GeoDataArguments:
    output_dir: str = dataclasses.field(metadata={"help": "Where the prior and geo_report.json are written."})
    dataset_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "A prepared dataset folder (scripts/prepare_data.py --output_dir)."}
    )
    data_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "iNat JSON root: read the JSON files named by --splits (no images needed)."}
    )
    splits: str = dataclasses.field(
        default="train,val",
        metadata={"help": "With --data_dir: 'train=FILE.json[,val=FILE.json]' (names as in prepare_data.py)."},
    )
    train_split: str = dataclasses.field(default="train", metadata={"help": "Split the prior is trained on."})
    eval_split: str | None = dataclasses.field(
        default="val", metadata={"help": "Split scored in geo_report.json ('none': no evaluation)."}
    )
    rank: str = dataclasses.field(default="species", metadata={"help": "With --data_dir: label rank."})
    taxon: str = dataclasses.field(
        default="kingdom=Animalia",
        metadata={"help": "With --data_dir: category filter, as in prepare_data.py (so the labels match a model)."},
    )
    on_bad_record: Literal["error", "skip"] = dataclasses.field(
        default="error",
        metadata={
            "help": "Invalid coordinates or unparsable dates: stop with the record ids (error) or leave them out "
            "and count them in geo_report.json (skip; a bad date only loses the date)."
        },
    )

    def __post_init__(self):
        if (self.data_dir is None) == (self.dataset_dir is None):
            raise ValueError("Pass exactly one of --dataset_dir (prepared folder) and --data_dir (iNat JSON root).")
        if self.eval_split is not None and self.eval_split.lower() == "none":
            self.eval_split = None


@dataclasses.dataclass
class GeoModelArguments:
    """Overrides of :class:`~inat_hf.models.GeoPriorConfig` (its defaults apply to what is not given)."""

    loss: Literal["softmax", "presence"] | None = dataclasses.field(
        default=None, metadata={"help": "softmax (cross-entropy) or presence (the paper's presence-only loss)."}
    )
    hidden_size: int | None = dataclasses.field(default=None, metadata={"help": "Network width."})
    num_blocks: int | None = dataclasses.field(default=None, metadata={"help": "Residual blocks."})
    drop_rate: float | None = dataclasses.field(default=None, metadata={"help": "Dropout in the residual blocks."})
    use_date: bool | None = dataclasses.field(
        default=None, metadata={"help": "Encode the day of the year too (true/false)."}
    )
    fusion_weight: float | None = dataclasses.field(
        default=None, metadata={"help": "Exponent of the prior in the fusion with an image model (saved)."}
    )
    loss_negatives: int | None = dataclasses.field(
        default=None,
        metadata={"help": "Labels drawn as negatives per step when there are more (default 1024; 0: every label)."},
    )
    presence_pos_weight: float | None = dataclasses.field(
        default=None, metadata={"help": "Positive weight of the presence loss (default num_labels / 4)."}
    )

    def overrides(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}
        if out.get("loss_negatives") == 0:  # a command-line spelling of None: the exact loss over every label
            out["loss_negatives"] = None
        return out


def run_geo_training(data: GeoDataArguments, model_args: GeoModelArguments, train_args: GeoTrainingArguments) -> dict:
    """Everything :func:`main` does; returns the report (also written to ``OUTPUT_DIR/geo_report.json``)."""
    import numpy as np
    import torch

    from ..data.builder import parse_splits
    from ..data.inat_json import InatDataError
    from ..models import GeoPriorConfig, GeoPriorModel
    from ..training import geo

    wanted = [s for s in (data.train_split, data.eval_split) if s is not None]
    if data.dataset_dir is not None:
        splits, taxonomy = geo.records_from_prepared(data.dataset_dir, wanted, on_bad_record=data.on_bad_record)
        source = {"dataset_dir": data.dataset_dir}
    else:
        files = parse_splits(data.splits, data.data_dir)
        missing = [s for s in wanted if s not in files]
        if missing:
            raise InatDataError(f"--splits {data.splits!r} names no file for split(s) {missing} (of {wanted}).")
        splits, taxonomy = geo.records_from_json(
            {s: files[s] for s in wanted}, rank=data.rank, taxon=data.taxon, on_bad_record=data.on_bad_record
        )
        source = {"data_dir": data.data_dir, "files": {s: files[s] for s in wanted}, "taxon": data.taxon}
    train = splits[data.train_split]
    num_labels = taxonomy.num_labels
    # p(y) of the training records, add-one smoothed: the fusion divides by it (a label never seen keeps a finite
    # ratio instead of an infinite one).
    counts = np.bincount(train.labels[train.has_location], minlength=num_labels) + 1.0
    torch.manual_seed(train_args.seed)
    config = GeoPriorConfig(
        id2label=dict(enumerate(taxonomy.labels)),
        label_rank=taxonomy.rank,
        taxonomy=taxonomy.to_dict(),
        class_prior=(counts / counts.sum()).tolist(),
        **model_args.overrides(),
    )
    model = GeoPriorModel(config)
    stats = geo.train_geo_prior(model, train, train_args)
    os.makedirs(data.output_dir, exist_ok=True)
    model.save_pretrained(data.output_dir)

    report = {
        "source": source,
        "label_rank": taxonomy.rank,
        "num_labels": num_labels,
        "chance_top1": 1 / num_labels,
        "chance_top5": min(5, num_labels) / num_labels,
        "counts": {name: recs.counts for name, recs in splits.items()},
        "config": {k: getattr(config, k) for k in ("loss", "hidden_size", "num_blocks", "drop_rate", "use_date")}
        | {
            "fusion_weight": config.fusion_weight,
            "presence_pos_weight": config.pos_weight,
            "sampled_negatives": config.sampled_negatives,
        },
        "training": stats | dataclasses.asdict(train_args),
    }
    if data.eval_split is not None:
        val = splits[data.eval_split]
        report["eval_split"] = data.eval_split
        report["prior"] = geo.evaluate_prior(model, val)
        report["knn"] = geo.knn_baseline(train, val, num_labels)
        report["prior_top5_minus_best_knn_top5"] = report["prior"]["top5"] - report["knn"]["best_top5"]
    geo.write_geo_report(os.path.join(data.output_dir, geo.GEO_REPORT_FILE), report)
    return report


def format_report(report: dict, output_dir: str) -> str:
    lines = [f"prior ({report['config']['loss']} loss, {report['num_labels']} labels) saved to {output_dir}"]
    for split, c in report["counts"].items():
        lines.append(
            f"  {split}: {c['records']} records, {c['with_location']} with a location, {c['without_location']} "
            f"without, {c['bad_location_skipped']} bad locations skipped, {c['bad_date_skipped']} bad dates dropped"
        )
    if "prior" in report:
        p, k = report["prior"], report["knn"]
        lines.append(
            f"  [{report['eval_split']}] prior top-1 {p['top1']:.4f} top-5 {p['top5']:.4f} | k-NN (best k="
            f"{k['best_k_by_top5']}) top-1 {k['best_top1']:.4f} top-5 {k['best_top5']:.4f} | chance top-1 "
            f"{report['chance_top1']:.4f} ({p['num_scored']} records scored)"
        )
    lines.append(f"  report: {os.path.join(output_dir, 'geo_report.json')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(
        (GeoDataArguments, GeoModelArguments, GeoTrainingArguments),
        prog="train_geo_prior.py",
        description=summary_line(__doc__),
    )
    data, model_args, train_args, extra = parser.parse(argv)
    from ..data.inat_json import InatDataError

    def body() -> int:
        print(format_report(run_geo_training(data, model_args, train_args), data.output_dir))
        return 0

    # ValueError: the prior's own config checks (e.g. a hidden size of 0) are user mistakes too.
    return run_command(body, user_errors=(InatDataError, ValueError), debug=extra.show_traceback)


if __name__ == "__main__":
    sys.exit(main())
