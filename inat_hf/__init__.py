"""inat_hf: Hugging Face-native fine-tuning of timm backbones on iNaturalist 2021 animals.

``import inat_hf`` is cheap: it imports neither torch nor transformers, so the command-line tools start with their
own imports. The model lives in :mod:`inat_hf.models`; importing it registers ``model_type="inat"`` with
transformers' Auto classes (``AutoConfig``, ``AutoModelForImageClassification``, ``pipeline``)::

    import inat_hf.models  # noqa: F401 -- registers the Auto classes
    model = AutoModelForImageClassification.from_pretrained("runs/demo/model")

Saved checkpoints also carry ``auto_map`` (``trust_remote_code=True`` loads them without inat_hf installed).
``inat_hf.InatConfig`` and ``inat_hf.InatForImageClassification`` import :mod:`inat_hf.models` on first access.
"""

__version__ = "0.1.0"

__all__ = ["InatConfig", "InatForImageClassification", "__version__"]


def __getattr__(name: str):
    if name in ("InatConfig", "InatForImageClassification"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'inat_hf' has no attribute {name!r}")
