"""The iNat 2021 → Arrow dataset builder (a ``datasets.ArrowBasedBuilder``), driven by
:func:`inat_hf.data.source.load_data` (datasets 5.x runs no loading scripts, so it is a class used directly).

Every split's JSON is parsed (pyarrow, :mod:`.inat_json`), categories from all splits are merged into one list, the
taxon filter is applied to it and the label space built from it (identical across splits, independent of which
images a split holds). Rows are resolved with vectorised joins; only the optional per-image file checks run image
by image, in a process pool.

Caching: datasets' cache key hashes the config but not the input files, so the config also holds a fingerprint of
every JSON file's bytes (xxhash): an edited JSON rebuilds. Image files are not fingerprinted (that would read them
all): after changing images under an unchanged JSON, rebuild with ``--force_rebuild``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from ..files import printable_path
from .image_check import DEFAULT_MAX_IMAGE_PIXELS, check_images
from .inat_json import (
    METADATA_FIELDS,
    InatDataError,
    InatJson,
    _listing,
    categories_from_dir_names,
    categories_per_image,
    categories_to_records,
    check_unique_file_names,
    invalid_locations,
    read_inat_json,
)
from .taxonomy import RANKS, Taxonomy, format_taxon_filter, parse_taxon_filter

STANDARD_SPLITS = ("train", "train_mini", "val", "public_test")
TAXONOMY_FILE = "taxonomy.json"
REPORT_FILE = "prepare_report.json"
_SUMMARY, _SPLIT_REPORT = "categories_summary.json", "split_report_{split}.json"  # report parts in the cache
_TABLE_ROWS = 50_000  # rows per Arrow table handed to the writer when no per-image work is needed
_CHECK_CHUNK = 256  # images per worker task when files are checked or embedded


def parse_splits(splits: str | None, data_dir: str) -> dict[str, str]:
    """``"train,val"`` / ``"train=train_60.json,val"`` → ``{split name: json path}``; ``None``: every standard iNat
    2021 file present (train, train_mini, val, public_test)."""
    if not splits:
        found = {s: os.path.join(data_dir, f"{s}.json") for s in STANDARD_SPLITS}
        found = {s: p for s, p in found.items() if os.path.isfile(p)}
        if not found:
            present = sorted(f for f in os.listdir(data_dir) if f.endswith(".json"))
            raise InatDataError(
                f"No iNat 2021 split file ({', '.join(s + '.json' for s in STANDARD_SPLITS)}) in {data_dir}; "
                f"JSON files there: {present or 'none'}. Name the files with --splits name=file.json."
            )
        return found
    resolved: dict[str, str] = {}
    for item in filter(None, map(str.strip, splits.split(","))):
        name, _, file = map(str.strip, item.partition("="))
        file = file or f"{name}.json"
        if not name.replace("_", "").isalnum():
            raise InatDataError(f"Invalid split name {name!r}: use letters, digits and underscores (e.g. 'train').")
        if name in resolved:
            raise InatDataError(f"Split {name!r} is given twice in {splits!r}.")
        path = file if os.path.isabs(file) else os.path.join(data_dir, file)
        if not os.path.isfile(path):
            raise InatDataError(f"Split {name!r}: JSON file not found: {path}")
        resolved[name] = path
    return resolved


def fingerprint_files(paths: list[str]) -> str:
    """Content hash of the given files (order matters): the part of the cache key datasets does not cover."""
    digest = xxhash.xxh64()
    for path in paths:
        digest.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(kw_only=True)
class InatBuilderConfig(datasets.BuilderConfig):
    """One preparation: the splits (canonical ``name=path,…``), the JSON files' fingerprint and :data:`OPTIONS`,
    set by :class:`InatBuilder` from a ``DataArguments`` (their defaults and checks). All are the cache key."""

    splits: str
    rank: str
    taxon: str
    image_storage: str
    resize_shorter: int | None
    jpeg_quality: int
    on_bad_image: str
    on_bad_record: str
    verify_files: bool
    follow_symlinks: bool
    max_image_pixels: int
    input_fingerprint: str


OPTIONS = tuple(name for name in InatBuilderConfig.__annotations__ if name not in ("splits", "input_fingerprint"))


def features_for(labels: list[str]) -> datasets.Features:
    return datasets.Features(
        {
            # mode="RGB": datasets converts L/P/RGBA/CMYK on decode (and applies EXIF orientation itself).
            "image": datasets.Image(mode="RGB"),
            "label": datasets.ClassLabel(names=labels),
            "image_id": datasets.Value("int64"),
            "category_id": datasets.Value("int64"),
            **{rank: datasets.Value("string") for rank in RANKS},
            "common_name": datasets.Value("string"),
            "file_name": datasets.Value("string"),
            **{field.name: datasets.Value(str(field.type)) for field in METADATA_FIELDS},
        }
    )


class InatBuilder(datasets.ArrowBasedBuilder):
    """iNaturalist 2021 (JSON + JPEG folders) → Arrow, with labels at any taxonomic rank."""

    BUILDER_CONFIG_CLASS = InatBuilderConfig
    # Bump when the generated rows change for identical inputs: it is part of the cache path.
    VERSION = datasets.Version("1.2.0")

    def __init__(self, args, splits: str | None = None):
        """``args``: a :class:`~inat_hf.data.source.DataArguments` with ``data_dir`` (not imported: source imports
        this module); ``splits``: ``--splits`` (None: every standard file present)."""
        data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
        if not os.path.isdir(data_dir):
            raise InatDataError(f"data_dir does not exist or is not a directory: {data_dir}")
        split_files = parse_splits(splits, data_dir)
        options = {name: getattr(args, name) for name in OPTIONS}
        options.update(
            taxon=format_taxon_filter(parse_taxon_filter(args.taxon)),
            max_image_pixels=args.max_image_pixels or DEFAULT_MAX_IMAGE_PIXELS,
        )
        # Rows per Arrow record batch. datasets defaults to 100 for image columns (sized for embedded bytes); path
        # references are tiny rows, and reopening a file of thousands of tiny batches maps nearly every page (the
        # kernel faults in a window around each batch header read), many times the memory of larger batches.
        super().__init__(
            dataset_name="inat2021",
            cache_dir=args.cache_dir,
            writer_batch_size=100 if args.image_storage == "bytes" else 10_000,
            data_dir=data_dir,
            splits=",".join(f"{k}={v}" for k, v in split_files.items()),
            input_fingerprint=fingerprint_files(list(split_files.values())),
            **options,
        )
        # Not part of the cache key: how many processes check images does not change the result.
        workers = args.preprocessing_num_workers
        self.num_workers = max(1, workers if workers is not None else min(8, os.cpu_count() or 1))

    @property
    def split_files(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config.splits.split(","))

    def _info(self) -> datasets.DatasetInfo:
        # The label names are only known once the JSON is read: _split_generators sets the final features.
        return datasets.DatasetInfo(
            description="iNaturalist 2021 images with labels at one taxonomic rank and every rank as text.",
            homepage="https://github.com/visipedia/inat_comp/tree/master/2021",
            citation="@misc{inat2021, title={iNaturalist 2021 competition dataset}, author={Van Horn, Grant and Mac Aodha, Oisin}, year={2021}}",
        )

    # ------------------------------------------------------------------ label space
    def _merge_categories(self, parsed: dict[str, InatJson]) -> tuple[dict[int, dict], dict[str, pa.Array | None]]:
        """One category list for all splits, and every split's category id per image (None = unlabeled)."""
        categories: dict[int, dict[str, Any]] = {}
        sources: dict[int, str] = {}

        def add(records: list[dict], source: str) -> None:
            for rec in records:
                known = categories.get(rec["id"])
                if known is None:
                    categories[rec["id"]], sources[rec["id"]] = rec, source
                elif any(known[r] != rec[r] for r in RANKS):
                    raise InatDataError(
                        f"Category {rec['id']} has a different taxonomy in {source} than in {sources[rec['id']]}: "
                        f"{[rec[r] for r in RANKS]} vs {[known[r] for r in RANKS]}."
                    )

        for data in parsed.values():
            if data.categories is not None:
                add(categories_to_records(data.categories), data.path)
        per_image: dict[str, pa.Array | None] = dict.fromkeys(parsed)
        for split, data in parsed.items():
            if data.annotations is None:  # image-only JSON: categories from folder names (none: unlabeled)
                derived = categories_from_dir_names(data.images, data.path)
                if derived is not None:
                    add(derived[0], data.path)
                    per_image[split] = derived[1]
        known_ids = pa.array(sorted(categories), type=pa.int64())
        for split, data in parsed.items():
            if data.annotations is not None:
                if data.categories is None and not categories:
                    raise InatDataError(f"{data.path} has 'annotations' but no file gives a 'categories' list.")
                per_image[split] = categories_per_image(data, known_ids)
        return categories, per_image

    def _filter_categories(self, categories: dict[int, dict]) -> list[dict]:
        taxon = parse_taxon_filter(self.config.taxon)
        kept = [c for c in categories.values() if all(c[rank] in values for rank, values in taxon.items())]
        if not kept and categories:
            hints = []
            for rank, values in taxon.items():
                available = sorted({c[rank] for c in categories.values()})
                hints.append(
                    f"{rank}: wanted {sorted(values)}, available {available[:12]}{' …' if len(available) > 12 else ''}"
                )
            raise InatDataError(
                f"The taxon filter {self.config.taxon!r} matches none of the {len(categories)} categories ("
                + "; ".join(hints)
                + "). Use --taxon none to keep every category."
            )
        return kept

    # ------------------------------------------------------------------ datasets hooks
    def _split_generators(self, dl_manager):
        cfg = self.config
        parsed = {split: read_inat_json(path) for split, path in self.split_files.items()}
        check_unique_file_names(parsed)
        categories, per_image = self._merge_categories(parsed)
        kept = self._filter_categories(categories)
        taxonomy = Taxonomy.from_categories(kept, cfg.rank)
        self.info.features = features_for(taxonomy.labels)
        # `_output_dir`: the build's temporary folder, renamed to cache_dir on success, so these files appear with
        # the data or not at all. datasets has no public name for it (checked on 5.2; every prepare test reads them).
        taxonomy.save(os.path.join(self._output_dir, TAXONOMY_FILE))
        summary = {"num_categories_in_json": len(categories), "num_categories_kept": len(kept)}
        summary["classes_per_rank"] = {r: len({c[r] for c in kept}) for r in RANKS}
        with open(os.path.join(self._output_dir, _SUMMARY), "w") as f:
            json.dump(summary, f)
        category_table = pa.table(
            {"category_id": pa.array([c["id"] for c in kept], type=pa.int64())}
            | {rank: pa.array([c[rank] for c in kept], type=pa.string()) for rank in RANKS}
            | {"common_name": pa.array([c.get("common_name") for c in kept], type=pa.string())}
        )
        generators = []
        for split, data in parsed.items():
            rows, stats = self._resolve_rows(split, data, per_image[split], category_table, taxonomy)
            generators.append(
                datasets.SplitGenerator(name=split, gen_kwargs={"split": split, "rows": rows, "stats": stats})
            )
        return generators

    def _resolve_rows(self, split, data: InatJson, category_ids, category_table: pa.Table, taxonomy: Taxonomy):
        """Per-split rows with every column but the image, after the taxon filter (vectorised joins)."""
        images, n_json = data.images, len(data.images)
        if category_ids is None:
            # Unlabeled (public_test): no taxonomy to filter on, so every image is kept, joined to no category.
            position = pa.nulls(n_json, pa.int32())
        else:
            position = pc.index_in(category_ids, value_set=category_table.column("category_id").combine_chunks())
            if position.null_count == n_json:
                raise InatDataError(
                    f"Split {split!r} ({data.path}) is empty after the taxon filter {self.config.taxon!r}: none of "
                    f"its {n_json} images belongs to a kept category. Use a different --taxon (or 'none')."
                )
            images, position = images.filter(pc.is_valid(position)), position.drop_null()
        stats = {"file": data.path, "images_in_json": n_json, "labeled": category_ids is not None}
        stats["filtered_out"] = n_json - len(images)
        images, stats["bad_locations"], stats["bad_location_records"] = self._check_locations(split, data, images)
        joined = category_table.take(position)
        label = pc.index_in(joined.column(taxonomy.rank), value_set=pa.array(taxonomy.labels, type=pa.string()))
        rows = pa.table(
            {
                "image_id": images.column("id"),
                "label": label.cast(pa.int64()).fill_null(-1),  # -1: unlabeled
                "category_id": joined.column("category_id").fill_null(-1),
                **{rank: joined.column(rank) for rank in RANKS},
                "common_name": joined.column("common_name"),
                "file_name": images.column("file_name"),
                **{field.name: images.column(field.name) for field in METADATA_FIELDS},
            }
        )
        return rows, stats

    def _check_locations(self, split: str, data: InatJson, images: pa.Table) -> tuple[pa.Table, int, list[dict]]:
        """Invalid coordinates (:func:`~.inat_json.invalid_locations`) stop the preparation naming the image ids, or
        with ``on_bad_record="skip"`` become missing ones (the image is kept) and are listed in the report."""
        lat, lon = images.column("latitude"), images.column("longitude")
        bad = invalid_locations(
            lat.to_numpy(), lon.to_numpy(), pc.is_null(lat).to_numpy(), pc.is_null(lon).to_numpy()
        )  # to_numpy: null -> NaN, told apart by the masks
        if not bad.any():
            return images, 0, []
        records = [
            {"split": split, "image_id": i, "latitude": str(a), "longitude": str(b)}  # str: NaN is not JSON
            for i, a, b in zip(*(images.column(c).filter(bad).to_pylist() for c in ("id", "latitude", "longitude")))
        ]
        if self.config.on_bad_record == "error":
            shown = [f"{r['image_id']} (lat={r['latitude']}, lon={r['longitude']})" for r in records]
            raise InatDataError(
                f"{data.path}: {len(records)} image record(s) have an invalid location (expected latitude in "
                f"[-90, 90] and longitude in [-180, 180], finite decimal degrees, both or neither): image ids "
                f"{_listing(shown)}. Fix the JSON, or pass --on_bad_record skip to keep these images without a "
                "location (listed in prepare_report.json)."
            )
        keep = pa.array(~bad)
        missing = pa.nulls(len(images), pa.float64())
        for name in ("latitude", "longitude"):
            column = pc.if_else(keep, images.column(name), missing)
            images = images.set_column(images.schema.get_field_index(name), name, column)
        return images, len(records), records

    def _to_table(self, rows: pa.Table, data: list[bytes | None] | None) -> pa.Table:
        """``rows`` with the image column: ``data`` are the bytes to store per row (None: none)."""
        data = pa.array(data, type=pa.binary()) if data is not None else pa.nulls(len(rows), pa.binary())
        paths = rows.column("file_name").combine_chunks()
        if self.config.image_storage == "path":
            # Reference storage: absolute paths, so the dataset works from any working directory. Images that
            # only inat_hf.data.rgb.to_rgb converts right (transparency, 16 bit) also carry their converted
            # pixels (lossless PNG, see image_check), which every decoder prefers to the path.
            paths = pc.binary_join_element_wise(self.config.data_dir, paths, "/")
        # Embedded storage keeps bytes plus the *relative* file name. (datasets.Image().encode_example would drop
        # the bytes of a path that exists on disk; building the struct ourselves keeps both, as intended.)
        image = pa.StructArray.from_arrays([data, paths], names=["bytes", "path"])
        return rows.add_column(0, "image", image).select(list(self.info.features))

    def _generate_tables(self, split: str, rows: pa.Table, stats: dict[str, Any]):
        cfg = self.config
        skipped: list[dict[str, Any]] = []
        fixed: collections.Counter[str] = collections.Counter()
        written = 0
        for index, (chunk, results) in enumerate(self._checked_chunks(rows)):
            data = None
            if results is not None:
                for row, result in zip(chunk.select(["image_id", "file_name"]).to_pylist(), results):
                    fixed.update(result.fixed)
                    if result.ok:
                        continue
                    if cfg.on_bad_image == "error":
                        raise InatDataError(
                            f"Bad image in split {split!r}: {printable_path(row['file_name'])} (image id "
                            f"{row['image_id']}): {result.reason}. Fix or remove the file, or pass --on_bad_image "
                            "skip to leave bad images out and list them in the report."
                        )
                    skipped.append(dict(split=split, **row, kind=result.kind, reason=result.reason))
                chunk = chunk.filter(pa.array([r.ok for r in results]))
                data = [r.data for r in results if r.ok]
            if len(chunk):
                written += len(chunk)
                yield index, self._to_table(chunk, data)
        if written == 0 and skipped:
            kinds = sorted({item["kind"] for item in skipped})
            raise InatDataError(
                f"Split {split!r}: all {len(skipped)} images were skipped as bad ({', '.join(kinds)}; first: "
                f"{printable_path(skipped[0]['file_name'])}: {skipped[0]['reason']}). Is --data_dir the folder the "
                "file_names are relative to?"
            )
        report = dict(stats, written=written, skipped=len(skipped), repaired=fixed, skipped_images=skipped)
        # Nothing is lost silently: every image of the JSON is written, filtered out (taxon) or skipped (reported).
        assert report["images_in_json"] == written + report["filtered_out"] + len(skipped), report
        with open(os.path.join(self._output_dir, _SPLIT_REPORT.format(split=split)), "w") as f:
            json.dump(report, f)

    def _checked_chunks(self, rows: pa.Table):
        """Yield (row chunk, per-image check results), in JSON order whatever the number of processes."""
        cfg = self.config
        if not cfg.verify_files and cfg.image_storage == "path":
            # Nothing to read: the fast path for huge JSON (links are then not checked either, see README).
            for start in range(0, len(rows), _TABLE_ROWS):
                yield rows.slice(start, _TABLE_ROWS), None
            return
        chunks = [rows.slice(s, _CHECK_CHUNK) for s in range(0, len(rows), _CHECK_CHUNK)]
        paths = [[os.path.join(cfg.data_dir, f) for f in c.column("file_name").to_pylist()] for c in chunks]
        if self.num_workers <= 1 or len(chunks) <= 1:
            yield from zip(chunks, (check_images(p, cfg) for p in paths))
            return
        with ProcessPoolExecutor(max_workers=self.num_workers) as pool:
            yield from zip(chunks, pool.map(check_images, paths, [cfg] * len(chunks)))

    # ------------------------------------------------------------------ reports
    def read_report(self) -> dict[str, Any]:
        """The preparation report of the (prepared) cache: per split counts and every skipped image."""
        cache = self.cache_dir
        with open(os.path.join(cache, _SUMMARY)) as f:
            summary = json.load(f)
        splits, skipped, bad_locations = {}, [], []
        for split in self.split_files:
            with open(os.path.join(cache, _SPLIT_REPORT.format(split=split))) as f:
                report = json.load(f)
            skipped.extend(report.pop("skipped_images"))
            bad_locations.extend(report.pop("bad_location_records"))
            splits[split] = report
        cfg = self.config
        return {
            "data_dir": cfg.data_dir,
            "options": {name: getattr(cfg, name) for name in OPTIONS},
            "input_fingerprint": cfg.input_fingerprint,
            **summary,
            "num_labels": len(self.read_taxonomy().labels),
            "splits": splits,
            "skipped_by_reason": dict(collections.Counter(item["kind"] for item in skipped)),
            "skipped": skipped,
            "bad_locations": bad_locations,  # with on_bad_record=skip: kept without their location
        }

    def read_taxonomy(self) -> Taxonomy:
        return Taxonomy.load(os.path.join(self.cache_dir, TAXONOMY_FILE))
