"""The output folder of `localize` and `eval`: checked before the model loads, held by one run
at a time, and bound to the settings of the maps it holds."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
from typing import Any, Iterator

from data_prep import photos as photo_inputs
from exif_jax import files

SETTINGS = "settings.json"
_LOCK = ".lock"


def _shown(path: pathlib.Path) -> str:
  """A path as messages print it: control characters as text, never run by a terminal."""
  return photo_inputs.display_name(path)


class OutError(ValueError):
  """OUT cannot take this run's results: the message says why, naming the path."""


class SettingsMismatch(OutError):
  """OUT holds results of another model or other options."""


def check(out: str) -> pathlib.Path:
  """`out` as a path, or OutError when it cannot be an output folder. Writes nothing."""
  if not out:
    raise OutError("--out is empty: give an output folder")
  path = pathlib.Path(out)
  for folder in (path, *path.parents):
    if folder.is_dir():
      break
    if os.path.lexists(folder):
      raise OutError(f"--out {_shown(path)}: " + (
          "not a folder" if folder == path else f"{_shown(folder)} is not a folder"))
  if os.path.lexists(path / SETTINGS):
    read_settings(path / SETTINGS)
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


@contextlib.contextmanager
def locked(out: pathlib.Path) -> Iterator[None]:
  """Creates `out` and holds an exclusive lock on it until the block ends; OutError while
  another run holds it. Temporary files a killed run left behind are removed."""
  try:
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / _LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
  except OSError as e:
    raise OutError(f"--out {_shown(out)}: {e.strerror or e}") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise OutError(f"{_shown(out)} is in use by another run; wait for it or give another "
                     "--out") from None
    _remove_temporaries(out)
    yield
  finally:
    os.close(fd)


def _remove_temporaries(out: pathlib.Path) -> None:
  """files.atomic_file's temporaries in OUT and its folders: only a killed run leaves any."""
  folders = [out, *(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())]
  for stale in (path for folder in folders for path in folder.glob(".*.tmp-*")):
    stale.unlink()


def claim(out: pathlib.Path, settings: dict[str, Any]) -> None:
  """Records the settings of the results in `out`, or refuses if they differ from earlier."""
  path = out / SETTINGS
  if not os.path.lexists(path):
    files.write_json(path, settings)
    return
  earlier = read_settings(path)
  changed = sorted(k for k in settings.keys() | earlier.keys()
                   if settings.get(k) != earlier.get(k))
  if changed:
    raise SettingsMismatch(
        f"{_shown(out)} holds results made with other settings ({', '.join(changed)}: "
        f"{', '.join(f'{earlier.get(k)} then, {settings.get(k)} now' for k in changed)}); "
        f"give another --out or delete it")
