#!/usr/bin/env python
"""Export a checkpoint to ONNX (validated, optionally int8). See `python scripts/export.py --help`."""

import sys

from inat_hf.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
