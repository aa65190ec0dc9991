"""``range_map.py`` (``inat-range-map``): draw a species' predicted range from a trained location prior as a PNG.

    python scripts/range_map.py --geo_prior runs/demo/geo_prior --species "Anas platyrhynchos" --output range.png \\
        [--month 6] [--resolution 1] [--lat 52.5 --lon 13.4]

The prior's value for that species on every cell of a latitude/longitude grid (the 15th of ``--month``, or without a
date), with a 30° graticule; ``--lat/--lon`` marks a place (e.g. where a photo was taken).
"""

from __future__ import annotations

import dataclasses
import sys

from ..cli import CommandParser, option, run_command, summary_line


@dataclasses.dataclass
class RangeMapArguments:
    geo_prior: str = dataclasses.field(metadata={"help": "A prior saved by train_geo_prior.py --output_dir."})
    species: str = dataclasses.field(
        metadata={"help": "A label of the prior (as in its config.json), its index, or a unique part of one."}
    )
    output: str = option("range_map.png", "PNG file to write.")
    month: int | None = option(None, "Draw the 15th of this month (1-12); default: the prior's date-less answer.")
    resolution: float = option(1.0, "Grid cell size in degrees, in (0, 10].")
    lat: float | None = option(None, "Mark this latitude (with --lon).")
    lon: float | None = option(None, "Mark this longitude (with --lat).")

    def __post_init__(self):
        if self.month is not None and not 1 <= self.month <= 12:
            raise ValueError(f"--month must be 1..12, got {self.month}.")
        if (self.lat is None) != (self.lon is None):
            raise ValueError("--lat and --lon go together: give both (decimal degrees) or neither.")
        if self.lat is not None and not (abs(self.lat) <= 90 and abs(self.lon) <= 180):
            raise ValueError(f"expected --lat in [-90, 90] and --lon in [-180, 180], got {self.lat}, {self.lon}.")


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(RangeMapArguments, prog="range_map.py", description=summary_line(__doc__))
    args, extra = parser.parse(argv)
    from ..files import atomic_write
    from ..geo.fusion import GeoFusion
    from ..geo.range_map import find_label, render_range_map
    from ..inference.errors import InferenceError

    def body() -> int:
        model = GeoFusion.from_pretrained(args.geo_prior, []).model
        label = find_label(model, args.species)
        mark = None if args.lat is None else (args.lat, args.lon)
        image = render_range_map(model, label, month=args.month, resolution=args.resolution, mark=mark)
        with atomic_write(args.output, "wb") as f:
            image.save(f, format="PNG")
        print(f"range of {model.config.id2label[label]!r} written to {args.output}")
        return 0

    return run_command(body, user_errors=(InferenceError, ValueError, OSError), debug=extra.show_traceback)


if __name__ == "__main__":
    sys.exit(main())
