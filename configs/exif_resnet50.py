"""The paper's stage 1: ResNet-50 v2, 4096-d features, batch 128, Adam 1e-4, 1M steps.

python -m exif_jax.main --config configs/exif_resnet50.py --workdir W \
    --config.data.data_dir=SHARDS
"""

from configs import common


def get_config():
  config = common.base_config()
  config.model.dtype = "bfloat16"  # Accelerators; float32 params and optimizer state.
  config.data.pairs_per_attribute = config.train.batch_size  # One attribute per mini-batch.
  config.data.num_workers = 16
  return config
