#!/usr/bin/env bash
# The demo main job, on the embedded synthetic data (iNat 2021 layout, written by inat_hf.data.demo).
# Every step is one of the project's scripts; the exact commands are printed as they run.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1          # nothing here needs the network
RUN="${RUN:-runs/demo}"

step() { echo; echo "+ $*"; "$@"; }

# 1. Write the demo dataset (JSON + JPEG folders) and prepare it as an Arrow dataset.
step python scripts/prepare_data.py --demo --data_dir "$RUN/inat_root" --output_dir "$RUN/prepared"
