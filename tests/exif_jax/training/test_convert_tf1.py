"""TF1 checkpoint conversion: names and shapes of the original, every array in its place."""

import importlib.util
import math
import re
import subprocess
import sys
import zipfile

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from configs import exif_resnet50
from conftest import REPO
from exif_jax.models import scale_patches
from exif_jax.training import checkpointing
from exif_jax.training import convert_tf1

SMALL_MODEL = dict(depth=50, width=8, feature_dim=32, head_widths=(32, 16, 8),
                   classifier_width=8, dtype="float32")


def small_config() -> ml_collections.ConfigDict:
  """ResNet-50's layout, hence its TF1 names, at widths that convert in a second."""
  return ml_collections.ConfigDict(SMALL_MODEL)


def synthetic_weights(config: ml_collections.ConfigDict, seed: int = 0) -> dict[str, np.ndarray]:
  """Random arrays under the original names, scaled so a forward pass stays finite."""
  rng = np.random.default_rng(seed)
  weights = {}
  for name, shape in convert_tf1.original_names(config).items():
    if name.endswith("/moving_variance"):
      value = rng.uniform(0.5, 1.5, shape)
    elif name.endswith("/weights"):
      value = rng.standard_normal(shape) / math.sqrt(math.prod(shape[:-1]))
    else:
      value = 0.1 * rng.standard_normal(shape)
    weights[name] = value.astype(np.float32)
  return weights


