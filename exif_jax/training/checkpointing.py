"""Orbax checkpoints of a run: model, optimizer, step, data iterator and config together.

Layout: WORKDIR/checkpoints/<step>/{model,optimizer,data,config}. `restore(path)` gives a
ready model to anyone (eval, notebooks) from a workdir, its checkpoints folder or one step.
"""

from __future__ import annotations

import importlib.resources
import json
import pathlib
import re
from typing import Any, Sequence

import grain
import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from exif_jax import models
from exif_jax.data import exif_attrs
from exif_jax.models import resnet_v2

CHECKPOINTS = "checkpoints"
# The config fields a resumed run must keep: what its checkpoints hold.
RESUME_FIELDS = ("stage", "model")
# Widths above this in a saved config are a corrupt file, not a model (ResNet-50 uses 4096).
MAX_WIDTH = 1 << 16
# The model shipped in the package; `localize` and `eval` use it when given no checkpoint.
BUNDLED_MODEL = pathlib.Path(str(importlib.resources.files("exif_jax") / "bundled_model"))
# Options older checkpoints may hold that this version no longer has, each with the value at
# which it changed nothing. There it is dropped on reading; any other value is refused, as this
# version cannot rebuild what it made.
REMOVED_OPTIONS = {
    "model.num_attributes": exif_attrs.NUM_ATTRIBUTES,  # Fixed by the attribute list.
    "model.noise_stream_width": 0,  # A second ResNet for post-processing traces.
    "model.noise_stream_inputs": "residuals",
    "model.post_processing_from_posteriors": False,  # Pair logits from per-patch posteriors.
    "model.post_processing_pair_gradient": True,
    "train.schedule": "constant",  # A cosine decay after warm-up.
}


class CheckpointError(ValueError):
  """A checkpoint that cannot be used; the message names its path and what is wrong."""


def absolute(path: epath.PathLike) -> epath.Path:
  """Orbax wants absolute paths; a relative one is taken from the working directory."""
  path = epath.Path(path)
  return path if path.is_absolute() else path.absolute()


def manager(workdir: epath.PathLike, config: ml_collections.ConfigDict
            ) -> ocp.CheckpointManager:
  # The training loop chooses the steps to save; the manager keeps the latest few.
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.train.keep_checkpoints, enable_async_checkpointing=True)
  return ocp.CheckpointManager(absolute(workdir) / CHECKPOINTS, options=options)


def save(mngr: ocp.CheckpointManager, step: int, model: nnx.Module, optimizer: nnx.Optimizer,
         data_iterator: Any, config: ml_collections.ConfigDict) -> None:
  """Starts an async save of step `step`; the next save or `mngr.close()` waits for it."""
  mngr.save(step, args=ocp.args.Composite(
      model=ocp.args.StandardSave(nnx.state(model)),
      optimizer=ocp.args.StandardSave(nnx.state(optimizer)),
      data=grain.checkpoint.CheckpointSave(data_iterator),
      config=ocp.args.JsonSave(config.to_dict())), force=True)


def save_model(workdir: epath.PathLike, model: nnx.Module, config: ml_collections.ConfigDict
               ) -> epath.Path:
  """A model-only checkpoint (step 0: model and config) that `restore` reads.

  For converted or exported weights; also fits stage 2's `config.init_from`. Refuses a
  workdir that holds checkpoints already.
  """
  with manager(workdir, config) as mngr:
    if mngr.latest_step() is not None:
      raise FileExistsError(f"{mngr.directory}: holds checkpoints already; pick a new folder")
    mngr.save(0, args=ocp.args.Composite(
        model=ocp.args.StandardSave(nnx.state(model)),
        config=ocp.args.JsonSave(config.to_dict())))
    mngr.wait_until_finished()
    return mngr.directory


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = value
  return flat


def check_compatible(saved: dict[str, Any], config: ml_collections.ConfigDict,
                     fields: Sequence[str] = ("model",)) -> None:
  """Refuses a checkpoint whose `fields` (config sections or keys) differ from the config's.

  The error names each mismatch, e.g. "model.width: checkpoint 4, config 8". A model field
  newer than the checkpoint (or than the config, itself restored from an older checkpoint)
  counts as its default there, as the model reads it.
  """
  wanted = json.loads(json.dumps(config.to_dict()))  # Tuples -> lists, as saved.
  absent = _flat(json.loads(json.dumps({"model": models.default_config().to_dict()})))
  saved, wanted = {**absent, **_flat(saved)}, {**absent, **_flat(wanted)}
  names = sorted(name for name in saved.keys() | wanted.keys()
                 if any(name == f or name.startswith(f + ".") for f in fields))
  mismatches = [f"{name}: checkpoint {saved.get(name)!r}, config {wanted.get(name)!r}"
                for name in names if saved.get(name) != wanted.get(name)]
  if mismatches:
    raise ValueError("checkpoint is incompatible with the config: " + "; ".join(mismatches))


