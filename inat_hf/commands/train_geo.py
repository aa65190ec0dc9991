"""``train_geo_prior.py`` (``inat-train-geo``): train the location/date prior from location columns only.

    python scripts/train_geo_prior.py --dataset_dir runs/demo/prepared --output_dir runs/demo/geo_prior
    python scripts/train_geo_prior.py --data_dir /data/inat2021 --splits train=train.json,val=val.json \\
        --output_dir runs/geo_prior [--loss softmax|presence] [--taxon none] [--max_per_class 100]

Reads latitude/longitude/date/label of ``--train_split``/``--eval_split`` from a prepared folder or a raw root
(images-only JSON accepted: no image file is opened). Writes ``OUTPUT_DIR``: the prior
(``GeoPriorModel.save_pretrained``, with its code for ``trust_remote_code``) and ``geo_report.json``: record counts,
prior-only top-1/top-5 on the evaluation split, with and without the records' dates, beside two k-NN baselines (over
place, and over place and date; k and the date weight chosen on ``--select_split`` or a held-out part of the training
records) and chance on the same records.
"""

from __future__ import annotations

import sys

from ..cli import CommandParser, run_command, summary_line
from ..data.source import DataArguments
from ..geo.arguments import CONFIG_FROM_DATA, GeoTrainingArguments


def main(argv: list[str] | None = None) -> int:
    from ..models import GeoPriorConfig  # its own fields are the model options (torch: not on `import` of this module)

    parser = CommandParser(
        (DataArguments, GeoTrainingArguments), prog="train_geo_prior.py", description=summary_line(__doc__)
    )
    parser.add_config(
        GeoPriorConfig,
        "model: GeoPriorConfig keyword arguments (saved in config.json)",
        "loss_negatives 0: every label.",
        skip=CONFIG_FROM_DATA,
    )
    data, args, extra = parser.parse(argv)
    from ..data.inat_json import InatDataError
    from ..geo.training import format_report, train_prior

    def body() -> int:
        print(format_report(train_prior(data, args, **parser.config_kwargs(GeoPriorConfig, extra)), args.output_dir))
        return 0

    # ValueError: the prior's own config checks (e.g. a hidden size of 0) are user mistakes too.
    return run_command(body, user_errors=(InatDataError, ValueError), debug=extra.show_traceback)


if __name__ == "__main__":
    sys.exit(main())