def with_optimizer_state(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """What tf.train.Saver(tf.global_variables()) wrote next to Adam: slots and beta powers."""
  name = "predict/fc_out/weights"
  return {**weights, f"{name}/Adam": weights[name], f"{name}/Adam_1": weights[name],
          "beta1_power": np.float32(0.9), "beta2_power": np.float32(0.999)}


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
  return synthetic_weights(small_config())


@pytest.fixture(scope="module")
def model(weights) -> convert_tf1.ExifConsistencyModel:
  return convert_tf1.convert(with_optimizer_state(weights), small_config())


def test_every_array_lands_where_its_name_says(model, weights):
  unit = "resnet_v2_50/block{}/unit_{}/bottleneck_v2/"
  backbone = model.backbone
  expected = [
      (backbone.conv1.kernel, "resnet_v2_50/conv1/weights"),
      (backbone.conv1.bias, "resnet_v2_50/conv1/biases"),
      (backbone.blocks[0][0].shortcut.bias, unit.format(1, 1) + "shortcut/biases"),
      (backbone.blocks[1][3].convs[2].kernel, unit.format(2, 4) + "conv3/weights"),
      (backbone.blocks[2][5].norms[1].mean, unit.format(3, 6) + "conv2/BatchNorm/moving_mean"),
      (backbone.blocks[2][0].norms[0].var, unit.format(3, 1) + "conv1/BatchNorm/moving_variance"),
      (backbone.blocks[3][2].preact.scale, unit.format(4, 3) + "preact/gamma"),
      (backbone.blocks[3][2].preact.bias, unit.format(4, 3) + "preact/beta"),
      (backbone.postnorm.var, "resnet_v2_50/postnorm/moving_variance"),
      (model.feature.kernel, "resnet_v2_50/logits/weights"),  # [1, 1, in, out] -> [in, out]
      (model.feature.bias, "resnet_v2_50/logits/biases"),
      (model.head[0].kernel, "predict/fc/fc_1/weights"),
      (model.head[2].bias, "predict/fc/fc_3/biases"),
      (model.head[3].kernel, "predict/fc_out/weights"),
      (model.classifier.hidden.kernel, "classify/fc/fc_1/weights"),
      (model.classifier.out.bias, "classify/fc_out/biases"),
  ]
  for variable, name in expected:
    assert variable.dtype == np.float32
    np.testing.assert_array_equal(variable[...], weights[name].reshape(variable.shape), name)


def test_each_source_array_is_used_exactly_once(model, weights):
  """Random arrays are all distinct, so equal multisets of bytes means a bijection."""
  leaves = jax.tree.leaves(nnx.state(model))
  assert len(leaves) == len(weights)
  assert (sorted(np.asarray(leaf).tobytes() for leaf in leaves)
          == sorted(value.tobytes() for value in weights.values()))


def test_converted_model_runs_like_the_tf1_layers(model, weights):
  patches = np.random.default_rng(1).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
  features = nnx.jit(lambda m, x: m.backbone(scale_patches(x)))(model, patches)
  assert features.shape == (2, 4 * 8 * 8) and np.isfinite(features).all()
  # slim's 1x1 `logits` conv on the pooled [N, 1, 1, C] map, in numpy, vs our Linear.
  kernel, bias = weights["resnet_v2_50/logits/weights"], weights["resnet_v2_50/logits/biases"]
  expected = np.einsum("nhwc,hwcd->nhwd", np.asarray(features)[:, None, None], kernel) + bias
  feature = model.feature(features)
  np.testing.assert_allclose(feature, expected[:, 0, 0], rtol=1e-5, atol=1e-5)
  a, b = model.project(feature)
  logits = model.pair_logits(a[:1], b[1:])
  assert logits.shape == (1, 83) and np.isfinite(logits).all()


def test_missing_unexpected_and_mismatched_names_are_listed(weights):
  missing = "resnet_v2_50/block2/unit_3/bottleneck_v2/conv2/BatchNorm/moving_mean"
  unexpected = "predict/fc/fc_4/weights"
  mismatched = "classify/fc/fc_1/weights"
  broken = {name: value for name, value in weights.items() if name != missing}
  broken[unexpected] = np.zeros((8, 8), np.float32)
  broken[mismatched] = np.zeros((83, 512), np.float32)
  with pytest.raises(ValueError) as error:
    convert_tf1.convert(broken, small_config())
  message = str(error.value)
  assert re.search(rf"missing \(1\):\n  {missing}\n", message)
  assert re.search(rf"unexpected \(1\):\n  {unexpected}\n", message)
  assert f"{mismatched}: checkpoint (83, 512), model (83, 8)" in message


def test_one_problem_alone_is_reported(weights):
  name = "resnet_v2_50/logits/weights"
  with pytest.raises(ValueError, match=re.escape(name)):
    convert_tf1.convert({**weights, name: weights[name][0, 0]}, small_config())


def test_without_gammas_the_scales_are_ones(weights):
  """slim's batch_norm(scale=False) saves no gamma."""
  no_scale = {name: value for name, value in weights.items() if not name.endswith("/gamma")}
  converted = convert_tf1.convert(no_scale, small_config())
  np.testing.assert_array_equal(converted.backbone.postnorm.scale[...], np.ones(256))
  np.testing.assert_array_equal(converted.backbone.postnorm.bias[...],
                                weights["resnet_v2_50/postnorm/beta"])


def test_npz_round_trip(tmp_path, weights):
  path = tmp_path / "exif_final.npz"
  np.savez(path, **with_optimizer_state(weights))
  loaded = convert_tf1.load_mapping(path)
  assert loaded.keys() == weights.keys()  # Optimizer state left out.
  for name, value in weights.items():
    np.testing.assert_array_equal(loaded[name], value, name)


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="tensorflow installed: load_mapping reads the checkpoint")
def test_tf_checkpoint_without_tensorflow_asks_for_npz():
  with pytest.raises(ImportError, match=r"\.npz"):
    convert_tf1.load_mapping("ckpt/exif_final/exif_final.ckpt")


def test_optimizer_state_is_recognised():
  for name in ("global_step", "beta1_power", "beta2_power_1", "predict/fc_out/weights/Adam",
               "resnet_v2_50/conv1/weights/Adam_1", "classify/fc_out/biases/Momentum"):
    assert convert_tf1.is_optimizer_state(name), name
  for name in ("resnet_v2_50/postnorm/beta", "predict/fc/fc_1/weights"):
    assert not convert_tf1.is_optimizer_state(name), name


