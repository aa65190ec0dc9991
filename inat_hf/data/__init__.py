"""Data: the iNat 2021 → Arrow builder, the taxonomy helper, demo data, transform presets and collation.

The names below load on first access (PEP 562), so that preparing data never imports torch: only the transform,
decoding, collation and torch-dataset modules need it.
"""

import importlib

_EXPORTS = {
    "InatBuilder": "builder",
    "InatBuilderConfig": "builder",
    "ImageClassificationCollator": "collate",
    "ImageDecodeError": "decode",
    "decode_image": "decode",
    "write_demo_dataset": "demo",
    "InatDataError": "inat_json",
    "PreparedInat": "prepare",
    "format_summary": "prepare",
    "load_prepared": "prepare",
    "prepare_inat": "prepare",
    "save_prepared": "prepare",
    "RANKS": "taxonomy",
    "Taxonomy": "taxonomy",
    "parse_taxon_filter": "taxonomy",
    "ImageClassificationDataset": "torch_dataset",
    "TTA_VIEWS": "transforms",
    "AugmentationConfig": "augmentation",
    "EvalPreset": "transforms",
    "TTAPreset": "transforms",
    "TrainPreset": "transforms",
    "eval_kwargs_from_image_processor": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
