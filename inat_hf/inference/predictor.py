"""Loading a checkpoint for inference and predicting image files: :class:`Predictor`, shared by
``scripts/evaluate.py`` and ``scripts/predict.py``.

Loading checks the config (labels, taxonomy) and the image processor (the evaluation preprocessing the presets
replicate) *before* loading weights or reading images, so a wrong folder fails at once with a message.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.decode import ImageInput, image_name
from ..data.taxonomy import Taxonomy
from ..data.transforms import EvalPreset, TTAPreset, eval_kwargs_from_image_processor
from .backoff import DEFAULT_BACKOFF_THRESHOLD, RankGroups, backoff_answer
from .tta import AVERAGES, average_views, view_logits

__all__ = [
    "ImagePrediction",
    "InferenceError",
    "Predictor",
    "load_config",
    "load_image_processor",
]

PROCESSOR_FILE = "preprocessor_config.json"
CONFIG_FILE = "config.json"


class InferenceError(ValueError):
    """Bad input to evaluation / prediction (model, data, files). The message says what is wrong and what to do."""


# -- Loading, with the checks that must come before any work -----------------------------------------------------------


def _is_local(model_dir: str) -> bool:
    # A Hub id ("org/name") is also a valid relative path; only an existing folder or an explicit path is local.
    return (
        os.path.isdir(os.path.expanduser(model_dir))
        or model_dir.startswith(("/", ".", "~"))
        or model_dir.count("/") > 1  # Hub ids are "name" or "org/name"
    )


def _one_line(err: BaseException) -> str:
    """``Type: message`` on one line (some libraries put newlines and hints into their messages)."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


# Errors a malformed config.json raises deep inside transformers (a string for a dict, a wrong-length list ...).
_CONFIG_ERRORS = (OSError, ValueError, TypeError, AttributeError, KeyError, IndexError)


def load_config(model_dir: str | os.PathLike):
    """``AutoConfig.from_pretrained(model_dir)`` with a clear error for a folder that is not a saved model, and
    one error line naming ``config.json`` when it does not hold a valid config (wrong types, inconsistent labels).
    """
    from transformers import AutoConfig

    from .. import models  # noqa: F401 - registers model_type "inat" with the Auto classes

    model_dir = os.fspath(model_dir)
    if _is_local(model_dir):
        path = os.path.expanduser(model_dir)
        if not os.path.isdir(path):
            raise InferenceError(f"model directory {model_dir!r} does not exist.")
        if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
            raise InferenceError(
                f"{model_dir!r} is not a saved model: {CONFIG_FILE} is missing. Pass the folder written by "
                "`model.save_pretrained(...)` / the Trainer (e.g. the run's output_dir or a checkpoint-* folder)."
            )
        model_dir = path
    where = os.path.join(model_dir, CONFIG_FILE) if os.path.isdir(model_dir) else f"{model_dir!r} ({CONFIG_FILE})"
    try:
        config = AutoConfig.from_pretrained(model_dir)
        Taxonomy.from_config(config)  # the label names and taxonomy inference prints must be readable too
    except _CONFIG_ERRORS as err:
        raise InferenceError(f"{where} is not a valid model config: {_one_line(err)}") from err
    return config


def load_image_processor(model_dir: str | os.PathLike):
    """The checkpoint's image processor, required: it defines the evaluation preprocessing.

    Raises :class:`InferenceError` when the folder has no ``preprocessor_config.json`` (or the processor is not a
    shortest-edge-resize + center-crop one, which the presets replicate).
    """
    from transformers import AutoImageProcessor

    model_dir = os.fspath(model_dir)
    hint = (
        "Without it the evaluation preprocessing (resize, crop, normalisation) is unknown. "
        "`InatForImageClassification.save_pretrained` writes it; for an existing folder run "
        "`InatForImageClassification.from_pretrained(dir).create_image_processor().save_pretrained(dir)`."
    )
    if _is_local(model_dir):
        model_dir = os.path.expanduser(model_dir)
        if not os.path.isfile(os.path.join(model_dir, PROCESSOR_FILE)):
            raise InferenceError(f"{model_dir!r} has no image processor ({PROCESSOR_FILE} is missing). {hint}")
    try:
        processor = AutoImageProcessor.from_pretrained(model_dir)
    except (OSError, ValueError) as err:
        raise InferenceError(
            f"could not load the image processor ({PROCESSOR_FILE}) of {model_dir!r}: {err}. {hint}"
        ) from err
    try:
        eval_kwargs_from_image_processor(processor)
    except (ValueError, AttributeError, TypeError) as err:
        raise InferenceError(
            f"the image processor of {model_dir!r} ({type(processor).__name__}) is not supported: {err}. "
            "Inference replicates processors with size={'shortest_edge': R} and a square center crop."
        ) from err
    return processor


