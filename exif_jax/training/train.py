"""Training: stage 1 learns 83 "same or not" attributes, stage 2 the same-image classifier, or
one of the paper's baselines (each stage's parameters and loss: exif_jax/training/stages.py).

`train_and_evaluate(config, workdir)` is the whole run: set-up, restore (a killed run resumes
exactly: model, optimizer, step and data iterator come back together), the jitted data-parallel
loop, periodic validation on held-out camera models, and checkpoints. SIGTERM (preemption)
saves the step it lands in and stops with command.Preempted; the same command resumes.
"""

from __future__ import annotations

import collections
import json
import math
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from etils import epath
from flax import nnx
from sklearn import metrics
from tqdm import tqdm

from exif_jax import models
from exif_jax.cli import command
from exif_jax.cli import ctrl_c
from exif_jax.cli import sigterm
from exif_jax.data import all_pairs
from exif_jax.data import augment
from exif_jax.data import camera_labels
from exif_jax.data import exif_attrs
from exif_jax.data import files
from exif_jax.data import input_pipeline
from exif_jax.data import records
from exif_jax.training import checkpointing
from exif_jax.training import metrics_writer
from exif_jax.training import sharding
from exif_jax.training import stages

RUN_CONFIG = "config.json"  # WORKDIR/config.json: the resolved config of the run.
PROFILE = "profile"  # WORKDIR/profile: jax.profiler traces (config.train.profile_steps).
# Logged with the training loss: CPU-hours the run has used so far, resumes included.
CPU_HOURS = "train/cpu_hours"


class RunRefused(ValueError):
  """A run that cannot start as configured; `exif-jax train` prints it as one line, exit 2."""


