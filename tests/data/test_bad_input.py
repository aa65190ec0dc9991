"""Bad input never silently loses an image: structural errors stop, per-image problems follow on_bad_image."""

import io
import json
import os

import pytest
from PIL import Image

from inat_hf.data import InatDataError
from tests.data.helpers import prep as prepare
from tests.data.helpers import read_json, write_json


def prep(root, tmp_path, **kwargs):
    kwargs.setdefault("splits", "train")
    return prepare(root, tmp_path, **kwargs)


def edit_train(root, edit):
    data = read_json(root, "train")
    edit(data)
    write_json(root, "train", data)
    return data


def animal_images(data):
    return [i for i in data["images"] if "/00010_Animalia" in i["file_name"]]


# ---------------------------------------------------------------- structural problems: always an error
@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d.pop("images"),
            r"missing the 'images' list \(found keys: annotations, categories, info, licenses\)",
        ),
        (
            lambda d: d["images"][2].pop("file_name"),
            r"1 image record\(s\) have no 'file_name' \(missing or null\): image ids 100002",
        ),
        (
            lambda d: d["images"][5].update(id=None),
            r"1 image record\(s\) have no 'id' \(missing or null\): image records at positions 5",
        ),
        (
            lambda d: d["images"][1].update(id=d["images"][0]["id"]),
            r"1 duplicate image ids: 100000\. Each must appear once",
        ),
        (lambda d: d["annotations"][0].pop("category_id"), r"annotation record\(s\) have no 'category_id'"),
        (
            lambda d: d["categories"][0].pop("genus"),
            r"category record\(s\) have no 'genus' \(missing or null\): category ids 10",
        ),
        (lambda d: d["categories"].append(dict(d["categories"][0])), r"duplicate category ids: 10\."),
        (
            lambda d: d["annotations"][0].update(image_id=999),
            r"refer to unknown images: annotation ids 1 \(image_id 999\)",
        ),
        (
            lambda d: d["annotations"][0].update(category_id=4242),
            r"refer to unknown categories: annotation ids 1 \(category_id 4242\)",
        ),
        (
            lambda d: d["annotations"].append(dict(d["annotations"][0], id=999)),
            r"duplicate annotations for one image .*: 100000",
        ),
        (lambda d: d["annotations"].pop(3), r"has annotations, but 1 image\(s\) have none: image ids 100003"),
        (
            lambda d: d["images"][0].update(file_name="../../etc/passwd"),
            r"escape the data root \(absolute path or '..'\): image ids 100000 \('../../etc/passwd'\)",
        ),
        (lambda d: d["images"][0].update(file_name="/etc/passwd"), r"escape the data root .*100000 \('/etc/passwd'\)"),
        (lambda d: d["images"][0].update(file_name="train/../../x.jpg"), r"escape the data root"),
        (lambda d: d["images"][0].update(id="abc"), r"image id 'abc' has id \"abc\" \(text\); expected an integer"),
        (lambda d: d["images"].append(None), r"'images' holds a non-object entry"),
    ],
)
def test_structural_errors(demo_copy, tmp_path, edit, message):
    edit_train(demo_copy, edit)
    with pytest.raises(InatDataError, match=message):
        prep(demo_copy, tmp_path)


@pytest.mark.parametrize("other_species", [False, True])
def test_a_file_name_given_to_two_image_ids_is_an_error_naming_both(demo_copy, tmp_path, other_species):
    data = read_json(demo_copy, "train")
    first = data["images"][0]
    folder = os.path.dirname(first["file_name"])
    twin = next(i for i in data["images"][1:] if (os.path.dirname(i["file_name"]) != folder) == other_species)
    twin["file_name"] = first["file_name"].replace("train/", "train//./", 1)  # the same file, spelled differently
    write_json(demo_copy, "train", data)
    both = rf"train image {first['id']} and train image {twin['id']}"
    with pytest.raises(InatDataError, match=rf"'{first['file_name']}' \({both}\)"):
        prep(demo_copy, tmp_path)


def test_a_file_in_two_splits_is_an_error_naming_both(demo_copy, tmp_path):
    train, val = read_json(demo_copy, "train"), read_json(demo_copy, "val")
    leaked = val["images"][0]
    leaked["file_name"] = train["images"][3]["file_name"]
    write_json(demo_copy, "val", val)
    write_json(demo_copy, "train_mini", train)  # iNat's train_mini is a subset of train: sharing is fine there
    with pytest.raises(
        InatDataError,
        match=rf"\(train image {train['images'][3]['id']} and val image {leaked['id']}\)",
    ):
        prep(demo_copy, tmp_path, splits="train,train_mini,val")


