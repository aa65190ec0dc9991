"""Data: the iNat 2021 → Arrow builder, the taxonomy helper, demo data, transform presets and collation."""

from .builder import InatBuilder, InatBuilderConfig
from .demo import write_demo_dataset
from .inat_json import InatDataError
from .prepare import PreparedInat, format_summary, load_inat, load_prepared, prepare_inat, save_prepared
from .taxonomy import RANKS, Taxonomy, parse_taxon_filter

__all__ = [
    "RANKS",
    "InatBuilder",
    "InatBuilderConfig",
    "InatDataError",
    "PreparedInat",
    "Taxonomy",
    "format_summary",
    "load_inat",
    "load_prepared",
    "parse_taxon_filter",
    "prepare_inat",
    "save_prepared",
    "write_demo_dataset",
]
