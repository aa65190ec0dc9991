"""The synthetic demo dataset: iNat 2021 layout, deterministic, learnable."""

import hashlib
import json

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression

from inat_hf.data import write_demo_dataset
from inat_hf.data.taxonomy import parse_image_dir_name


def tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_layout_has_every_inat_key(demo_root):
    train = json.loads((demo_root / "train.json").read_text())
    assert set(train) == {"info", "licenses", "images", "annotations", "categories"}
    assert set(train["images"][0]) == {
        "id",
        "width",
        "height",
        "file_name",
        "license",
        "rights_holder",
        "date",
        "latitude",
        "longitude",
        "location_uncertainty",
    }
    assert set(train["categories"][0]) == {
        "id",
        "name",
        "common_name",
        "supercategory",
        "kingdom",
        "phylum",
        "class",
        "order",
        "family",
        "genus",
        "specific_epithet",
        "image_dir_name",
    }
    for image in train["images"]:
        folder = image["file_name"].split("/")[1]
        assert parse_image_dir_name(folder) is not None
        with Image.open(demo_root / image["file_name"]) as im:
            assert im.format == "JPEG" and im.size == (image["width"], image["height"])
    test = json.loads((demo_root / "public_test.json").read_text())
    assert "annotations" not in test and test["images"][0]["file_name"].startswith("public_test/")


def test_deterministic_by_seed(tmp_path):
    kwargs = dict(train_per_class=1, val_per_class=1, num_test=1, min_size=24, max_size=40)
    a = write_demo_dataset(tmp_path / "a", seed=3, **kwargs)
    b = write_demo_dataset(tmp_path / "b", seed=3, **kwargs)
    c = write_demo_dataset(tmp_path / "c", seed=4, **kwargs)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b") != tree_digest(tmp_path / "c")
    assert a.endswith("a") and b.endswith("b") and c.endswith("c")


def test_sizes_vary_up_to_max(tmp_path):
    write_demo_dataset(tmp_path, train_per_class=3, val_per_class=1, num_test=0, min_size=100, max_size=500)
    images = json.loads((tmp_path / "train.json").read_text())["images"]
    long_sides = [max(i["width"], i["height"]) for i in images]
    assert max(long_sides) <= 500 and min(long_sides) >= 100 and len(set(long_sides)) > 10
    assert not (tmp_path / "public_test.json").exists()


def features(root, split):
    data = json.loads((root / f"{split}.json").read_text())
    label = {a["image_id"]: a["category_id"] for a in data["annotations"]}
    x = [
        np.asarray(Image.open(root / i["file_name"]).convert("RGB").resize((16, 16)), dtype=np.float32).ravel() / 255
        for i in data["images"]
    ]
    return np.stack(x), np.array([label[i["id"]] for i in data["images"]])


def test_learnable_by_a_simple_model(tmp_path):
    """Class-dependent structure: even a linear model on 16x16 pixels beats chance (10%) by a wide margin."""
    write_demo_dataset(tmp_path, train_per_class=30, val_per_class=10, num_test=0, min_size=48, max_size=64)
    x_train, y_train = features(tmp_path, "train")
    x_val, y_val = features(tmp_path, "val")
    accuracy = LogisticRegression(max_iter=2000).fit(x_train, y_train).score(x_val, y_val)
    assert accuracy > 0.3, accuracy
