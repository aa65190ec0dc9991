"""A small synthetic dataset in the exact iNat 2021 layout: the embedded demo and the tests' data.

``write_demo_dataset(root)`` writes ``train.json``, ``val.json``, ``public_test.json`` (every key of the real
release) and the JPEG folders they point to. The images are learnable on purpose (each species: a motif and a
colour at a random place, size and angle over a noisy background) and mistakes have structure: the two *Turdus*
share a motif, the butterfly and the lady beetle a colour; two plants give ``kingdom=Animalia`` something to remove.
Coordinates and dates are SYNTHETIC too (:data:`DEMO_RANGES`: made-up ranges and seasons) and give the location
prior something to add where images are confusable: the *Turdus* live on different continents, the butterfly and
the beetle share a place but not a season; ~10 % of records lack coordinates, as in the real release.
Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import random
import uuid
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .taxonomy import CATEGORY_RANK_KEYS

# (id, kingdom, phylum, class, order, family, genus, epithet, common name, supercategory, motif, RGB colour)
# fmt: off
DEMO_CATEGORIES: tuple[tuple, ...] = (
    (10, "Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Parus", "major", "Great Tit", "Birds", "circle", (235, 200, 40)),
    (23, "Animalia", "Chordata", "Aves", "Passeriformes", "Turdidae", "Turdus", "merula", "Eurasian Blackbird", "Birds", "triangle", (35, 35, 35)),
    (24, "Animalia", "Chordata", "Aves", "Passeriformes", "Turdidae", "Turdus", "migratorius", "American Robin", "Birds", "triangle", (205, 85, 40)),
    (31, "Animalia", "Chordata", "Aves", "Anseriformes", "Anatidae", "Anas", "platyrhynchos", "Mallard", "Birds", "ring", (40, 140, 60)),
    (48, "Animalia", "Chordata", "Mammalia", "Carnivora", "Canidae", "Vulpes", "vulpes", "Red Fox", "Mammals", "square", (225, 115, 30)),
    (52, "Animalia", "Chordata", "Mammalia", "Rodentia", "Sciuridae", "Sciurus", "vulgaris", "Eurasian Red Squirrel", "Mammals", "diamond", (120, 60, 200)),
    (77, "Animalia", "Arthropoda", "Insecta", "Lepidoptera", "Nymphalidae", "Vanessa", "atalanta", "Red Admiral", "Insects", "stripes", (210, 30, 30)),
    (81, "Animalia", "Arthropoda", "Insecta", "Coleoptera", "Coccinellidae", "Coccinella", "septempunctata", "Seven-spotted Lady Beetle", "Insects", "dots", (210, 30, 30)),
    (90, "Plantae", "Tracheophyta", "Magnoliopsida", "Asterales", "Asteraceae", "Bellis", "perennis", "Common Daisy", "Plants", "star", (250, 250, 250)),
    (95, "Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Rosaceae", "Rosa", "canina", "Dog Rose", "Plants", "cross", (240, 150, 185)),
)
# fmt: on
# SYNTHETIC ranges and seasons: id -> (centre latitude, centre longitude, spread in degrees, peak day of the year or
# None for all year). Not real distributions.
DEMO_RANGES: dict[int, tuple[float, float, float, int | None]] = {
    10: (50.0, 10.0, 8.0, None),
    23: (48.0, 5.0, 8.0, None),
    24: (42.0, -95.0, 10.0, None),
    31: (45.0, -30.0, 25.0, None),
    48: (50.0, 40.0, 20.0, None),
    52: (55.0, 60.0, 15.0, None),
    77: (47.0, 10.0, 10.0, 200),
    81: (47.0, 10.0, 10.0, 110),
    90: (20.0, 0.0, 40.0, None),
    95: (20.0, 0.0, 40.0, None),
}
_SEASON_SD_DAYS = 25.0
_ASPECTS = (4 / 3, 3 / 4, 1.0, 3 / 2, 2 / 3)


def demo_categories() -> list[dict[str, Any]]:
    """The demo's category records, exactly as in an iNat 2021 ``categories`` list."""
    records = []
    for cat_id, *ranks, common, supercategory, _motif, _colour in DEMO_CATEGORIES:
        record: dict[str, Any] = {"id": cat_id, "name": f"{ranks[5]} {ranks[6]}", "common_name": common}
        record["supercategory"] = supercategory
        record.update(zip(CATEGORY_RANK_KEYS, ranks))
        record["image_dir_name"] = f"{cat_id:05d}_" + "_".join(ranks)
        records.append(record)
    return records


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    # A smooth two-colour gradient plus pixel noise: enough texture that colour alone is not the whole story.
    a, b = rng.integers(40, 200, size=(2, 3))
    t = np.linspace(0.0, 1.0, width if rng.random() < 0.5 else height)
    grad = a[None, :] * (1 - t[:, None]) + b[None, :] * t[:, None]  # [L, 3]
    if len(t) == width:
        pixels = np.broadcast_to(grad[None, :, :], (height, width, 3))
    else:
        pixels = np.broadcast_to(grad[:, None, :], (height, width, 3))
    pixels = pixels + rng.normal(0.0, 12.0, size=(height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _polygon(cx: float, cy: float, radius: float, sides: int, angle: float, inner: float | None = None) -> list[tuple]:
    points = []
    steps = sides * (2 if inner else 1)
    for k in range(steps):
        r = radius if (inner is None or k % 2 == 0) else radius * inner
        theta = angle + 2 * math.pi * k / steps
        points.append((cx + r * math.cos(theta), cy + r * math.sin(theta)))
    return points


_POLYGONS = {"triangle": (3, None), "square": (4, None), "star": (5, 0.45)}  # sides, inner radius ratio


def _draw_motif(draw: ImageDraw.ImageDraw, motif: str, colour: tuple, cx: float, cy: float, r: float, angle: float):
    if motif == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif motif == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(2, int(r * 0.35)))
    elif motif in _POLYGONS:
        sides, inner = _POLYGONS[motif]
        draw.polygon(_polygon(cx, cy, r, sides, angle, inner), fill=colour)
    elif motif == "diamond":
        draw.polygon([(cx, cy - r), (cx + r * 0.6, cy), (cx, cy + r), (cx - r * 0.6, cy)], fill=colour)
    elif motif == "cross":
        w = r * 0.35
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=colour)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=colour)
    elif motif == "stripes":
        w = max(2.0, r * 0.22)
        for k in range(-2, 3):
            x = cx + k * 2 * w
            draw.rectangle([x - w / 2, cy - r, x + w / 2, cy + r], fill=colour)
    elif motif == "dots":
        for k in range(7):
            theta = angle + 2 * math.pi * k / 7
            dx, dy = (0.0, 0.0) if k == 0 else (r * 0.65 * math.cos(theta), r * 0.65 * math.sin(theta))
            d = r * 0.22
            draw.ellipse([cx + dx - d, cy + dy - d, cx + dx + d, cy + dy + d], fill=colour)
    else:
        raise ValueError(f"Unknown demo motif {motif!r}")


