"""SIGTERM as a preemption notice: recorded instead of fatal, so that training saves first.

Schedulers send SIGTERM some time before they kill a job (a preempted TPU VM or spot GPU
VM, Kubernetes, SLURM with --signal). install() records it; the training loop asks
received() at every step, saves that step and exits with command.PREEMPTED. A jax.distributed
job does not install it: JAX's preemption service takes SIGTERM there and agrees with every
host on the step to save (Orbax's CheckpointManager.reached_preemption).
"""

from __future__ import annotations

import signal
import threading

_received = threading.Event()


def install() -> None:
  """Records SIGTERM from now on, unless something else handles it already."""
  if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
    signal.signal(signal.SIGTERM, lambda signum, frame: _received.set())


def received() -> bool:
  return _received.is_set()
