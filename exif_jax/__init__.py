"""exif-jax: image splice detection by learned EXIF self-consistency (Huh et al., ECCV 2018).

The public API, what a notebook imports (docs/python.md); every other module is internal:

  localizer = exif_jax.load_localizer()    # the bundled model, or load_localizer("runs/stage2")
  result = localizer(exif_jax.load_image("photo.jpg"))  # .map, .score, .no_signal, ...
  calibration = exif_jax.load_calibration()  # its decision rule: .verdict(result.score)

Names load on first use, so `import exif_jax` stays cheap for commands that need no JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> (module, attribute).
_API = {
    "BUNDLED_MODEL": ("exif_jax.training.checkpointing", "BUNDLED_MODEL"),
    "CheckpointError": ("exif_jax.training.checkpointing", "CheckpointError"),
    "ExifConsistencyModel": ("exif_jax.models", "ExifConsistencyModel"),
    "ATTRIBUTES": ("exif_jax.data.exif_attrs", "ATTRIBUTES"),
    "load_config": ("exif_jax.training.checkpointing", "restore_config"),
    "load_image": ("eval.data.image_io", "load_image"),
    "Localization": ("eval.localization.localizer", "Localization"),
    "Localizer": ("eval.localization.localizer", "Localizer"),
    "load_localizer": ("eval.localization.localizer", "load"),
    "Options": ("eval.localization.localizer", "Options"),
    "train_and_evaluate": ("exif_jax.training.train", "train_and_evaluate"),
}
__all__ = sorted([*_API, "load_model", "load_calibration"])


def load_model(path: str | None = None) -> Any:
  """The model saved at `path` (a workdir, its checkpoints/ folder or one step), in eval mode;
  the bundled model when no path is given."""
  checkpointing = importlib.import_module("exif_jax.training.checkpointing")
  return checkpointing.restore(checkpointing.BUNDLED_MODEL if path is None else path)


def load_calibration(path: str | None = None) -> Any:
  """The decision rule stored with a model (eval.calibration.Calibration: .verdict(score),
  .pixel_threshold, the measured rates), the bundled model's when no path is given; None for
  a model without one."""
  checkpointing = importlib.import_module("exif_jax.training.checkpointing")
  calibration = importlib.import_module("eval.calibration")
  return calibration.load(checkpointing.BUNDLED_MODEL if path is None else path)


def __getattr__(name: str) -> Any:
  if name not in _API:
    raise AttributeError(f"module 'exif_jax' has no attribute {name!r}")
  module, attribute = _API[name]
  value = getattr(importlib.import_module(module), attribute)
  globals()[name] = value
  return value


def __dir__() -> list[str]:
  return sorted({*globals(), *__all__})