def with_derived_fields(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of the run config with the fields that follow from the others filled in.

  model.post_processing_classes: the member counts of config.data's post-processing sets
  when train.post_processing_weight > 0 (the auxiliary head), () otherwise.
  model.virtual_camera_components: input_pipeline's, () when there are no virtual pairs.
  model.camera_names: stage camera_classification's classes, the training photos' cameras
  (camera_labels.training_cameras), () in the other stages. Checkpoints save the copy, so
  `checkpointing.restore` rebuilds the model without the data config.
  """
  derived = config.copy_and_resolve_references()
  fields = {
      "post_processing_classes": (augment.Options.from_config(config.data).set_sizes
                                  if config.train.post_processing_weight > 0 else ()),
      "camera_names": (camera_labels.training_cameras(config.data)
                       if config.stage == "camera_classification" else ()),
      "virtual_camera_components": input_pipeline.virtual_camera_components(config)}
  for name, value in fields.items():
    given = tuple(config.model[name])
    if given and given != value:
      raise ValueError(f"config.model.{name}={given}: derived from the data and the stage, "
                       f"which give {value}; leave it unset")
    derived.model[name] = value
  return derived


def create_model(config: ml_collections.ConfigDict) -> models.ExifConsistencyModel:
  # rbg keys: threefry initialisation is slow to compile on CPU.
  rngs = nnx.Rngs(jax.random.key(config.seed, impl="rbg"))
  return models.ExifConsistencyModel(with_derived_fields(config).model, rngs=rngs)


def learning_rate(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up to the peak, then constant (the paper)."""
  train = config.train
  constant = optax.constant_schedule(train.learning_rate)
  if not train.warmup_steps:
    return constant
  return optax.join_schedules(
      [optax.linear_schedule(0.0, train.learning_rate, train.warmup_steps), constant],
      [train.warmup_steps])


def create_train_state(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh
                       ) -> tuple[models.ExifConsistencyModel, nnx.Optimizer]:
  """Model and Adam optimizer, initialised by one jitted program straight onto the mesh.

  One program rather than one per parameter shape, and every host computes the same
  replicated values instead of copying them from one host to the others.
  """
  def init():
    model = create_model(config)
    return model, nnx.Optimizer(model, optax.adam(learning_rate(config)),
                                wrt=stages.trainable(config.stage))

  graphdef, _ = nnx.split(nnx.eval_shape(init))
  state = jax.jit(lambda: nnx.state(init()), out_shardings=sharding.replicated(mesh))()
  return nnx.merge(graphdef, state)


def random_batch(config: ml_collections.ConfigDict, batch_size: int, seed: int = 0
                 ) -> dict[str, np.ndarray]:
  """A random batch in the training layout config.data.sampler gives, for benchmarks and tests
  that need no data: pairs (patch_a, patch_b, ...) or all-pairs patches (patches, photo, ...)."""
  rng = np.random.default_rng(seed)
  size = config.data.patch_size
  members = augment.Options.from_config(config.data).set_sizes
  classes = config.model.named_exif_classes
  tags = len(config.model.named_exif_tags)
  cameras = max(1, len(config.model.camera_names))
  per_patch = lambda: {
      "patch": rng.integers(0, 256, (batch_size, size, size, 3), np.uint8),
      "post": rng.integers(0, members, (batch_size, len(members)), np.int8),
      "named": rng.integers(-1, classes, (batch_size, tags), np.int32),
      "camera": rng.integers(-1, cameras, (batch_size,), np.int32)}
  if config.data.sampler == "all_pairs":
    patches = per_patch()
    k = config.data.patches_per_photo
    per_photo = lambda high, columns: np.repeat(  # Drawn per photo: its k patches agree.
        rng.integers(-1, high, (batch_size // k, columns), np.int32), k, axis=0)
    batch = {"patches": patches.pop("patch"),
             "image": np.repeat(np.arange(batch_size // k, dtype=np.int32), k),
             "codes": per_photo(3, exif_attrs.NUM_EXIF), **patches}
    components = input_pipeline.virtual_camera_components(config)
    if components:
      batch["virtual"] = per_photo(2, len(components)).astype(np.int8)
    return batch
  sides = {side: per_patch() for side in "ab"}
  return {"labels": rng.integers(-1, 2, (batch_size, input_pipeline.num_labels(config)), np.int8),
          "same_image": rng.integers(0, 2, (batch_size,), np.int8),
          **{f"{key}_{side}": value for side, arrays in sides.items()
             for key, value in arrays.items()}}


def _all_finite(tree: Any) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_train_step(graphdef: nnx.GraphDef, config: ml_collections.ConfigDict,
                    mesh: jax.sharding.Mesh) -> Callable:
  """Jitted (state, batch) -> (state, metrics); state replicated and donated, batch sharded."""
  wrt = stages.trainable(config.stage)

  def train_step(state, batch):
    model, optimizer = nnx.merge(graphdef, state)
    grad_fn = nnx.value_and_grad(
        stages.loss_and_outputs, argnums=nnx.DiffState(0, wrt), has_aux=True)
    (loss, _), grads = grad_fn(model, batch, config)
    optimizer.update(model, grads)
    # An update can break the parameters while the loss it came from is still finite.
    finite = jnp.isfinite(loss) & _all_finite(nnx.state(model, wrt))
    return nnx.state((model, optimizer)), {"loss": loss, "finite": finite}

  replicated = sharding.replicated(mesh)
  return jax.jit(train_step, in_shardings=(replicated, sharding.batch_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def make_eval_step(graphdef: nnx.GraphDef, config: ml_collections.ConfigDict,
                   mesh: jax.sharding.Mesh) -> Callable:
  def eval_step(state, batch):
    model, _ = nnx.merge(graphdef, state)
    return stages.loss_and_outputs(model, batch, config)

  replicated = sharding.replicated(mesh)
  return jax.jit(eval_step, in_shardings=(replicated, sharding.batch_sharding(mesh)),
                 out_shardings=replicated)


def evaluate(eval_step: Callable, state: Any, config: ml_collections.ConfigDict,
             mesh: jax.sharding.Mesh, split: str = "val") -> dict[str, float]:
  """Balanced accuracy and ROC AUC per attribute (chance 50%) on pairs of held-out cameras
  (or of the training cameras, split "train"), under the keys val/..."""
  dataset = input_pipeline.create_dataset(
      config, split, seed=config.eval.seed, global_batch_size=config.eval.batch_size,
      process_index=jax.process_index(), process_count=jax.process_count())
  losses, all_outputs = [], []
  for _, local_batch in zip(range(config.eval.num_batches), dataset):
    loss, outputs = eval_step(state, sharding.global_batch(local_batch, mesh))
    losses.append(float(loss))
    all_outputs.append(outputs)  # Replicated: the whole global batch on every host.
  outputs = {key: np.concatenate([np.asarray(o[key]) for o in all_outputs])
             for key in all_outputs[0]}
  logits, labels = outputs["logits"], outputs["labels"]
  results = {"val/loss": float(np.mean(losses)), "val/num_pairs": len(labels)}
  if "named_classes" in outputs:
    # Top-1 over the patches of held-out cameras whose value the training photos have.
    for tag, predicted, classes in zip(config.model.named_exif_tags, outputs["named_predicted"].T,
                                       outputs["named_classes"].T):
      named = classes >= 0
      if named.any():
        results[f"val/named_accuracy/{tag}"] = float(np.mean(predicted[named] == classes[named]))
  accuracies, aucs = [], []
  for i, name in enumerate(stages.column_names(config)):
    known = labels[:, i] >= 0
    same, predicted = labels[known, i] == 1, logits[known, i] > 0
    if same.all() or not same.any():
      continue  # Balanced accuracy and AUC need both classes.
    # (TPR + TNR) / 2 has chance 50% at any mix of same and different pairs.
    accuracy = 0.5 * (predicted[same].mean() + (~predicted[~same]).mean())
    # Threshold-free: a model whose logits carry the training prior ranks pairs correctly
    # while its accuracy at logit 0 stays near chance.
    auc = metrics.roc_auc_score(same, logits[known, i])
    results[f"val/accuracy/{name}"] = float(accuracy)
    results[f"val/auc/{name}"] = float(auc)
    if name not in config.model.virtual_camera_components:  # Comparable with and without.
      accuracies.append(accuracy)
      aucs.append(auc)
  results["val/mean_accuracy"] = float(np.mean(accuracies)) if accuracies else float("nan")
  results["val/mean_auc"] = float(np.mean(aucs)) if aucs else float("nan")
  return results


class _Monitor:
  """The host side of each step: stops on a non-finite one, drives the bar, logs training and
  validation, traces the steps of config.train.profile_steps."""

  def __init__(self, config: ml_collections.ConfigDict, start: int,
               writer: metrics_writer.MetricsWriter, mngr: Any, workdir: epath.Path):
    self._config, self._writer, self._mngr = config, writer, mngr
    # The loop's CPU time in this host's process (compiling, steps, validation, checkpoints),
    # added to what the runs before it logged up to `start`.
    self._cpu_hours_before = metrics_writer.last_value(workdir, CPU_HOURS, start) or 0.0
    self._cpu_start = time.process_time()
    self._losses = []
    self._first_step = start + 1
    self._profile = _profile_steps(config)
    self._profile_dir = workdir / PROFILE
    self._tracing = False
    self._bar = tqdm(total=config.train.steps, initial=start, desc=f"train {config.stage}",
                     unit="step", disable=jax.process_index() != 0)
    self.restart_clock(start)

  def __enter__(self) -> _Monitor:
    return self

  def __exit__(self, *exc_info) -> None:
    self._stop_trace()
    self._bar.close()

  def step_starts(self, step: int) -> None:
    if self._profile and step == self._profile[0]:
      jax.profiler.start_trace(os.fspath(self._profile_dir))
      self._tracing = True

  def _stop_trace(self) -> None:
    if self._tracing:
      jax.profiler.stop_trace()
      self._tracing = False
      _say(f"profile of steps {self._profile[0]}..{self._profile[1]} in {self._profile_dir}")

  def validated(self, step: int, results: dict[str, float]) -> None:
    _say(f"step {step}: val loss {results['val/loss']:.4f}, mean AUC "
         f"{results['val/mean_auc']:.4f}, mean accuracy {results['val/mean_accuracy']:.4f}")

  def restart_clock(self, step: int) -> None:
    """pairs/s measures training alone: evaluation and checkpoints restart the clock."""
    self._tick, self._tick_step = time.perf_counter(), step

  def step_done(self, step: int, metrics: dict[str, jax.Array]) -> None:
    loss = float(metrics["loss"])  # Waits for the step.
    if self._profile and step == self._profile[1]:
      self._stop_trace()
    if not metrics["finite"]:
      self._mngr.wait_until_finished()
      latest = self._mngr.latest_step()
      problem = (f"loss is {loss}" if not math.isfinite(loss)
                 else f"parameters are not finite (loss {loss:.4g})")
      kept = (f"The last good checkpoint is step {latest} in {self._mngr.directory}"
              if latest is not None else "No checkpoint was saved before it")
      raise FloatingPointError(f"{problem} after step {step}; stopped without saving it. {kept}")
    self._losses.append(loss)
    self._bar.update()
    if step % self._config.train.log_every == 0 or step == self._config.train.steps:
      mean_loss = float(np.mean(self._losses))
      pairs = (step - self._tick_step) * all_pairs.pairs_per_batch(
          self._config, self._config.train.batch_size)
      self._writer.write(step, {
          "train/loss": mean_loss,
          "train/pairs_per_s": pairs / (time.perf_counter() - self._tick),
          CPU_HOURS: self._cpu_hours_before + (time.process_time() - self._cpu_start) / 3600})
      self._bar.set_postfix(loss=f"{mean_loss:.4f}")
      self._losses = []
      self.restart_clock(step)
    elif step == self._first_step:
      self.restart_clock(step)  # Its time was mostly compiling.


def _profile_steps(config: ml_collections.ConfigDict) -> tuple[int, int] | None:
  """config.train.profile_steps "A,B" as (A, B); None when empty."""
  text = config.train.profile_steps
  if not text:
    return None
  try:
    first, last = (int(step) for step in text.split(","))
  except ValueError:
    first = last = 0
  if not 1 <= first <= last:
    raise RunRefused(f"config.train.profile_steps={text!r}: expected \"A,B\", steps "
                     "1 <= A <= B")
  return first, last


def _check_config(config: ml_collections.ConfigDict) -> None:
  counts = {"train.steps": config.train.steps, "train.batch_size": config.train.batch_size,
            "eval.batch_size": config.eval.batch_size}
  for name, value in counts.items():
    if value < 1:
      raise RunRefused(f"config.{name}={value}: expected at least 1")
  if not (math.isfinite(config.train.learning_rate) and config.train.learning_rate > 0):
    raise RunRefused(f"config.train.learning_rate={config.train.learning_rate}: expected a "
                     "finite number above 0")
  try:
    all_pairs.check_config(config)
  except ValueError as e:
    raise RunRefused(str(e)) from None
  if config.stage not in stages.STAGES:
    raise RunRefused(f"config.stage={config.stage!r}: expected one of {stages.STAGES}")
  if config.stage == "classifier" and not config.init_from:
    raise RunRefused("stage 'classifier' needs config.init_from: a stage-1 workdir")
  if config.stage in ("image_consistency", "camera_classification") and (
      config.train.post_processing_weight > 0 or config.model.named_exif_tags):
    raise RunRefused(f"stage {config.stage!r} trains no auxiliary head: set "
                     "config.train.post_processing_weight=0 and config.model.named_exif_tags=()")
  unknown = set(config.model.named_exif_tags) - set(exif_attrs.EXIF_TAGS)
  if unknown:
    raise RunRefused(f"config.model.named_exif_tags: {sorted(unknown)} not among the EXIF tags "
                     "of exif_jax/data/exif_tags.txt")
  if files.is_remote(config.data.data_dir):
    raise RunRefused(f"config.data.data_dir={config.data.data_dir}: Grain reads shards from a "
                     "file system only; mount the bucket with Cloud Storage FUSE (gcsfuse) and "
                     "give the mounted folder (docs/training.md, TPU pods and GPUs)")
  _profile_steps(config)


def _dataset_photos(data_dir: str) -> collections.Counter:
  """Photos per split of a dataset data_prep completed; refuses one without training photos."""
  if not data_dir:
    raise RunRefused("config.data.data_dir is empty: give a dataset folder written by data_prep")
  try:
    photos = collections.Counter(photo.split for photo in records.photo_index(data_dir)[0])
    records.load_dataset_info(data_dir)
  except (OSError, ValueError) as e:  # No folder, no dataset_info.json, an unreadable index.
    raise RunRefused(f"config.data.data_dir: {e}") from None
  if not photos["train"]:
    raise RunRefused(f"config.data.data_dir={data_dir}: no training photos")
  return photos


def _check_resume(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Refuses a rerun that changes what the workdir's checkpoints hold
  (checkpointing.RESUME_FIELDS, against its config.json)."""
  path = epath.Path(workdir) / RUN_CONFIG
  if path.exists():
    try:
      checkpointing.check_compatible(json.loads(path.read_text()), config,
                                     checkpointing.RESUME_FIELDS)
    except ValueError as e:
      raise RunRefused(f"{path}: {e}") from None


def _checked_run(config: ml_collections.ConfigDict, workdir: str
                 ) -> tuple[ml_collections.ConfigDict, collections.Counter]:
  """(config with its derived fields, photos per split) once every setting, the workdir (and
  the config.json of a rerun), the data and stage 2's init_from are usable: a refusal comes
  before the workdir is made or JAX holds anything."""
  _check_config(config)
  try:
    files.check_out_folder(workdir, "--workdir", "a run folder")
  except ValueError as e:
    raise RunRefused(str(e)) from None
  photos = _dataset_photos(config.data.data_dir)
  try:
    config = with_derived_fields(config)
  except ValueError as e:
    raise RunRefused(str(e)) from None
  _check_resume(workdir, config)
  if config.stage == "classifier":
    try:
      checkpointing.check_compatible(
          checkpointing.restore_config(config.init_from).to_dict(), config)
    except (OSError, ValueError) as e:  # No checkpoint there, a broken one, another model's.
      raise RunRefused(f"config.init_from={config.init_from}: {e}") from None
  return config, photos


def _say(line: str) -> None:
  """A line on stdout from the first process, above the progress bar (shown without -v)."""
  if jax.process_index() == 0:
    tqdm.write(line)


def _summary(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
             photos: collections.Counter) -> str:
  batch = config.train.batch_size
  return (f"{jax.device_count()} {jax.devices()[0].platform} devices on {jax.process_count()} "
          f"hosts, mesh {dict(mesh.shape)}; batch {batch} global, {batch // mesh.size} per "
          f"device; {config.train.steps} steps; photos: {photos['train']} train, "
          f"{photos['val']} val")


def _use_compilation_cache(path: str) -> None:
  """A persistent XLA cache: a restarted or repeated run skips compiling its programs."""
  if path:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))


def _restore_stage_one(config: ml_collections.ConfigDict,
                       model: models.ExifConsistencyModel) -> None:
  """Its config was checked by _checked_run."""
  checkpointing.restore(config.init_from, model)
  logging.info("stage 2 starts from %s", config.init_from)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> models.ExifConsistencyModel:
  """Runs (or resumes) training to config.train.steps; returns the model in eval mode."""
  config, photos = _checked_run(config, workdir)
  # --- Set-up.
  sharding.initialize(config)
  if not jax.distributed.is_initialized():  # Else JAX's preemption service takes SIGTERM.
    sigterm.install()
  _use_compilation_cache(config.compilation_cache_dir)
  mesh = sharding.make_mesh()
  for section in ("train", "eval"):
    try:
      sharding.check_batch_size(config[section].batch_size, mesh)
    except ValueError as e:
      raise RunRefused(f"config.{section}.batch_size: {e}") from None
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    files.write_json(workdir / RUN_CONFIG, config.to_dict())
  _say(_summary(config, mesh, photos))
  validating = photos["val"] > 0
  if not validating:
    _say(f"no validation photos in {config.data.data_dir} (its val split is empty): training "
         "without validation")
  model, optimizer = create_train_state(config, mesh)
  train_iter = iter(all_pairs.training_dataset(
      config, seed=config.seed, global_batch_size=config.train.batch_size,
      process_index=jax.process_index(), process_count=jax.process_count()))
  steps = config.train.steps

  with checkpointing.manager(workdir, config) as mngr:
    # --- Restore: a killed run continues from its latest checkpoint; stage 2 from stage 1.
    start = checkpointing.restore_run(mngr, model, optimizer, train_iter, config)
    if start:
      _say(f"resumed from step {start}")
    elif config.stage == "classifier":
      _restore_stage_one(config, model)

    model.eval()
    eval_step = make_eval_step(nnx.graphdef((model, optimizer)), config, mesh)
    if stages.trains_batch_norm(config.stage):
      model.train()
    graphdef, state = nnx.split((model, optimizer))
    train_step = make_train_step(graphdef, config, mesh)

    # --- Loop. The host reads step s's metrics while the device runs step s + 1.
    with (metrics_writer.MetricsWriter(workdir, enabled=jax.process_index() == 0) as writer,
          _Monitor(config, start, writer, mngr, workdir) as monitor):
      unchecked = None
      for step in range(start + 1, steps + 1):
        ctrl_c.raise_if_pressed()
        monitor.step_starts(step)
        state, metrics = train_step(state, sharding.global_batch(next(train_iter), mesh))
        if unchecked:
          monitor.step_done(*unchecked)
        unchecked = step, metrics
        evaluating = validating and (step % config.eval.every == 0 or step == steps)
        # Every host asks at every step: JAX's preemption service picks the same one for all.
        preempted = mngr.reached_preemption(step) or sigterm.received()
        saving = step % config.train.checkpoint_every == 0 or step == steps or preempted
        if not (evaluating or saving):
          continue
        monitor.step_done(*unchecked)
        unchecked = None
        # --- Evaluation.
        if evaluating:
          results = evaluate(eval_step, state, config, mesh)
          writer.write(step, results)
          monitor.validated(step, results)
        # --- Checkpoint (async: written while training goes on).
        if saving:
          nnx.update((model, optimizer), state)
          checkpointing.save(mngr, step, model, optimizer, train_iter, config)
        if preempted:  # Leaving the manager's block waits for the save.
          raise command.Preempted(f"preempted: saved step {step} in {mngr.directory}")
        monitor.restart_clock(step)

  nnx.update((model, optimizer), state)
  model.eval()
  return model
