"""Config pieces shared by every experiment config (one get_config() per file)."""

from __future__ import annotations

import importlib

import ml_collections

from exif_jax import models


def data_config() -> ml_collections.ConfigDict:
  """`config.data`: where the shards are and how input_pipeline samples and augments pairs."""
  data = ml_collections.ConfigDict()
  data.data_dir = ""  # A dataset directory written by `python -m data_prep`.
  data.patch_size = 128
  # Training batches: "pairs" (input_pipeline.py, the paper's), B pairs of two patches each,
  # or "all_pairs" (all_pairs.py), B patches, patches_per_photo from each photo, compared as
  # all B (B - 1) / 2 pairs. Validation reads pairs either way.
  data.sampler = "pairs"
  # All-pairs batches: patches per photo (k); the batch holds couples of photos, so
  # train.batch_size must be a multiple of 2k.
  data.patches_per_photo = 2
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
  # Share of pairs rendered by virtual camera pipelines (exif_jax/data/virtual_pairs.py), each
  # labelled "same or not" per pipeline component in columns after the 83 attributes; 0: none.
  data.virtual_camera_fraction = 0.0
  data.num_workers = 0  # Grain worker processes; 0 reads in the training process.
  data.per_worker_buffer_size = 2  # Batches each worker process keeps ready.
  data.num_threads = 2  # Threads reading and augmenting pairs in each process.
  data.prefetch_buffer_size = 4  # Batches those threads keep ready.
  return data


def base_config() -> ml_collections.ConfigDict:
  """Every field a training run reads, with paper defaults; experiment configs override."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  # "exif": stage 1 (83 attributes); "classifier": stage 2; "image_consistency",
  # "camera_classification": the paper's baselines (exif_jax/training/stages.py).
  config.stage = "exif"
  config.init_from = ""  # Stage 2: the stage-1 workdir (or checkpoint) to start from.
  config.distributed = False  # Call jax.distributed.initialize() (multi-host).
  # Persistent XLA compilation cache: a restarted run skips compiling. "" turns it off.
  config.compilation_cache_dir = "~/.cache/exif_jax/xla"
  config.coordinator_address = ""  # host:port; empty = detected from the cluster.
  config.num_processes = 0  # 0 = detected from the cluster.
  config.process_id = 0
  config.model = models.default_config()
  config.data = data_config()

  config.train = ml_collections.ConfigDict()
  config.train.steps = 1_000_000
  config.train.batch_size = 128  # Global, over all hosts and devices.
  config.train.learning_rate = 1e-4
  config.train.warmup_steps = 0  # Linear warm-up, then constant (the paper).
  # Weight of the auxiliary loss of naming each patch's own post-processing; > 0 gives the
  # model that head (model.post_processing_classes, derived from data); 0: none (the paper).
  config.train.post_processing_weight = 0.0
  # Weight of the auxiliary EXIF naming loss (models with named_exif_tags only).
  config.train.named_exif_weight = 1.0
  config.train.log_every = 100
  config.train.checkpoint_every = 5000
  config.train.keep_checkpoints = 3
  # "A,B": a jax.profiler trace of steps A..B in WORKDIR/profile (TensorBoard's profile
  # plugin reads it); "" traces nothing.
  config.train.profile_steps = ""

  config.eval = ml_collections.ConfigDict()
  config.eval.every = 10_000
  config.eval.num_batches = 50
  config.eval.batch_size = 128
  config.eval.seed = 1  # Fixed: every evaluation sees the same validation pairs.
  return config


BASES = ("exif_resnet50", "cpu", "tiny")


def baseline_config(stage: str, base: str) -> ml_collections.ConfigDict:
  """A baseline of the paper (4.2) trained as configs/<base>.py trains the EXIF model: the same
  network, photos and schedule, its own stage, and neither the auxiliary head nor virtual
  cameras (the paper's baselines have none).

  `base` comes after the config file's name: --config configs/image_consistency.py:cpu.
  """
  if base not in BASES:
    raise ValueError(f"baseline config base {base!r}: expected one of {BASES}")
  config = importlib.import_module(f"configs.{base}").get_config()
  config.stage = stage
  config.train.post_processing_weight = 0.0
  config.data.virtual_camera_fraction = 0.0
  return config
