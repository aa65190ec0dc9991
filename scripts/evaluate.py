#!/usr/bin/env python
"""Evaluate a checkpoint on a dataset split (TTA, reports, submission). See `python scripts/evaluate.py --help`."""

import sys

from inat_hf.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
