"""Read and validate one iNat 2021 JSON file (``train.json``, ``val.json``, ``public_test.json`` …) into Arrow.

The full ``train.json`` holds millions of records: ``json.load`` is slow and builds gigabytes of Python objects, so
pyarrow's C++ JSON reader parses it straight into columns (``newlines_in_values=True``: the whole file, pretty-printed
or not, as one object) and vectorised Arrow compute validates it. Structural problems stop the preparation with an
error naming the file, the offending ids and what was expected; they are never "fixed" by dropping records.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .taxonomy import CATEGORY_RANK_KEYS, DIR_NAME_PATTERN, parse_image_dir_name, species_name


class InatDataError(ValueError):
    """A problem with the iNat input (JSON structure, files, filters) that stops preparation."""


# Explicit types for the fields we use. Unknown extra fields are inferred and ignored; missing fields read as null.
# "date" stays a string: pyarrow would otherwise infer a timestamp and drop the UTC offset.
_INT, _STR, _FLOAT = pa.int64(), pa.string(), pa.float64()
# What the builder carries into every row besides the id and file name, in the dataset's column order.
METADATA_FIELDS = pa.struct(
    {"width": _INT, "height": _INT, "date": _STR, "latitude": _FLOAT, "longitude": _FLOAT}
    | {"location_uncertainty": _FLOAT, "license": _INT, "rights_holder": _STR}
)
IMAGE_FIELDS = pa.struct([pa.field("id", _INT), pa.field("file_name", _STR), *METADATA_FIELDS])
ANNOTATION_FIELDS = pa.struct({"id": _INT, "image_id": _INT, "category_id": _INT})
CATEGORY_FIELDS = pa.struct(
    {"id": _INT, "name": _STR, "common_name": _STR, "supercategory": _STR}
    | dict.fromkeys(CATEGORY_RANK_KEYS, _STR)
    | {"image_dir_name": _STR}
)
_SCHEMA = pa.schema(
    {
        "images": pa.list_(IMAGE_FIELDS),
        "annotations": pa.list_(ANNOTATION_FIELDS),
        "categories": pa.list_(CATEGORY_FIELDS),
    }
)
# pyarrow's reader needs the whole object in one block; its block size is a 32-bit int.
_MAX_ARROW_BLOCK = 2**31 - 64

_MAX_LISTED = 10  # ids listed in an error message before "… and N more"


def _listing(values: list[Any], total: int | None = None) -> str:
    """The first values, then "… and N more" up to ``total`` (default: ``len(values)``)."""
    more = (len(values) if total is None else total) - min(len(values), _MAX_LISTED)
    return ", ".join(str(v) for v in values[:_MAX_LISTED]) + (f", … and {more} more" if more > 0 else "")


def _id_with(bad: pa.Table, key: str, template: str = "{!r}") -> list[str]:
    """``"<id> (<key's value>)"`` for the records of ``bad``, for error messages."""
    return [f"{i} ({template.format(v)})" for i, v in zip(bad.column("id").to_pylist(), bad.column(key).to_pylist())]


@dataclasses.dataclass
class InatJson:
    """One parsed iNat JSON file: flat Arrow tables (``annotations``/``categories`` are None when absent)."""

    path: str
    images: pa.Table
    annotations: pa.Table | None
    categories: pa.Table | None


def _read(path: str) -> pa.Table:
    """The file as one row with a list column per schema key (null where the key is absent)."""
    size = os.path.getsize(path)
    if size < _MAX_ARROW_BLOCK:
        read_options = pj.ReadOptions(block_size=size + 64, use_threads=True)
        parse_options = pj.ParseOptions(
            newlines_in_values=True, explicit_schema=_SCHEMA, unexpected_field_behavior="infer"
        )
        try:
            return pj.read_json(path, read_options=read_options, parse_options=parse_options)
        except pa.ArrowInvalid as err:
            raise _explain_parse_error(path, err) from None
    # Too large for one Arrow block (> 2 GB): the json module, slower, same result.
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise InatDataError(f"{path}: expected a JSON object with an 'images' list, found a {type(data).__name__}.")
    columns = {}
    for field in _SCHEMA:
        try:  # the struct type picks the fields it names from each record
            columns[field.name] = pa.array([data.get(field.name)], type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as err:
            raise _wrong_type(path, data) or InatDataError(
                f"{path}: a record in '{field.name}' has a value of the wrong type: {err}"
            ) from None
    return pa.table(columns)


_JSON_TYPES = {_INT: (int,), _FLOAT: (int, float), _STR: (str,)}
_EXPECTED = {_INT: "an integer", _FLOAT: "a number", _STR: "text"}


def _wrong_type(path: str, data: Any) -> InatDataError | None:
    """The first record whose value for a known field is not of that field's JSON type (pyarrow's reader names
    neither the record nor the value), or None."""
    for field in _SCHEMA:
        records = data.get(field.name) if isinstance(data, dict) else None
        for record in records if isinstance(records, list) else ():
            if not isinstance(record, dict):
                continue
            for sub in field.type.value_type:
                value = record.get(sub.name)
                if value is None or (isinstance(value, _JSON_TYPES[sub.type]) and not isinstance(value, bool)):
                    continue
                what = field.name.removesuffix("s")
                expected = _EXPECTED[sub.type] + (
                    " in decimal degrees" if sub.name in ("latitude", "longitude") else ""
                )
                found = {str: "text", bool: "a boolean", list: "an array", dict: "an object"}.get(
                    type(value), "a number"
                )
                return InatDataError(
                    f"{path}: {what} id {record.get('id')!r} has {sub.name} {json.dumps(value)} ({found}); expected "
                    f"{expected} or null. Fix that record (and any like it) in the JSON file."
                )
    return None


def _explain_parse_error(path: str, err: Exception) -> InatDataError:
    """Turn pyarrow's terse parse error into one that says where the JSON is broken."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as json_err:
        return InatDataError(f"{path} is not valid JSON: {json_err}.")
    except UnicodeDecodeError as uerr:
        return InatDataError(f"{path} is not UTF-8 JSON: {uerr}.")
    return _wrong_type(path, data) or InatDataError(
        f"{path}: unexpected JSON structure ({err}). Expected an object with 'images' (and optionally "
        f"'annotations', 'categories') lists of records as in the iNat 2021 release."
    )


