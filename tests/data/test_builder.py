"""The iNat 2021 → Arrow builder: splits, ranks, filters, storage, caching and the real-record sample."""

import dataclasses
import io
import os
import shutil

import datasets
import numpy as np
import pytest
from PIL import Image

from inat_hf.data import RANKS, DataArguments, InatBuilder, InatDataError, load_prepared, prepare_inat, save_prepared
from inat_hf.data.demo import DEMO_CATEGORIES
from tests.data.helpers import prep, read_json, write_json

ANIMAL_SPECIES = [f"{c[6]} {c[7]}" for c in DEMO_CATEGORIES if c[1] == "Animalia"]


def test_default_prepare_all_splits(demo_root, tmp_path):
    prepared = prep(demo_root, tmp_path)
    ds = prepared.dataset
    assert set(ds) == {"train", "val", "public_test"}
    # default taxon filter kingdom=Animalia: the 2 plant species are gone, 8 animal species remain
    assert ds["train"].features["label"].names == ANIMAL_SPECIES
    assert ds["train"].num_rows == 8 * 4 and ds["val"].num_rows == 8 * 2
    assert set(ds["train"]["kingdom"]) == {"Animalia"}
    expected_columns = [
        "image",
        "label",
        "image_id",
        "category_id",
        "kingdom",
        "phylum",
        "class",
        "order",
        "family",
        "genus",
        "species",
        "common_name",
        "file_name",
    ]
    assert ds["train"].column_names[: len(expected_columns)] == expected_columns
    row = ds["train"][0]
    assert isinstance(row["image"], Image.Image) and row["image"].mode == "RGB"
    assert row["species"] == ds["train"].features["label"].int2str(row["label"])
    # labels agree with the category ids of the JSON
    data = read_json(demo_root, "train")
    cat_of_image = {a["image_id"]: a["category_id"] for a in data["annotations"]}
    for image_id, category_id in zip(ds["train"]["image_id"], ds["train"]["category_id"]):
        assert cat_of_image[image_id] == category_id
    # unlabeled public_test: label -1, no taxonomy
    test = ds["public_test"]
    assert test.num_rows == 3 and set(test["label"]) == {-1} and set(test["species"]) == {None}
    report = prepared.report
    assert report["splits"]["train"] == {
        "file": str(demo_root / "train.json"),
        "images_in_json": 40,
        "labeled": True,
        "filtered_out": 8,
        "written": 32,
        "skipped": 0,
        "repaired": {},
        "bad_locations": 0,
    }
    assert report["classes_per_rank"] == {
        "kingdom": 1,
        "phylum": 2,
        "class": 3,
        "order": 6,
        "family": 7,
        "genus": 7,
        "species": 8,
    }


def test_label_space_identical_across_splits_and_independent_of_images(demo_copy, tmp_path):
    # drop every val image of one species: the val label space must still hold it
    data = read_json(demo_copy, "val")
    gone = {i["id"] for i in data["images"] if "Vulpes_vulpes" in i["file_name"]}
    data["images"] = [i for i in data["images"] if i["id"] not in gone]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] not in gone]
    write_json(demo_copy, "val", data)
    ds = prep(demo_copy, tmp_path, splits="train,val").dataset
    assert ds["train"].features["label"].names == ds["val"].features["label"].names == ANIMAL_SPECIES
    assert "Vulpes vulpes" not in set(ds["val"]["species"])


@pytest.mark.parametrize(
    "rank, expected",
    [
        ("species", ANIMAL_SPECIES),
        ("genus", ["Anas", "Coccinella", "Parus", "Sciurus", "Turdus", "Vanessa", "Vulpes"]),
        ("family", ["Anatidae", "Canidae", "Coccinellidae", "Nymphalidae", "Paridae", "Sciuridae", "Turdidae"]),
        ("order", ["Anseriformes", "Carnivora", "Coleoptera", "Lepidoptera", "Passeriformes", "Rodentia"]),
        ("class", ["Aves", "Insecta", "Mammalia"]),
        ("phylum", ["Arthropoda", "Chordata"]),
    ],
)
def test_each_label_rank(demo_root, tmp_path, rank, expected):
    prepared = prep(demo_root, tmp_path, rank=rank, splits="train")
    train = prepared.dataset["train"]
    assert train.features["label"].names == expected
    # every row's label is its own value at that rank, and every row still carries all ranks
    names = train.features["label"].names
    assert [names[i] for i in train["label"]] == train[rank]
    assert None not in train["species"] and None not in train["genus"]
    taxonomy = prepared.taxonomy
    assert taxonomy.rank == rank and taxonomy.labels == expected
    assert list(taxonomy.ranks) == list(RANKS[: RANKS.index(rank) + 1])


