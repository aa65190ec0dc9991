"""Text in the iNat JSON must be UTF-8: a bad byte in a file_name is an error naming the file and the image id."""

import pytest

from inat_hf.data import InatDataError
from tests.data.helpers import prep, read_json


@pytest.mark.parametrize("verify_files", [True, False])
def test_non_utf8_file_name_names_the_image_id(demo_copy, tmp_path, verify_files):
    data = read_json(demo_copy, "train")
    victim = data["images"][3]
    raw = (demo_copy / "train.json").read_bytes()
    name = victim["file_name"].encode()
    assert raw.count(name) == 1
    (demo_copy / "train.json").write_bytes(raw.replace(name, name[:-4] + b"\xff\xfe.jpg"))
    with pytest.raises(InatDataError) as info:
        prep(demo_copy, tmp_path, splits="train", verify_files=verify_files, preprocessing_num_workers=1)
    text = str(info.value)
    assert "train.json" in text and f"image ids {victim['id']}" in text and "'file_name'" in text
    assert "not valid UTF-8" in text and "\\xff\\xfe.jpg" in text, text


def test_non_utf8_category_text_is_named_too(demo_copy, tmp_path):
    raw = (demo_copy / "train.json").read_bytes()
    genus = read_json(demo_copy, "train")["categories"][0]["genus"].encode()
    (demo_copy / "train.json").write_bytes(raw.replace(b'"' + genus + b'"', b'"' + genus + b'\xc3"', 1))
    with pytest.raises(InatDataError, match=r"category record\(s\) have a 'genus' that is not valid UTF-8"):
        prep(demo_copy, tmp_path, splits="train", verify_files=False, preprocessing_num_workers=1)