def _flatten(table: pa.Table, key: str) -> pa.Table | None:
    """``{"images": [rec, …]}`` (one row) → a flat table with one row per record; None when the key is absent."""
    column = table.column(key)
    if column.null_count == len(column):
        return None
    records = pc.list_flatten(column.combine_chunks())
    if records.null_count:
        raise InatDataError(f"'{key}' holds a non-object entry (null); every entry must be a JSON object.")
    return pa.Table.from_struct_array(records)


def _check_required(table: pa.Table, keys: tuple[str, ...], what: str, path: str) -> None:
    for key in keys:  # every schema key is a column: a missing key reads as null
        nulls = pc.is_null(table.column(key))
        if pc.any(nulls).as_py():
            positions = np.flatnonzero(nulls.to_numpy(zero_copy_only=False)).tolist()
            if key != "id":
                ids = table.column("id").take(positions[:_MAX_LISTED]).to_pylist()
                where = f"{what} ids {_listing(ids, len(positions))}"
            else:
                where = f"{what} records at positions {_listing(positions)}"
            raise InatDataError(
                f"{path}: {len(positions)} {what} record(s) have no {key!r} (missing or null): {where}."
            )


def _check_unique(column: pa.ChunkedArray, what: str, path: str) -> None:
    values = column.to_numpy()
    uniq, counts = np.unique(values, return_counts=True)
    if len(uniq) != len(values):
        dups = uniq[counts > 1].tolist()
        raise InatDataError(f"{path}: {len(dups)} duplicate {what}: {_listing(dups)}. Each must appear once.")


def _check_text(table: pa.Table, what: str, path: str) -> None:
    """Every string column must be valid UTF-8 (pyarrow's JSON reader does not check; Python fails later on). The
    check runs in C++; only on failure are the offending records looked up, to name them."""
    for name in table.column_names:
        column = table.column(name)
        if not pa.types.is_string(column.type):
            continue
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            values = pc.cast(column, pa.binary()).to_pylist()
            # invalid UTF-8 does not survive a decode-with-replacement round trip
            bad = [i for i, v in enumerate(values) if v is not None and v.decode("utf-8", "replace").encode() != v]
            ids = table.column("id").take(bad[:_MAX_LISTED]).to_pylist()
            # bad bytes shown as \xNN escapes (quoted by hand: repr would double the backslashes)
            shown = [f"{i} ('{values[p].decode('utf-8', 'backslashreplace')}')" for i, p in zip(ids, bad)]
            raise InatDataError(
                f"{path}: {len(bad)} {what} record(s) have a {name!r} that is not valid UTF-8 text: {what} ids "
                f"{_listing(shown, len(bad))}. Fix the encoding of the JSON file (iNat JSON is UTF-8)."
            ) from None


