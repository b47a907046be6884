"""Training: stage 1 learns 83 "same or not" attributes; stage 2 the same-image classifier.

`train_and_evaluate(config, workdir)` is the whole run: set-up, restore (a killed run resumes
exactly: model, optimizer, step and data iterator come back together), the jitted data-parallel
loop, periodic validation on held-out camera models, and checkpoints.
"""

from __future__ import annotations

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
from tqdm import tqdm

from exif_jax import checkpointing
from exif_jax import exif_attrs
from exif_jax import input_pipeline
from exif_jax import metrics_writer
from exif_jax import models
from exif_jax import sharding

STAGES = ("exif", "classifier")


def create_model(config: ml_collections.ConfigDict) -> models.ExifConsistencyModel:
  # rbg keys: threefry initialisation compiles for seconds per parameter shape on CPU.
  rngs = nnx.Rngs(jax.random.key(config.seed, impl="rbg"))
  return models.ExifConsistencyModel(config.model, rngs=rngs)


def trainable(stage: str) -> nnx.filterlib.Filter:
  """Stage 1 trains everything; stage 2 only the classifier, on frozen stage-1 outputs."""
  if stage == "exif":
    return nnx.Param
  return nnx.All(nnx.Param, nnx.PathContains("classifier"))


def learning_rate(config: ml_collections.ConfigDict) -> optax.Schedule:
  peak = config.train.learning_rate
  if not config.train.warmup_steps:
    return optax.constant_schedule(peak)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, config.train.warmup_steps),
       optax.constant_schedule(peak)], [config.train.warmup_steps])


