"""Config pieces shared by every experiment config (one get_config() per file)."""

from __future__ import annotations

import ml_collections


def data_config() -> ml_collections.ConfigDict:
  """`config.data`: where the shards are and how input_pipeline samples and augments pairs."""
  data = ml_collections.ConfigDict()
  data.data_dir = ""  # A dataset directory written by `python -m data_prep`.
  data.patch_size = 128
  # Share of pairs whose two patches come from one photo (stage 2's "same image" positives).
  data.same_image_fraction = 0.0
  # Values held by fewer photos count as unknown; the paper drops values seen < 100 times.
  data.min_photos_per_value = 1
  # Consecutive pairs that share the chosen attribute (and its 50/50 same/different split);
  # 1 chooses per pair, the global batch size reproduces the paper's one per mini-batch.
  data.pairs_per_attribute = 1
  # Evenly spaced parameter sets (paper 3.2); each holds the identity so untouched patches
  # are common: quality 0 = not re-encoded, sigma 0 = not blurred, factor 1 = not resized.
  data.jpeg_qualities = (0, 50, 60, 70, 80, 90, 100)
  data.blur_sigmas = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
  data.resize_factors = (0.5, 0.75, 1.0, 1.25, 1.5)
  data.resize_interpolations = ("bilinear", "bicubic", "lanczos", "box")  # PIL names.
  data.num_workers = 0  # Grain worker processes; 0 reads in the training process.
  data.per_worker_buffer_size = 2  # Batches each worker process keeps ready.
  data.num_threads = 2  # Threads reading and augmenting pairs in each process.
  data.prefetch_buffer_size = 4  # Batches those threads keep ready.
  return data
