"""The classifier as a web page (Gradio, ``scripts/app.py``) and its Hugging Face Spaces export.

:class:`ClassifierPage` wraps the :class:`~inat_hf.inference.predictor.Predictor` of ``predict.py``, so the two
always agree. A request is :class:`PageInputs` -> :meth:`ClassifierPage.classify` -> :class:`PageResult`; bad input
(not an image, too large, an impossible latitude or date) becomes a message on the page, never an exception, so one
bad upload never takes the server down. Gradio is optional (``pip install -e ".[app]"``); the page runs offline.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from huggingface_hub import hf_hub_download, metadata_load
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

from .data.image_check import DEFAULT_MAX_IMAGE_PIXELS
from .data.taxonomy import Taxonomy
from .geo.arguments import DEFAULT_UNUSUAL_BELOW
from .inference.backoff import DEFAULT_BACKOFF_THRESHOLD, describe_backoff
from .inference.errors import InferenceError
from .inference.predictor import ImagePrediction, Predictor, load_config, load_image_processor

if TYPE_CHECKING:
    from .geo.fusion import GeoFusion

logger = logging.getLogger(__name__)

TOP_K = 5
PREVIEW_SIZE = 384  # px, longer side of the photo shown back on the page
RECIPE_FILE = "run_config.yaml"  # the run's resolved recipe, saved next to the model by training
SPACE_GEO_PRIOR = "geo_prior"  # the prior's folder inside an exported Space
# Gradio keeps every upload (and every preview it serves) unless told otherwise: every 5 minutes, the files of this
# page older than 15 minutes are deleted (gr.Blocks' delete_cache: frequency, age in seconds). A visitor's photo is
# classified at once; toggling TTA or typing a location re-reads it, so it is kept a while, not for ever.
DELETE_CACHE = (300, 900)

CSS = """
#inat-result table { width: 100%; border-collapse: collapse; }
#inat-result th, #inat-result td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #ddd; }
#inat-result .inat-lineage { font-size: 0.85em; color: #555; }
#inat-result .inat-backoff { font-size: 1.1em; margin: 8px 0; }
#inat-result .inat-unusual { color: #b45309; margin: 8px 0; }
.inat-error { color: #a40000; background: #fff0f0; border: 1px solid #e0b0b0; padding: 8px 12px; border-radius: 6px; }
"""


class GradioMissingError(ImportError):
    """gradio is not installed; the message says how to install it."""


def import_gradio():
    """``import gradio`` (no analytics, no version check over the network); a clear error if it is missing."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError as err:
        raise GradioMissingError(
            f"the web app needs gradio, which is not installed ({err}). Install it with: "
            'pip install -e ".[app]"  (from a checkout of inat_hf; or: pip install "gradio>=6,<7")'
        ) from err
    return gradio


@dataclasses.dataclass
class PageInputs:
    """One request: the uploaded file's path, the name the visitor knows it by (uploads live under a temporary
    path), TTA on/off, and where/when the photo was taken for the location prior (all empty: its EXIF)."""

    photo: str | None
    display_name: str | None = None
    tta: bool = False
    latitude: float | None = None
    longitude: float | None = None
    date: str | None = None


@dataclasses.dataclass
class PageResult:
    """What the page shows: the result table or error box (``html``), ``{name: probability}`` for ``gr.Label``, a
    thumbnail of the photo as decoded, the error message (``None`` on success), the predictor's answer and, with a
    location prior, the top answer's predicted range (a PIL image, the photo's location marked)."""

    html: str
    label: dict[str, float] | None = None
    preview: Any = None
    error: str | None = None
    prediction: ImagePrediction | None = None
    range_map: Any = None


def describe_location(location: dict[str, Any] | None) -> str:
    """Whether the prior used a location/date and where they came from (``ImagePrediction.location``)."""
    if location is None:
        return ""
    if not location["location_used"]:
        if location.get("location_problem"):
            return f"image only: invalid location ({location['location_problem']}); type one in"
        return "image only: no location (type one in, or upload a photo with GPS in its EXIF)"
    source = {k: "from EXIF" if v == "exif" else v or "" for k, v in location.items() if k.endswith("_source")}
    where = f"location {location['latitude']:.4f}, {location['longitude']:.4f} ({source['location_source']})"
    when = f"date {location['date']} ({source['date_source']})" if location["date_used"] else "no date"
    return f"location prior used: {where}, {when}"


def render_result(
    prediction: ImagePrediction,
    taxonomy: Taxonomy,
    *,
    num_views: int,
    seconds: float,
    backoff_threshold: float = DEFAULT_BACKOFF_THRESHOLD,
) -> str:
    """The top-k table (rank, probability, names, taxonomy path; ``data-rank`` marks the rows), the back-off
    answer, and how the answer was computed (views; the location/date used and where they came from)."""
    rows = []
    for rank, (index, prob) in enumerate(zip(prediction.indices, prediction.probs), start=1):
        info = taxonomy.describe(index)
        lineage = " → ".join(html.escape(v) for v in info["taxonomy"].values())
        rows.append(
            f'<tr data-rank="{rank}"><td>{rank}</td><td class="inat-prob">{prob:.1%}</td>'
            f'<td class="inat-label"><i>{html.escape(info["label"])}</i></td>'
            f'<td class="inat-common">{html.escape(info["common_name"] or "")}</td>'
            f'<td class="inat-lineage">{lineage}</td></tr>'
        )
    views = f"{num_views}-view test-time augmentation" if num_views > 1 else "a single center-crop view"
    head = "<tr><th>#</th><th>probability</th><th>scientific name</th><th>common name</th><th>taxonomy</th></tr>"
    backoff = describe_backoff(prediction.backoff, backoff_threshold)  # predict.py's words
    unusual = None
    if prediction.unusual is not None:
        from .geo.fusion import describe_unusual

        unusual = describe_unusual(prediction.unusual, taxonomy.labels[prediction.indices[0]])
    location = describe_location(prediction.location)
    return (
        '<div id="inat-result">'
        + (f'<p class="inat-backoff">{html.escape(backoff)}</p>' if backoff else "")
        + (f'<p class="inat-unusual">⚠ {html.escape(unusual)}</p>' if unusual else "")
        + f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
        + (f'<p class="inat-location">{html.escape(location)}</p>' if location else "")
        + f'<p class="inat-note">Top {len(rows)} of {taxonomy.num_labels} {html.escape(taxonomy.rank or "labels")}'
        f" · {views} · {seconds * 1000:.0f} ms</p></div>"
    )


def render_error(message: str) -> str:
    return f'<div id="inat-error" class="inat-error" role="alert"><b>Could not classify this file.</b> {html.escape(message)}</div>'


def _model_yaml(model_id: str, name: str) -> dict:
    """The YAML file ``name`` (a model card: its front matter) of a local checkpoint or a cached / downloadable Hub
    repo, as a dict; ``{}`` when absent or malformed (the page then shows the config's facts only)."""
    local = os.path.expanduser(model_id)
    try:
        path = os.path.join(local, name) if os.path.isdir(local) else hf_hub_download(model_id, name)
        data = metadata_load(path) if name.endswith(".md") else yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, OSError) as err:
        logger.info("%s: no %s (%s)", model_id, name, err)
        return {}
    except (yaml.YAMLError, ValueError) as err:
        logger.warning("could not parse %s of %s: %s", name, model_id, err)
        return {}
    return data if isinstance(data, dict) else {}


