#!/usr/bin/env bash
# The demo main job, on the embedded synthetic data (iNat 2021 layout, written by inat_hf.data.demo):
#   prepare → train → evaluate (5-view TTA, with and without) → predict.
# Every step is one of the project's scripts; each command is printed before it runs. CPU only, ~4 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1          # nothing here needs the network
RUN="${RUN:-runs/demo}"

step() { echo; echo "+ $*"; "$@"; }

# 1. Write the demo dataset (JSON + JPEG folders) and prepare it as an Arrow dataset (summary table at the end).
step python scripts/prepare_data.py --demo --data_dir "$RUN/inat_root" --output_dir "$RUN/prepared"

# 2. Fine-tune with the demo recipe (same recipe shape as configs/inat2021_animalia_resnet50.yaml, scaled down).
step python scripts/train.py configs/demo.yaml --dataset_dir "$RUN/prepared" --output_dir "$RUN/model"

# 3. Evaluate the best checkpoint on the validation split, without and with 5-view test-time augmentation.
step python scripts/evaluate.py --model_dir "$RUN/model" --dataset_dir "$RUN/prepared" --split val \
    --tta_views 5 --report_both --output_dir "$RUN/eval"

# 4. Predict species (with taxonomy) for new photos: the unlabeled public_test images.
step python scripts/predict.py --model_dir "$RUN/model" --top_k 3 --output "$RUN/predictions.csv" \
    "$RUN/inat_root/public_test"

report=$(ls -d "$RUN"/eval/test_results_* | tail -n 1)
echo
echo "Done. Checkpoint: $RUN/model   Evaluation report: $report   Predictions: $RUN/predictions.csv"