def _check_file_names(images: pa.Table, path: str) -> None:
    names = images.column("file_name")
    # absolute (/…, \…, C:…) or with a '..' part
    escaping = pc.match_substring_regex(names, r"^([/\\]|[A-Za-z]:)|(^|[/\\])\.\.([/\\]|$)")
    if pc.any(escaping).as_py():
        bad = images.filter(escaping)
        raise InatDataError(
            f"{path}: {len(bad)} image file_name(s) escape the data root (absolute path or '..'): image ids "
            f"{_listing(_id_with(bad, 'file_name'))}. file_name must be relative to the data directory, e.g. 'train/<dir>/<uuid>.jpg'."
        )


def check_unique_file_names(parsed: dict[str, InatJson]) -> None:
    """Every photo is one record of one split: a ``file_name`` given to two image ids (in one file: one photo with
    two labels; in two splits: evaluation on training photos) is an error naming both ids. Only ``train_mini`` may
    share files with ``train``: iNat 2021 defines it as a subset of ``train``, an alternative to train on."""
    groups = [parsed]
    if {"train", "train_mini"} <= set(parsed):
        groups = [{k: v for k, v in parsed.items() if k != leave_out} for leave_out in ("train_mini", "train")]
    for group in groups:
        _check_shared_files(group)


def _check_shared_files(parsed: dict[str, InatJson]) -> None:
    # ``train/x/./a.jpg`` and ``train//x/a.jpg`` name the same file as ``train/x/a.jpg``
    names = [d.images.column("file_name") for d in parsed.values()]
    names = [
        pc.replace_substring_regex(pc.replace_substring_regex(n, "/+", "/"), r"(^|/)(\./)+", r"\1") for n in names
    ]
    codes = pa.chunked_array([c for n in names for c in n.chunks], pa.string()).combine_chunks().dictionary_encode()
    indices = codes.indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(indices, minlength=len(codes.dictionary))
    if counts.max(initial=0) < 2:
        return
    splits = np.repeat(list(parsed), [len(d.images) for d in parsed.values()])
    ids = np.concatenate([d.images.column("id").to_numpy() for d in parsed.values()])
    shared = []
    for code in np.flatnonzero(counts > 1)[:_MAX_LISTED].tolist():
        owners = " and ".join(f"{splits[i]} image {ids[i]}" for i in np.flatnonzero(indices == code))
        shared.append(f"{codes.dictionary[code].as_py()!r} ({owners})")
    total = int((counts > 1).sum())
    files = ", ".join(f"{split}: {d.path}" for split, d in parsed.items())
    raise InatDataError(
        f"{total} file_name(s) belong to several image records: {_listing(shared, total)}. A photo listed twice "
        "carries two labels, or is scored in one split after being trained on in another: each file must be one "
        f"image record of one split. Fix the JSON ({files})."
    )


