"""Data parallelism on 4 fake CPU devices: the batch is split, the state replicated and
donated, and the numbers are those of one device."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from configs import tiny
from exif_jax.training import sharding
from exif_jax.training import train


def test_global_batch_splits_rows_over_the_data_axis():
  local = train.random_batch(tiny.get_config(), 8)
  batch = sharding.global_batch(local, sharding.make_mesh(jax.devices()[:4]))
  for name, array in batch.items():
    shards = sorted(array.addressable_shards, key=lambda shard: shard.index[0].start)
    assert [shard.data.shape[0] for shard in shards] == [2, 2, 2, 2], name
    assert len({shard.device for shard in shards}) == 4
    np.testing.assert_array_equal(np.concatenate([shard.data for shard in shards]), local[name])


def test_batch_size_must_divide_over_the_devices():
  with pytest.raises(ValueError, match="batch size 6 is not divisible by the 4 devices"):
    sharding.check_batch_size(6, sharding.make_mesh(jax.devices()[:4]))


def test_single_process_without_distributed_config():
  sharding.initialize(tiny.get_config())
  assert jax.process_count() == 1
  assert jax.device_count() == 4


def test_four_devices_match_one_device():
  config = tiny.get_config()
  batches = [train.random_batch(config, config.train.batch_size, seed=seed) for seed in range(2)]
  runs = []
  for devices in (jax.devices()[:1], jax.devices()[:4]):
    mesh = sharding.make_mesh(devices)
    model, _ = train.create_train_state(config, mesh)
    # SGD: its update is linear in the gradient. Adam's first steps divide by the gradient's
    # size, which turns float noise in zero gradients (biases before batch norm) into steps.
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    model.train()
    graphdef, state = nnx.split((model, optimizer))
    state = jax.device_put(state, sharding.replicated(mesh))
    step = train.make_train_step(graphdef, config, mesh)
    losses = []
    for batch in batches:
      given = state
      state, metrics = step(state, sharding.global_batch(batch, mesh))
      losses.append(float(metrics["loss"]))
      assert all(x.is_deleted() for x in jax.tree.leaves(given))  # Donated: updated in place.
    assert all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == len(devices)
               for x in jax.tree.leaves(state))
    runs.append((losses, jax.tree.leaves(state)))
  (losses_1, state_1), (losses_4, state_4) = runs
  np.testing.assert_allclose(losses_1, losses_4, rtol=1e-5)
  for a, b in zip(state_1, state_4, strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
