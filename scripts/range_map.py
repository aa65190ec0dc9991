"""Draw a species' predicted range: see ``inat_hf/commands/range_map.py`` (also the ``inat-range-map`` command)."""

import sys

from inat_hf.commands.range_map import main

if __name__ == "__main__":
    sys.exit(main())
