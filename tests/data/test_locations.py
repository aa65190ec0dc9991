"""Coordinates in the iNat JSON: checked when the data is prepared, never stored or used silently when invalid."""

import json
import math

import pytest

from inat_hf.data import InatDataError
from tests.data.helpers import prep, read_json, write_json


def set_locations(root, values):
    """The first images of train.json get the given (latitude, longitude); returns their ids."""
    data = read_json(root, "train")
    for image, (lat, lon) in zip(data["images"], values):
        image["latitude"], image["longitude"] = lat, lon
    write_json(root, "train", data)  # json writes NaN / Infinity as JavaScript does; pyarrow reads them
    return [image["id"] for image in data["images"][: len(values)]]


BAD = [(math.nan, 3.0), (math.inf, 3.0), (-math.inf, 3.0), (95.0, 3.0), (10.0, 200.0), (10.0, None)]


def test_invalid_coordinates_stop_the_preparation_naming_the_records(demo_copy, tmp_path):
    ids = set_locations(demo_copy, BAD)
    with pytest.raises(InatDataError) as info:
        prep(demo_copy, tmp_path, splits="train")
    message = str(info.value)
    assert "6 image record(s) have an invalid location" in message and "--on_bad_record skip" in message
    for i, (lat, lon) in zip(ids, BAD):
        assert f"{i} (lat={lat}, lon={lon})" in message


def test_skip_keeps_the_images_without_their_location_and_lists_them(demo_copy, tmp_path):
    ids = set_locations(demo_copy, [*BAD, (-33.9, 151.2)])
    prepared = prep(demo_copy, tmp_path, splits="train", on_bad_record="skip")
    rows = {row["image_id"]: row for row in prepared.dataset["train"].remove_columns("image")}
    assert all(rows[i]["latitude"] is None and rows[i]["longitude"] is None for i in ids[:6])
    assert (rows[ids[6]]["latitude"], rows[ids[6]]["longitude"]) == (-33.9, 151.2)  # a valid one is kept
    report = prepared.report
    assert report["splits"]["train"]["bad_locations"] == 6 and len(rows) == report["splits"]["train"]["written"]
    assert [(b["image_id"], b["latitude"]) for b in report["bad_locations"]] == [
        (i, str(v)) for i, (v, _) in zip(ids, BAD)
    ]
    json.dumps(report, allow_nan=False)  # the report stays strict JSON
    from inat_hf.data import format_summary

    assert "Invalid locations removed (--on_bad_record skip; images kept without one): 6" in format_summary(report)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("latitude", "45.1", 'has latitude "45.1" (text); expected a number in decimal degrees or null'),
        ("longitude", [1, 2], "has longitude [1, 2] (an array); expected a number in decimal degrees or null"),
        ("width", "640", 'has width "640" (text); expected an integer or null'),
    ],
)
def test_a_value_of_the_wrong_type_names_the_record(demo_copy, tmp_path, field, value, message):
    data = read_json(demo_copy, "train")
    data["images"][3][field] = value
    write_json(demo_copy, "train", data)
    with pytest.raises(InatDataError, match=f"train.json: image id {data['images'][3]['id']} ") as info:
        prep(demo_copy, tmp_path, splits="train")
    assert message in str(info.value)
