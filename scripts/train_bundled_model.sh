#!/usr/bin/env bash
# Retrains the bundled model and measures it:
#   bash scripts/train_bundled_model.sh [PHOTOS] [WORK] [CONFIG] [--config.FIELD=VALUE ...]
#
# prep (the camera models of scripts/val_models.txt held out) -> stage 1 (CONFIG,
# configs/cpu.py by default) -> stage 2 -> model-only export -> synthetic splices between the
# held-out cameras -> eval on them and on the spliced fixture with its mask beside its camera
# original. Overrides after CONFIG apply to both stages (stage 2 keeps its own steps, warm-up
# and pairs). To ship the result:
#   rm -r exif_jax/bundled_model && cp -r WORK/bundled_model exif_jax/bundled_model
# The tampered fixture is read from FIXTURES (default: the fixtures folder beside PHOTOS).
set -euo pipefail
PHOTOS=${1:-../shared/data/photos}
WORK=$(realpath -m "${2:-workdirs/bundled}")
CONFIG=${3:-configs/cpu.py}
OVERRIDES=("${@:4}")
VAL_MODELS=$(paste -sd, "$(dirname "$0")/val_models.txt")
FIXTURES=${FIXTURES:-$(dirname "$PHOTOS")/fixtures}

python -m data_prep --photos "$PHOTOS" --out "$WORK/shards" --val_models "$VAL_MODELS"
python -m exif_jax.main --config "$CONFIG" --workdir "$WORK/stage1" \
  --config.data.data_dir="$WORK/shards" "${OVERRIDES[@]}"
python -m exif_jax.main --config "$CONFIG" --workdir "$WORK/stage2" \
  --config.data.data_dir="$WORK/shards" "${OVERRIDES[@]}" --config.stage=classifier \
  --config.init_from="$WORK/stage1" --config.train.steps=300 --config.train.warmup_steps=0 \
  --config.data.same_image_fraction=0.5 --config.eval.every=300
# Remade on every run, so that a rerun never measures a stale copy.
rm -rf "$WORK/bundled_model" "$WORK/val_splices" "$WORK/eval_val_splices" "$WORK/eval_fixtures"
python -m exif_jax.training.export --checkpoint "$WORK/stage2" --out "$WORK/bundled_model"
python -m eval.data.synth_splices --photos "$PHOTOS" \
  --out "$WORK/val_splices" --cameras_from "$WORK/shards/dataset_info.json" --split val \
  --num_spliced 50 --num_authentic 50 --seed 1 --max_size 512
python -m eval.runs.run_eval --checkpoint "$WORK/bundled_model" --images "$WORK/val_splices/images" \
  --masks "$WORK/val_splices/masks" --out "$WORK/eval_val_splices"
cat "$WORK/eval_val_splices/metrics.json"
python -m eval.chance "$WORK/val_splices/images" "$WORK/val_splices/masks"

TAMPERED=$(realpath "$FIXTURES/tampered")
mkdir -p "$WORK/fixtures/images" "$WORK/fixtures/masks"
ln -sf "$TAMPERED/yorkin_test1_fake.tiff" "$WORK/fixtures/images/yorkin_test1.tiff"
ln -sf "$TAMPERED/yorkin_test1_original.jpg" "$WORK/fixtures/images/yorkin_test1_original.jpg"
ln -sf "$TAMPERED/yorkin_test1_mask.png" "$WORK/fixtures/masks/yorkin_test1.png"
python -m eval.runs.run_eval --checkpoint "$WORK/bundled_model" --images "$WORK/fixtures/images" \
  --masks "$WORK/fixtures/masks" --out "$WORK/eval_fixtures"
cat "$WORK/eval_fixtures/metrics.json" "$WORK/eval_fixtures/scores.csv"