def model_summary(model_id: str, config: Any, taxonomy: Taxonomy) -> str:
    """Markdown: backbone, input size, label space and, when the checkpoint has them, the training data (its
    recipe) and reported results (its model card)."""
    lines = [f"**Model** `{model_id}`"]
    arch = [f"`{getattr(config, 'backbone', config.model_type)}`"]
    if getattr(config, "attn_layer", None) not in (None, "none"):
        arch.append(f"`{config.attn_layer}` attention")
    if getattr(config, "image_size", None):
        arch.append(f"{config.image_size} px input")
    lines.append("- architecture: " + ", ".join(arch))
    rank = taxonomy.rank or "label"
    per_rank = ", ".join(f"{r} {len(set(v))}" for r, v in taxonomy.ranks.items() if r != rank)
    lines.append(f"- labels: **{taxonomy.num_labels}** at rank **{rank}**")
    lines[-1] += f" (distinct names per rank: {per_rank})" if per_rank else ""

    data = _model_yaml(model_id, RECIPE_FILE).get("data") or {}
    if data:
        source = data.get("dataset_dir") or data.get("data_dir") or "?"
        facts = [f"`{source}`", f"split `{data.get('train_split', 'train')}`"]
        if data.get("taxon") and not data.get("dataset_dir"):
            facts.append(f"taxa `{data['taxon']}`")
        if data.get("max_train_samples"):
            facts.append(f"first {data['max_train_samples']} images")
        lines.append("- training data: " + ", ".join(facts) + f" (from `{RECIPE_FILE}`)")
    card = _model_yaml(model_id, "README.md")
    for entry in card.get("model-index") or []:
        for result in entry.get("results") or []:
            dataset = result.get("dataset") or {}
            metrics = ", ".join(f"{m.get('name')} {m.get('value')}" for m in result.get("metrics") or [])
            if metrics:
                lines.append(f"- reported on {dataset.get('name', '?')} `{dataset.get('split', '?')}`: {metrics}")
    return "\n".join(lines)