def test_paper_config_has_resnet_v2_50_names_and_shapes():
  """The paper model's names: slim's resnet_v2_50 (25,568,360 parameters with 1000 logits)."""
  config = exif_resnet50.get_config().model
  names = convert_tf1.original_names(config)
  # Root conv (2), 16 units (preact BN 4, conv1 + BN 5, conv2 + BN 5, conv3 2), a projection
  # shortcut in each block's first unit (4 x 2), postnorm (4), logits (2); predict 4 x 2,
  # classify 2 x 2.
  assert len(names) == 2 + 16 * 16 + 4 * 2 + 4 + 2 + 4 * 2 + 2 * 2 == 284
  resnet = {name: shape for name, shape in names.items() if name.startswith("resnet_v2_50/")}
  assert len(resnet) == 272
  # Weights, biases, gammas and betas of slim's table, less its 1000-class logits.
  trainable = sum(math.prod(shape) for name, shape in resnet.items()
                  if "/logits/" not in name and "/moving_" not in name)
  assert trainable + 2048 * 1000 + 1000 == 25_568_360
  assert {
      "resnet_v2_50/conv1/weights": (7, 7, 3, 64),
      "resnet_v2_50/block1/unit_1/bottleneck_v2/shortcut/weights": (1, 1, 64, 256),
      "resnet_v2_50/block3/unit_6/bottleneck_v2/conv2/weights": (3, 3, 256, 256),
      "resnet_v2_50/block4/unit_3/bottleneck_v2/conv3/biases": (2048,),
      "resnet_v2_50/postnorm/moving_mean": (2048,),
      "predict/fc/fc_1/weights": (8192, 4096),
      "predict/fc/fc_3/weights": (2048, 1024),
      "predict/fc_out/weights": (1024, 83),
      "classify/fc/fc_1/weights": (83, 512),
      "classify/fc_out/weights": (512, 1),
      "resnet_v2_50/logits/weights": (1, 1, 2048, 4096),
  }.items() <= names.items()
  assert "resnet_v2_50/block1/unit_2/bottleneck_v2/shortcut/weights" not in names


def test_basic_block_depths_have_no_tf1_layout():
  with pytest.raises(ValueError, match="bottleneck"):
    convert_tf1.original_names(ml_collections.ConfigDict({**SMALL_MODEL, "depth": 18}))


def test_command_line_writes_a_checkpoint_that_restore_reads(tmp_path, model, weights):
  np.savez(tmp_path / "exif_final.npz", **weights)
  overrides = [f"--config.model.{key}={value}" for key, value in SMALL_MODEL.items()
               if key in ("width", "feature_dim", "classifier_width")]
  command = [sys.executable, "-m", "exif_jax.training.convert_tf1",
             f"--weights={tmp_path / 'exif_final.npz'}", f"--out={tmp_path / 'work'}",
             "--config.model.head_widths=(32, 16, 8)", *overrides]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]

  restored = checkpointing.restore(tmp_path / "work")
  restored_config = checkpointing.restore_config(tmp_path / "work")
  assert restored_config.model.width == 8
  jax.tree.map(np.testing.assert_array_equal, nnx.state(restored), nnx.state(model))

  with pytest.raises(FileExistsError, match="holds checkpoints already"):
    checkpointing.save_model(tmp_path / "work", model, restored_config)


def npz_with_header_only(path, name: str, shape: tuple[int, ...], dtype=np.float32):
  """An .npz whose member declares `shape` but holds no data: loading it would fail."""
  with zipfile.ZipFile(path, "w") as archive, archive.open(f"{name}.npy", "w") as member:
    np.lib.format.write_array_header_1_0(
        member, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                 "fortran_order": False, "shape": shape})


def test_npz_shapes_are_checked_from_headers_before_loading(tmp_path, weights):
  """A member declaring 2^28 floats under a real name is refused without reading it."""
  path = tmp_path / "huge.npz"
  name = "predict/fc_out/weights"
  npz_with_header_only(path, name, (2**28,))
  expected = convert_tf1.original_names(small_config())
  with pytest.raises(ValueError, match=re.escape(f"{name}: checkpoint (268435456,)")):
    convert_tf1.load_mapping(path, expected)


@pytest.mark.parametrize("content", ["random_bytes", "object_array"])
def test_bad_npz_is_a_one_line_error(tmp_path, content):
  path = tmp_path / "exif_final.npz"
  if content == "random_bytes":
    path.write_bytes(np.random.default_rng(0).bytes(4096))
  else:
    np.savez(path, **{"predict/fc_out/weights": np.array([{"a": 1}], dtype=object)})
  command = [sys.executable, "-m", "exif_jax.training.convert_tf1", f"--weights={path}",
             f"--out={tmp_path / 'work'}"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith(f"error: {path}: ") and "Traceback" not in result.stderr
  assert ("not an .npz" if content == "random_bytes" else "object values") in lines[-1]
  assert not (tmp_path / "work").exists()
