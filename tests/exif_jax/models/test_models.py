"""Model tests: shapes, the split all-pairs head, dtypes, batch norm modes, parameter count."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from exif_jax.data.exif_attrs import NUM_ATTRIBUTES
from exif_jax.models import ExifConsistencyModel, ResNetV2, scale_patches


def small_config(depth: int = 18, dtype: str = "float32") -> ml_collections.ConfigDict:
  """The paper's architecture at toy widths, so a forward pass takes a second on CPU."""
  return ml_collections.ConfigDict(dict(
      depth=depth, width=4, feature_dim=16, head_widths=(32, 16, 8), classifier_width=8,
      dtype=dtype))


def make_model(config: ml_collections.ConfigDict, seed: int = 0) -> ExifConsistencyModel:
  """An initialized model in eval mode.

  "rbg" keys because threefry's random init compiles for 1-2 s per distinct parameter shape
  on CPU, most of this file's run time; the model does not care which generator made it.
  """
  model = ExifConsistencyModel(config, rngs=nnx.Rngs(jax.random.key(seed, impl="rbg")))
  model.eval()
  return model


def random_patches(n: int, seed: int = 0) -> np.ndarray:
  return np.random.RandomState(seed).randint(0, 256, (n, 128, 128, 3)).astype(np.uint8)


@nnx.jit
def pair_forward(model, patch_a, patch_b):
  return model(patch_a, patch_b)


@nnx.jit
def features(model, patches):
  return model.features(patches)


@pytest.fixture(scope="module")
def model18() -> ExifConsistencyModel:
  return make_model(small_config(18))


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
  return random_patches(6)


@pytest.mark.parametrize("depth", [18, 50])
def test_output_shapes(depth, patches):
  """Shapes and dtypes of every entry point, traced abstractly (no init, no compile)."""
  config = small_config(depth)
  model = nnx.eval_shape(lambda: make_model(config))
  assert model.backbone.out_features == config.width * 8 * (4 if depth == 50 else 1)

  logits = nnx.eval_shape(lambda m, x, y: m(x, y), model, patches[:3], patches[3:])
  assert (logits.shape, logits.dtype) == ((3, NUM_ATTRIBUTES), jnp.float32)
  f = nnx.eval_shape(lambda m, x: m.features(x), model, patches)
  assert (f.shape, f.dtype) == ((6, config.feature_dim), jnp.float32)
  a, b = nnx.eval_shape(lambda m, x: m.project(x), model, f)
  assert a.shape == b.shape == (6, config.head_widths[0])
  same = nnx.eval_shape(lambda m, x: m.consistency_logit(x), model, logits)
  assert (same.shape, same.dtype) == ((3,), jnp.float32)


@pytest.mark.parametrize("depth", [18, 50])
def test_forward_is_finite(depth, model18, patches):
  model = model18 if depth == 18 else make_model(small_config(50))
  logits = pair_forward(model, patches[:3], patches[3:])
  assert logits.shape == (3, NUM_ATTRIBUTES) and np.isfinite(logits).all()
  assert np.isfinite(model.consistency_logit(logits)).all()


def test_parameter_names(model18):
  """The top-level tree a TF1 checkpoint converter maps onto."""
  config = small_config(18)
  params = nnx.state(model18, nnx.Param)
  assert set(params.keys()) == {"backbone", "feature", "head", "classifier"}
  assert set(params["classifier"].keys()) == {"hidden", "out"}
  assert len(model18.head) == len(config.head_widths) + 1  # predict/fc/fc_1..3, predict/fc_out
  assert model18.head[0].kernel.shape == (2 * config.feature_dim, config.head_widths[0])
  assert model18.head[-1].kernel.shape == (config.head_widths[-1], NUM_ATTRIBUTES)


def test_split_head_equals_concat_head(model18, patches):
  f = features(model18, patches)
  a, b = model18.project(f)
  assert a.shape == b.shape == (6, small_config().head_widths[0])
  split = model18.pair_logits(a[:3], b[3:])
  # __call__ runs a real concat through the full first-layer kernel.
  plain = pair_forward(model18, patches[:3], patches[3:])
  np.testing.assert_allclose(split, plain, rtol=1e-5, atol=1e-5)
  assert not np.allclose(split, model18.pair_logits(a[3:], b[:3]), atol=1e-3), (
      "the head must not be symmetric in (a, b): W_a and W_b are different halves")


def test_all_pairs_broadcast(model18, patches):
  a, b = model18.project(features(model18, patches))
  all_pairs = model18.pair_logits(a[:, None], b[None, :])
  assert all_pairs.shape == (6, 6, NUM_ATTRIBUTES)
  # Batched and single matmuls may sum in different orders: float32 rounding, not a bug.
  np.testing.assert_allclose(all_pairs[1, 4], model18.pair_logits(a[1], b[4]),
                             rtol=1e-5, atol=1e-5)
  assert model18.consistency_logit(all_pairs).shape == (6, 6)


