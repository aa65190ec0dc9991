"""Data: where it comes from (:mod:`.source`), the iNat 2021 → Arrow builder, the prepared folder, the taxonomy, demo
data, transform presets and collation. The names below load on first access (PEP 562): ``--help`` and preparing
data import neither datasets nor torch before they need them."""

import importlib

_EXPORTS = {
    "DataArguments": "source",
    "load_data": "source",
    "prepare_inat": "source",
    "InatBuilder": "builder",
    "PreparedInat": "prepare",
    "format_summary": "prepare",
    "load_prepared": "prepare",
    "save_prepared": "prepare",
    "InatDataError": "inat_json",
    "RANKS": "taxonomy",
    "Taxonomy": "taxonomy",
    "decode_image": "decode",
    "write_demo_dataset": "demo",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
