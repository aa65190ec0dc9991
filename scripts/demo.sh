#!/usr/bin/env bash
# The demo main job, on the embedded synthetic data (iNat 2021 layout, written by inat_hf.data.demo):
#   prepare → train → location/date prior → evaluate (5-view TTA, with and without; image-only, prior-only, fused;
#   taxonomic back-off) → predict. The demo's coordinates and dates are synthetic per-species ranges/seasons.
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

# 3. Train the location/date prior on the training records' coordinates and dates (no pixels; geo_report.json
#    compares it with k-NN baselines over place and over place and date on the val split).
step python scripts/train_geo_prior.py --dataset_dir "$RUN/prepared" --output_dir "$RUN/geo_prior"

# 4. Evaluate the best checkpoint on the validation split, without and with 5-view test-time augmentation, and
#    image-only vs prior-only vs fused (image x prior), with the taxonomic back-off table.
step python scripts/evaluate.py --model_dir "$RUN/model" --dataset_dir "$RUN/prepared" --split val \
    --tta_views 5 --report_both --geo_prior "$RUN/geo_prior" --output_dir "$RUN/eval"

# 5. Predict species (with taxonomy and a back-off answer) for new photos: the unlabeled public_test images (no
#    EXIF location: image only), then one photo with a location and date given on the command line (fused).
step python scripts/predict.py --model_dir "$RUN/model" --top_k 3 --geo_prior "$RUN/geo_prior" \
    --output "$RUN/predictions.csv" "$RUN/inat_root/public_test"
photo=$(ls "$RUN"/inat_root/public_test/*.jpg | head -n 1)
step python scripts/predict.py --model_dir "$RUN/model" --top_k 3 --geo_prior "$RUN/geo_prior" \
    --lat 47.5 --lon 9.0 --date 2020-07-20 "$photo"

report=$(ls -d "$RUN"/eval/test_results_* | tail -n 1)
echo
echo "Validation scores ($report/results.md; the README's demo table is this output):"
cat "$report/results.md"
echo
echo "Done. Checkpoint: $RUN/model   Location prior: $RUN/geo_prior   Evaluation report: $report   Predictions: $RUN/predictions.csv"