def _weights_file(path: str) -> str:
    """The weights file of a checkpoint folder, for error messages (the folder or Hub id when none is found)."""
    if os.path.isdir(path):
        for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
    return repr(path)


# -- Predictor ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ImagePrediction:
    """Top-k prediction for one input image (``position`` in the input list), or the ``error`` that prevented it."""

    position: int
    source: str
    indices: np.ndarray | None = None  # [k] label indices, best first
    probs: np.ndarray | None = None  # [k]
    error: str | None = None
    # with a location prior: whether location/date were used and where they came from (Location.to_dict())
    location: dict[str, Any] | None = None
    # taxonomic back-off: {"rank", "taxon", "probability"} (inat_hf.inference.backoff)
    backoff: dict[str, Any] | None = None


class _ImageList(Dataset):
    """Decodes + transforms one image per item; a failure becomes an error item, never an exception, so that one
    bad file among many does not stop the others."""

    def __init__(self, images: Sequence[ImageInput], transform):
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return index, self.transform(self.images[index]), None
        except Exception as err:  # any per-file failure (corrupt, missing, unreadable) is reported per file
            message = (
                str(err) if image_name(self.images[index]) in str(err) else f"{image_name(self.images[index])}: {err}"
            )
            return index, None, message


def _collate_items(items):
    ok = [(i, t) for i, t, e in items if e is None]
    errors = [(i, e) for i, t, e in items if e is not None]
    pixel_values = torch.stack([t for _, t in ok]) if ok else None
    return [i for i, _ in ok], pixel_values, errors


