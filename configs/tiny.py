"""The whole loop in seconds: for tests and for trying a change end to end."""

from configs import common


def get_config():
  config = common.base_config()
  config.model.update(
      depth=18, width=4, feature_dim=16, head_widths=(16, 16), classifier_width=8)
  config.train.post_processing_weight = 1.0  # The auxiliary head, as configs/cpu.py.
  config.data.num_threads = 1
  config.train.steps = 6
  config.train.batch_size = 8
  config.train.learning_rate = 1e-3
  config.train.log_every = 2
  config.train.checkpoint_every = 2
  config.train.keep_checkpoints = 2
  config.eval.every = 3
  config.eval.num_batches = 2
  config.eval.batch_size = 8
  return config
