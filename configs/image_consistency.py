"""The paper's Image-Consistency baseline (3.4): the EXIF model's Siamese network trained end
to end on "do these two patches come from one photo?" alone, with no EXIF labels. Evaluated
exactly as the EXIF model (consistency matrix -> Mean Shift): its classifier's P(same image)
is the consistency c_ij.

python -m exif_jax.main --config configs/image_consistency.py --workdir W \
    --config.data.data_dir=SHARDS
The network and schedule are configs/exif_resnet50.py's (the paper's); those of cpu.py or
tiny.py with --config configs/image_consistency.py:cpu (or :tiny).
"""

from configs import common


def get_config(base: str = "exif_resnet50"):
  config = common.baseline_config("image_consistency", base)
  # Half of the pairs take both patches from one photo (the positives), half from two photos.
  config.data.same_image_fraction = 0.5
  return config