def _without_removed_options(saved: dict[str, Any], where: epath.PathLike,
                             sections: Sequence[str]) -> dict[str, Any]:
  """A saved config without REMOVED_OPTIONS; refuses one that sets an option of `sections` to
  anything but its old default value."""
  saved = {key: dict(value) if isinstance(value, dict) else value
           for key, value in saved.items()}
  changed = []
  for name, unchanged in REMOVED_OPTIONS.items():
    section, option = name.split(".")
    value = saved.get(section, {}).pop(option, unchanged)
    if value != unchanged and section in sections:
      changed.append(f"{name}={value!r}")
  if changed:
    raise CheckpointError(f"{where}: saved with {', '.join(changed)}, which this version no "
                          "longer has: it cannot restore that checkpoint as it was made")
  return saved


def restore_run(mngr: ocp.CheckpointManager, model: nnx.Module, optimizer: nnx.Optimizer,
                data_iterator: Any, config: ml_collections.ConfigDict) -> int:
  """Restores the latest step into model, optimizer and iterator in place; returns the step.

  Arrays come back with the shardings the model and optimizer hold. A checkpoint of another
  stage or model is refused before anything is read.
  """
  step = mngr.latest_step()
  if step is None:
    return 0
  saved = mngr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
  saved_config = _without_removed_options(saved.config, epath.Path(mngr.directory) / str(step),
                                          sections=("model", "train"))
  check_compatible(saved_config, config, fields=RESUME_FIELDS)
  restored = mngr.restore(step, args=ocp.args.Composite(
      model=ocp.args.StandardRestore(_abstract(nnx.state(model))),
      optimizer=ocp.args.StandardRestore(_abstract(nnx.state(optimizer))),
      data=grain.checkpoint.CheckpointRestore(data_iterator)))
  nnx.update(model, restored.model)
  nnx.update(optimizer, restored.optimizer)
  return step


def _abstract(state: nnx.State) -> Any:
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


def step_dir(path: epath.PathLike) -> epath.Path:
  """A step folder from a workdir, its checkpoints folder, or a step folder."""
  path = absolute(path)
  if (path / "model").exists() or (path / "config").exists():
    return path
  root = path / CHECKPOINTS if (path / CHECKPOINTS).exists() else path
  steps = sorted((int(p.name), p) for p in root.iterdir() if p.name.isdigit()) \
      if root.is_dir() else []
  if not steps:
    raise FileNotFoundError(f"{path}: no checkpoint (expected a workdir, its "
                            f"{CHECKPOINTS}/ folder or a step folder)")
  return steps[-1][1]


def _reason(error: BaseException) -> str:
  """One line for an error raised deep inside Orbax or TensorStore: that of its first cause,
  less TensorStore's spec (Orbax wraps a failed read in a line ending in the repr of a bound
  method of the TensorStore; the cause says what was wrong with which file). A long one keeps
  its ends: TensorStore's most specific words come last."""
  while error.__cause__ is not None:
    error = error.__cause__
  lines = str(error).strip().splitlines()
  line = re.sub(r"\s*\[tensorstore_spec\b.*", "", lines[0] if lines else "")
  reason = f"{type(error).__name__}: {line}"
  return reason if len(reason) <= 400 else f"{reason[:150]} ... {reason[-250:]}"


