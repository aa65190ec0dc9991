"""Where the data comes from: :class:`DataArguments` (a prepared folder, or a raw iNat 2021 root and how to prepare it).

Placeholder with today's fields of the train recipe's ``data`` section; datageo's module of the same name (with
``load_data``) replaces it at the merge.
"""

from __future__ import annotations

import dataclasses
from typing import Literal


def _help(text: str, **kwargs):
    return dataclasses.field(metadata={"help": text}, **kwargs)


@dataclasses.dataclass
class DataArguments:
    """A prepared folder (``dataset_dir``) XOR a raw iNat 2021 root (``data_dir``) and how to prepare it."""

    data_dir: str | None = _help("Raw iNat 2021 root (JSON + JPEG folders); prepared on the fly.", default=None)
    dataset_dir: str | None = _help("A folder written by scripts/prepare_data.py --output_dir.", default=None)
    splits: str | None = _help(
        "With --data_dir: splits to prepare, e.g. 'train_mini,val' (default: those used).", default=None
    )
    rank: str = _help("With --data_dir: label rank.", default="species")
    taxon: str = _help("With --data_dir: category filter, e.g. kingdom=Animalia.", default="kingdom=Animalia")
    image_storage: Literal["path", "bytes"] | None = _help("With --data_dir: image storage.", default=None)
    resize_shorter: int | None = _help("With --data_dir: pre-resize images (shorter side, px).", default=None)
    on_bad_image: Literal["error", "skip"] = _help("With --data_dir: bad image policy.", default="error")
    verify_files: bool = _help("With --data_dir: decode every image while preparing.", default=True)
    cache_dir: str | None = _help("datasets cache root for --data_dir.", default=None)

    def __post_init__(self):
        if (self.data_dir is None) == (self.dataset_dir is None):
            raise ValueError(
                "Give exactly one data source: --data_dir (a raw iNat 2021 root) or --dataset_dir (a folder written "
                f"by scripts/prepare_data.py); got data_dir={self.data_dir!r}, dataset_dir={self.dataset_dir!r}."
            )