def test_invalid_json_names_the_position(demo_copy, tmp_path):
    (demo_copy / "train.json").write_text('{"images": [{"id": 1, "file_name": "a.jpg"},]}')
    with pytest.raises(InatDataError, match=r"train.json is not valid JSON: Expecting value: line 1 column 45"):
        prep(demo_copy, tmp_path)


def test_top_level_not_an_object(demo_copy, tmp_path):
    (demo_copy / "train.json").write_text("[1, 2]")
    with pytest.raises(InatDataError, match=r"unexpected JSON structure"):
        prep(demo_copy, tmp_path)


def test_annotations_without_any_categories(demo_copy, tmp_path):
    edit_train(demo_copy, lambda d: d.pop("categories"))
    with pytest.raises(InatDataError, match=r"has 'annotations' but no file gives a 'categories' list"):
        prep(demo_copy, tmp_path)


def test_conflicting_taxonomy_between_files(demo_copy, tmp_path):
    val = read_json(demo_copy, "val")
    val["categories"][0]["class"] = "Reptilia"
    write_json(demo_copy, "val", val)
    with pytest.raises(
        InatDataError, match=r"Category 10 has a different taxonomy in .*val.json than in .*train.json"
    ):
        prep(demo_copy, tmp_path, splits="train,val")


# ---------------------------------------------------------------- per-image problems: error or skip + report
def jpeg_bytes(size=(48, 40), mode="RGB", exif=None, fmt="JPEG"):
    buffer = io.BytesIO()
    image = Image.new(mode, size, 128 if mode in ("L", "P") else None)
    kwargs = {"exif": exif} if exif is not None else {}
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def break_file(path, how):
    if how == "missing":
        os.remove(path)
    elif how == "zero-byte":
        open(path, "wb").close()
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "corrupt":
        data = bytearray(path.read_bytes())
        data[200:600] = os.urandom(400)  # garbage inside the entropy-coded data
        path.write_bytes(bytes(data))
    elif how == "not-an-image":
        path.write_text("this is a text file, not a JPEG")
    elif how == "bomb":
        # ~100 Mpx (> PIL's 89 Mpx limit) in a 1-bit PNG of a few kB: cheap to make, deadly to decode in RGB
        Image.new("1", (10_000, 10_000)).save(path, format="PNG")


BAD = {
    "missing": "missing file",
    "zero-byte": r"empty file \(0 bytes\)",
    "truncated": "truncated image",
    "corrupt": "(corrupt image|truncated image)",
    "not-an-image": r"not an image \(PIL cannot identify the file",
    "bomb": r"decompression bomb \(10000x10000 = 100,000,000 pixels, over the limit",
}


@pytest.mark.parametrize("how", list(BAD))
def test_bad_image_error_mode_names_the_file(demo_copy, tmp_path, how):
    data = read_json(demo_copy, "train")
    victim = animal_images(data)[1]
    break_file(demo_copy / victim["file_name"], how)
    with pytest.raises(InatDataError) as info:
        prep(demo_copy, tmp_path, preprocessing_num_workers=1)
    text = str(info.value)
    assert victim["file_name"] in text and f"image id {victim['id']}" in text and "--on_bad_image skip" in text
    assert __import__("re").search(BAD[how], text), text


def test_bad_images_skipped_and_reported(demo_copy, tmp_path):
    data = read_json(demo_copy, "train")
    victims = dict(zip(BAD, animal_images(data)[: len(BAD)] + []))
    # the first species has 4 train images; take more victims from other animal species
    others = [i for i in data["images"] if "Animalia" in i["file_name"] and i not in animal_images(data)]
    victims = dict(zip(BAD, (animal_images(data) + others)[: len(BAD)]))
    for how, image in victims.items():
        break_file(demo_copy / image["file_name"], how)
    out = tmp_path / "out"
    prepared = prep(demo_copy, tmp_path, on_bad_image="skip", output_dir=out, preprocessing_num_workers=2)
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["splits"]["train"]["skipped"] == len(BAD)
    assert report["splits"]["train"]["written"] == 32 - len(BAD)
    listed = {item["image_id"]: item for item in report["skipped"]}
    assert set(listed) == {image["id"] for image in victims.values()}
    for how, image in victims.items():
        item = listed[image["id"]]
        assert item["file_name"] == image["file_name"] and item["split"] == "train"
        assert __import__("re").search(BAD[how], item["reason"]), item
    assert sum(report["skipped_by_reason"].values()) == len(BAD)
    assert prepared.dataset["train"].num_rows == 32 - len(BAD)
    assert not set(prepared.dataset["train"]["image_id"]) & set(listed)
    # a cached rebuild reports the same skipped files
    again = prep(demo_copy, tmp_path, on_bad_image="skip")
    assert again.report["reused_cache"] and len(again.report["skipped"]) == len(BAD)


