"""Paths stay inside the data root: a symbolic link that leads outside is a bad image (unless
``follow_symlinks``), and no message or report ever quotes a file's contents."""

import json

import datasets
import pytest
from PIL import Image

from inat_hf.data import InatDataError, decode_image
from inat_hf.data.decode import ImageDecodeError
from tests.data.helpers import prep, read_json

SECRET = b"root:x:0:0:secret-line\n"


def _link_first_animal(root, target):
    victim = next(i for i in read_json(root, "train")["images"] if "Animalia" in i["file_name"])
    path = root / victim["file_name"]
    path.unlink()
    path.symlink_to(target)
    return victim


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_bytes(SECRET)
    Image.new("RGB", (40, 30), (0, 200, 0)).save(folder / "photo.jpg")
    return folder


@pytest.mark.parametrize("storage", ["path", "bytes"])
def test_link_to_a_file_outside_the_root_is_a_bad_image(demo_copy, tmp_path, outside, storage):
    victim = _link_first_animal(demo_copy, outside / "photo.jpg")
    with pytest.raises(
        InatDataError, match=rf"{victim['file_name']} \(image id {victim['id']}\): outside the data root"
    ):
        prep(demo_copy, tmp_path, splits="train", image_storage=storage, preprocessing_num_workers=1)
    out = tmp_path / "out"
    prepared = prep(
        demo_copy,
        tmp_path,
        splits="train",
        image_storage=storage,
        on_bad_image="skip",
        output_dir=out,
        preprocessing_num_workers=1,
    )
    assert [s["image_id"] for s in prepared.report["skipped"]] == [victim["id"]]
    assert victim["id"] not in prepared.dataset["train"]["image_id"]
    # --follow_symlinks: the link is followed (and with bytes storage its picture embedded)
    followed = prep(
        demo_copy,
        tmp_path / "f",
        splits="train",
        image_storage=storage,
        follow_symlinks=True,
        preprocessing_num_workers=1,
    )
    train = followed.dataset["train"]
    assert train[train["image_id"].index(victim["id"])]["image"].getpixel((5, 5))[1] > 150


def test_a_link_to_a_text_file_never_reaches_messages_reports_or_data(demo_copy, tmp_path, outside):
    victim = _link_first_animal(demo_copy, outside / "passwd")
    for storage in ("path", "bytes"):
        with pytest.raises(InatDataError) as info:
            prep(demo_copy, tmp_path / storage, splits="train", image_storage=storage, preprocessing_num_workers=1)
        assert "root:x" not in str(info.value) and "outside the data root" in str(info.value)
        out = tmp_path / f"out_{storage}"
        prep(
            demo_copy,
            tmp_path / storage,
            splits="train",
            image_storage=storage,
            on_bad_image="skip",
            output_dir=out,
            preprocessing_num_workers=1,
            follow_symlinks=True,
        )  # followed: then it is "not an image", still without its contents
        report = (out / "prepare_report.json").read_text()
        assert "root:x" not in report and "secret" not in report
        assert json.loads(report)["skipped"][0]["image_id"] == victim["id"]
        for arrow in (out / "train").glob("*.arrow"):
            assert SECRET not in arrow.read_bytes()
    with pytest.raises(ImageDecodeError) as info:
        decode_image(str(outside / "passwd"))
    assert "root:x" not in str(info.value) and str(outside / "passwd") in str(info.value)


def test_links_inside_the_root_are_fine(demo_copy, tmp_path):
    images = [i for i in read_json(demo_copy, "train")["images"] if "Animalia" in i["file_name"]]
    target = demo_copy / images[1]["file_name"]
    _link_first_animal(demo_copy, target)
    prepared = prep(demo_copy, tmp_path, splits="train", image_storage="bytes", preprocessing_num_workers=1)
    assert prepared.report["skipped"] == [] and prepared.dataset["train"].num_rows == 32
    assert isinstance(prepared.dataset["train"].features["image"], datasets.Image)
