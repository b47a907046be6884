"""exif-jax: image splice detection by learned EXIF self-consistency (Huh et al., ECCV 2018).

The public API, what a notebook imports (docs/python.md); every other module is internal:

  model = exif_jax.load_model()            # the bundled model, or load_model("runs/classifier")
  localizer = exif_jax.Localizer(model)    # jitted all-pairs evaluation, exif_jax.Options(...)
  result = localizer(exif_jax.load_image("photo.jpg"))  # .map, .score, .no_signal, ...

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
    "Options": ("eval.localization.localizer", "Options"),
    "train_and_evaluate": ("exif_jax.training.train", "train_and_evaluate"),
}
__all__ = sorted([*_API, "load_model"])


def load_model(path: str | None = None) -> Any:
  """The model saved at `path` (a workdir, its checkpoints/ folder or one step), in eval mode;
  the bundled model when no path is given."""
  checkpointing = importlib.import_module("exif_jax.training.checkpointing")
  return checkpointing.restore(checkpointing.BUNDLED_MODEL if path is None else path)


def __getattr__(name: str) -> Any:
  if name not in _API:
    raise AttributeError(f"module 'exif_jax' has no attribute {name!r}")
  module, attribute = _API[name]
  value = getattr(importlib.import_module(module), attribute)
  globals()[name] = value
  return value


def __dir__() -> list[str]:
  return sorted({*globals(), *__all__})