def test_no_verify_files_with_embedding_still_reports_missing(demo_copy, tmp_path):
    data = read_json(demo_copy, "train")
    victim = animal_images(data)[0]
    os.remove(demo_copy / victim["file_name"])
    prepared = prep(demo_copy, tmp_path, verify_files=False, image_storage="bytes", on_bad_image="skip")
    assert [s["image_id"] for s in prepared.report["skipped"]] == [victim["id"]]
    # path storage without verification does not touch the files at all (the fast path for huge JSON)
    fast = prep(demo_copy, tmp_path / "fast", verify_files=False)
    assert fast.dataset["train"].num_rows == 32 and fast.report["skipped"] == []


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P"])
@pytest.mark.parametrize("storage", ["path", "bytes"])
def test_non_rgb_modes_are_converted_not_errors(demo_copy, tmp_path, mode, storage):
    data = read_json(demo_copy, "train")
    victim = animal_images(data)[0]
    fmt = "PNG" if mode in ("RGBA", "P") else "JPEG"
    (demo_copy / victim["file_name"]).write_bytes(jpeg_bytes(mode=mode, fmt=fmt))
    prepared = prep(demo_copy, tmp_path, image_storage=storage)
    train = prepared.dataset["train"]
    row = train[train["image_id"].index(victim["id"])]
    assert row["image"].mode == "RGB" and row["image"].size == (48, 40)
    assert prepared.report["splits"]["train"]["repaired"] == {f"mode {mode}->RGB": 1}
    assert prepared.report["skipped"] == []


@pytest.mark.parametrize("storage", ["path", "bytes"])
def test_exif_rotation_is_applied(demo_copy, tmp_path, storage):
    data = read_json(demo_copy, "train")
    victim = animal_images(data)[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    (demo_copy / victim["file_name"]).write_bytes(jpeg_bytes(size=(48, 32), exif=exif))
    prepared = prep(demo_copy, tmp_path, image_storage=storage)
    train = prepared.dataset["train"]
    row = train[train["image_id"].index(victim["id"])]
    assert row["image"].size == (32, 48)
    assert prepared.report["splits"]["train"]["repaired"] == {"EXIF orientation 6": 1}


def test_max_image_pixels_option(demo_copy, tmp_path):
    data = read_json(demo_copy, "train")
    big = [i for i in data["images"] if "Animalia" in i["file_name"] and i["width"] * i["height"] > 50 * 50]
    prepared = prep(demo_copy, tmp_path, max_image_pixels=50 * 50, on_bad_image="skip")
    assert prepared.report["skipped_by_reason"] == {"decompression bomb": len(big)}
    assert 0 < len(big) < 32


def test_every_image_bad_is_an_error_even_in_skip_mode(demo_copy, tmp_path):
    with pytest.raises(InatDataError, match=r"Split 'train': all 32 images were skipped as bad \(decompression bomb;"):
        prep(demo_copy, tmp_path, max_image_pixels=10, on_bad_image="skip")


def test_json_too_large_for_one_arrow_block_is_read_with_the_json_module(demo_copy, tmp_path, monkeypatch):
    from inat_hf.data import inat_json

    arrow = prep(demo_copy, tmp_path / "arrow", splits="train,val,public_test").dataset
    monkeypatch.setattr(inat_json, "_MAX_ARROW_BLOCK", 0)  # every file counts as over pyarrow's 2 GB block
    slow = prep(demo_copy, tmp_path / "json", splits="train,val,public_test").dataset
    for split in arrow:
        assert slow[split].remove_columns("image")[:] == arrow[split].remove_columns("image")[:]
    edit_train(demo_copy, lambda d: d["images"][0].update(id="abc"))
    with pytest.raises(
        InatDataError, match=r"train.json: image id 'abc' has id \"abc\" \(text\); expected an integer"
    ):
        prep(demo_copy, tmp_path / "json")