def _balanced_counts(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """Per-column counts for balanced accuracy: (TPR + TNR) / 2 has chance 50% at any mix."""
  predicted = logits > 0
  positive, negative = labels == 1, labels == 0
  return {"true_pos": jnp.sum(predicted & positive, axis=0),
          "pos": jnp.sum(positive, axis=0),
          "true_neg": jnp.sum(~predicted & negative, axis=0),
          "neg": jnp.sum(negative, axis=0)}


def loss_and_counts(model: models.ExifConsistencyModel, batch: dict[str, jax.Array],
                    stage: str) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Masked sigmoid cross-entropy (label -1 = unknown: no loss) and accuracy counts."""
  exif_logits = model(batch["patch_a"], batch["patch_b"])
  if stage == "exif":
    logits, labels = exif_logits, batch["labels"].astype(jnp.int32)
  else:
    logits = model.consistency_logit(jax.lax.stop_gradient(exif_logits))[:, None]
    labels = batch["same_image"].astype(jnp.int32)[:, None]
  known = labels >= 0
  losses = optax.sigmoid_binary_cross_entropy(logits, jnp.maximum(labels, 0).astype(jnp.float32))
  loss = jnp.sum(jnp.where(known, losses, 0.0)) / jnp.maximum(jnp.sum(known), 1)
  return loss, _balanced_counts(logits, labels)


def make_train_step(graphdef: nnx.GraphDef, config: ml_collections.ConfigDict,
                    mesh: jax.sharding.Mesh) -> Callable:
  """Jitted (state, batch) -> (state, metrics); state replicated and donated, batch sharded."""
  wrt = trainable(config.stage)

  def train_step(state, batch):
    model, optimizer = nnx.merge(graphdef, state)
    grad_fn = nnx.value_and_grad(
        loss_and_counts, argnums=nnx.DiffState(0, wrt), has_aux=True)
    (loss, counts), grads = grad_fn(model, batch, config.stage)
    optimizer.update(model, grads)
    return nnx.state((model, optimizer)), {"loss": loss, **counts}

  replicated = sharding.replicated(mesh)
  return jax.jit(train_step, in_shardings=(replicated, sharding.batch_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def make_eval_step(graphdef: nnx.GraphDef, config: ml_collections.ConfigDict,
                   mesh: jax.sharding.Mesh) -> Callable:
  def eval_step(state, batch):
    model, _ = nnx.merge(graphdef, state)
    return loss_and_counts(model, batch, config.stage)

  replicated = sharding.replicated(mesh)
  return jax.jit(eval_step, in_shardings=(replicated, sharding.batch_sharding(mesh)),
                 out_shardings=replicated)


def column_names(stage: str) -> tuple[str, ...]:
  return exif_attrs.ATTRIBUTES if stage == "exif" else ("same_image",)


def evaluate(eval_step: Callable, state: Any, config: ml_collections.ConfigDict,
             mesh: jax.sharding.Mesh) -> dict[str, float]:
  """Balanced accuracy per attribute (chance 50%) on validation pairs of held-out cameras."""
  dataset = input_pipeline.create_dataset(
      config, "val", seed=config.eval.seed, global_batch_size=config.eval.batch_size,
      process_index=jax.process_index(), process_count=jax.process_count())
  totals, losses = None, []
  for _, local_batch in zip(range(config.eval.num_batches), dataset):
    loss, counts = eval_step(state, sharding.global_batch(local_batch, mesh))
    losses.append(float(loss))
    counts = jax.tree.map(np.asarray, counts)
    totals = counts if totals is None else jax.tree.map(np.add, totals, counts)
  results = {"val/loss": float(np.mean(losses))}
  accuracies = []
  for i, name in enumerate(column_names(config.stage)):
    if totals["pos"][i] and totals["neg"][i]:
      accuracy = 0.5 * (totals["true_pos"][i] / totals["pos"][i]
                        + totals["true_neg"][i] / totals["neg"][i])
      results[f"val/accuracy/{name}"] = float(accuracy)
      accuracies.append(accuracy)
  results["val/mean_accuracy"] = float(np.mean(accuracies)) if accuracies else float("nan")
  return results


def _initial_model(config: ml_collections.ConfigDict) -> models.ExifConsistencyModel:
  model = create_model(config)
  if config.stage == "classifier":
    if not config.init_from:
      raise ValueError("stage 'classifier' needs config.init_from: a stage-1 workdir")
    checkpointing.check_compatible(
        checkpointing.restore_config(config.init_from).to_dict(), config)
    checkpointing.restore(config.init_from, model)
  return model


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> models.ExifConsistencyModel:
  """Runs (or resumes) training to config.train.steps; returns the trained model."""
  if config.stage not in STAGES:
    raise ValueError(f"config.stage={config.stage!r}: expected one of {STAGES}")
  # --- Set-up.
  sharding.initialize(config)
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.train.batch_size, mesh)
  model = _initial_model(config)
  optimizer = nnx.Optimizer(model, optax.adam(learning_rate(config)), wrt=trainable(config.stage))
  train_iter = iter(input_pipeline.create_dataset(
      config, "train", seed=config.seed, global_batch_size=config.train.batch_size,
      process_index=jax.process_index(), process_count=jax.process_count()))

  # --- Restore: a killed run continues from its latest checkpoint.
  mngr = checkpointing.manager(workdir, config)
  start = checkpointing.restore_run(mngr, model, optimizer, train_iter, config)
  if start:
    logging.info("resumed from step %d", start)

  # Stage 1 trains batch norm statistics; stage 2 keeps the frozen network in inference mode.
  model.eval()
  eval_graphdef, _ = nnx.split((model, optimizer))
  if config.stage == "exif":
    model.train()
  graphdef, state = nnx.split((model, optimizer))
  state = sharding.replicate(state, mesh)
  train_step = make_train_step(graphdef, config, mesh)
  eval_step = make_eval_step(eval_graphdef, config, mesh)
  writer = metrics_writer.MetricsWriter(workdir, enabled=jax.process_index() == 0)

  # --- Loop.
  steps = config.train.steps
  tick, tick_step = time.perf_counter(), start
  bar = tqdm(total=steps, initial=start, desc=f"train {config.stage}", unit="step",
             disable=jax.process_index() != 0)
  for step in range(start + 1, steps + 1):
    state, metrics = train_step(state, sharding.global_batch(next(train_iter), mesh))
    loss = float(metrics["loss"])
    if not np.isfinite(loss):
      mngr.wait_until_finished()
      raise FloatingPointError(
          f"loss is {loss} at step {step}; stopped without saving it. The last good "
          f"checkpoint is step {mngr.latest_step()} in {workdir / checkpointing.CHECKPOINTS}")
    bar.update()
    bar.set_postfix(loss=f"{loss:.4f}")
    if step % config.train.log_every == 0 or step == steps:
      now = time.perf_counter()
      pairs_per_s = (step - tick_step) * config.train.batch_size / (now - tick)
      tick, tick_step = now, step
      writer.write(step, {"train/loss": loss, "train/pairs_per_s": pairs_per_s})
    if step % config.eval.every == 0 or step == steps:
      writer.write(step, evaluate(eval_step, state, config, mesh))
    if step % config.train.checkpoint_every == 0 or step == steps:
      nnx.update((model, optimizer), state)
      checkpointing.save(mngr, step, model, optimizer, train_iter, config, force=True)
  bar.close()
  mngr.wait_until_finished()
  mngr.close()
  writer.close()
  nnx.update((model, optimizer), state)
  model.eval()
  return model
