"""The output folder of `localize` and `eval`: checked before the model loads, held by one run
(or the workers of one split) at a time, and bound to the settings of the maps it holds."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import time
from typing import Any, Iterator

from exif_jax.data import files

SETTINGS = "settings.json"
_LOCK = ".lock"
_SUMMARY_LOCK = ".summary.lock"
_WORKER_START_S = 10  # How long a worker waits for another that holds OUT while it starts.
# What a run leaves in OUT before its settings: the workers of a split start it together.
_LOCKS = (_LOCK, _SUMMARY_LOCK)


def _shown(path: pathlib.Path) -> str:
  """A path as messages print it: control characters as text, never run by a terminal."""
  return files.display_name(path)


class OutError(ValueError):
  """OUT cannot take this run's results: the message says why, naming the path."""


class SettingsMismatch(OutError):
  """OUT holds results of another model or other options."""


def check(out: str) -> pathlib.Path:
  """`out` as a path, or OutError when it cannot be an output folder. Writes nothing."""
  try:
    files.check_out_folder(out)
  except ValueError as e:
    raise OutError(str(e)) from None
  path = pathlib.Path(out)
  if os.path.lexists(path / SETTINGS):
    read_settings(path / SETTINGS)
  elif path.is_dir() and any(not entry.name.startswith(_LOCKS) for entry in path.iterdir()):
    # A user's folder (or another tool's): its files are not ours to overwrite.
    raise OutError(f"--out {_shown(path)}: not empty and not an exif-jax output folder (no "
                   f"{SETTINGS}); give a new or empty folder")
  return path


def read_settings(path: pathlib.Path) -> dict[str, Any]:
  """The settings an earlier run recorded, or OutError if the file is not one this tool wrote
  (every one holds max_pixels)."""
  try:
    settings = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    reason = e.strerror if isinstance(e, OSError) else "not JSON"
  else:
    if isinstance(settings, dict) and "max_pixels" in settings:
      return settings
    reason = "not the settings of an exif-jax output folder"
  raise OutError(f"{_shown(path)}: {reason}; give another --out or delete it")


def _open_lock(path: pathlib.Path) -> int:
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
  except OSError as e:
    raise OutError(f"--out {_shown(path.parent)}: {e.strerror or e}") from None


def _try_flock(fd: int, operation: int) -> bool:
  try:
    fcntl.flock(fd, operation | fcntl.LOCK_NB)
  except BlockingIOError:
    return False
  return True


@contextlib.contextmanager
def locked(out: pathlib.Path, worker_index: int = 0, num_workers: int = 1) -> Iterator[None]:
  """Creates `out` and holds it for one run until the block ends; OutError while it is in use.

  A run over the whole list (num_workers 1) holds OUT alone. Worker `worker_index` of
  `num_workers` shares OUT with the other workers of that split and holds its own share
  alone: never two processes on one share, never workers of two different splits. Temporary
  files a killed run left behind are removed when a run starts alone (a running worker may be
  writing its own).
  """
  with contextlib.ExitStack() as stack:
    fd = _open_lock(out / _LOCK)
    stack.callback(os.close, fd)
    alone = _try_flock(fd, fcntl.LOCK_EX)
    if alone:
      _remove_temporaries(out)
    if num_workers > 1:
      if not _shared_soon(fd):  # Shared from now on: the other workers join.
        raise _in_use(out)
      stack.callback(os.close, _hold_share(out, worker_index, num_workers))
    elif not alone:
      raise _in_use(out)
    yield


def _shared_soon(fd: int) -> bool:
  """The shared lock, waiting a few seconds for it: a worker of the split that starts at the
  same moment holds the lock alone while it removes a killed run's temporaries. A run of the
  whole list holds it for good, and is reported in use."""
  deadline = time.monotonic() + _WORKER_START_S
  while not _try_flock(fd, fcntl.LOCK_SH):
    if time.monotonic() > deadline:
      return False
    time.sleep(0.05)
  return True


def _in_use(out: pathlib.Path) -> OutError:
  return OutError(f"{_shown(out)} is in use by another run; wait for it or give another --out")


def _hold_share(out: pathlib.Path, worker_index: int, num_workers: int) -> int:
  """Locks the share of this worker, then checks that no worker of another split runs (each
  locks its own share before it checks: of two starting at once, neither goes on)."""
  fd = _open_lock(out / f"{_LOCK}-{worker_index}-of-{num_workers}")
  if not _try_flock(fd, fcntl.LOCK_EX):
    os.close(fd)
    raise OutError(f"{_shown(out)}: worker {worker_index} of {num_workers} is already "
                   "running there")
  for other in out.glob(f"{_LOCK}-*-of-*"):
    if other.name.endswith(f"-of-{num_workers}"):
      continue
    try:
      probe = os.open(other, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # Not a lock file this tool made.
      continue
    try:
      free = _try_flock(probe, fcntl.LOCK_SH)
    finally:
      os.close(probe)
    if not free:
      os.close(fd)
      raise OutError(f"{_shown(out)} is in use by workers of another --num_workers than "
                     f"{num_workers}; give every worker the same one")
  return fd


@contextlib.contextmanager
def serialized(out: pathlib.Path) -> Iterator[None]:
  """Waits for, then holds, the lock that lets one process at a time claim OUT or write its
  summaries (the workers of a split share OUT)."""
  fd = _open_lock(out / _SUMMARY_LOCK)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)


def _remove_temporaries(out: pathlib.Path) -> None:
  """files.atomic_file's temporaries in OUT and its folders: only a killed run leaves any."""
  folders = [out, *(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())]
  for stale in (path for folder in folders for path in folder.glob(".*.tmp-*")):
    stale.unlink()


def claim(out: pathlib.Path, settings: dict[str, Any]) -> None:
  """Records the settings of the results in `out`, or refuses if they differ from earlier.
  One process at a time: workers that start together agree on the first one's settings."""
  path = out / SETTINGS
  with serialized(out):
    if not os.path.lexists(path):
      files.write_json(path, settings)
      return
    earlier = read_settings(path)
  if changes := files.settings_changes(earlier, settings):
    raise SettingsMismatch(
        f"{_shown(out)} holds results made with other settings ({changes}); "
        "give another --out or delete it")