def test_genus_label_merges_species_of_one_genus(demo_root, tmp_path):
    taxonomy = prep(demo_root, tmp_path, rank="genus", splits="train").taxonomy
    turdus = taxonomy.labels.index("Turdus")
    assert sorted(taxonomy.category_ids[turdus]) == [23, 24]
    assert taxonomy.ranks["family"][turdus] == "Turdidae"


@pytest.mark.parametrize(
    "taxon, species",
    [
        ("class=Aves", ["Parus major", "Turdus merula", "Turdus migratorius", "Anas platyrhynchos"]),
        (
            "class=Aves|Mammalia,order=Passeriformes|Carnivora",
            ["Parus major", "Turdus merula", "Turdus migratorius", "Vulpes vulpes"],
        ),
        ("kingdom=Plantae", ["Bellis perennis", "Rosa canina"]),
        ("none", [f"{c[6]} {c[7]}" for c in DEMO_CATEGORIES]),
    ],
)
def test_taxon_filter(demo_root, tmp_path, taxon, species):
    prepared = prep(demo_root, tmp_path, taxon=taxon, splits="train")
    train = prepared.dataset["train"]
    assert train.features["label"].names == species
    assert set(train["species"]) == set(species)
    assert prepared.report["splits"]["train"]["filtered_out"] == 40 - 4 * len(species)


def test_taxon_filter_errors(demo_root, tmp_path):
    with pytest.raises(ValueError, match=r"Unknown rank 'klass'.*valid ranks: kingdom, phylum"):
        prep(demo_root, tmp_path, taxon="klass=Aves")
    with pytest.raises(ValueError, match=r"expected 'rank=value'"):
        prep(demo_root, tmp_path, taxon="Aves")
    with pytest.raises(
        InatDataError, match=r"matches none of the 10 categories.*class: wanted \['Reptilia'\], available \['Aves'"
    ):
        prep(demo_root, tmp_path, taxon="class=Reptilia")


def test_empty_split_after_filter_is_an_error(demo_copy, tmp_path):
    data = read_json(demo_copy, "val")
    plants = {i["id"] for i in data["images"] if "Plantae" in i["file_name"]}
    data["images"] = [i for i in data["images"] if i["id"] in plants]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in plants]
    write_json(demo_copy, "val", data)
    with pytest.raises(
        InatDataError, match=r"Split 'val' .* is empty after the taxon filter 'kingdom=Animalia': none of its 4 images"
    ):
        prep(demo_copy, tmp_path, splits="train,val")


def test_split_files_with_custom_names_and_train_mini(demo_copy, tmp_path):
    shutil.copy(demo_copy / "train.json", demo_copy / "train_mini.json")
    ds = prep(demo_copy, tmp_path).dataset
    assert set(ds) == {"train", "train_mini", "val", "public_test"}
    assert ds["train_mini"]["image_id"] == ds["train"]["image_id"]
    os.rename(demo_copy / "val.json", demo_copy / "val_20.json")
    ds = prep(demo_copy, tmp_path, splits="validation=val_20.json").dataset
    assert list(ds) == ["validation"] and ds["validation"].num_rows == 16
    with pytest.raises(InatDataError, match=r"Split 'val': JSON file not found: .*val.json"):
        prep(demo_copy, tmp_path, splits="val")


def test_no_split_files_is_an_error(tmp_path):
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(InatDataError, match=r"No iNat 2021 split file .* JSON files there: \['notes.json'\]"):
        prepare_inat(tmp_path, cache_dir=tmp_path / "cache")


def test_images_only_json_derives_categories_from_folder_names(demo_copy, tmp_path):
    for split in ("train", "val"):
        data = read_json(demo_copy, split)
        write_json(demo_copy, split, {"images": data["images"]})  # like the published image-only subsets
    full = prep(demo_copy, tmp_path / "a", splits="train,val", taxon="none")
    ds = full.dataset
    assert ds["train"].features["label"].names == [f"{c[6]} {c[7]}" for c in DEMO_CATEGORIES]
    assert ds["train"].num_rows == 40
    row = ds["train"][0]
    assert row["category_id"] == 10 and row["genus"] == "Parus" and row["family"] == "Paridae"
    assert row["common_name"] is None  # not in a folder name
    assert full.taxonomy.category_ids[0] == [10]


