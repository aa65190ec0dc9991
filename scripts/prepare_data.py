#!/usr/bin/env python
"""Prepare an iNat 2021 root as an Arrow dataset. See `python scripts/prepare_data.py --help`."""

import sys

from inat_hf.commands.prepare import main

if __name__ == "__main__":
    sys.exit(main())
