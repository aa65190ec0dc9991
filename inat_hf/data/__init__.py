"""Data: the iNat 2021 → Arrow builder, the taxonomy helper, demo data, transform presets and collation."""

from .builder import InatBuilder, InatBuilderConfig
from .collate import ImageClassificationCollator
from .decode import ImageDecodeError, decode_image
from .demo import write_demo_dataset
from .inat_json import InatDataError
from .prepare import PreparedInat, format_summary, load_inat, load_prepared, prepare_inat, save_prepared
from .taxonomy import RANKS, Taxonomy, parse_taxon_filter
from .torch_dataset import ImageClassificationDataset
from .transforms import (
    TTA_VIEWS,
    AugmentationConfig,
    EvalPreset,
    TrainPreset,
    TTAPreset,
    eval_kwargs_from_image_processor,
    make_eval_transform,
    make_train_transform,
    make_tta_transform,
)

__all__ = [
    "RANKS",
    "TTA_VIEWS",
    "AugmentationConfig",
    "EvalPreset",
    "ImageClassificationCollator",
    "ImageClassificationDataset",
    "ImageDecodeError",
    "InatBuilder",
    "InatBuilderConfig",
    "InatDataError",
    "PreparedInat",
    "TTAPreset",
    "Taxonomy",
    "TrainPreset",
    "decode_image",
    "eval_kwargs_from_image_processor",
    "format_summary",
    "load_inat",
    "load_prepared",
    "make_eval_transform",
    "make_train_transform",
    "make_tta_transform",
    "parse_taxon_filter",
    "prepare_inat",
    "save_prepared",
    "write_demo_dataset",
]