@dataclasses.dataclass(eq=False)
class ClassifierPage:
    """The web page of a classifier: ``predictor`` (as ``predict.py`` loads it), ``model_id`` (shown; its recipe
    and model card are read), ``tta_views`` (when the visitor turns TTA on), one-click ``examples``, images over
    ``max_image_pixels`` refused with a message, ``geo`` (a ``GeoFusion`` aligned to the model's labels: the page
    then takes a location and date), ``backoff_threshold`` and ``unusual_below`` (as ``predict.py``'s)."""

    predictor: Predictor
    _: dataclasses.KW_ONLY
    model_id: str
    tta_views: int
    examples: Sequence[str] = ()
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    title: str | None = None
    geo: GeoFusion | None = None
    backoff_threshold: float = DEFAULT_BACKOFF_THRESHOLD
    unusual_below: float = DEFAULT_UNUSUAL_BELOW

    def __post_init__(self):
        if not 0 < self.backoff_threshold <= 1:
            raise ValueError(f"backoff_threshold must be in (0, 1], got {self.backoff_threshold}.")
        self.examples = [os.path.abspath(p) for p in self.examples]
        self.title = self.title or f"inat_hf · {os.path.basename(os.path.normpath(self.model_id))}"
        self.summary = model_summary(self.model_id, self.predictor.config, self.predictor.taxonomy)
        if self.geo is not None:
            facts = self.geo.summary()
            self.summary += (
                f"\n- location/date prior: `{self.geo.model.name_or_path}` ({facts['loss']} loss, "
                f"{facts['num_prior_labels']} labels, fusion weight {facts['fusion_weight']:g}); answers it finds "
                f"{1 / self.unusual_below:g}× rarer than average at the place and date are flagged"
            )
        if self.predictor.config.temperature != 1:
            self.summary += (
                f"\n- calibrated: logits divided by the temperature {self.predictor.config.temperature:.3g}"
            )
        if self.predictor.backoff_groups:
            self.summary += f"\n- taxonomic back-off threshold: {self.backoff_threshold:g}"

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str,
        *,
        geo_prior: str | os.PathLike | None = None,
        predictor_kwargs: dict | None = None,
        **kwargs: Any,
    ) -> ClassifierPage:
        """The page of ``model_dir`` (loaded as ``predict.py`` loads it), fused with the location prior saved in
        ``geo_prior`` when given (as ``predict.py --geo_prior``)."""
        predictor = Predictor.from_pretrained(model_dir, **(predictor_kwargs or {}))
        geo = None
        if geo_prior is not None:
            from .geo.fusion import GeoFusion

            geo = GeoFusion.for_predictor(geo_prior, predictor)
        return cls(predictor, model_id=model_dir, geo=geo, **kwargs)

    def _check_size(self, path: str, name: str) -> None:
        """:class:`InferenceError` when the image is too large to decode here (when PIL cannot read it at all, the
        predictor says so, in ``predict.py``'s words)."""
        import PIL.Image

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
                with PIL.Image.open(path) as img:
                    width, height = img.size
        except PIL.Image.DecompressionBombError as err:
            raise InferenceError(f"{name} is too large to classify here: {err}") from err
        except Exception:  # not an image / corrupt: the predictor's decoder says what it found
            return
        if width * height > self.max_image_pixels:
            raise InferenceError(
                f"{name} is {width}×{height} px ({width * height / 1e6:.0f} MP); this page accepts images up to "
                f"{self.max_image_pixels / 1e6:.0f} MP. Downscale it and upload it again."
            )

    def _locations(self, path: str, inputs: PageInputs):
        """As ``predict.py --lat/--lon/--date``: the typed values (checked), else the photo's EXIF; no prior: None."""
        if self.geo is None:
            if inputs.latitude is not None or inputs.longitude is not None or (inputs.date or "").strip():
                raise InferenceError(
                    "this page has no location prior (start it with --geo_prior DIR): the location was not used."
                )
            return None
        from .geo.fusion import photo_locations

        try:
            return photo_locations([path], inputs.latitude, inputs.longitude, inputs.date, source="typed in")
        except InferenceError as err:
            raise InferenceError(
                f"{err} Correct the location fields (or empty them to use the photo's EXIF)."
            ) from err

    def classify(self, inputs: PageInputs) -> PageResult:
        """One photo -> the page's answer. Never raises for bad input: the message goes into the result."""
        if not inputs.photo:
            return PageResult(html="")
        path = os.fspath(inputs.photo)
        name = inputs.display_name or os.path.basename(path)
        num_views = self.tta_views if inputs.tta else 1
        start = time.perf_counter()
        prediction = None
        try:
            self._check_size(path, name)
            (prediction,) = self.predictor.predict(
                [path],
                top_k=TOP_K,
                num_views=num_views,
                batch_size=1,
                geo=self.geo,
                locations=self._locations(path, inputs),
                backoff=self.predictor.backoff_groups,
                backoff_threshold=self.backoff_threshold,
                unusual_below=self.unusual_below,
            )
            error = prediction.error
        except InferenceError as err:  # too large, a bad location, or no usable scores for this image
            error = str(err)
        if error is not None:
            # Uploads live under a temporary path the visitor never saw: name the file as they know it.
            error = error.replace(path, name)
            logger.info("request failed: %s", error)
            return PageResult(html=render_error(error), error=error, prediction=prediction)
        seconds = time.perf_counter() - start
        taxonomy = self.predictor.taxonomy
        label = {}  # "scientific (common)": probability, for gr.Label
        for i, p in zip(prediction.indices, prediction.probs):
            common = taxonomy.common_names[i]
            label[f"{taxonomy.labels[i]} ({common})" if common else taxonomy.labels[i]] = float(p)
        return PageResult(
            html=render_result(
                prediction, taxonomy, num_views=num_views, seconds=seconds, backoff_threshold=self.backoff_threshold
            ),
            label=label,
            preview=self._preview(path),
            prediction=prediction,
            range_map=self._range_map(prediction),
        )

    def _range_map(self, prediction: ImagePrediction):
        """The prior's range of the top answer (the month of the photo's date, if used), the photo's place marked."""
        if self.geo is None:
            return None
        from .geo.range_map import render_range_map

        where = prediction.location or {}
        mark = (where["latitude"], where["longitude"]) if where.get("location_used") else None
        month = int(where["date"].replace(":", "-")[5:7]) if where.get("date_used") else None  # checked YYYY-MM-DD…
        top = prediction.indices[0]
        label = int(self.geo.index[top])
        return render_range_map(
            self.geo.model, label, month=month, resolution=2.0, mark=mark, title=self.predictor.taxonomy.labels[top]
        )

    @staticmethod
    def _preview(path: str):
        import PIL.Image

        from .data.decode import decode_array

        image = PIL.Image.fromarray(decode_array(path))  # decoded as the model sees it (EXIF orientation applied)
        image.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
        return image

    def build(self):
        """The ``gr.Blocks`` page, queue enabled (one prediction at a time; the others wait in line)."""
        gr = import_gradio()

        def on_upload(file_path, tta, *where):
            # Gradio keeps the visitor's file name as the last path component of its upload copy.
            lat, lon, date = where or (None, None, None)  # the location fields exist with a prior only
            result = self.classify(PageInputs(file_path, tta=bool(tta), latitude=lat, longitude=lon, date=date))
            return result.label, result.html, result.preview, *([result.range_map] if self.geo is not None else [])

        def on_example(evt, tta, *where):
            path = self.examples[evt.index]  # an index into the server's list: the browser names no path
            return path, *on_upload(path, tta, *where)

        # Gradio passes the click to the parameter annotated gr.SelectData; set here because `gr` is a local name.
        on_example.__annotations__["evt"] = gr.SelectData

        with gr.Blocks(title=self.title, analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
            gr.Markdown(f"# {html.escape(self.title)}\nDrop a photo of an animal to see the model's top {TOP_K}.")
            with gr.Row():
                with gr.Column(scale=1):
                    photo = gr.File(label="Photo", elem_id="inat-photo")  # a filepath, one file (the defaults)
                    views = f"Test-time augmentation ({self.tta_views} views, slower)"
                    tta = gr.Checkbox(label=views, elem_id="inat-tta")
                    where = []
                    if self.geo is not None:
                        with gr.Group():
                            gr.Markdown(
                                "Where and when (optional; empty: read from the photo's EXIF). Press Enter in a "
                                "field to classify again."
                            )
                            with gr.Row():
                                where = [
                                    gr.Number(label="Latitude", elem_id="inat-lat"),
                                    gr.Number(label="Longitude", elem_id="inat-lon"),
                                    gr.Textbox(label="Date", placeholder="YYYY-MM-DD", elem_id="inat-date"),
                                ]
                    preview = gr.Image(label="Your photo", interactive=False, height=PREVIEW_SIZE)
                    if self.examples:
                        gallery = gr.Gallery(
                            self.examples,
                            label="Examples (click one)",
                            columns=3,
                            allow_preview=False,
                            elem_id="inat-examples",
                        )
                with gr.Column(scale=2):
                    label = gr.Label(num_top_classes=TOP_K, label="Top predictions", elem_id="inat-label")
                    details = gr.HTML(elem_id="inat-details")
                    ranges = []
                    if self.geo is not None:
                        ranges = [gr.Image(label="Predicted range of the top answer", elem_id="inat-range")]
                    with gr.Accordion("About this model"):
                        gr.Markdown(self.summary, elem_id="inat-model")
            outputs = [label, details, preview, *ranges]
            # a new photo, or the same photo with a new TTA setting or location
            triggers = [photo.upload, tta.input, *(field.submit for field in where)]
            gr.on(triggers, on_upload, inputs=[photo, tta, *where], outputs=outputs)
            photo.clear(lambda: (None, "", None, *(None for _ in ranges)), outputs=outputs)
            if self.examples:
                gallery.select(on_example, inputs=[tta, *where], outputs=[photo, *outputs])
        demo.queue(default_concurrency_limit=1, max_size=64)
        return demo

    def launch(self, demo=None, *, host: str = "127.0.0.1", port: int | None = None, share: bool = False, **kwargs):
        """Build (unless given) and serve the page; blocks unless ``prevent_thread_lock=True``."""
        demo = demo or self.build()
        return demo.launch(
            server_name=host,
            server_port=port,
            share=share,
            css=CSS,
            allowed_paths=sorted({os.path.dirname(p) for p in self.examples}),
            ssr_mode=False,
            **kwargs,
        )


# -- Hugging Face Spaces -----------------------------------------------------------------------------------------------

_SPACE_APP = '''"""Hugging Face Space: the image classifier {model_id!r} as a web page, written by inat_hf's
`scripts/app.py --export_space` (the `inat_hf` folder next to this file is the library it was exported from).
Set the MODEL_ID variable of the Space to serve another checkpoint."""

import os

from inat_hf.app import ClassifierPage

MODEL_ID = os.environ.get("MODEL_ID", {model_line})
{geo_line}
page = ClassifierPage.from_pretrained(
    MODEL_ID,
    tta_views={tta_views},
    geo_prior={geo_arg},
    backoff_threshold={backoff_threshold!r},
    predictor_kwargs={{"backend": {backend!r}}},
)
demo = page.build()

if __name__ == "__main__":
    page.launch(demo, host="0.0.0.0", port=int(os.environ.get("PORT", 7860)))
'''
_SPACE_GEO_LINES = f"""# The location/date prior: the folder {SPACE_GEO_PRIOR}/ next to this file (GEO_PRIOR: another one).
GEO_PRIOR = os.environ.get("GEO_PRIOR", os.path.join(os.path.dirname(__file__), {SPACE_GEO_PRIOR!r}))
"""
_SPACE_GEO_README = f"""Where and when the photo was taken (typed in, or read from its EXIF) refine the answer through the
location/date prior in `{SPACE_GEO_PRIOR}/`.

"""


SPACE_ONNX_MODEL = "model"  # the exported ONNX folder inside a Space
# What the page imports with the ONNX backend (no torch, transformers, timm, datasets): a small Space.
ONNX_RUNTIME_REQUIREMENTS = ("numpy", "pillow", "onnxruntime", "huggingface_hub", "pyyaml", "tqdm")


def _space_requirements(backend: str = "torch") -> list[str]:
    """The runtime dependencies of inat_hf (``backend="onnx"``: :data:`ONNX_RUNTIME_REQUIREMENTS` only), pinned to
    the versions installed here (what the page was tested with). gradio itself is installed by Spaces from
    ``sdk_version``."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        declared = metadata.requires("inat_hf") or []
    except metadata.PackageNotFoundError as err:
        raise InferenceError(
            "inat_hf is not installed (no package metadata), so the Space's requirements are unknown: "
            'run `pip install -e ".[app]"` in the checkout first.'
        ) from err
    if backend == "onnx":
        declared = [*ONNX_RUNTIME_REQUIREMENTS]
    pins = []
    for req in map(Requirement, declared):
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra (dev, app, ...): not needed to serve the page
        try:
            pins.append(f"{req.name}=={metadata.version(req.name)}")
        except metadata.PackageNotFoundError:  # not installed here: as declared
            pins.append(str(req))
    return pins


def export_space(
    out_dir: str | os.PathLike,
    model_id: str,
    *,
    tta_views: int,
    title: str | None = None,
    geo_prior: str | os.PathLike | None = None,
    backoff_threshold: float = DEFAULT_BACKOFF_THRESHOLD,
    backend: str = "torch",
) -> Path:
    """Write a Hugging Face Space for ``model_id`` (a Hub id, or a local folder for testing) into ``out_dir`` (new
    or empty): ``app.py``, ``requirements.txt``, ``README.md`` (front matter ``sdk: gradio``), a copy of the
    ``inat_hf`` package and, with ``geo_prior``, a copy of that prior folder, fused as ``predict.py --geo_prior``.
    ``backend="onnx"``: ``model_id`` is a folder written by ``inat-export``, copied into the Space
    (:data:`SPACE_ONNX_MODEL`), which then needs neither torch nor transformers (:data:`ONNX_RUNTIME_REQUIREMENTS`).
    """
    from .geo.fusion import GeoFusion

    gr = import_gradio()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InferenceError(f"--export_space folder {os.fspath(out)!r} is not empty: give a new or empty folder.")
    labels = []  # a Hub id: the prior's labels are checked when the Space starts
    if backend == "onnx":
        if geo_prior is not None:
            raise InferenceError(
                "an ONNX Space serves without torch, and the location prior is a PyTorch model: export the Space "
                "without --geo_prior, or with --backend torch."
            )
        Predictor.from_pretrained(model_id, backend="onnx")  # an exported folder that loads, or a clear error
    elif os.path.isdir(os.path.expanduser(model_id)):  # a local folder (testing): it must be a loadable model
        labels = Taxonomy.from_config(load_config(model_id)).labels
        load_image_processor(model_id)
    if geo_prior is not None:  # a saved prior that covers the model's labels, or the Space would fail at start
        GeoFusion.from_pretrained(geo_prior, labels)
    requirements = _space_requirements(backend)
    out.mkdir(parents=True, exist_ok=True)
    package = Path(__file__).resolve().parent
    shutil.copytree(package, out / "inat_hf", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if backend == "onnx":
        shutil.copytree(os.path.expanduser(model_id), out / SPACE_ONNX_MODEL)
    geo = geo_prior is not None
    if geo:
        shutil.copytree(os.path.expanduser(os.fspath(geo_prior)), out / SPACE_GEO_PRIOR)
    here = f"os.path.join(os.path.dirname(__file__), {SPACE_ONNX_MODEL!r})"
    app = _SPACE_APP.format(
        model_id=model_id,
        model_line=here if backend == "onnx" else repr(model_id),
        tta_views=tta_views,
        backoff_threshold=backoff_threshold,
        geo_line=_SPACE_GEO_LINES if geo else "",
        geo_arg="GEO_PRIOR" if geo else "None",
        backend=backend,
    )
    (out / "app.py").write_text(app, encoding="utf-8")
    (out / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    front = {
        "title": title or f"inat_hf {model_id.rstrip('/').split('/')[-1]}",
        "emoji": "🦋",
        "colorFrom": "green",
        "colorTo": "blue",
        "sdk": "gradio",
        "sdk_version": gr.__version__,
        "python_version": "3.11",
        "app_file": "app.py",
        "pinned": False,
        "license": "apache-2.0",
        "models": [model_id],
        "tags": ["image-classification", "inaturalist", "inat_hf"],
    }
    readme = f"""---
{yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip()}
---

# {front["title"]}

Drop a photo and see the top {TOP_K} of [`{model_id}`](https://huggingface.co/{model_id}): probabilities,
scientific and common names and the taxonomy path. The page calls the same predictor as inat_hf's
`predict.py` (same preprocessing, test-time augmentation and labels).

{_SPACE_GEO_README if geo else ""}Run it locally: `pip install -r requirements.txt gradio=={gr.__version__} && python app.py`.
"""
    (out / "README.md").write_text(readme, encoding="utf-8")
    return out
