"""``export.py``: a checkpoint as a self-describing ONNX folder, validated against PyTorch, optionally static int8.

    python scripts/export.py --model_dir runs/demo/model --format onnx --output_dir runs/demo/onnx
    python scripts/export.py --model_dir M --format onnx --output_dir M-int8 --quantize int8 --calibration_dir photos/
    python scripts/predict.py --backend onnx --model_dir runs/demo/onnx photos/

The folder holds ``model.onnx`` (dynamic batch), ``config.json`` and ``preprocessor_config.json`` (labels, taxonomy,
calibration, preprocessing), ``export.json`` (how it was made and validated) and a README. The export fails (exit
2, nothing written) when the graph disagrees with PyTorch beyond the tolerances (``--validation_dir`` photos, else
generated images) or a backbone operator has no ONNX conversion.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile

from ..cli import CommandParser, run_command, summary_line
from ..inference.errors import InferenceError
from .predict import same_as_predict

README = """# {name}: ONNX export of `{source}`

Written by `inat-export` (inat_hf). `model.onnx` ({precision}) maps `pixel_values [N, 3, {size}, {size}]` (float32,
preprocessed as `preprocessor_config.json` says) to `logits [N, {labels}]`; `config.json` holds the labels, the
taxonomy and the calibration (`temperature`, `fusion_weight`) of the checkpoint; `export.json` says how it was
exported and how it compared with PyTorch ({validation}).

Serve it without torch: `pip install onnxruntime` and inat_hf, then

    python scripts/predict.py --backend onnx --model_dir {name} photos/
    python scripts/app.py --backend onnx --model_dir {name}
