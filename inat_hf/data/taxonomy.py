"""The taxonomy owner: how iNaturalist 2021 spells a taxon, the rank order, taxon filters and :class:`Taxonomy`
(``models/configuration_inat.py`` keeps a copy of :data:`RANKS`: it ships with checkpoints and may not import this
package). An iNat 2021 category directory name holds the whole taxonomy::

    00007_Animalia_Arthropoda_Arachnida_Araneae_Araneidae_Agalenatea_redii
    └id─┘ └kingdom┘ └phylum──┘ └class──┘ └order┘ └family─┘ └genus───┘ └epithet┘
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# Ranks from the root down. "species" is the binomial name ("Agalenatea redii"), built from genus + epithet.
RANKS: tuple[str, ...] = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
# Taxonomy keys of an iNat 2021 category record, besides id / name / common_name / image_dir_name.
CATEGORY_RANK_KEYS: tuple[str, ...] = (*RANKS[:-1], "specific_epithet")

_DIR_NAME_RE = re.compile(r"^(\d+)_([^_/]+)_([^_/]+)_([^_/]+)_([^_/]+)_([^_/]+)_([^_/]+)_([^/]+)$")
DIR_NAME_PATTERN = "<id>_<Kingdom>_<Phylum>_<Class>_<Order>_<Family>_<Genus>_<epithet>"


def species_name(genus: str, specific_epithet: str) -> str:
    """The binomial name used as the species label, e.g. ``species_name("Agalenatea", "redii")``."""
    return f"{genus} {specific_epithet}"


def parse_image_dir_name(dir_name: str) -> dict[str, Any] | None:
    """Parse ``00007_Animalia_..._Agalenatea_redii`` into a record with the keys of an iNat 2021 ``categories`` entry
    (``common_name`` and ``supercategory`` unknown: None); ``None`` if the name is not of that form."""
    match = _DIR_NAME_RE.match(dir_name)
    if match is None:
        return None
    cat_id, *ranks, epithet = match.groups()
    record: dict[str, Any] = dict(zip(CATEGORY_RANK_KEYS[:-1], ranks))
    record.update(
        id=int(cat_id),
        specific_epithet=epithet,
        name=species_name(record["genus"], epithet),
        common_name=None,
        supercategory=None,
        image_dir_name=dir_name,
    )
    return record


def parse_taxon_filter(spec: str | Mapping[str, Any] | None) -> dict[str, frozenset[str]]:
    """Parse a taxon filter such as ``kingdom=Animalia`` or ``"class=Aves|Mammalia,order=Passeriformes"``.

    Comma-separated ``rank=value`` terms are ANDed; ``|`` separates alternatives within a term. ``None``, ``""``,
    ``"none"`` and ``"all"`` mean no filter. A mapping ``{rank: value or [values]}`` is accepted too.
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        items = [(rank, [value] if isinstance(value, str) else list(value)) for rank, value in spec.items()]
    else:
        text = spec.strip()
        if text.lower() in ("", "none", "all"):
            return {}
        items = []
        for term in text.split(","):
            rank, sep, values = term.partition("=")
            if not sep or not rank.strip() or not values.strip():
                raise ValueError(
                    f"Invalid taxon filter term {term!r} in {spec!r}: expected 'rank=value' (e.g. 'kingdom=Animalia', "
                    f"'class=Aves|Mammalia'), with rank one of {', '.join(RANKS)}."
                )
            items.append((rank, values.split("|")))
    parsed: dict[str, frozenset[str]] = {}
    for rank, values in items:
        rank = rank.strip().lower()
        if rank not in RANKS:
            raise ValueError(f"Unknown rank {rank!r} in taxon filter {spec!r}; valid ranks: {', '.join(RANKS)}.")
        parsed[rank] = frozenset(v.strip() for v in values if v.strip())
    return parsed


