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
  data.resize_interpolations = ("bilinear", "bicubic", "lanczos", "box")  # augment.INTERPOLATIONS.
  # Per op, the chance of its identity member (the others share the rest); None = uniform.
  data.identity_probability = ml_collections.FieldReference(None, field_type=float)
  data.num_workers = 0  # Grain worker processes; 0 reads in the training process.
  data.per_worker_buffer_size = 2  # Batches each worker process keeps ready.
  data.num_threads = 2  # Threads reading and augmenting pairs in each process.
  data.prefetch_buffer_size = 4  # Batches those threads keep ready.
  return data


def model_config(**overrides) -> ml_collections.ConfigDict:
  """`config.model`: the Siamese network; defaults are the paper's ResNet-50 v2."""
  model = ml_collections.ConfigDict()
  model.depth = 50
  model.width = 64
  model.feature_dim = 4096
  model.head_widths = (4096, 2048, 1024)
  model.num_attributes = 83
  model.classifier_width = 512
  # Fixed SRM high-pass residuals beside RGB at the root conv (models/noise_residuals.py);
  # off in the paper.
  model.noise_residuals = False
  model.dtype = "float32"  # Compute dtype; "bfloat16" on accelerators. Params stay float32.
  # An auxiliary per-patch head that names each patch's own post-processing: the member
  # counts of data.jpeg_qualities, blur_sigmas, resize_factors; () = none, as in the paper.
  model.post_processing_classes = ()
  # An auxiliary head on each patch's feature that names the value of these
  # EXIF tags in the patch's photo (e.g. ("Image Make",)); () = none, as in the paper. Its
  # classes are the training photos' values held by data.min_photos_per_value photos, at most
  # named_exif_classes of them.
  model.named_exif_tags = ()
  model.named_exif_classes = 64
  model.update(overrides)
  return model


def post_processing_classes(data: ml_collections.ConfigDict) -> tuple[int, ...]:
  """model.post_processing_classes that match the parameter sets of `data`."""
  return tuple(len(members) for members in
               (data.jpeg_qualities, data.blur_sigmas, data.resize_factors))


def base_config() -> ml_collections.ConfigDict:
  """Every field a training run reads, with paper defaults; experiment configs override."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.stage = "exif"  # "exif": stage 1 (83 attributes); "classifier": stage 2.
  config.init_from = ""  # Stage 2: the stage-1 workdir (or checkpoint) to start from.
  config.distributed = False  # Call jax.distributed.initialize() (multi-host).
  # Persistent XLA compilation cache: a restarted run skips compiling. "" turns it off.
  config.compilation_cache_dir = "~/.cache/exif_jax/xla"
  config.coordinator_address = ""  # host:port; empty = detected from the cluster.
  config.num_processes = 0  # 0 = detected from the cluster.
  config.process_id = 0
  config.model = model_config()
  config.data = data_config()

  config.train = ml_collections.ConfigDict()
  config.train.steps = 1_000_000
  config.train.batch_size = 128  # Global, over all hosts and devices.
  config.train.learning_rate = 1e-4
  config.train.warmup_steps = 0  # Linear warm-up, then constant (the paper).
  # Weight of the auxiliary post-processing loss (models with post_processing_classes only).
  config.train.post_processing_weight = 1.0
  # Weight of the auxiliary EXIF naming loss (models with named_exif_tags only).
  config.train.named_exif_weight = 1.0
  config.train.log_every = 100
  config.train.checkpoint_every = 5000
  config.train.keep_checkpoints = 3

  config.eval = ml_collections.ConfigDict()
  config.eval.every = 10_000
  config.eval.num_batches = 50
  config.eval.batch_size = 128
  config.eval.seed = 1  # Fixed: every evaluation sees the same validation pairs.
  return config
