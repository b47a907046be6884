"""A model that learns camera and post-processing cues in under an hour on 2 CPU cores.

ResNet-18 v2 at a quarter width, 256-d features, batch 32: about 90 pairs/s on 2 cores,
4000 steps (128k pairs) in about 30 minutes.
"""

from configs import common


def get_config():
  config = common.base_config()
  config.model.update(
      depth=18, width=16, feature_dim=256, head_widths=(256, 128, 64), classifier_width=64)
  # Most cameras in a few hundred photos have one or two of them: a value held by a single
  # photo can only make "same" pairs from that photo, which teaches matching content instead
  # of matching cameras.
  config.data.min_photos_per_value = 3
  # In an hour, "same post-processing or not" alone does not teach the backbone to see blur,
  # re-JPEG or resampling; naming each patch's own parameters does.
  config.train.post_processing_weight = 1.0
  # A quarter of the pairs from drawn camera pipelines: on the 354 training photos it
  # localized splices between unseen cameras better for both seeds (docs/results.md).
  config.data.virtual_camera_fraction = 0.25
  config.train.steps = 4_000
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 200
  config.train.log_every = 50
  config.train.checkpoint_every = 500
  config.eval.every = 1_000
  config.eval.num_batches = 20
  config.eval.batch_size = 64
  return config
