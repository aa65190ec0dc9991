"""Range maps (inat_hf.geo.range_map) and the inat-range-map command: a prior trained on records clustered in one
region draws its hot spot there."""

import numpy as np
import pytest
import torch
from PIL import Image

from inat_hf.commands.range_map import main
from inat_hf.geo.arguments import GeoTrainingArguments
from inat_hf.geo.range_map import find_label, range_grid
from inat_hf.geo.records import GeoRecords
from inat_hf.geo.training import train_geo_prior
from inat_hf.models import GeoPriorConfig, GeoPriorModel

# (latitude, longitude) of each species' records: Europe, North America, Australia.
CENTRES = [(50.0, 10.0), (40.0, -100.0), (-25.0, 135.0)]


@pytest.fixture(scope="module", params=["softmax", "presence"])
def prior(request, tmp_path_factory):
    # Three species in their regions and a fourth everywhere (on the sphere): with nothing else around, a softmax
    # prior would give a clustered species p ~ 1 on the whole continent, and no hot spot.
    rng = np.random.default_rng(0)
    n = 80
    lat = np.concatenate([rng.normal(la, 3, n) for la, _ in CENTRES] + [np.degrees(np.arcsin(rng.uniform(-1, 1, n)))])
    lon = np.concatenate([rng.normal(lo, 3, n) for _, lo in CENTRES] + [rng.uniform(-180, 180, n)])
    labels = np.repeat(np.arange(len(CENTRES) + 1), n)
    records = GeoRecords(lat, lon, rng.uniform(1, 366, len(labels)), labels, np.arange(len(labels)))
    torch.manual_seed(0)
    names = {0: "Erithacus rubecula", 1: "Cardinalis cardinalis", 2: "Dacelo novaeguineae", 3: "Passer domesticus"}
    model = GeoPriorModel(GeoPriorConfig(id2label=names, hidden_size=32, num_blocks=1, loss=request.param))
    args = GeoTrainingArguments(output_dir="unused", num_epochs=1, min_steps=150, batch_size=64, learning_rate=5e-3)
    train_geo_prior(model, records, args, log=None)
    path = tmp_path_factory.mktemp(f"prior_{request.param}")
    model.save_pretrained(path)
    return model, path


@pytest.mark.parametrize("month", [None, 6])
def test_hot_spot_is_where_the_records_are(prior, month):
    model, _ = prior
    for label, (centre_lat, centre_lon) in enumerate(CENTRES):
        lats, lons, values = range_grid(model, label, month=month, resolution=2.0)
        assert values.shape == (90, 180) and np.isfinite(values).all()
        row, col = np.unravel_index(values.argmax(), values.shape)
        # The argmax cell lies in the records' region (their spread is 3°). The softmax's p(label | place) is
        # flat-topped (near 1 wherever no other species was recorded), so its argmax wanders more (up to 13° here).
        within = 15 if model.config.loss == "softmax" else 8
        assert abs(lats[row] - centre_lat) <= within and abs(lons[col] - centre_lon) <= within, (label, row, col)


def test_command_writes_a_png_and_refuses_an_unknown_species(prior, tmp_path, capsys):
    _, path = prior
    out = tmp_path / "range.png"
    args = ["--geo_prior", str(path), "--output", str(out), "--resolution", "4"]
    assert main([*args, "--species", "cardinalis", "--month", "6", "--lat", "40", "--lon", "-100"]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width >= 400 and image.height >= 200
    assert "'Cardinalis cardinalis'" in capsys.readouterr().out
    assert main([*args, "--species", "Corvus corax"]) == 2
    assert "no label contains it" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main([*args, "--species", "0", "--month", "13"])
    assert err.value.code == 2


def test_find_label_by_name_index_or_unique_part(prior):
    model, _ = prior
    assert find_label(model, "Dacelo novaeguineae") == 2 and find_label(model, "1") == 1
    assert find_label(model, "RUBECULA") == 0
    with pytest.raises(ValueError, match="2 labels contain it"):
        find_label(model, "er")  # Erithacus rubecula, Passer domesticus
