#!/usr/bin/env bash
# Retrains the bundled model, calibrates its verdicts and measures it:
#   bash scripts/train_bundled_model.sh [PHOTOS] [WORK] [CONFIG] [--config.FIELD=VALUE ...]
#
# prep (the camera models of scripts/val_models.txt held out) -> stage 1 (CONFIG,
# configs/cpu.py by default) -> stage 2 -> model-only export -> calibration on synthetic
# splices (seed 2) between the held-out cameras, and between the everyday scenes of the photos
# listed in NATURAL when given (camera models the model never saw) -> the same measures on
# other splices of those cameras (seed 1) and on the spliced fixture with its mask beside its
# camera original. Overrides after CONFIG apply to both stages (stage 2 keeps its own steps,
# warm-up and pairs). To ship the result:
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
rm -rf "$WORK/bundled_model" "$WORK"/charts_s* "$WORK"/natural_s* "$WORK"/eval_charts_s* \
  "$WORK"/eval_natural_s* "$WORK/eval_fixtures"
python -m exif_jax.training.export --checkpoint "$WORK/stage2" --out "$WORK/bundled_model"
# Splice sets: seed 2 calibrates, seed 1 measures; between held-out cameras, and between the
# everyday scenes of NATURAL's unseen cameras when given.
SETS=(charts)
[ -n "${NATURAL:-}" ] && SETS+=(natural)
for SEED in 2 1; do
  for SET in "${SETS[@]}"; do
    if [ "$SET" = charts ]; then
      SOURCE=(--photos "$PHOTOS" --cameras_from "$WORK/shards/dataset_info.json" --split val)
    else
      SOURCE=(--photos "$NATURAL")
    fi
    python -m eval.data.synth_splices "${SOURCE[@]}" --out "$WORK/${SET}_s$SEED" \
      --num_spliced 50 --num_authentic 50 --seed $SEED --max_size 512
  done
done
CALIBRATION=()
for SET in "${SETS[@]}"; do
  python -m eval.commands.run_eval --checkpoint "$WORK/bundled_model" \
    --images "$WORK/${SET}_s2/images" --masks "$WORK/${SET}_s2/masks" --out "$WORK/eval_${SET}_s2"
  CALIBRATION+=(--images "$WORK/${SET}_s2/images" --masks "$WORK/${SET}_s2/masks"
                --eval_out "$WORK/eval_${SET}_s2")
done
python -m eval.commands.calibrate --model "$WORK/bundled_model" "${CALIBRATION[@]}"
for SET in "${SETS[@]}"; do
  python -m eval.commands.run_eval --checkpoint "$WORK/bundled_model" \
    --images "$WORK/${SET}_s1/images" --masks "$WORK/${SET}_s1/masks" --out "$WORK/eval_${SET}_s1"
  python -m eval.chance "$WORK/${SET}_s1/images" "$WORK/${SET}_s1/masks"
done

TAMPERED=$(realpath "$FIXTURES/tampered")
mkdir -p "$WORK/fixtures/images" "$WORK/fixtures/masks"
ln -sf "$TAMPERED/yorkin_test1_fake.tiff" "$WORK/fixtures/images/yorkin_test1.tiff"
ln -sf "$TAMPERED/yorkin_test1_original.jpg" "$WORK/fixtures/images/yorkin_test1_original.jpg"
ln -sf "$TAMPERED/yorkin_test1_mask.png" "$WORK/fixtures/masks/yorkin_test1.png"
python -m eval.commands.run_eval --checkpoint "$WORK/bundled_model" --images "$WORK/fixtures/images" \
  --masks "$WORK/fixtures/masks" --out "$WORK/eval_fixtures"
cat "$WORK/eval_fixtures/metrics.json" "$WORK/eval_fixtures/scores.csv"
