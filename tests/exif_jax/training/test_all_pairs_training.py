"""Training on all-pairs batches: the loss against the pair path, and a resumable run."""

import json

import jax
import numpy as np
import optax
import pytest

from conftest import assert_resumes_exactly
from conftest import tiny_config
from exif_jax.data import all_pairs
from exif_jax.data import input_pipeline
from exif_jax.data import virtual_camera
from exif_jax.training import stages
from exif_jax.training import train

BATCH = 8


def all_pairs_config(shards_dir, virtual_camera_fraction=0.5, **train_overrides):
  """The tiny config on all-pairs batches, half the couples virtual by default."""
  config = tiny_config(shards_dir, **train_overrides)
  config.data.update({"sampler": "all_pairs", "patches_per_photo": 2,
                      "virtual_camera_fraction": virtual_camera_fraction})
  return config


def balanced_mean(losses: np.ndarray, labels: np.ndarray) -> float:
  """Per column the mean of its classes' mean losses; the mean over columns with any."""
  columns = []
  for column_losses, column_labels in zip(losses.T, labels.T):
    means = [column_losses[column_labels == value].mean() for value in (0, 1)
             if (column_labels == value).any()]
    if means:
      columns.append(np.mean(means))
  return float(np.mean(columns))


def pair_labels(batch, exif_labels, i, j) -> np.ndarray:
  """The stage-1 labels of pair (i, j), written out: EXIF values of two real photos' patches,
  post-processing members, then with virtual cameras the members of two rendered patches;
  two patches of one image teach only the post-processing."""
  image, post = batch["image"], batch["post"]
  one_image = image[i] == image[j]
  real = image[i] >= 0 and image[j] >= 0
  exif = (exif_labels(image[i], image[j]) if real and not one_image
          else np.full(batch["codes"].shape[1], -1))
  labels = [exif, post[i] == post[j]]
  if "virtual" in batch:
    members = batch["virtual"]
    rendered = (members[i] >= 0).all() and (members[j] >= 0).all()
    labels.append(members[i] == members[j] if rendered and not one_image
                  else np.full(members.shape[1], -1))
  return np.concatenate(labels)


@pytest.mark.parametrize("stage", ["exif", "classifier"])
@pytest.mark.parametrize("virtual_camera_fraction", [0.0, 0.5])
def test_loss_is_the_balanced_mean_of_the_pair_path_one_pair_at_a_time(
    shards_dir, stage, virtual_camera_fraction):
  config = all_pairs_config(shards_dir, virtual_camera_fraction)
  config.stage = stage
  model = train.create_model(config)
  model.eval()  # Batch statistics aside, a patch's feature does not depend on its batch.
  batch = next(iter(all_pairs.create_dataset(config, seed=0, global_batch_size=BATCH)))
  sampler = input_pipeline.make_batch_inputs(config, "train", seed=0)[0]
  loss, outputs = stages.loss_and_outputs(model, batch, config)

  features = model.features(batch["patches"])
  losses, labels = [], []
  for i, j in zip(*np.triu_indices(BATCH, 1)):
    logits = model.head_logits(features[i:i + 1], features[j:j + 1])
    if stage == "exif":
      labels.append(pair_labels(batch, sampler.exif_labels, i, j))
    else:
      logits = model.consistency_logit(logits)[:, None]
      labels.append(np.array([batch["image"][i] == batch["image"][j]]))
    losses.append(optax.sigmoid_binary_cross_entropy(logits[0], np.maximum(labels[-1], 0)))
  losses, labels = np.array(losses), np.array(labels, np.int32)
  expected = balanced_mean(losses, labels)
  if stage == "exif":
    expected += stages.post_processing_loss(model, features, batch["post"])
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_array_equal(outputs["labels"], labels)
  assert (labels == 1).any() and (labels == -1).any() == (stage == "exif")  # Masks tested.
  if stage == "exif" and virtual_camera_fraction:  # Both answers for the components.
    components = labels[:, -len(virtual_camera.COMPONENTS):]
    assert (components == 0).any() and (components == 1).any()
  # The class weights matter on this batch: the plain mean over known labels differs.
  plain = losses[labels >= 0].mean()
  assert abs(plain - balanced_mean(losses, labels)) > 1e-3


@pytest.fixture(scope="module")
def all_pairs_run(shards_dir, tmp_path_factory):
  """(workdir, model) of one uninterrupted tiny all-pairs run on 4 fake devices."""
  assert jax.device_count() == 4
  workdir = tmp_path_factory.mktemp("all_pairs_run")
  return workdir, train.train_and_evaluate(all_pairs_config(shards_dir), str(workdir))


def test_resumed_run_equals_uninterrupted_run(shards_dir, tmp_path, all_pairs_run):
  assert_resumes_exactly(lambda **steps: all_pairs_config(shards_dir, **steps), all_pairs_run[1],
                         tmp_path)


def test_logs_pairs_per_second_and_validates_on_pairs(all_pairs_run):
  workdir, _ = all_pairs_run
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  losses = [r["train/loss"] for r in records if "train/loss" in r]
  assert len(losses) == 3 and np.isfinite(losses).all()
  assert all(r["train/pairs_per_s"] > 0 for r in records if "train/pairs_per_s" in r)
  val = [r for r in records if "val/mean_auc" in r]
  assert [r["step"] for r in val] == [3, 6]
  assert 0.0 <= val[-1]["val/auc/jpeg_quality"] <= 1.0
  assert 0.0 <= val[-1]["val/auc/virtual_jpeg_quality"] <= 1.0


def test_random_batch_has_the_all_pairs_layout(shards_dir):
  config = all_pairs_config(shards_dir)
  batch = train.random_batch(config, BATCH)
  loss, outputs = stages.loss_and_outputs(train.create_model(config), batch, config)
  assert np.isfinite(loss)
  assert outputs["logits"].shape == (BATCH * (BATCH - 1) // 2,
                                     83 + len(virtual_camera.COMPONENTS))
  assert all_pairs.pairs_per_batch(config, BATCH) == len(outputs["labels"])
