"""inat_hf: Hugging Face-native fine-tuning of timm ResNets on iNaturalist 2021 animals.

Importing the package registers ``InatConfig`` / ``InatForImageClassification`` with the transformers Auto
classes, so ``AutoModelForImageClassification.from_pretrained(checkpoint_dir)`` works after ``import inat_hf``.
"""

from .models import InatConfig, InatForImageClassification

__version__ = "0.1.0"

__all__ = ["InatConfig", "InatForImageClassification", "__version__"]