def test_images_only_with_mixed_folders_is_an_error(demo_copy, tmp_path):
    data = read_json(demo_copy, "train")
    data["images"][3]["file_name"] = "train/not_a_category/x.jpg"
    write_json(demo_copy, "train", {"images": data["images"]})
    with pytest.raises(InatDataError, match=r"not in a folder named <id>_<Kingdom>_.*'train/not_a_category/x.jpg'"):
        prep(demo_copy, tmp_path, splits="train")


@pytest.mark.real_data
def test_real_inat2021_records(real_sample, tmp_path):
    """The 6,000 real iNat 2021 records (image-only JSON, 100 species), with tiny stand-in image files."""
    root = tmp_path / "inat"
    root.mkdir()
    splits = {"train": "train_60.json", "val": "val_20.json", "test": "test_20.json"}
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (120, 160, 90)).save(buffer, format="JPEG")
    n_images = 0
    for file in splits.values():
        shutil.copy(real_sample / "inat2021_json" / file, root / file)
        for image in read_json(root, file[: -len(".json")])["images"]:
            path = root / image["file_name"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(buffer.getvalue())
            n_images += 1
    prepared = prep(root, tmp_path, splits=",".join(f"{k}={v}" for k, v in splits.items()))
    ds = prepared.dataset
    assert {k: ds[k].num_rows for k in ds} == {"train": 3600, "val": 1200, "test": 1200}
    names = ds["train"].features["label"].names
    assert len(names) == 100 and "Agalenatea redii" in names
    row = ds["train"].filter(lambda r: r["species"] == "Agalenatea redii")[0]
    assert (row["kingdom"], row["phylum"], row["class"], row["order"], row["family"], row["genus"]) == (
        "Animalia",
        "Arthropoda",
        "Arachnida",
        "Araneae",
        "Araneidae",
        "Agalenatea",
    )
    assert row["category_id"] == 7
    # geo fields may be null in the real records
    assert None in ds["train"]["latitude"]
    assert prepared.report["classes_per_rank"]["species"] == 100
    assert sum(s["written"] for s in prepared.report["splits"].values()) == n_images


def test_embedded_bytes_keep_relative_path_and_bytes(demo_root, tmp_path):
    ds = prep(demo_root, tmp_path, image_storage="bytes", splits="train").dataset["train"]
    raw = ds.cast_column("image", datasets.Image(decode=False))[0]["image"]
    assert raw["bytes"] is not None and raw["path"].startswith("train/")
    # unchanged JPEGs are stored bit-exact
    assert raw["bytes"] == (demo_root / raw["path"]).read_bytes()
    # and the dataset no longer needs the files
    moved = tmp_path / "moved"
    shutil.copytree(demo_root, moved)
    ds2 = prep(moved, tmp_path / "c2", image_storage="bytes", splits="train").dataset["train"]
    shutil.rmtree(moved)
    assert ds2[0]["image"].size == ds[0]["image"].size


def test_reference_storage_uses_absolute_paths(demo_root, tmp_path):
    ds = prep(demo_root, tmp_path, splits="train").dataset["train"]
    raw = ds.cast_column("image", datasets.Image(decode=False))[0]["image"]
    assert raw["bytes"] is None and os.path.isabs(raw["path"]) and os.path.isfile(raw["path"])


def test_pre_resize(demo_root, tmp_path):
    prepared = prep(demo_root, tmp_path, resize_shorter=32, jpeg_quality=80, splits="train")
    ds = prepared.dataset["train"]
    assert prepared.report["options"]["image_storage"] == "bytes"
    sizes = [im.size for im in ds["image"]]
    assert all(min(s) <= 32 for s in sizes)
    assert any(min(s) == 32 for s in sizes)
    # aspect ratio kept (within rounding) and metadata keeps the original size
    for (w, h), ow, oh in zip(sizes, ds["width"], ds["height"]):
        assert abs(w / h - ow / oh) < 0.1
    assert prepared.report["splits"]["train"]["repaired"].get("resized", 0) > 0
    with pytest.raises(ValueError, match=r"resize_shorter .* needs --image_storage bytes \(got 'path'\)"):
        prep(demo_root, tmp_path, resize_shorter=32, image_storage="path")


def test_cache_reuse_and_invalidation(demo_copy, tmp_path):
    first = prep(demo_copy, tmp_path, splits="train,val")
    assert not first.report["reused_cache"]
    again = prep(demo_copy, tmp_path, splits="train,val")
    assert again.report["reused_cache"] and again.report["cache_dir"] == first.report["cache_dir"]
    # an option change is a different cache
    other = prep(demo_copy, tmp_path, splits="train,val", rank="genus")
    assert not other.report["reused_cache"] and other.report["cache_dir"] != first.report["cache_dir"]
    # an edited JSON (same options) rebuilds instead of returning stale rows
    data = read_json(demo_copy, "val")
    data["images"] = data["images"][:-10]
    kept = {i["id"] for i in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in kept]
    write_json(demo_copy, "val", data)
    edited = prep(demo_copy, tmp_path, splits="train,val")
    assert not edited.report["reused_cache"]
    assert edited.dataset["val"].num_rows == len([i for i in data["images"] if "Animalia" in i["file_name"]])
    # force_rebuild over an existing cache works (needs verification_mode="no_checks" inside)
    forced = prep(demo_copy, tmp_path, splits="train,val", force_rebuild=True)
    assert not forced.report["reused_cache"] and forced.dataset["val"].num_rows == edited.dataset["val"].num_rows


def test_builder_used_directly(demo_root, tmp_path):
    args = DataArguments(data_dir=str(demo_root), rank="family", cache_dir=str(tmp_path / "c"))
    builder = InatBuilder(args, "train,val")
    builder.download_and_prepare()
    ds = builder.as_dataset()
    assert isinstance(ds, datasets.DatasetDict) and ds["val"].num_rows == 16
    assert builder.read_taxonomy().rank == "family"


def test_save_and_load_prepared(demo_root, tmp_path):
    out = tmp_path / "prepared"
    prepared = prep(demo_root, tmp_path, output_dir=out)
    assert (out / "prepare_report.json").is_file() and (out / "taxonomy.json").is_file()
    ds = datasets.load_from_disk(str(out))
    assert ds["train"].num_rows == prepared.dataset["train"].num_rows
    again = load_prepared(out)
    assert again.taxonomy == prepared.taxonomy and again.report["splits"] == prepared.report["splits"]
    with pytest.raises(InatDataError, match=r"not a prepared iNat dataset: taxonomy.json is missing"):
        load_prepared(tmp_path)


def test_saved_split_is_what_save_to_disk_writes(demo_root, tmp_path):
    """save_prepared hard-links the builder's Arrow files and writes datasets' private state.json itself; this
    fails when datasets changes that format or its (private) select/shuffle view."""
    prepared = prep(demo_root, tmp_path, splits="val")
    split = prepared.dataset["val"]
    split.save_to_disk(tmp_path / "reference")
    save_prepared(prepared, tmp_path / "ours")
    reference = read_json(tmp_path / "reference", "state")
    ours = read_json(tmp_path / "ours" / "val", "state")
    assert set(ours) == set(reference)
    assert {k: v for k, v in ours.items() if k != "_data_files"} == {
        k: v for k, v in reference.items() if k != "_data_files"
    }
    assert datasets.load_from_disk(str(tmp_path / "ours" / "val"))[:] == split[:]
    # a view (select/shuffle) is written by datasets itself: its rows, in its order
    view = split.select([3, 0, 5])
    save_prepared(dataclasses.replace(prepared, dataset=datasets.DatasetDict(val=view)), tmp_path / "view")
    assert datasets.load_from_disk(str(tmp_path / "view" / "val"))["image_id"] == view["image_id"]


def test_prepare_inat_returns_datasetdict(demo_root, tmp_path):
    ds = prepare_inat(demo_root, splits="val", cache_dir=tmp_path / "c").dataset
    assert isinstance(ds, datasets.DatasetDict) and list(ds) == ["val"]


def test_inconsistent_parent_taxa_are_an_error(demo_copy, tmp_path):
    data = read_json(demo_copy, "train")
    # pretend Turdus migratorius sits in another family: a genus label would then mix two families
    for cat in data["categories"]:
        if cat["id"] == 24:
            cat["family"] = "Muscicapidae"
    for split in ("train", "val", "public_test"):
        d = read_json(demo_copy, split)
        d["categories"] = data["categories"]
        write_json(demo_copy, split, d)
    with pytest.raises(ValueError, match=r"Rank 'genus' value 'Turdus' has inconsistent parents"):
        prep(demo_copy, tmp_path, rank="genus")
    # at species rank it is fine
    assert prep(demo_copy, tmp_path, rank="species").dataset["train"].num_rows == 32


def test_labels_are_stable_under_json_order(demo_copy, tmp_path):
    before = prep(demo_copy, tmp_path / "a", splits="train").dataset["train"].features["label"].names
    data = read_json(demo_copy, "train")
    data["categories"] = data["categories"][::-1]
    data["images"] = data["images"][::-1]
    write_json(demo_copy, "train", data)
    after = prep(demo_copy, tmp_path / "b", splits="train").dataset["train"]
    assert after.features["label"].names == before
    assert np.all(np.array(after["label"]) >= 0)
