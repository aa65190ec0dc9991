""":class:`Predictor`: a checkpoint loaded for inference (``evaluate.py``, ``predict.py``, the web page).

Loading checks the config (labels, taxonomy) and the image processor (the evaluation preprocessing the presets
replicate) *before* loading weights or reading images, so a wrong folder fails at once with a message.

Two backends, one path: ``backend="torch"`` (a checkpoint, PyTorch) or ``backend="onnx"`` (a folder written by
``inat-export``, ONNX Runtime, :mod:`.onnx_model`). Only the forward pass and the preprocessing's implementation
differ (the torch presets vs :class:`~inat_hf.data.array_preset.ArrayPreset`, PIL + numpy); TTA views, the
:mod:`.tta` math, location fusion, back-off and calibration are the same calls. The ONNX backend never imports
torch (a Space can serve it without torch installed).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from ..data.array_preset import ArrayPreset, eval_kwargs_from_image_processor
from ..data.decode import ImageInput, image_name
from ..data.taxonomy import Taxonomy
from ..files import printable_path
from . import tta
from .backoff import DEFAULT_BACKOFF_THRESHOLD, RankGroups, backoff_answer
from .errors import InferenceError

if TYPE_CHECKING:  # torch loads with the torch backend only
    import torch

BACKENDS = ("torch", "onnx")

__all__ = ["BACKENDS", "ImagePrediction", "Predictor", "load_config", "load_image_processor"]

PROCESSOR_FILE = "preprocessor_config.json"
CONFIG_FILE = "config.json"


# -- Loading, with the checks that must come before any work -----------------------------------------------------------


def _local_path(model_dir: str | os.PathLike) -> str | None:
    """The folder ``model_dir`` names, ``None`` for a Hub id ("name" or "org/name", also valid relative paths:
    only an existing folder or an explicit path is local)."""
    model_dir = os.fspath(model_dir)
    path = os.path.expanduser(model_dir)
    local = os.path.isdir(path) or model_dir.startswith(("/", ".", "~")) or model_dir.count("/") > 1
    return path if local else None


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


# Errors a malformed config.json raises deep inside transformers (a string for a dict, a wrong-length list ...).
_CONFIG_ERRORS = (OSError, ValueError, TypeError, AttributeError, KeyError, IndexError)


def load_config(model_dir: str | os.PathLike):
    """``AutoConfig.from_pretrained(model_dir)`` with a clear error for a folder that is not a saved model, and
    one error line naming ``config.json`` when it does not hold a valid config (wrong types, inconsistent labels).
    """
    from transformers import AutoConfig

    from .. import models  # noqa: F401 - registers model_type "inat" with the Auto classes

    model_dir, path = os.fspath(model_dir), _local_path(model_dir)
    if path is not None:
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
    """The checkpoint's image processor, required (it defines the evaluation preprocessing), and one the presets
    replicate (shortest-edge resize + center crop); :class:`InferenceError` otherwise."""
    from transformers import AutoImageProcessor

    path = _local_path(model_dir)
    model_dir = path or os.fspath(model_dir)
    hint = (
        "Without it the evaluation preprocessing (resize, crop, normalisation) is unknown. "
        "`InatForImageClassification.save_pretrained` writes it; for an existing folder run "
        "`InatForImageClassification.from_pretrained(dir).create_image_processor().save_pretrained(dir)`."
    )
    if path is not None and not os.path.isfile(os.path.join(path, PROCESSOR_FILE)):
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
    location: dict[str, Any] | None = None  # with a location prior: Location.to_dict() (what was used, from where)
    backoff: dict[str, Any] | None = None  # taxonomic back-off: {"rank", "taxon", "probability"}
    # with a location prior and a location: {"prior_ratio": p(top-1 | place, date) / p(top-1), "unusual_here": bool}
    unusual: dict[str, Any] | None = None


class _ImageList:
    """Decodes + transforms one image per item; a failure becomes an error item, not an exception, so that one bad
    file among many does not stop the others."""

    def __init__(self, images: Sequence[ImageInput], transform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        try:
            return index, self.transform(self.images[index]), None
        except Exception as err:  # any per-file failure (corrupt, missing, unreadable) is reported per file
            name = printable_path(image_name(self.images[index]))
            return index, None, str(err) if name in str(err) else f"{name}: {err}"


def _collate_items(items):
    ok = [(i, t) for i, t, e in items if e is None]
    pixel_values = None
    if ok and isinstance(ok[0][1], np.ndarray):  # the ONNX backend's presets
        pixel_values = np.stack([t for _, t in ok])
    elif ok:
        import torch

        pixel_values = torch.stack([t for _, t in ok])
    return [i for i, _ in ok], pixel_values, [(i, e) for i, _, e in items if e is not None]


def _batches(dataset, collate_fn, batch_size: int, num_workers: int):
    """The ONNX backend's loader, without torch: batches in order; ``num_workers`` threads decode each batch (PIL
    releases the GIL while it decodes and resizes)."""
    pool = concurrent.futures.ThreadPoolExecutor(num_workers) if num_workers > 0 else None
    try:
        for start in range(0, len(dataset), batch_size):
            rows = range(start, min(start + batch_size, len(dataset)))
            yield collate_fn(list(pool.map(dataset.__getitem__, rows) if pool else map(dataset.__getitem__, rows)))
    finally:
        if pool is not None:
            pool.shutdown()


def _numpy(x) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.cpu().numpy()


class Predictor:
    """A classifier ready for inference: the model (a PyTorch model in eval mode on ``device``, default CUDA when
    available; or an :class:`~.onnx_model.OnnxClassifier`), its image processor (replicated by the presets), bf16
    autocast and channels-last (PyTorch only), and the TTA ``average`` (``"prob"`` or ``"logit"``, see
    :mod:`inat_hf.inference.tta`). The config's ``temperature`` (1 when absent) divides every view's logits."""

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
        from .onnx_model import OnnxClassifier

        tta.check_average(average)
        self.backend = "onnx" if isinstance(model, OnnxClassifier) else "torch"
        if self.backend == "onnx":
            if device not in (None, "cpu") or bf16 or channels_last:
                raise InferenceError(
                    "the ONNX backend runs on the CPU in float32 (or the int8 graph it was exported as): "
                    "--device, --bf16 and --channels_last are PyTorch options."
                )
            self.device, self.model = "cpu", model
        else:
            import torch

            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self.model = model.eval().to(self.device)
            if channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
        self.config = model.config
        self.processor = processor
        self.bf16, self.channels_last, self.average = bf16, channels_last, average
        self.temperature = float(getattr(self.config, "temperature", 1.0))  # calibration; 1: none
        self.preset_kwargs = eval_kwargs_from_image_processor(processor)
        self.taxonomy = Taxonomy.from_config(self.config)
        self.source = getattr(model, "name_or_path", "") or type(model).__name__  # for error messages

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, *, backend: str = "torch", **kwargs: Any) -> Predictor:
        """Check the config and the image processor, then load the weights (``AutoModelForImageClassification``);
        ``backend="onnx"``: the folder ``inat-export`` wrote (``kwargs``: ``threads`` for ONNX Runtime too)."""
        if backend not in BACKENDS:
            raise InferenceError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
        if backend == "onnx":
            from .onnx_model import OnnxClassifier

            model = OnnxClassifier.from_pretrained(model_dir, threads=kwargs.pop("threads", None))
            try:
                return cls(model, model.processor, **kwargs)
            except ValueError as err:  # a config or processor the inference path cannot read
                if isinstance(err, InferenceError):
                    raise
                raise InferenceError(f"{os.fspath(model_dir)!r}: {err}") from err
        from transformers import AutoModelForImageClassification

        load_config(model_dir)  # clear errors first, before the (slow) weight loading
        processor = load_image_processor(model_dir)
        path = _local_path(model_dir) or os.fspath(model_dir)
        try:
            model = AutoModelForImageClassification.from_pretrained(path)
        except Exception as err:  # noqa: BLE001 - a damaged weights file fails in many ways (safetensors, torch)
            raise InferenceError(f"could not load the weights {_weights_file(path)}: {_one_line(err)}") from err
        return cls(model, processor, **kwargs)

    @functools.cached_property
    def backoff_groups(self) -> RankGroups | None:
        """The taxonomy's groups for taxonomic back-off (``predict(backoff=...)``); ``None`` without a taxonomy or
        a rank that separates the labels."""
        groups = RankGroups.from_taxonomy(self.taxonomy) if self.taxonomy.ranks else None
        return groups if groups is not None and groups.ranks else None

    def transform(self, num_views: int = 1):
        """One image -> ``[3, S, S]`` (``num_views == 1``: :class:`EvalPreset`) or ``[V, 3, S, S]`` (TTA); numpy
        arrays from :class:`ArrayPreset` for the ONNX backend."""
        if self.backend == "onnx":
            return ArrayPreset(num_views=num_views, **self.preset_kwargs)
        from ..data.transforms import EvalPreset, TTAPreset

        if num_views == 1:
            return EvalPreset(**self.preset_kwargs)
        return TTAPreset(num_views=num_views, **self.preset_kwargs)

    def loader(self, dataset, collate_fn, *, batch_size: int, num_workers: int):
        """The items in order, in batches (pinned memory when the model is on CUDA; ONNX: threads, no torch)."""
        if self.backend == "onnx":
            return _batches(dataset, collate_fn, batch_size, num_workers)
        from torch.utils.data import DataLoader

        pin_memory = self.device.type == "cuda"
        return DataLoader(dataset, batch_size, collate_fn=collate_fn, num_workers=num_workers, pin_memory=pin_memory)

    def scores(self, pixel_values, **fusion) -> tuple[Any, dict[str, Any]]:
        """``[B, V, 3, S, S]`` (or ``[B, 3, S, S]``) -> (per-view logits ``[B, V, C]``, :func:`~.tta.score`'s runs;
        ``fusion``: its ``geo``, ``locations``, ``rows``): tensors, or numpy arrays with the ONNX backend.
        Non-finite logits raise :class:`InferenceError` naming the checkpoint: softmax would turn them into NaN
        probabilities and an arbitrary ranking."""
        if self.backend == "onnx":
            logits = self.model(pixel_values)
        else:
            logits = tta.view_logits(self.model, pixel_values, bf16=self.bf16, channels_last=self.channels_last)
        finite = _numpy(tta.array_module(logits).isfinite(logits))
        if not finite.all():
            raise InferenceError(
                f"the model {self.source} produced non-finite logits (NaN/Inf) for "
                f"{int((~finite).any(-1).sum())} of {logits.shape[0] * logits.shape[1]} views: its "
                "weights are damaged or overflow. Re-download or re-save the checkpoint."
            )
        return logits, tta.score(logits, average=self.average, temperature=self.temperature, **fusion)

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
        unusual_below: float | None = None,
    ) -> Iterator[ImagePrediction]:
        """Top-k predictions for ``images`` (paths, bytes, PIL images, ...), yielded in input order per batch; an
        image that cannot be read yields an :class:`ImagePrediction` with ``error`` set.

        ``geo`` (a ``GeoFusion``) with ``locations`` (one ``Location`` or ``None`` per image): fused with the
        location/date prior (no location: image only). ``backoff`` (a ``RankGroups``): also the finest rank whose
        summed probability reaches ``backoff_threshold``. ``unusual_below`` (with ``geo``): flag a top answer whose
        prior ratio ``p(y | place, date) / p(y)`` is below it ("unusual here and now").
        """
        records = None
        if geo is not None:
            if locations is None or len(locations) != len(images):
                raise InferenceError("fusion with a location prior needs one location (or None) per image.")
            records, locations = geo.photo_records(locations, [image_name(x) for x in images])
        items = _ImageList(images, self.transform(num_views))
        loader = self.loader(items, _collate_items, batch_size=batch_size, num_workers=num_workers)
        with tqdm(total=len(images), unit="img", desc="predict", disable=None if progress else True) as bar:
            for positions, pixel_values, errors in loader:
                results = {p: ImagePrediction(p, image_name(images[p]), error=e) for p, e in errors}
                if pixel_values is not None:
                    _, runs = self.scores(pixel_values, geo=geo, locations=records, rows=np.asarray(positions))
                    scores = runs["fused" if geo is not None else "image"]
                    probs, indices = (_numpy(t) for t in tta.top_k(scores, top_k))
                    answers = [None] * len(positions)
                    if backoff is not None:
                        answers = backoff_answer(_numpy(tta.softmax(scores)), backoff, backoff_threshold)
                    ratios = [None] * len(positions)
                    if geo is not None and unusual_below is not None:
                        ratios = geo.prior_ratio(records, np.asarray(positions), indices[:, 0]).tolist()
                    for row, p in enumerate(positions):
                        location = locations[p].to_dict() if geo is not None else None
                        unusual = None
                        if ratios[row] is not None and location["location_used"]:
                            unusual = {"prior_ratio": ratios[row], "unusual_here": ratios[row] < unusual_below}
                        results[p] = ImagePrediction(
                            p,
                            image_name(images[p]),
                            indices[row],
                            probs[row],
                            location=location,
                            backoff=answers[row],
                            unusual=unusual,
                        )
                bar.update(len(results))
                yield from (results[p] for p in sorted(results))