"""


@dataclasses.dataclass
class ExportArguments:
    model_dir: str = same_as_predict("model_dir")
    output_dir: str = dataclasses.field(
        metadata={"help": "New (or empty) folder for the exported model; written only when validation passes."}
    )
    format: str = dataclasses.field(default="onnx", metadata={"help": "Export format.", "choices": ["onnx"]})
    opset: int = dataclasses.field(default=17, metadata={"help": "ONNX opset version."})
    dynamic_batch: bool = dataclasses.field(
        default=True, metadata={"help": "A dynamic batch dimension (--dynamic_batch false: batch 1 only)."}
    )
    quantize: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "int8: static QDQ quantization (per-channel weights) calibrated on --calibration_dir.",
            "choices": ["int8"],
        },
    )
    calibration_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "Photos (files, folders, globs) to calibrate int8 activations on."}
    )
    calibration_images: int = dataclasses.field(
        default=128, metadata={"help": "Use at most this many calibration photos (the first, sorted)."}
    )
    validation_dir: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Photos to validate the graph on (use other photos than the calibration ones); default: "
            "generated images."
        },
    )
    validation_images: int = dataclasses.field(default=64, metadata={"help": "Validate on at most this many."})
    max_prob_diff: float | None = dataclasses.field(
        default=None, metadata={"help": "Tolerance: largest |Δprob| vs PyTorch (default: fp32 1e-3, int8 0.25)."}
    )
    min_top1_agreement: float | None = dataclasses.field(
        default=None,
        metadata={"help": "Tolerance: smallest top-1 agreement with PyTorch (default: fp32 1, int8 0.9)."},
    )
    min_top5_overlap: float | None = dataclasses.field(
        default=None, metadata={"help": "Tolerance: smallest mean top-5 overlap (default: fp32 0.99, int8 0.8)."}
    )

    def __post_init__(self):
        if self.quantize and not self.calibration_dir:
            raise ValueError("--quantize int8 needs --calibration_dir PHOTOS (real photos, ideally a few hundred).")
        if self.calibration_dir and not self.quantize:
            raise ValueError("--calibration_dir is used by --quantize int8 only: pass --quantize int8 too.")
        if self.opset < 13:
            raise ValueError(f"--opset must be >= 13 (per-channel int8 needs it), got {self.opset}.")
        if self.calibration_images < 1 or self.validation_images < 1:
            raise ValueError("--calibration_images and --validation_images must be >= 1.")

    @property
    def tolerances(self) -> dict[str, float]:
        from ..inference.onnx_export import TOLERANCES

        given = {
            "max_prob_diff": self.max_prob_diff,
            "top1_agreement": self.min_top1_agreement,
            "top5_overlap": self.min_top5_overlap,
        }
        defaults = TOLERANCES["int8" if self.quantize else "fp32"]
        return {k: defaults[k] if v is None else v for k, v in given.items()}


def _photos(sources: str, limit: int, what: str) -> list:
    from .predict import expand_inputs

    try:
        return expand_inputs([sources])[:limit]
    except InferenceError as err:
        raise InferenceError(f"{what}: {err}") from err


def _preprocess(images, processor, what: str):
    from ..inference.onnx_export import preprocess

    try:
        return preprocess(images, processor)
    except ValueError as err:  # a photo that does not decode: say which option it came from
        raise InferenceError(f"{what}: {err}") from err


def _check_output_dir(output_dir: str) -> str:
    out = os.path.abspath(os.path.expanduser(output_dir))
    if os.path.lexists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise InferenceError(
            f"--output_dir {output_dir!r} exists and is not an empty folder: give a new or empty folder "
            "(an export never mixes with other files, and never replaces the checkpoint)."
        )
    return out


def run_export(args: ExportArguments) -> int:
    """Everything :func:`main` does; raises ``InferenceError`` for bad arguments or a failed validation."""
    import numpy as np
    import onnxruntime
    import torch

    from ..inference import onnx_export
    from ..inference.predictor import Predictor

    out = _check_output_dir(args.output_dir)
    predictor = Predictor.from_pretrained(args.model_dir, device="cpu")
    model, config = predictor.model, predictor.config
    calibration = None
    if args.quantize:  # read (and fail on) the photos before the slow export
        calibration = _preprocess(
            _photos(args.calibration_dir, args.calibration_images, "--calibration_dir"),
            predictor.processor,
            "--calibration_dir",
        )
    if args.validation_dir:
        images = _photos(args.validation_dir, args.validation_images, "--validation_dir")
        source = os.fspath(args.validation_dir)
    else:
        images = onnx_export.generated_images(min(args.validation_images, 16), config.resize_shortest_edge)
        source = "generated images"
    pixel_values = _preprocess(images, predictor.processor, "--validation_dir")

    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", suffix=".export", dir=parent)
    try:
        graph = os.path.join(staging, "model.onnx")
        fp32 = graph if not args.quantize else os.path.join(staging, "fp32.onnx")
        onnx_export.export_onnx(
            model, fp32, image_size=config.image_size, opset=args.opset, dynamic_batch=args.dynamic_batch
        )
        if args.quantize:
            onnx_export.quantize_int8(fp32, graph, calibration)
            os.unlink(fp32)
        if not args.dynamic_batch:  # a batch-1 graph is validated one image at a time
            pixel_values = pixel_values[:1]
        validation = onnx_export.validate(model, graph, pixel_values, args.tolerances)
        precision = args.quantize or "fp32"
        print(
            f"validation on {validation.images} {source} ({precision} vs PyTorch): max |Δprob| "
            f"{validation.max_prob_diff:.3g}, top-1 agreement {validation.top1_agreement:.1%}, top-5 overlap "
            f"{validation.top5_overlap:.1%}"
        )
        if validation.failures:
            raise InferenceError(
                f"the exported graph disagrees with PyTorch beyond the tolerances ({'; '.join(validation.failures)}); "
                "nothing was written. Loosen them (--max_prob_diff, --min_top1_agreement, --min_top5_overlap) only "
                "after checking the predictions on real photos."
            )
        config.save_pretrained(staging)
        predictor.processor.save_pretrained(staging)
        record = {
            "format": "onnx",
            "source": os.fspath(args.model_dir),
            "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
            "opset": args.opset,
            "dynamic_batch": args.dynamic_batch,
            "precision": precision,
            "quantization": None
            if not args.quantize
            else {
                "method": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, MinMax",
                "calibration_dir": os.fspath(args.calibration_dir),
                "calibration_images": int(len(calibration)),
            },
            "validation": {"source": source, **validation.to_dict()},
            "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__},
        }
        with open(os.path.join(staging, "export.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
        readme = README.format(
            name=os.path.basename(out),
            source=os.fspath(args.model_dir),
            precision=precision,
            size=config.image_size,
            labels=config.num_labels,
            validation=f"max |Δprob| {validation.max_prob_diff:.3g} on {validation.images} {source}",
        )
        with open(os.path.join(staging, "README.md"), "w", encoding="utf-8") as f:
            f.write(readme)
        if os.path.isdir(out):
            os.rmdir(out)  # empty (checked): replaced by the finished folder in one rename
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"exported to {args.output_dir}: serve it with `predict.py --backend onnx --model_dir {args.output_dir}`")
    return 0


def main(argv: list[str] | None = None) -> int:
    args, extra = CommandParser(ExportArguments, prog="export.py", description=summary_line(__doc__)).parse(argv)
    return run_command(lambda: run_export(args), user_errors=(InferenceError,), debug=extra.show_traceback)


if __name__ == "__main__":
    sys.exit(main())
