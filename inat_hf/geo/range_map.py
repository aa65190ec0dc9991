"""A species' predicted range: the location prior over a latitude/longitude grid (for one month, or without a date),
drawn as a PNG with a graticule (matplotlib; no coastlines: they would need map data this package does not ship)."""

from __future__ import annotations

import io

import numpy as np
import torch

# Day of the year of each month's 15th (non-leap year): the date a month's map is drawn for.
MID_MONTH_DAY = (15, 46, 74, 105, 135, 166, 196, 227, 258, 288, 319, 349)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # fmt: skip


@torch.no_grad()
def range_grid(
    model, label: int, *, month: int | None = None, resolution: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(latitudes [H], longitudes [W], values [H, W])``: cell centres, north row first, and the prior's value for
    ``label`` in each cell: p(label | place[, date]) (softmax loss) or the presence probability σ(s_label) (presence
    loss, as SINR's maps). ``month`` (1..12) draws the 15th of that month; ``None`` the date-less answer."""
    if not 0 < resolution <= 10:
        raise ValueError(f"resolution must be in (0, 10] degrees, got {resolution}.")
    lats = np.arange(90 - resolution / 2, -90, -resolution)
    lons = np.arange(-180 + resolution / 2, 180, resolution)
    grid_lat, grid_lon = (
        torch.from_numpy(g.ravel().astype(np.float32)) for g in np.meshgrid(lats, lons, indexing="ij")
    )
    day = torch.full_like(grid_lat, float("nan") if month is None else MID_MONTH_DAY[month - 1])
    model.eval()
    values = []
    for s in range(0, len(grid_lat), 65536):
        logits = model(grid_lat[s : s + 65536], grid_lon[s : s + 65536], day[s : s + 65536]).logits.float()
        scores = logits.sigmoid() if model.config.loss == "presence" else logits.softmax(-1)
        values.append(scores[:, label])
    return lats, lons, torch.cat(values).reshape(len(lats), len(lons)).numpy()


def render_range_map(
    model,
    label: int,
    *,
    month: int | None = None,
    resolution: float = 1.0,
    mark: tuple[float, float] | None = None,
    title: str | None = None,
):
    """The range of ``label`` (:func:`range_grid`) as a PIL image: a world map in equirectangular projection with a
    30° graticule, and ``mark`` (latitude, longitude) as a red cross (the photo)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state
    from PIL import Image

    _, _, values = range_grid(model, label, month=month, resolution=resolution)
    figure = Figure(figsize=(8.4, 3.9), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(values, extent=(-180, 180, -90, 90), origin="upper", cmap="magma", interpolation="nearest")
    ax.set_xticks(range(-180, 181, 30))
    ax.set_yticks(range(-90, 91, 30))
    ax.grid(color="white", alpha=0.35, linewidth=0.6)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    if mark is not None:
        ax.plot(mark[1], mark[0], marker="x", markersize=12, markeredgewidth=3, color="red", label="photo")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    name = title or str(model.config.id2label[label])
    when = MONTHS[month - 1] if month else "any date"
    ax.set_title(f"{name}: predicted range ({when})", fontsize=10)
    what = "presence probability" if model.config.loss == "presence" else "p(species | place, date)"
    figure.colorbar(image, ax=ax, shrink=0.8, label=what)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    return Image.open(buffer)


def find_label(model, name: str) -> int:
    """The prior's label index for ``name``: a label exactly, an index, or one label containing it (case ignored);
    a ``ValueError`` that lists candidates otherwise."""
    labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    if name in labels:
        return labels.index(name)
    if name.isdigit() and int(name) < len(labels):
        return int(name)
    matches = [i for i, label in enumerate(labels) if name.lower() in label.lower()]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(repr(labels[i]) for i in matches[:5]) or ", ".join(repr(n) for n in labels[:5])
    found = f"{len(matches)} labels contain it" if matches else "no label contains it"
    raise ValueError(f"species {name!r}: {found} (e.g. {shown}); give a label as it is in the prior's config.json.")
