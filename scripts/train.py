#!/usr/bin/env python
"""Fine-tune on iNat 2021: `python scripts/train.py configs/demo.yaml [--key value ...]`.

Runs unchanged under `accelerate launch` and `torchrun`."""

import sys

from inat_hf.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
