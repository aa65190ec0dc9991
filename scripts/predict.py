#!/usr/bin/env python
"""Predict species for image files, folders or globs. See `python scripts/predict.py --help`."""

import sys

from inat_hf.commands.predict import main

if __name__ == "__main__":
    sys.exit(main())
