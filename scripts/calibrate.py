#!/usr/bin/env python
"""Fit a checkpoint's temperature (and a location prior's fusion weight). See `python scripts/calibrate.py --help`."""

import sys

from inat_hf.commands.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
