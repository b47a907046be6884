"""A tiny training run with virtual-camera pairs mixed in, end to end on real shards."""

import json

import numpy as np
import pytest

from conftest import tiny_config
from exif_jax.data import exif_attrs
from exif_jax.data import input_pipeline
from exif_jax.data import virtual_camera
from exif_jax.training import checkpointing
from exif_jax.training import stages
from exif_jax.training import train

NUM_COLUMNS = exif_attrs.NUM_ATTRIBUTES + len(virtual_camera.COMPONENTS)


@pytest.fixture(scope="module")
def virtual_run(shards_dir, tmp_path_factory):
  config = tiny_config(shards_dir, steps=3)
  config.data.virtual_camera_fraction = 0.5
  workdir = tmp_path_factory.mktemp("virtual_run")
  return config, workdir, train.train_and_evaluate(config, str(workdir))


def test_the_component_head_trains_and_is_saved(virtual_run):
  config, workdir, model = virtual_run
  initial = train.create_model(config)
  assert initial.virtual_camera.kernel[...].shape == (16, len(virtual_camera.COMPONENTS))
  # Its kernel moved: the component columns' loss reached it.
  assert not np.allclose(model.virtual_camera.kernel[...], initial.virtual_camera.kernel[...])
  assert (checkpointing.restore_config(workdir).model.virtual_camera_components
          == list(virtual_camera.COMPONENTS))
  restored = checkpointing.restore(workdir)
  np.testing.assert_array_equal(restored.virtual_camera.kernel[...],
                                model.virtual_camera.kernel[...])
  # Off, the model has no such head and its checkpoints are as before.
  config = config.copy_and_resolve_references()
  config.data.virtual_camera_fraction = 0.0
  assert train.create_model(config).virtual_camera is None


def test_metrics_hold_the_components_beside_unchanged_attribute_means(virtual_run):
  _, workdir, _ = virtual_run
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert all(np.isfinite(r["train/loss"]) for r in records if "train/loss" in r)
  val = [r for r in records if "val/mean_accuracy" in r][-1]
  components = [name for name in virtual_camera.COMPONENTS if f"val/auc/{name}" in val]
  assert components, sorted(val)
  assert all(0.0 <= val[f"val/accuracy/{name}"] <= 1.0 for name in components)
  # The means cover the 83 attributes only, comparable with runs without virtual pairs.
  attributes = [val[f"val/accuracy/{name}"] for name in exif_attrs.ATTRIBUTES
                if f"val/accuracy/{name}" in val]
  np.testing.assert_allclose(val["val/mean_accuracy"], np.mean(attributes), rtol=1e-6)


def test_component_labels_carry_loss_and_stage_two_reads_only_the_attributes(virtual_run):
  config, _, model = virtual_run
  config = train.with_derived_fields(config)
  batch = train.random_batch(config, 8)
  assert batch["labels"].shape == (8, NUM_COLUMNS) == (8, input_pipeline.num_labels(config))
  loss, outputs = stages.loss_and_outputs(model, batch, config)
  assert outputs["logits"].shape == (8, NUM_COLUMNS) and np.isfinite(float(loss))
  batch["labels"][:, exif_attrs.NUM_ATTRIBUTES:] = -1  # Real pairs: components unknown.
  without = float(stages.loss_and_outputs(model, batch, config)[0])
  assert np.isfinite(without) and without != float(loss)
  config.stage = "classifier"
  loss, outputs = stages.loss_and_outputs(model, batch, config)
  assert outputs["logits"].shape == (8, 1) and np.isfinite(float(loss))