def render_demo_image(motif: str, colour: tuple, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """One synthetic photo: background, a couple of grey distractor blobs, and the species' motif."""
    image = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    short = min(width, height)
    for _ in range(int(rng.integers(1, 3))):
        g = int(rng.integers(60, 200))
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        s = rng.uniform(0.05, 0.15) * short
        draw.ellipse([x - s, y - s, x + s, y + s], fill=(g, g, g))
    radius = rng.uniform(0.22, 0.36) * short
    cx = rng.uniform(radius, width - radius)
    cy = rng.uniform(radius, height - radius)
    jitter = rng.integers(-18, 19, size=3)
    motif_colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter))
    _draw_motif(draw, motif, motif_colour, cx, cy, radius, rng.uniform(0, 2 * math.pi))
    return image


def write_demo_dataset(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    train_per_class: int = 40,
    val_per_class: int = 12,
    num_test: int = 20,
    min_size: int = 160,
    max_size: int = 500,
    jpeg_quality: int = 90,
) -> str:
    """Write the demo dataset into ``root`` (created if needed) and return its path.

    Sizes: every image's longer side is drawn from ``[min_size, max_size]`` with an iNat-like aspect ratio.
    The tests use e.g. ``train_per_class=4, max_size=64`` to stay fast.
    """
    if not 8 <= min_size <= max_size:
        raise ValueError(f"Need 8 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}.")
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    categories = demo_categories()
    motifs = {c[0]: (c[10], c[11]) for c in DEMO_CATEGORIES}
    licenses = [{"id": 1, "name": "CC BY-NC 4.0", "url": "https://creativecommons.org/licenses/by-nc/4.0/"}]
    info = {"description": "inat_hf synthetic demo data in the iNat 2021 layout", "version": "1.0", "year": 2021}
    next_id = iter(range(100_000, 10_000_000))
    # A separate stream for where/when: the image stream (`rnd`, `rng`) stays what it was before ranges existed,
    # so the demo images and the figures measured on them do not change.
    geo_rnd = random.Random(f"demo-geo-{seed}")

    def new_image(folder: str, category: dict | None) -> dict[str, Any]:
        long_side = rnd.randint(min_size, max_size)
        aspect = rnd.choice(_ASPECTS)
        width, height = (
            (long_side, round(long_side / aspect)) if aspect >= 1 else (round(long_side * aspect), long_side)
        )
        width, height = max(8, width), max(8, height)
        name = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        sub = f"{folder}/{category['image_dir_name']}" if category else folder
        file_name = f"{sub}/{name}.jpg"
        motif, colour = motifs[category["id"]] if category else motifs[rnd.choice(list(motifs))]
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        render_demo_image(motif, colour, width, height, rng).save(
            os.path.join(root, file_name), format="JPEG", quality=jpeg_quality
        )
        has_geo = rnd.random() > 0.1  # real records sometimes lack coordinates
        rights_holder = f"demo_user_{rnd.randint(1, 50)}"
        year, _month, _day, hour, minute = (rnd.randint(*r) for r in ((10, 20), (1, 12), (1, 28), (0, 23), (0, 59)))
        if has_geo:  # the draws of the earlier uniform coordinates, kept so that the image stream is unchanged
            rnd.uniform(-60, 70), rnd.uniform(-180, 180)
        uncertainty = rnd.randint(1, 5000) if has_geo and rnd.random() > 0.2 else None
        lat_c, lon_c, spread, peak = DEMO_RANGES[category["id"] if category else geo_rnd.choice(list(DEMO_RANGES))]
        lat = min(max(geo_rnd.gauss(lat_c, spread), -89.0), 89.0)
        lon = (geo_rnd.gauss(lon_c, spread) + 180.0) % 360.0 - 180.0
        doy = geo_rnd.gauss(peak, _SEASON_SD_DAYS) if peak is not None else geo_rnd.uniform(1, 365)
        date = datetime.date(2000 + year, 1, 1) + datetime.timedelta(days=int(doy - 1) % 365)
        return {
            "id": next(next_id),
            "width": width,
            "height": height,
            "file_name": file_name,
            "license": 1,
            "rights_holder": rights_holder,
            "date": f"{date.isoformat()} {hour:02d}:{minute:02d}:00+00:00",
            "latitude": round(lat, 5) if has_geo else None,
            "longitude": round(lon, 5) if has_geo else None,
            "location_uncertainty": uncertainty,
        }

    def write_split(split: str, per_class: int) -> None:
        images, annotations = [], []
        for _ in range(per_class):  # interleaved classes: any prefix of the file is balanced
            for category in categories:
                image = new_image(split, category)
                images.append(image)
                annotations.append(
                    {"id": len(annotations) + 1, "image_id": image["id"], "category_id": category["id"]}
                )
        payload = {"info": info, "licenses": licenses, "images": images, "annotations": annotations}
        payload["categories"] = categories
        with open(os.path.join(root, f"{split}.json"), "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1)

    write_split("train", train_per_class)
    write_split("val", val_per_class)
    if num_test:
        test_images = [new_image("public_test", None) for _ in range(num_test)]
        with open(os.path.join(root, "public_test.json"), "w", encoding="utf-8") as f:
            json.dump(
                {"info": info, "licenses": licenses, "images": test_images, "categories": categories}, f, indent=1
            )
    return root
