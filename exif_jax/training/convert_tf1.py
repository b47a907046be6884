r"""Original TF1 weights (minyoungg/selfconsistency) -> an ExifConsistencyModel checkpoint.

  exif-jax convert-tf1 --weights exif_final.npz --out WORKDIR \
      [--config configs/exif_resnet50.py]

The original checkpoint (`ckpt/exif_final/exif_final.ckpt`) is read directly when
TensorFlow is installed; otherwise dump it to .npz once, on any machine that has TensorFlow:

  import numpy as np, tensorflow as tf
  reader = tf.train.load_checkpoint("ckpt/exif_final/exif_final.ckpt")
  names = [n for n in reader.get_variable_to_shape_map() if "Adam" not in n]
  np.savez("exif_final.npz", **{n: reader.get_tensor(n) for n in names})

Names follow TF-slim (`resnet_v2_50/block1/unit_1/bottleneck_v2/conv1/weights`,
`predict/fc/fc_1/biases`, `classify/fc_out/weights`, ...); the mapping to our parameters is
in the docstrings of exif_jax/models/siamese.py and resnet_v2.py. Conv kernels
([kh, kw, in, out]) and fully connected weights ([in, out]) have our layout already; only the
1x1 `logits` conv becomes the `feature` Linear by dropping its two unit axes.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import zipfile
from collections.abc import Mapping

import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging
from flax import nnx
from ml_collections import config_flags

from exif_jax.cli import command
from exif_jax.models import ExifConsistencyModel
from exif_jax.models.resnet_v2 import STAGES
from exif_jax.training import checkpointing

# Optimizer state saved next to the weights (the original saved tf.global_variables() with
# Adam): not part of the model.
_OPTIMIZER_STATE = re.compile(
    r"(^|/)(global_step|beta[12]_power(_\d+)?)$|/(Adam|Momentum|RMSProp)(_\d+)?$")
_LEAVES = {
    nnx.Conv: {"kernel": "weights", "bias": "biases"},
    nnx.Linear: {"kernel": "weights", "bias": "biases"},
    nnx.BatchNorm: {"scale": "gamma", "bias": "beta", "mean": "moving_mean",
                    "var": "moving_variance"},
}
_REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class _Entry:
  """One TF1 variable and the model variable it fills."""
  variable: nnx.Variable
  shape: tuple[int, ...]  # In the TF1 checkpoint.


def is_optimizer_state(name: str) -> bool:
  """True for checkpoint entries that belong to the optimizer (Adam slots, beta1_power...)."""
  return bool(_OPTIMIZER_STATE.search(name))


def _tf_scope(path: tuple, scope: str, num_head_layers: int) -> str:
  """Our module path -> the TF1 variable scope of that layer."""
  match path:
    case ("backbone", "conv1" | "postnorm" as name):
      return f"{scope}/{name}"
    case ("backbone", "blocks", int(i), int(j), *rest):
      unit = f"{scope}/block{i + 1}/unit_{j + 1}/bottleneck_v2"
      match rest:
        case ["preact" | "shortcut" as name]:
          return f"{unit}/{name}"
        case ["convs", int(k)]:
          return f"{unit}/conv{k + 1}"
        case ["norms", int(k)]:
          return f"{unit}/conv{k + 1}/BatchNorm"
    case ("feature",):
      return f"{scope}/logits"
    case ("head", int(i)):
      return "predict/fc_out" if i == num_head_layers - 1 else f"predict/fc/fc_{i + 1}"
    case ("classifier", "hidden"):
      return "classify/fc/fc_1"
    case ("classifier", "out"):
      return "classify/fc_out"
  raise ValueError(f"no TF1 variable corresponds to model path {path}")


def _entries(model: ExifConsistencyModel, depth: int) -> dict[str, _Entry]:
  """Every TF1 variable name -> the model variable it fills, in model order."""
  scope = f"resnet_v2_{depth}"
  entries = {}
  for path, module in nnx.iter_modules(model):
    leaves = _LEAVES.get(type(module))
    if leaves is None:
      continue
    path = tuple(path)
    layer = _tf_scope(path, scope, len(model.head))
    for attr, tf_leaf in leaves.items():
      variable = getattr(module, attr)
      if variable is None:
        continue
      shape = tuple(variable.shape)
      if path == ("feature",) and attr == "kernel":
        shape = (1, 1, *shape)  # A 1x1 conv in TF1.
      entries[f"{layer}/{tf_leaf}"] = _Entry(variable, shape)
  return entries


def _abstract_model(model_config: ml_collections.ConfigDict) -> ExifConsistencyModel:
  """The model's structure and shapes without allocating or initializing its weights."""
  if not STAGES.get(model_config.depth, (None, False))[1]:
    raise ValueError(f"the TF1 layout (slim resnet_v2 bottleneck_v2 units) exists for "
                     f"bottleneck depths only, got depth {model_config.depth}")
  return nnx.eval_shape(lambda: ExifConsistencyModel(model_config, rngs=nnx.Rngs(0)))


def original_names(model_config: ml_collections.ConfigDict) -> dict[str, tuple[int, ...]]:
  """TF1 variable name -> shape, for every variable the model of `config.model` holds."""
  entries = _entries(_abstract_model(model_config), model_config.depth)
  return {name: entry.shape for name, entry in entries.items()}