def read_inat_json(path: str | os.PathLike) -> InatJson:
    """Parse and structurally validate one iNat 2021 JSON file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InatDataError(f"JSON file not found: {path}")
    raw = _read(path)
    images = _flatten(raw, "images")
    if images is None:
        found = ", ".join(sorted(key for key in raw.column_names if raw.column(key).null_count == 0))
        raise InatDataError(f"{path}: missing the 'images' list (found keys: {found}).")
    _check_required(images, ("id", "file_name"), "image", path)
    _check_text(images, "image", path)
    _check_unique(images.column("id"), "image ids", path)
    _check_file_names(images, path)
    annotations = _flatten(raw, "annotations")
    if annotations is not None:
        _check_required(annotations, ("image_id", "category_id"), "annotation", path)
    categories = _flatten(raw, "categories")
    if categories is not None:
        _check_required(categories, ("id", *CATEGORY_RANK_KEYS), "category", path)
        _check_text(categories, "category", path)
        _check_unique(categories.column("id"), "category ids", path)
    return InatJson(path=path, images=images, annotations=annotations, categories=categories)


def invalid_locations(
    latitude: np.ndarray, longitude: np.ndarray, lat_missing: np.ndarray | None = None, lon_missing=None
) -> np.ndarray:
    """Mask of the records whose location is given but unusable: half of one, not finite (NaN, ±Infinity), or
    outside [-90, 90] x [-180, 180] degrees. Missing (null) is not invalid; ``*_missing`` default: NaN."""
    lat, lon = np.asarray(latitude, dtype=np.float64), np.asarray(longitude, dtype=np.float64)
    lat_missing = np.isnan(lat) if lat_missing is None else np.asarray(lat_missing)
    lon_missing = np.isnan(lon) if lon_missing is None else np.asarray(lon_missing)
    with np.errstate(invalid="ignore"):
        bad_lat = ~lat_missing & ~(np.isfinite(lat) & (np.abs(lat) <= 90))
        bad_lon = ~lon_missing & ~(np.isfinite(lon) & (np.abs(lon) <= 180))
    return (lat_missing != lon_missing) | bad_lat | bad_lon


def categories_to_records(categories: pa.Table) -> list[dict[str, Any]]:
    """Category table → records with a ``species`` (binomial) key, as used by :class:`Taxonomy`."""
    records = categories.select(CATEGORY_FIELDS.names).to_pylist()
    for rec in records:
        rec["species"] = species_name(rec["genus"], rec["specific_epithet"])
    return records


def categories_from_dir_names(images: pa.Table, path: str) -> tuple[list[dict[str, Any]], pa.Array] | None:
    """For image-only JSON: derive each image's category from its folder name.

    Returns ``(category records, category id per image)``, or None when no file_name has a category folder
    (an unlabeled split such as ``public_test``). A mix of both is an error: it would silently unlabel images.
    """
    # the folder of each file_name (train/<dir>/<uuid>.jpg -> <dir>), null when there is none
    folders = pc.extract_regex(images.column("file_name"), r"(?:^|/)(?P<dir>[^/]+)/[^/]+$")
    dirs = pc.struct_field(folders, "dir").combine_chunks().dictionary_encode()
    parsed = [parse_image_dir_name(d) for d in dirs.dictionary.to_pylist()]  # None: not a category folder
    ids = pa.array([rec and rec["id"] for rec in parsed], type=pa.int64()).take(dirs.indices)
    if ids.null_count == len(ids):
        return None
    if ids.null_count:
        bad = images.filter(ids.is_null())
        raise InatDataError(
            f"{path} has no 'annotations', so categories are read from folder names, but {len(bad)} image(s) are "
            f"not in a folder named {DIR_NAME_PATTERN}: image ids {_listing(_id_with(bad, 'file_name'))}."
        )
    records: dict[int, dict[str, Any]] = {}
    for rec in parsed:
        rec["species"] = species_name(rec["genus"], rec["specific_epithet"])
        other = records.setdefault(rec["id"], rec)
        if other["image_dir_name"] != rec["image_dir_name"]:
            raise InatDataError(
                f"{path}: category id {rec['id']} appears under two folder names: "
                f"{other['image_dir_name']!r} and {rec['image_dir_name']!r}."
            )
    return list(records.values()), ids


def categories_per_image(data: InatJson, category_ids: pa.Array) -> pa.Array:
    """Category id of every image from the annotations (validated: each image exactly one, all ids known)."""
    ann = data.annotations
    path = data.path
    known = {
        "image_id": ("images", data.images.column("id").combine_chunks()),
        "category_id": ("categories", category_ids),
    }
    for key, (what, value_set) in known.items():
        unknown = pc.invert(pc.is_in(ann.column(key), value_set=value_set))
        if pc.any(unknown).as_py():
            bad = ann.filter(unknown)
            raise InatDataError(
                f"{path}: {len(bad)} annotation(s) refer to unknown {what}: annotation ids "
                f"{_listing(_id_with(bad, key, key + ' {}'))}."
            )
    _check_unique(ann.column("image_id"), "annotations for one image (image ids with several labels)", path)
    position = pc.index_in(data.images.column("id"), value_set=ann.column("image_id").combine_chunks())
    if position.null_count:
        missing = data.images.filter(pc.is_null(position)).column("id").to_pylist()
        raise InatDataError(
            f"{path} has annotations, but {len(missing)} image(s) have none: image ids {_listing(missing)}. "
            "Every image of an annotated file needs exactly one annotation."
        )
    return ann.column("category_id").combine_chunks().take(position.combine_chunks())