class Predictor:
    """A classifier ready for inference: model (eval mode, on ``device``), preprocessing and options.

    Args:
        model: an image-classification model (``InatForImageClassification`` or any transformers classifier).
        processor: its image processor; :class:`EvalPreset` / :class:`TTAPreset` replicate it.
        device: default: CUDA when available, else CPU.
        bf16: bf16 autocast for the forward pass.
        channels_last: channels-last model and inputs (faster convolutions on GPU with bf16).
        average: TTA averaging, ``"prob"`` or ``"logit"`` (see :mod:`inat_hf.inference.tta`).
    """

    def __init__(
        self,
        model,
        processor,
        *,
        device: str | torch.device | None = None,
        bf16: bool = False,
        channels_last: bool = False,
        average: str = "prob",
    ):
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = model.eval().to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.config = model.config
        self.processor = processor
        self.device = device
        self.bf16 = bf16
        self.channels_last = channels_last
        self.average = average
        self.preset_kwargs = eval_kwargs_from_image_processor(processor)
        self.taxonomy = Taxonomy.from_config(self.config)
        # where the weights came from, for error messages
        self.source = getattr(model, "name_or_path", "") or type(model).__name__

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, **kwargs: Any) -> Predictor:
        """Check the config and the image processor, then load the weights (``AutoModelForImageClassification``)."""
        from transformers import AutoModelForImageClassification

        load_config(model_dir)  # clear errors first, before the (slow) weight loading
        processor = load_image_processor(model_dir)
        path = os.path.expanduser(os.fspath(model_dir)) if _is_local(os.fspath(model_dir)) else os.fspath(model_dir)
        try:
            model = AutoModelForImageClassification.from_pretrained(path)
        except Exception as err:  # noqa: BLE001 - a damaged weights file fails in many ways (safetensors, torch)
            raise InferenceError(f"could not load the weights {_weights_file(path)}: {_one_line(err)}") from err
        return cls(model, processor, **kwargs)

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    @functools.cached_property
    def backoff_groups(self) -> RankGroups | None:
        """The taxonomy's groups for taxonomic back-off (``predict(backoff=...)``); ``None`` without a taxonomy."""
        return RankGroups.from_taxonomy(self.taxonomy) if self.taxonomy.ranks else None

    def transform(self, num_views: int = 1) -> EvalPreset:
        """One image -> ``[3, S, S]`` (``num_views == 1``: :class:`EvalPreset`) or ``[V, 3, S, S]`` (TTA)."""
        if num_views == 1:
            return EvalPreset(**self.preset_kwargs)
        return TTAPreset(num_views=num_views, **self.preset_kwargs)

    def view_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3, S, S]`` or ``[B, 3, S, S]`` -> float32 ``[B, V, C]`` (one forward).

        Raises :class:`InferenceError` naming the checkpoint when a logit is NaN or infinite: softmax would turn
        them into NaN probabilities and an arbitrary ranking, reported as if they were predictions.
        """
        logits = view_logits(self.model, pixel_values, bf16=self.bf16, channels_last=self.channels_last)
        if not bool(torch.isfinite(logits).all()):
            raise InferenceError(
                f"the model {self.source} produced non-finite logits (NaN/Inf) for "
                f"{int((~torch.isfinite(logits)).any(-1).sum())} of {logits.shape[0] * logits.shape[1]} views: its "
                "weights are damaged or overflow. Re-download or re-save the checkpoint."
            )
        return logits

    def scores(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, C]``: TTA-averaged scores (log-probabilities for ``"prob"``) or, for one view, the logits."""
        logits = self.view_logits(pixel_values)
        return logits[:, 0] if logits.shape[1] == 1 else average_views(logits, self.average)

    def predict(
        self,
        images: Sequence[ImageInput],
        *,
        top_k: int = 5,
        num_views: int = 1,
        batch_size: int = 32,
        num_workers: int = 0,
        progress: bool = False,
        geo=None,
        locations=None,
        backoff=None,
        backoff_threshold: float = DEFAULT_BACKOFF_THRESHOLD,
    ) -> Iterator[ImagePrediction]:
        """Top-k predictions for ``images`` (paths, bytes, PIL images, ...), yielded in input order per batch.

        An image that cannot be read yields an :class:`ImagePrediction` with ``error`` set; the others are still
        predicted.

        With ``geo`` (a :class:`~inat_hf.inference.fusion.GeoFusion`) and ``locations`` (one
        :class:`~inat_hf.inference.fusion.Location` per image), the image probabilities are fused with the
        location/date prior (an image without a location: image only). With ``backoff`` (a
        :class:`~inat_hf.inference.backoff.RankGroups`) each prediction also gets the finest rank whose summed
        probability reaches ``backoff_threshold``.
        """
        if geo is not None:
            from ..data.geo import clean_records
            from .fusion import Location

            if locations is None or len(locations) != len(images):
                raise InferenceError("fusion with a location prior needs one location (or None) per image.")
            locs = [loc if loc is not None else Location() for loc in locations]
            records = clean_records(
                [loc.latitude for loc in locs],
                [loc.longitude for loc in locs],
                [loc.date for loc in locs],
                [0] * len(locs),
                [image_name(x) for x in images],
                where="photo locations",
            )
        top_k = min(top_k, self.num_labels)
        loader = DataLoader(
            _ImageList(images, self.transform(num_views)),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=_collate_items,
            pin_memory=self.device.type == "cuda",
        )
        bar = tqdm(total=len(images), unit="img", desc="predict", disable=None if progress else True)
        with bar:
            for positions, pixel_values, errors in loader:
                results = {p: ImagePrediction(p, image_name(images[p]), error=e) for p, e in errors}
                if pixel_values is not None:
                    scores = self.scores(pixel_values)
                    if geo is not None:
                        scores = geo.fuse(scores, records, np.asarray(positions))
                    probs = scores.softmax(dim=-1)  # [B, C]
                    top_probs, top_indices = probs.topk(top_k, dim=-1)  # [B, k]
                    top_probs, top_indices = top_probs.cpu().numpy(), top_indices.cpu().numpy()
                    answers = (
                        backoff_answer(probs, backoff, backoff_threshold)
                        if backoff is not None
                        else [None] * len(probs)
                    )
                    for row, p in enumerate(positions):
                        results[p] = ImagePrediction(
                            p,
                            image_name(images[p]),
                            top_indices[row],
                            top_probs[row],
                            location=locs[p].to_dict() if geo is not None else None,
                            backoff=answers[row],
                        )
                bar.update(len(results))
                yield from (results[p] for p in sorted(results))
