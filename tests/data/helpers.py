"""Helpers shared by the data tests: read/write a split's JSON, prepare into a private cache."""

import json
import os

from inat_hf.data import prepare_inat


def read_json(root, split):
    with open(os.path.join(root, f"{split}.json")) as f:
        return json.load(f)


def write_json(root, split, data):
    with open(os.path.join(root, f"{split}.json"), "w") as f:
        json.dump(data, f)


def prep(root, tmp_path, **kwargs):
    """prepare_inat with a cache under tmp_path (every test its own)."""
    kwargs.setdefault("cache_dir", tmp_path / "cache")
    return prepare_inat(root, **kwargs)
