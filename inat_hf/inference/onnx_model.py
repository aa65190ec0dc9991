"""An exported classifier (``inat-export --format onnx``) run with ONNX Runtime, without torch.

The folder holds ``model.onnx`` (``pixel_values [N, 3, S, S]`` -> ``logits [N, C]``, dynamic ``N``; int8 when
exported with ``--quantize int8``), ``config.json`` (labels, taxonomy, calibration) and ``preprocessor_config.json``
as the checkpoint it came from, and ``export.json`` (how it was exported and validated).
:class:`OnnxClassifier` is what :class:`~.predictor.Predictor` calls in place of the PyTorch model: per-view logits
``[B, V, C]`` from one session run over the ``B x V`` views, then the same :mod:`.tta` math.
"""

from __future__ import annotations

import json
import os
import types
from typing import Any

import numpy as np

from .errors import InferenceError

ONNX_FILE = "model.onnx"
EXPORT_FILE = "export.json"
CONFIG_FILE = "config.json"
PROCESSOR_FILE = "preprocessor_config.json"
INPUT_NAME, OUTPUT_NAME = "pixel_values", "logits"


def read_json(path: str, what: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise InferenceError(f"could not read {what} {path}: {err}") from err
    if not isinstance(data, dict):
        raise InferenceError(f"{what} {path} must hold a JSON object, found {type(data).__name__}.")
    return data


def onnx_config(config: dict[str, Any]) -> types.SimpleNamespace:
    """``config.json`` as the attributes inference reads (``id2label`` with int keys, ``num_labels``, ``taxonomy``,
    ``label_rank``, ``temperature``, ``fusion_weight`` ...), without transformers (whose config imports torch)."""
    id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    if sorted(id2label) != list(range(len(id2label))) or not id2label:
        raise InferenceError("config.json has no id2label {0: name, 1: name, ...}: it is not a classifier's config.")
    return types.SimpleNamespace(**{**config, "id2label": id2label, "num_labels": len(id2label)})


class OnnxClassifier:
    """``model.onnx`` in an ONNX Runtime session (CPU; ``threads``: intra-op threads, ``None``: ONNX Runtime's
    choice), with the folder's ``config`` and image ``processor`` (``preprocessor_config.json`` as a dict)."""

    def __init__(self, path: str, config, processor: dict[str, Any], *, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for a damaged graph
            raise InferenceError(f"could not load the ONNX graph {path}: {type(err).__name__}: {err}") from err
        self.name_or_path, self.config, self.processor = path, config, processor
        self.input_name = self.session.get_inputs()[0].name

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **kwargs: Any) -> OnnxClassifier:
        folder = os.path.expanduser(os.fspath(folder))
        path = os.path.join(folder, ONNX_FILE)
        if not os.path.isfile(path):
            raise InferenceError(
                f"{folder!r} is not an exported model: {ONNX_FILE} is missing. Export one with "
                f"`inat-export --model_dir CHECKPOINT --format onnx --output_dir {folder}`."
            )
        config = onnx_config(read_json(os.path.join(folder, CONFIG_FILE), "the model config"))
        processor = read_json(os.path.join(folder, PROCESSOR_FILE), "the image processor")
        return cls(path, config, processor, **kwargs)

    def __call__(self, pixel_values: np.ndarray) -> np.ndarray:
        """``[B, V, 3, S, S]`` (or ``[B, 3, S, S]``) float32 -> logits ``[B, V, C]`` float32, one session run."""
        if pixel_values.ndim == 4:
            pixel_values = pixel_values[:, None]
        if pixel_values.ndim != 5:
            raise ValueError(f"pixel_values must be [B, V, 3, H, W] or [B, 3, H, W], got {pixel_values.shape}")
        b, v = pixel_values.shape[:2]
        flat = np.ascontiguousarray(pixel_values.reshape(b * v, *pixel_values.shape[2:]), dtype=np.float32)
        (logits,) = self.session.run(None, {self.input_name: flat})
        return logits.astype(np.float32, copy=False).reshape(b, v, -1)
