"""``app.py``: the classifier as a web page (Gradio), or its Hugging Face Spaces folder.

    python scripts/app.py --model_dir runs/demo/model            # http://127.0.0.1:7860
    python scripts/app.py --model_dir runs/demo/model --geo_prior runs/demo/geo_prior   # + location and date
    python scripts/app.py --model_dir you/inat-model --export_space space/
    python scripts/app.py --backend onnx --model_dir runs/demo/onnx --export_space space/   # no torch in the Space

The page calls the same predictor as ``predict.py`` (see :mod:`inat_hf.app`). Needs gradio
(``pip install -e ".[app]"``); without it the command says so and exits with status 2.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from ..cli import CommandParser, run_command, summary_line
from ..data.tta_views import TTA_VIEWS
from ..inference.errors import InferenceError
from .predict import same_as_predict

MAX_EXAMPLES = 8


@dataclasses.dataclass
class AppArguments:
    model_dir: str = same_as_predict("model_dir")
    host: str = dataclasses.field(
        default="127.0.0.1", metadata={"help": "Address to serve on (0.0.0.0: every interface)."}
    )
    port: int | None = dataclasses.field(
        default=None, metadata={"help": "Port (default: 7860, or the next free one; GRADIO_SERVER_PORT wins)."}
    )
    share: bool = dataclasses.field(
        default=False, metadata={"help": "Also serve through a public gradio.live link (needs the internet)."}
    )
    examples: list[str] | None = dataclasses.field(
        default=None,
        metadata={
            "help": f"Example photos (files, folders, globs; the first {MAX_EXAMPLES}). Default: the demo's "
            "public_test photos when --model_dir is a demo run's model folder."
        },
    )
    tta_views: int = same_as_predict("tta_views")
    geo_prior: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "A location/date prior (scripts/train_geo_prior.py) fused with the image model, as in "
            "predict.py --geo_prior: the page then takes latitude, longitude and date, or reads them from the "
            "photo's EXIF. With --export_space the prior folder is copied into the Space."
        },
    )
    backoff_threshold: float = same_as_predict("backoff_threshold")
    unusual_below: float = same_as_predict("unusual_below")
    max_file_size: str = dataclasses.field(
        default="20mb", metadata={"help": "Largest upload the page accepts (gradio size string)."}
    )
    export_space: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Write a Hugging Face Space (app.py, requirements.txt, README.md, the inat_hf package) for "
            "--model_dir (a Hub id) into this new folder, instead of serving."
        },
    )
    backend: str = same_as_predict("backend")
    device: str | None = same_as_predict("device")
    bf16: bool = same_as_predict("bf16")
    channels_last: bool = same_as_predict("channels_last")

    def __post_init__(self):
        if not 2 <= self.tta_views <= len(TTA_VIEWS):
            raise ValueError(f"--tta_views must be in 2..{len(TTA_VIEWS)}, got {self.tta_views}.")
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError(f"--port must be in 1..65535, got {self.port}.")
        if not 0 < self.backoff_threshold <= 1:
            raise ValueError(f"--backoff_threshold must be in (0, 1], got {self.backoff_threshold}.")


def run_app(args: AppArguments) -> int:
    """Everything :func:`main` does; raises ``GradioMissingError`` (no gradio) or ``InferenceError`` (bad arguments)."""
    from ..app import ClassifierPage, export_space, import_gradio
    from .predict import expand_inputs

    import_gradio()  # before loading anything: a missing gradio is the first thing to hear about
    if args.export_space:
        out = export_space(
            args.export_space,
            args.model_dir,
            tta_views=args.tta_views,
            geo_prior=args.geo_prior,
            backoff_threshold=args.backoff_threshold,
            backend=args.backend,
        )
        print(f"Space written to {out}: push it with `huggingface-cli upload --repo-type space YOU/NAME {out}`.")
        return 0
    sources = args.examples
    if sources is None:  # a model trained by scripts/demo.sh (RUN/model): the demo's RUN/inat_root/public_test
        run = os.path.dirname(os.path.abspath(os.path.expanduser(args.model_dir)))
        demo_photos = os.path.join(run, "inat_root", "public_test")
        sources = [demo_photos] if os.path.isdir(demo_photos) else []
    examples = expand_inputs(sources)[:MAX_EXAMPLES] if sources else []
    page = ClassifierPage.from_pretrained(
        args.model_dir,
        predictor_kwargs={
            "backend": args.backend,
            "device": args.device,
            "bf16": args.bf16,
            "channels_last": args.channels_last,
        },
        geo_prior=args.geo_prior,
        tta_views=args.tta_views,
        examples=examples,
        backoff_threshold=args.backoff_threshold,
        unusual_below=args.unusual_below,
    )
    page.launch(host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size)
    return 0


def main(argv: list[str] | None = None) -> int:
    args, extra = CommandParser(AppArguments, prog="app.py", description=summary_line(__doc__)).parse(argv)
    from ..app import GradioMissingError

    errors = (GradioMissingError, InferenceError)
    return run_command(lambda: run_app(args), user_errors=errors, debug=extra.show_traceback)


if __name__ == "__main__":
    sys.exit(main())
