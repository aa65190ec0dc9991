#!/usr/bin/env python
"""Serve the classifier as a web page (or export a Hugging Face Space). See `python scripts/app.py --help`."""

import sys

from inat_hf.commands.app import main

if __name__ == "__main__":
    sys.exit(main())
