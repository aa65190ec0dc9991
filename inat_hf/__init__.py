"""inat_hf: Hugging Face-native fine-tuning of timm backbones on iNaturalist 2021 animals.

``import inat_hf`` is cheap (it imports neither torch nor transformers), so the command-line tools start fast; yet
after it ``AutoConfig`` / ``AutoModelForImageClassification`` / ``pipeline("image-classification")`` resolve
``model_type="inat"`` checkpoints. How both hold: registering with the Auto classes needs the model classes, which
need torch (seconds). So the registration runs at the moment it is first needed -- when transformers' Auto module
is imported (by ``from transformers import AutoModel…``, ``pipeline``, …), before or after ``import inat_hf`` --
through an import hook (:mod:`inat_hf._registration`). ``inat_hf.InatConfig``,
``inat_hf.InatForImageClassification`` and the subpackages load on first access (PEP 562).
"""

from ._registration import register_when_auto_classes_load

__version__ = "0.1.0"

__all__ = ["InatConfig", "InatForImageClassification", "__version__"]

register_when_auto_classes_load()


def __getattr__(name: str):
    if name in ("InatConfig", "InatForImageClassification"):
        from . import models

        return getattr(models, name)
    if name in ("data", "models", "training", "inference", "commands"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'inat_hf' has no attribute {name!r}")
