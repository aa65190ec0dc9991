"""The iNat classifier: config, model, focal loss; importing registers them with the transformers Auto classes.

After `import inat_hf.models`, `AutoConfig`, `AutoModelForImageClassification` and
`pipeline("image-classification", ...)` resolve `model_type="inat"` checkpoints. Saved checkpoints also carry
`auto_map` and copies of the code files, so they load with `trust_remote_code=True` where inat_hf is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .configuration_geo import GeoPriorConfig
from .configuration_inat import RANKS, InatConfig
from .image_processing_inat import image_processor_from_config
from .losses import focal_loss
from .modeling_geo import GeoPriorModel
from .modeling_inat import InatForImageClassification, InatPreTrainedModel

# exist_ok: re-importing (e.g. importlib.reload in a notebook) must not fail.
AutoConfig.register(InatConfig.model_type, InatConfig, exist_ok=True)
AutoModelForImageClassification.register(InatConfig, InatForImageClassification, exist_ok=True)
# Makes save_pretrained write `auto_map` and copy configuration_inat.py / modeling_inat.py (+ their relative
# imports) next to the weights.
InatConfig.register_for_auto_class()
InatForImageClassification.register_for_auto_class("AutoModelForImageClassification")
# The location/date prior (model_type "inat_geo"): AutoModel, with its own code shipped the same way.
AutoConfig.register(GeoPriorConfig.model_type, GeoPriorConfig, exist_ok=True)
AutoModel.register(GeoPriorConfig, GeoPriorModel, exist_ok=True)
GeoPriorConfig.register_for_auto_class()
GeoPriorModel.register_for_auto_class("AutoModel")

__all__ = [
    "RANKS",
    "GeoPriorConfig",
    "GeoPriorModel",
    "InatConfig",
    "InatForImageClassification",
    "InatPreTrainedModel",
    "focal_loss",
    "image_processor_from_config",
]
