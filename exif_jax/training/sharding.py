"""Data parallelism over a 1-D device mesh: replicated state, batch split on "data".

The same code runs on one CPU, 4 fake CPU devices, a GPU host or a TPU pod slice: each host
feeds its local slice of the global batch and jax.jit with NamedSharding does the rest.
"""

from __future__ import annotations

from typing import Sequence

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize(config: ml_collections.ConfigDict, shutdown_timeout_s: int = 300) -> None:
  """Joins the multi-host job when the config asks for it (once per process).

  TPU VMs, SLURM, Open MPI and Kubernetes jobs describe themselves: config.distributed=True
  is enough there. Elsewhere config.coordinator_address (host:port of process 0),
  config.num_processes and config.process_id say it. A process that ends waits up to
  `shutdown_timeout_s` for the others to end too (jax.distributed's shutdown barrier).
  """
  if ((config.distributed or config.coordinator_address)
      and not jax.distributed.is_initialized()):
    jax.distributed.initialize(
        coordinator_address=config.coordinator_address or None,
        num_processes=config.num_processes or None,
        process_id=config.process_id if config.num_processes else None,
        shutdown_timeout_seconds=shutdown_timeout_s)
  logging.info("process %d of %d, %d local / %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  return Mesh(np.asarray(jax.devices() if devices is None else devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
  if global_batch_size % mesh.size:
    raise ValueError(
        f"batch size {global_batch_size} is not divisible by the {mesh.size} devices")


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This host's slice of the batch -> global arrays sharded over the data axis."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}