def format_taxon_filter(taxon: Mapping[str, Iterable[str]]) -> str:
    """Inverse of :func:`parse_taxon_filter` (canonical, sorted): used for cache keys and reports."""
    if not taxon:
        return "none"
    return ",".join(f"{rank}={'|'.join(sorted(taxon[rank]))}" for rank in RANKS if rank in taxon)


def check_rank(rank: str) -> str:
    if rank not in RANKS:
        raise ValueError(f"Unknown label rank {rank!r}; expected one of {', '.join(RANKS)}.")
    return rank


@dataclasses.dataclass
class Taxonomy:
    """The label space of a dataset or model and the taxonomy of every label: THE taxonomy API of inat_hf, read by
    prediction, metrics, reports, back-off and submissions, so they agree on the ranks, their order and the groups.

    ``labels[i]``: label ``i``'s name at ``rank`` (``None`` for a classifier that is not an inat_hf model's);
    ``ranks[r][i]``: its name at rank ``r`` (in :data:`RANKS` order, whatever the source's); ``category_ids[i]``:
    the iNat category ids it covers (one for species labels); ``common_names[i]``: a species label's iNat common
    name. ``to_dict()`` is stored in the model config as ``taxonomy``; :meth:`from_config` reads it back, and this
    class is where a taxonomy is validated.
    """

    rank: str | None
    labels: list[str]
    ranks: dict[str, list[str]]
    category_ids: list[list[int]] | None = None
    common_names: list[str | None] | None = None

    def __post_init__(self) -> None:
        if self.rank is not None:
            check_rank(self.rank)
        unknown = sorted(set(self.ranks) - set(RANKS))
        if unknown:
            raise ValueError(f"Unknown rank(s) {unknown} in the taxonomy; valid ranks: {', '.join(RANKS)}.")
        self.ranks = {r: self.ranks[r] for r in RANKS if r in self.ranks}
        n = len(self.labels)
        if self.common_names is None:
            self.common_names = [None] * n
        # A taxon is one label; a plain classifier may repeat a name (ImageNet has two "crane" classes).
        if self.rank is not None and len(set(self.labels)) != n:
            raise ValueError(f"Taxonomy labels must be unique; got {n - len(set(self.labels))} duplicate(s).")
        per_label = [*self.ranks.items(), ("category_ids", self.category_ids), ("common_names", self.common_names)]
        for name, values in per_label:
            if values is not None and (not isinstance(values, (list, tuple)) or len(values) != n):
                found = f"{len(values)} entries" if isinstance(values, (list, tuple)) else f"a {type(values).__name__}"
                raise ValueError(f"Taxonomy list {name!r} has {found}, expected one per label ({n}).")

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def available_ranks(self) -> tuple[str, ...]:
        """Ranks with a name for every label, coarse to fine (the label rank always is one)."""
        return tuple(r for r in RANKS if r in self.ranks or r == self.rank)

    def names(self, rank: str | None = None) -> list[str]:
        """The name at ``rank`` (default: the label rank) of every label, in label index order."""
        rank = self.rank if rank is None else rank
        if rank == self.rank:
            return list(self.labels)
        if rank in self.ranks:
            return list(self.ranks[rank])
        raise ValueError(
            f"No per-label names for rank {rank!r}; available ranks: {', '.join(self.available_ranks) or 'none'}."
        )

    def groups(self, rank: str | None = None) -> tuple[list[str], np.ndarray]:
        """``(group_names, label_to_group [num_labels])``: the sorted distinct names at ``rank`` and each label's
        index among them, so that ``label_to_group[pred] == label_to_group[true]`` is a hit at that rank."""
        group_names, index = np.unique(np.asarray(self.names(rank), dtype=str), return_inverse=True)
        return group_names.tolist(), index.astype(np.int64)

    def rank_groups(self) -> dict[str, np.ndarray]:
        """``{rank: label_to_group}`` for every available rank, finest first: the order in which hierarchical
        accuracy, the evaluation reports and taxonomic back-off go up the tree."""
        return {rank: self.groups(rank)[1] for rank in reversed(self.available_ranks)}

    def describe(self, index: int) -> dict[str, Any]:
        """Label ``index`` for people and JSON: its name, common name, iNat category id and ``{rank: name}``."""
        index = int(index)
        ids = self.category_ids[index] if self.category_ids is not None else None
        return {
            "index": index,
            "label": self.labels[index],
            "common_name": self.common_names[index],
            "category_id": ids[0] if ids is not None and len(ids) == 1 else ids,
            "taxonomy": {rank: values[index] for rank, values in self.ranks.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "labels": list(self.labels),
            "ranks": {r: list(v) for r, v in self.ranks.items()},
            "category_ids": [list(c) for c in self.category_ids] if self.category_ids is not None else None,
            "common_names": list(self.common_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Taxonomy:
        missing = {"rank", "labels", "ranks"} - set(data)
        if missing:
            raise ValueError(f"Taxonomy dict is missing key(s) {sorted(missing)}; got keys {sorted(data)}.")
        if not isinstance(data["ranks"], Mapping):
            raise ValueError(f"Taxonomy 'ranks' must map a rank to one name per label, got {data['ranks']!r:.60}.")
        ids = data.get("category_ids")
        return cls(
            rank=data["rank"],
            labels=list(data["labels"]),
            ranks=dict(data["ranks"]),
            category_ids=[list(c) for c in ids] if ids is not None else None,
            common_names=data.get("common_names"),
        )

    @classmethod
    def from_config(cls, config: Any) -> Taxonomy:
        """The taxonomy of a model config: the labels from ``id2label``, the rest from ``config.taxonomy`` (an
        ``InatConfig``'s, which may hold only some of the keys). Any other transformers config gives its labels
        with no rank."""
        data = getattr(config, "taxonomy", None) or {}
        rank = getattr(config, "label_rank", None)
        if not isinstance(data, Mapping) or data.get("rank") not in (None, rank):
            raise ValueError(
                f"config.taxonomy must be a dict like Taxonomy.to_dict() whose 'rank' is the config's label_rank "
                f"({rank!r}); got {data!r:.80}. Pass label_rank=<the rank the labels are at>."
            )
        labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        return cls.from_dict({**data, "rank": rank, "labels": labels, "ranks": data.get("ranks") or {}})

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Taxonomy:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    @classmethod
    def from_categories(cls, categories: Sequence[Mapping[str, Any]], rank: str) -> Taxonomy:
        """The label space at ``rank`` of (filtered) category records: species by category id (stable across
        releases), higher ranks by name; never by the images a split holds, so every split shares one label space."""
        check_rank(rank)
        upper = RANKS[: RANKS.index(rank) + 1]
        groups: dict[str, dict[str, Any]] = {}
        for cat in sorted(categories, key=lambda c: c["id"]):
            values = {r: cat["species"] if r == "species" else cat[r] for r in upper}
            name = values[rank]
            group = groups.get(name)
            if group is None:
                groups[name] = {"values": values, "ids": [cat["id"]], "common": cat.get("common_name")}
                continue
            if group["values"] != values:
                # e.g. a genus name used in two families: merging them would silently mislabel images.
                raise ValueError(
                    f"Rank {rank!r} value {name!r} has inconsistent parents: category {group['ids'][0]} has "
                    f"{group['values']} but category {cat['id']} has {values}. Choose a lower label rank."
                )
            group["ids"].append(cat["id"])
        names = list(groups) if rank == "species" else sorted(groups)
        return cls(
            rank=rank,
            labels=names,
            ranks={r: [groups[n]["values"][r] for n in names] for r in upper},
            category_ids=[groups[n]["ids"] for n in names],
            common_names=[groups[n]["common"] if rank == "species" else None for n in names],
        )