def _npz_shapes(path: str) -> dict[str, tuple[int, ...]]:
  """Name -> shape of every array in an .npz, read from the member headers alone.

  Nothing is decompressed, so a small archive that unpacks to gigabytes costs nothing here.
  Raises ValueError for a file that is not an .npz of plain numeric arrays.
  """
  shapes = {}
  try:
    with zipfile.ZipFile(path) as archive:
      for member in archive.infolist():
        name = member.filename.removesuffix(".npy")
        with archive.open(member) as stream:
          version = np.lib.format.read_magic(stream)
          read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                         else np.lib.format.read_array_header_2_0)
          shape, _, dtype = read_header(stream)
        if dtype.kind not in "fiub":
          raise ValueError(f"{name} holds {dtype} values, not numbers")
        shapes[name] = tuple(shape)
  except (zipfile.BadZipFile, EOFError) as e:
    raise ValueError(f"not an .npz archive ({e})") from None
  return shapes


def load_mapping(path: str | pathlib.Path,
                 expected: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
  """Name -> array from an .npz dump, or from a TF checkpoint prefix when TF is installed.

  Optimizer state is skipped. With `expected` (name -> shape, from original_names), an .npz's
  names and shapes are checked from its headers before any array is read. See the module
  docstring for the script that writes the dump.
  """
  path = str(path)
  if path.endswith(".npz"):
    shapes = {name: shape for name, shape in _npz_shapes(path).items()
              if not is_optimizer_state(name)}
    if expected is not None:
      _check(shapes, _without_absent_gammas(expected, shapes))
    with np.load(path, allow_pickle=False) as npz:
      return {name: npz[name] for name in shapes}
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
        f"{path}: reading a TF checkpoint needs tensorflow, which is not installed. Dump it "
        f"to .npz where TF is installed (script in "
        f"`exif-jax convert-tf1 --help`) and pass the .npz") from None
  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if not is_optimizer_state(name)}


def _without_absent_gammas(expected: Mapping[str, tuple[int, ...]],
                           given: Mapping[str, object]) -> dict[str, tuple[int, ...]]:
  """Weights with no `gamma` at all were trained with batch_norm(scale=False): none expected."""
  if any(name.endswith("/gamma") for name in given):
    return dict(expected)
  return {name: shape for name, shape in expected.items() if not name.endswith("/gamma")}


def _check(given: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]]):
  """Raises one ValueError listing every missing, unexpected and mis-shaped name."""
  given = {name: tuple(shape) for name, shape in given.items() if not is_optimizer_state(name)}
  missing = sorted(expected.keys() - given.keys())
  unexpected = sorted(given.keys() - expected.keys())
  mismatched = sorted(f"{name}: checkpoint {given[name]}, model {expected[name]}"
                      for name in expected.keys() & given.keys()
                      if given[name] != expected[name])
  problems = [f"{title} ({len(names)}):\n  " + "\n  ".join(names)
              for title, names in (("missing", missing), ("unexpected", unexpected),
                                   ("shape mismatch", mismatched)) if names]
  if problems:
    raise ValueError("TF1 weights do not match the model config:\n" + "\n".join(problems))


def convert(mapping: Mapping[str, np.ndarray],
            model_config: ml_collections.ConfigDict) -> ExifConsistencyModel:
  """TF1 name -> array mapping -> a model with every parameter and batch statistic filled.

  Returned in eval mode (batch norm on the converted moving averages). A checkpoint without
  any `gamma` was trained with slim's batch_norm(scale=False): its scales are set to ones.
  Raises ValueError naming every missing, unexpected or mis-shaped variable.
  """
  model = _abstract_model(model_config)
  entries = _entries(model, model_config.depth)
  expected = _without_absent_gammas(
      {name: entry.shape for name, entry in entries.items()}, mapping)
  if len(expected) < len(entries):
    logging.warning("no batch-norm gamma in the TF1 weights (scale=False): using ones")
  _check({name: np.shape(value) for name, value in mapping.items()}, expected)
  for name, entry in entries.items():
    variable = entry.variable
    value = (np.ones(variable.shape) if name not in expected
             else np.reshape(mapping[name], variable.shape))
    variable.set_value(jnp.asarray(value, variable.dtype))
  model.eval()
  return model


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config, weights = flags.FLAGS.config, flags.FLAGS.weights
  try:
    model = convert(load_mapping(weights, original_names(config.model)), config.model)
  except (ValueError, OSError) as e:
    raise command.NothingDone(f"{weights}: {e}") from None
  config.stage = "classifier"  # The original's classify/ layers are its trained stage 2.
  saved = checkpointing.save_model(flags.FLAGS.out, model, config)
  print(f"converted {flags.FLAGS.weights} -> {saved}")


def define_flags():
  """Defined only when run as a program: --out and --config are common names elsewhere."""
  flags.DEFINE_string("weights", None, "TF1 weights: an .npz dump, or a checkpoint prefix "
                      "if TensorFlow is installed.", required=True)
  flags.DEFINE_string("out", None, "Workdir to write the converted checkpoint under.",
                      required=True)
  config_flags.DEFINE_config_file(
      "config", str(_REPO / "configs" / "exif_resnet50.py"),
      "Experiment config; its `model` section must match the TF1 weights.")


if __name__ == "__main__":
  define_flags()
  command.run(main)