def test_post_processing_head_names_each_op_separately(patches):
  config = small_config(18)
  assert make_model(config).post_processing is None  # The paper's model has no such head.
  config.post_processing_classes = (7, 6, 5)
  model = make_model(config)
  logits = model.post_processing_logits(features(model, patches))
  assert [l.shape for l in logits] == [(6, 7), (6, 6), (6, 5)]
  assert all(l.dtype == jnp.float32 for l in logits)


def test_exif_naming_head_reads_the_whole_feature(patches):
  config = small_config(18)
  assert make_model(config).exif_naming is None  # The paper's model has no such head.
  config.named_exif_tags = ("Image Make", "Image Model")
  config.named_exif_classes = 5
  model = make_model(config)
  f = features(model, patches)
  logits = model.exif_naming_logits(f)
  assert logits.shape == (6, 2, 5) and logits.dtype == jnp.float32
  half = config.feature_dim // 2
  for part in (slice(None, half), slice(half, None)):
    assert not np.allclose(model.exif_naming_logits(f.at[:, part].set(0.0)), logits)


def test_bfloat16_compute_with_float32_params(model18, patches):
  # model18's parameters in a bfloat16 model (eval_shape: no second random init to compile).
  model = nnx.eval_shape(lambda: make_model(small_config(18, dtype="bfloat16")))
  nnx.update(model, nnx.state(model18))
  param_dtypes = {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))}
  assert param_dtypes == {jnp.dtype(jnp.float32)}

  logits = pair_forward(model, patches[:3], patches[3:])
  reference = pair_forward(model18, patches[:3], patches[3:])
  assert logits.dtype == jnp.float32 and np.isfinite(logits).all()
  assert not np.array_equal(logits, reference), "bfloat16 compute should round differently"
  np.testing.assert_allclose(logits, reference, atol=0.1 * np.abs(reference).max())
  a, b = model.project(features(model18, patches))
  assert a.dtype == b.dtype == jnp.bfloat16
  assert model.pair_logits(a[:, None], b[None, :]).dtype == jnp.float32


def test_batch_norm_train_vs_eval(model18, patches):
  model = nnx.clone(model18)
  stats = lambda: jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
  changed = lambda s, t: any(not np.array_equal(x, y)
                             for x, y in zip(jax.tree.leaves(s), jax.tree.leaves(t)))
  # The same first three patches, batched with different companions.
  other_batch = np.concatenate([patches[:3], random_patches(3, seed=1)])

  model.eval()
  before = stats()
  eval_features = features(model, patches)
  assert not changed(before, stats())
  # Running averages: a patch's feature does not depend on the rest of the batch.
  np.testing.assert_allclose(features(model, other_batch)[:3], eval_features[:3], atol=1e-5)

  model.train()
  train_features = features(model, patches)
  assert changed(before, stats())
  # Batch statistics: the same patch gets another feature in another batch.
  assert not np.allclose(features(model, other_batch)[:3], train_features[:3], atol=1e-3)
  assert not np.allclose(train_features, eval_features, atol=1e-3)


def test_input_scaling(model18, patches):
  pixels = np.array([0, 127.5, 255], np.float32)
  np.testing.assert_array_equal(scale_patches(pixels), [-1.0, 0.0, 1.0])
  np.testing.assert_array_equal(scale_patches(np.uint8([0, 255])), [-1.0, 1.0])
  np.testing.assert_allclose(features(model18, patches),
                             features(model18, patches.astype(np.float32)), atol=1e-6)


def test_resnet50_v2_layout_and_parameter_count():
  """The paper's backbone, ResNet-50 v2 at width 64, without ImageNet's classifier.

  Keras' ResNet50V2(include_top=False), the same slim layout, reports 23,564,800 weights:
  23,519,360 trainable (conv kernels and biases, BN scale and offset) and 45,440 BN moving
  means and variances. The count by hand: root conv 7*7*3*64 + 64 = 9,472; a bottleneck
  unit with c inputs and 4d outputs has 2c (preact BN) + c*d + 2d + 9d^2 + 2d + 4d^2 + 4d,
  plus 4c*d + 4d for a projection shortcut; 2*2048 for the postnorm BN.
  """
  model = nnx.eval_shape(lambda: ResNetV2(50, 64, rngs=nnx.Rngs(0)))
  count = lambda kind: sum(x.size for x in jax.tree.leaves(nnx.state(model, kind)))
  assert count(nnx.Param) == 23_519_360
  assert count(nnx.BatchStat) == 45_440
  # slim's resnet_v2_50: block strides on the last unit, none in block4 (output stride 32).
  strides = [[unit.stride for unit in block] for block in model.blocks]
  assert strides == [[1, 1, 2], [1, 1, 1, 2], [1, 1, 1, 1, 1, 2], [1, 1, 1]]
  assert [u.shortcut is not None for u in model.blocks[1]] == [True, False, False, False]


def test_unknown_model_field_is_refused():
  config = small_config(18)
  config.num_attributes = 83  # Fixed by exif_attrs, no longer a field.
  with pytest.raises(ValueError, match=r"config.model: unknown fields \['num_attributes'\]"):
    make_model(config)


def test_unknown_depth():
  with pytest.raises(ValueError, match="depth"):
    ResNetV2(42, 4, rngs=nnx.Rngs(0))