def _check_model_config(config: Any, where: epath.Path) -> None:
  """Refuses a saved config that could not build a model, before anything is allocated."""
  model = config.get("model") if isinstance(config, dict) else None
  if not isinstance(model, dict):
    raise CheckpointError(f"{where}: the saved config has no model section")
  if model.get("depth") not in resnet_v2.STAGES:
    raise CheckpointError(f"{where}: model.depth {model.get('depth')!r} is not one of "
                          f"{sorted(resnet_v2.STAGES)}")
  widths = {name: model.get(name) for name in ("width", "feature_dim", "classifier_width")}
  widths.update({f"head_widths[{i}]": w for i, w in enumerate(model.get("head_widths") or [])})
  if not model.get("head_widths"):
    raise CheckpointError(f"{where}: model.head_widths is missing or empty")
  widths.update({f"post_processing_classes[{i}]": n
                 for i, n in enumerate(model.get("post_processing_classes") or [])})
  for name, value in widths.items():
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WIDTH:
      raise CheckpointError(f"{where}: model.{name} is {value!r}; expected an integer in "
                            f"1..{MAX_WIDTH}")
  for name in ("camera_names", "virtual_camera_components", "named_exif_tags"):
    names = model.get(name) or []  # Each one an output of a head layer.
    if (not isinstance(names, list) or len(names) > MAX_WIDTH
        or not all(isinstance(n, str) for n in names)):
      raise CheckpointError(f"{where}: model.{name} is not a list of at most {MAX_WIDTH} "
                            "names")


def restore_config(path: epath.PathLike) -> ml_collections.ConfigDict:
  """The config saved with the checkpoint at `path` (workdir, checkpoints folder or step).

  Raises CheckpointError when it is missing, unreadable, could not build a model, or sets an
  option this version no longer has (REMOVED_OPTIONS) to other than its old default.
  """
  config_dir = step_dir(path) / "config"
  if not config_dir.is_dir():
    raise CheckpointError(f"{config_dir.parent}: no config/ folder; not a checkpoint step")
  try:
    config = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(config_dir)
  except Exception as e:  # pylint: disable=broad-except  # Orbax raises many types.
    raise CheckpointError(f"{config_dir}: unreadable config ({_reason(e)})") from None
  _check_model_config(config, config_dir)
  return ml_collections.ConfigDict(
      _without_removed_options(config, config_dir.parent, ("model",)))


# Stages whose checkpoints map images; a stage-1 ("exif") one has an untrained classifier.
MAPPING_STAGES = ("classifier", "image_consistency", "camera_classification")


def check_maps_images(config: ml_collections.ConfigDict, path: epath.PathLike) -> None:
  """CheckpointError, in one line, for a checkpoint whose same-image classifier was never
  trained: its maps would be noise, not a weaker model's answer."""
  if config.get("stage", "exif") not in MAPPING_STAGES:
    raise CheckpointError(
        f"{path}: a stage-1 checkpoint, whose same-image classifier is untrained; train stage 2 "
        f"from it (--config.stage=classifier --config.init_from={path}) and load that")


def restore(path: epath.PathLike, model: nnx.Module | None = None) -> nnx.Module:
  """The model saved at `path`, in eval mode; into `model` if given (its config must match).

  Needs nothing but the path: the architecture comes from the config saved beside it. A
  given model keeps its arrays' shardings; a new one lives on this process's first device
  (each process of a jax.distributed job gets its own copy).
  """
  folder = step_dir(path)
  config = restore_config(folder)
  if model is None:
    model = nnx.eval_shape(lambda: models.ExifConsistencyModel(
        config.model, rngs=nnx.Rngs(0)))
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda leaf: leaf.update(sharding=local),
                          _abstract(nnx.state(model)))
  else:
    target = _abstract(nnx.state(model))
  if not (folder / "model").is_dir():
    raise CheckpointError(f"{folder}: no model/ folder; not a checkpoint step")
  try:
    state = ocp.StandardCheckpointer().restore(folder / "model", target)
  except Exception as e:  # pylint: disable=broad-except  # Orbax, TensorStore, msgpack...
    raise CheckpointError(f"{folder / 'model'}: unreadable or not this model's weights "
                          f"({_reason(e)})") from None
  _check_finite(state, folder / "model")
  nnx.update(model, state)
  model.eval()
  return model


def _check_finite(state: nnx.State, where: epath.Path) -> None:
  """Refuses weights with NaN or infinite values: a corrupt file, which would otherwise be
  blamed on every image ("non-finite consistency matrix")."""
  bad = ["/".join(str(getattr(key, "key", getattr(key, "idx", ""))) for key in path[:-1])
         for path, leaf in jax.tree_util.tree_leaves_with_path(state)
         if jnp.issubdtype(leaf.dtype, jnp.inexact) and not bool(jnp.isfinite(leaf).all())]
  if bad:
    raise CheckpointError(f"{where}: corrupt weights, non-finite values in {len(bad)} arrays "
                          f"(first: {bad[0]})")
