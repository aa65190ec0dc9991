"""ONNX export of a checkpoint (``inat-export``), its validation against PyTorch, and static int8 quantization.

The exporter is ``torch.onnx.export(..., dynamo=False)``, the TorchScript exporter that timm's ``onnx_export.py``
uses by default (torch >= 2.9 defaults to the dynamo exporter, which is passed ``dynamo=False`` explicitly here
as timm does). Optimum is not used: its exporter (``optimum-onnx``) requires transformers < 4.58, and this project
needs transformers 5; for a custom ``PreTrainedModel`` it would wrap the same ``torch.onnx.export`` call behind a
custom ``OnnxConfig``.

int8 is ONNX Runtime's *static* QDQ quantization with per-channel weights, calibrated on real photos: dynamic
quantization (``quantize_dynamic``) leaves convolutions in float and made ResNet-50 slower, not faster.
Validation follows timm's ``onnx_validate.py``: the graph and PyTorch score the same preprocessed photos; the
export fails when max |Δprob|, top-1 agreement or top-5 overlap miss :data:`TOLERANCES`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch

from ..data.array_preset import ArrayPreset, eval_kwargs_from_image_processor
from . import tta
from .errors import InferenceError
from .onnx_model import INPUT_NAME, OUTPUT_NAME

DEFAULT_OPSET = 17
# Validation tolerances per precision (the export fails beyond them). fp32: the graph computes what PyTorch does
# up to float rounding. int8: quantization moves probabilities, and a photo whose two best species are close can
# swap them (bench_deploy measures the top-1 change on held-out real photos).
TOLERANCES = {
    "fp32": {"max_prob_diff": 1e-3, "top1_agreement": 1.0, "top5_overlap": 0.99},
    "int8": {"max_prob_diff": 0.25, "top1_agreement": 0.9, "top5_overlap": 0.8},
}


class _Logits(torch.nn.Module):
    """``pixel_values -> logits``: the graph's one input and output (the transformers output is a dataclass)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values, apply_temperature=False).logits  # raw: score() divides by T


def export_onnx(model, path: str, *, image_size: int, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> None:
    """``model`` (eval mode) -> ``path``: ``pixel_values [N, 3, S, S]`` -> ``logits [N, C]``, ``N`` dynamic unless
    ``dynamic_batch=False`` (then 1). An operator the exporter cannot convert: :class:`InferenceError` naming it."""
    import onnx

    example = torch.zeros(2 if dynamic_batch else 1, 3, image_size, image_size)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    try:
        with torch.no_grad():
            torch.onnx.export(
                _Logits(model).eval(),  # the exporter restores the wrapper's mode, and with it the model's
                (example,),
                path,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as err:  # noqa: BLE001 - the exporter raises several types; the op name is what matters
        op = re.search(r"operator '?([\w:.]+)'?", str(err)) or re.search(r"(aten::\w+)", str(err))
        backbone = getattr(getattr(model, "config", None), "backbone", type(model).__name__)
        what = f"the operator {op.group(1)}" if op else "an operation"
        raise InferenceError(
            f"the backbone {backbone!r} cannot be exported to ONNX opset {opset}: {what} is not supported "
            f"({type(err).__name__}: {' '.join(str(err).split())[:300]}). Try a newer --opset, or another backbone."
        ) from err
    onnx.checker.check_model(path)


class _Calibration:
    """ONNX Runtime's ``CalibrationDataReader``: the calibration photos, preprocessed as served, in batches."""

    def __init__(self, batches: list[np.ndarray]):
        self.batches = iter(batches)

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(fp32_path: str, int8_path: str, calibration: np.ndarray, *, batch_size: int = 16) -> None:
    """Static int8 (QDQ, per-channel weights, MinMax calibration on ``calibration [N, 3, S, S]``), after ONNX
    Runtime's ``quant_pre_process`` (shape inference + graph optimisation, as its docs ask)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(fp32_path, prepared)
        batches = [calibration[i : i + batch_size] for i in range(0, len(calibration), batch_size)]
        quantize_static(
            prepared,
            int8_path,
            _Calibration(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


@dataclasses.dataclass
class Validation:
    """The graph against PyTorch on the same preprocessed images (timm's ``onnx_validate.py`` measures)."""

    images: int
    max_prob_diff: float
    top1_agreement: float
    top5_overlap: float
    tolerances: dict[str, float]

    @property
    def failures(self) -> list[str]:
        t = self.tolerances
        out = []
        if self.max_prob_diff > t["max_prob_diff"]:
            out.append(f"max |Δprob| {self.max_prob_diff:.4g} > {t['max_prob_diff']:g}")
        if self.top1_agreement < t["top1_agreement"]:
            out.append(f"top-1 agreement {self.top1_agreement:.1%} < {t['top1_agreement']:.1%}")
        if self.top5_overlap < t["top5_overlap"]:
            out.append(f"top-5 overlap {self.top5_overlap:.1%} < {t['top5_overlap']:.1%}")
        return out

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": not self.failures}


def compare(reference: np.ndarray, candidate: np.ndarray, tolerances: dict[str, float]) -> Validation:
    """Two ``[N, C]`` logit arrays (PyTorch's, the graph's) -> the :class:`Validation` measures."""
    p, q = tta.softmax(reference.astype(np.float64)), tta.softmax(candidate.astype(np.float64))
    k = min(5, p.shape[1])
    top_p, top_q = np.argsort(-p, axis=1)[:, :k], np.argsort(-q, axis=1)[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(top_p, top_q)])
    return Validation(
        images=len(p),
        max_prob_diff=float(np.abs(p - q).max()),
        top1_agreement=float(np.mean(top_p[:, 0] == top_q[:, 0])),
        top5_overlap=float(overlap),
        tolerances=dict(tolerances),
    )


def validate(model, onnx_path: str, pixel_values: np.ndarray, tolerances: dict[str, float]) -> Validation:
    """PyTorch ``model`` and the graph ``onnx_path`` on the same ``pixel_values [N, 3, S, S]``."""
    from .onnx_model import OnnxClassifier

    graph = OnnxClassifier(onnx_path, model.config, {})
    reference = tta.view_logits(model, torch.from_numpy(pixel_values))[:, 0].numpy()
    return compare(reference, graph(pixel_values)[:, 0], tolerances)


def generated_images(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random RGB images (blobs, not white noise: features of a photo's scale), for validation when no
    photos are given."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        out.append(np.asarray(PIL.Image.fromarray(coarse).resize((size, size), PIL.Image.Resampling.BICUBIC)))
    return out


def preprocess(images: Sequence, processor) -> np.ndarray:
    """Photos -> ``[N, 3, S, S]`` float32 as the ONNX backend serves them (:class:`ArrayPreset`)."""
    preset = ArrayPreset(**eval_kwargs_from_image_processor(processor))
    return np.stack([preset(image) for image in images])
