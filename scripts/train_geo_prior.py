"""Train the location/date prior: see ``inat_hf/commands/train_geo.py`` (also the ``inat-train-geo`` command)."""

import sys

from inat_hf.commands.train_geo import main

if __name__ == "__main__":
    sys.exit(main())
