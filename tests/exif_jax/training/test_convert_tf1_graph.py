"""The converter against the original TF1 graph, not a re-reading of it.

The original network (minyoungg/selfconsistency: models/exif/exif_net.py on TF-slim's
resnet_v2_50) is built in TF1 graph mode with random weights and random batch-norm moving
statistics, saved by tf.train.Saver and converted by exif_jax.training.convert_tf1. For
patches of a real photo, our per-patch features, 83 attribute logits and "same image" scores
must equal the graph's. Needs `pip install exif-jax[tf1]`; run with `pytest -m tf1`.
"""

import dataclasses
import importlib.util
from typing import Any

import numpy as np
import pytest

from conftest import FIXTURES
from eval.data import image_io
from eval.localization import patch_grid
from eval.localization.consistency import ConsistencyModel
from exif_jax import models
from exif_jax.data import exif_attrs
from exif_jax.training import convert_tf1

pytestmark = [
    pytest.mark.tf1,
    pytest.mark.skipif(
        not all(importlib.util.find_spec(name) for name in ("tensorflow", "tf_slim")),
        reason="needs tensorflow and tf_slim (pip install exif-jax[tf1])"),
    # tf_slim builds its layers through the deprecated Layer.apply.
    pytest.mark.filterwarnings("ignore:`layer.apply` is deprecated:UserWarning"),
]

NUM_PATCHES = 6  # A 640x480 photo's grid: 3 x 2 patches, 36 ordered pairs.
# Scale-relative: max |ours - TF1| over an output <= TOLERANCE * max |TF1|. Probabilities are
# compared absolutely.
TOLERANCE = 1e-4


def tf1_modules():
  """(tensorflow, tf_slim, tf_slim.nets.resnet_v2), imported only when a test runs."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tf_slim as slim
  from tensorflow.python.framework import ops
  from tf_slim.nets import resnet_v2
  # tf_slim 1.1.0, its last release, still looks up ops.Tensor, which TF now exports only as
  # tf.Tensor (the same class).
  if not hasattr(ops, "Tensor"):
    ops.Tensor = tf.Tensor
  return tf, slim, resnet_v2


def original_arg_scope():
  """The original's nets/resnet_utils.resnet_arg_scope (its forward-pass settings).

  tf_slim's own resnet_arg_scope differs in one place: updates_collections=None here sends
  every batch norm to TF's fused kernel, as in the original, not through tf_keras's layer.
  (TF1 floored that kernel's epsilon at 1.001e-5, TF 2 does not: 1e-5 here against our
  1.001e-5, a difference far below the tolerance at these variances.)
  """
  tf, slim, _ = tf1_modules()

  batch_norm = dict(decay=0.997, epsilon=1e-5, scale=True, updates_collections=None)
  with slim.arg_scope([slim.conv2d], activation_fn=tf.nn.relu, normalizer_fn=slim.batch_norm,
                      normalizer_params=batch_norm):
    with slim.arg_scope([slim.batch_norm], **batch_norm):
      with slim.arg_scope([slim.max_pool2d], padding="SAME") as scope:
        return scope


@dataclasses.dataclass(frozen=True)
class OriginalGraph:
  """EXIFNet's inference tensors: `patches` [N, 128, 128, 3] in [-1, 1] -> `features`; the
  head and the classifier read a pair of feature batches fed to `pair_a` and `pair_b`, as the
  original's precomputed-feature path does."""
  patches: Any
  features: Any
  pair_a: Any
  pair_b: Any
  logits: Any
  same_image: Any  # The "same image" logit, [pairs].


def original_graph(config) -> OriginalGraph:
  """models/exif/exif_net.py at is_training=False, in the current tf.Graph."""
  tf, slim, resnet_v2 = tf1_modules()
  v1 = tf.compat.v1
  patches = v1.placeholder(tf.float32, [None, 128, 128, 3])
  with slim.arg_scope(original_arg_scope()):
    logits_map, _ = resnet_v2.resnet_v2_50(
        patches, num_classes=config.feature_dim, is_training=False, global_pool=True,
        scope="resnet_v2_50")
  # The original's spatial_squeeze=True, an argument tf_slim's resnet_v2_50 no longer takes.
  features = tf.squeeze(logits_map, [1, 2])
  pair_a = v1.placeholder(tf.float32, [None, config.feature_dim])
  pair_b = v1.placeholder(tf.float32, [None, config.feature_dim])
  with v1.variable_scope("predict"):
    x = slim.stack(tf.concat([pair_a, pair_b], axis=-1), slim.fully_connected,
                   list(config.head_widths), scope="fc")
    logits = slim.fully_connected(x, exif_attrs.NUM_ATTRIBUTES, activation_fn=None,
                                  scope="fc_out")
  with v1.variable_scope("classify"):
    x = slim.stack(logits, slim.fully_connected, [config.classifier_width], scope="fc")
    same_image = slim.fully_connected(x, 1, activation_fn=None, scope="fc_out")
  return OriginalGraph(patches, features, pair_a, pair_b, logits, same_image[:, 0])


def random_value(name: str, shape: list[int], rng: np.random.Generator) -> np.ndarray:
  """A random weight or batch-norm statistic.

  Conv weights have variance 1 / fan-in (half of He's), so each residual unit adds about an
  eighth of its input's variance and 16 units stay near unit scale; the fully connected
  layers are He-scaled so the head keeps the spread the features have.
  """
  if name.endswith("/moving_variance"):
    value = rng.uniform(0.5, 2.0, shape)
  elif name.endswith("/gamma"):
    value = rng.uniform(0.5, 1.5, shape)
  elif name.endswith("/weights"):
    gain = 1.0 if name.startswith("resnet_v2_50/") else 2.0
    value = rng.standard_normal(shape) * np.sqrt(gain / np.prod(shape[:-1]))
  else:  # biases, betas, moving means
    value = 0.05 * rng.standard_normal(shape)
  return value.astype(np.float32)


def all_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
  """(i, j) over all n * n ordered pairs, row-major: pair k is patches i[k] and j[k]."""
  i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  return i.ravel(), j.ravel()


@pytest.fixture(scope="module")
def original(tmp_path_factory):
  """TF1 outputs for the photo's grid patches, and the checkpoint prefix they came from."""
  tf, _, _ = tf1_modules()
  v1 = tf.compat.v1
  config = models.default_config()  # The paper's layout, float32.
  image = image_io.load_image(FIXTURES / "camera" / "canon_powershot_sx150_is.jpg")
  coords = patch_grid.grid_coords(image.shape[:2], num_patches=NUM_PATCHES)
  patches = patch_grid.cut_patches(image, coords)
  inputs = 2.0 * (patches / 255.0) - 1.0  # The original's util.process_im.
  prefix = str(tmp_path_factory.mktemp("tf1") / "exif_final.ckpt")
  rng = np.random.default_rng(0)
  with tf.Graph().as_default():
    graph = original_graph(config)
    # The original saved tf.global_variables() of a graph with Adam in it.
    v1.train.AdamOptimizer(1e-4).minimize(
        tf.reduce_mean(graph.same_image),
        var_list=v1.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES, "classify"))
    variables = {v.op.name: v for v in v1.global_variables()
                 if v.op.name.split("/")[0] in ("resnet_v2_50", "predict", "classify")
                 and not convert_tf1.is_optimizer_state(v.op.name)}
    feeds = {name: v1.placeholder(v.dtype.base_dtype, v.shape) for name, v in variables.items()}
    assign = {name: v.assign(feeds[name]) for name, v in variables.items()}
    session_config = v1.ConfigProto(intra_op_parallelism_threads=2,
                                    inter_op_parallelism_threads=1)
    with v1.Session(config=session_config) as session:

      def load(values):
        session.run([assign[name] for name in values],
                    {feeds[name]: value for name, value in values.items()})

      session.run(v1.global_variables_initializer())
      values = {name: random_value(name, v.shape.as_list(), rng) for name, v in variables.items()}
      load(values)
      # A random ResNet maps all patches to nearly one feature. Centring the features over
      # these patches and scaling them to unit spread in the last 1x1 conv (as training would
      # make them differ) lets the pair scores differ too.
      raw = session.run(graph.features, {graph.patches: inputs})
      mean = raw.mean(0)
      std = (raw - mean).std()
      weights, biases = "resnet_v2_50/logits/weights", "resnet_v2_50/logits/biases"
      load({weights: values[weights] / std, biases: (values[biases] - mean) / std})
      v1.train.Saver().save(session, prefix)
      features = session.run(graph.features, {graph.patches: inputs})
      i, j = all_pairs(len(patches))
      logits, same_image = session.run(
          (graph.logits, graph.same_image), {graph.pair_a: features[i], graph.pair_b: features[j]})
  n = len(patches)
  return dict(config=config, prefix=prefix, image=image, coords=coords, patches=patches,
              features=features, logits=logits.reshape(n, n, -1),
              same_image=same_image.reshape(n, n))


@pytest.fixture(scope="module")
def converted(original):
  mapping = convert_tf1.load_mapping(original["prefix"],
                                     convert_tf1.original_names(original["config"]))
  return convert_tf1.convert(mapping, original["config"])


def assert_close(ours, theirs, name: str):
  """max |ours - theirs| <= TOLERANCE * max |theirs|."""
  ours, theirs = np.asarray(ours), np.asarray(theirs)
  assert ours.shape == theirs.shape, name
  error, scale = np.abs(ours - theirs).max(), np.abs(theirs).max()
  assert error <= TOLERANCE * scale, f"{name}: max error {error:.3g}, scale {scale:.3g}"


def sigmoid(x: np.ndarray) -> np.ndarray:
  return 1 / (1 + np.exp(-x))


def test_saved_checkpoint_holds_the_model_names_and_adam_state(original):
  tf, _, _ = tf1_modules()
  saved = tf.train.load_checkpoint(original["prefix"]).get_variable_to_shape_map()
  expected = convert_tf1.original_names(original["config"])
  assert {name for name in saved if not convert_tf1.is_optimizer_state(name)} == expected.keys()
  assert {"classify/fc_out/weights/Adam", "beta1_power"} <= saved.keys()
  for name, shape in expected.items():
    assert tuple(saved[name]) == shape, name


def test_features_match_the_original(original, converted):
  features = converted.features(original["patches"])
  assert_close(features, original["features"], "features")


def test_logits_and_same_image_match_the_original(original, converted):
  features = original["features"]
  n = len(features)
  i, j = all_pairs(n)
  logits = converted.head_logits(features[i], features[j])
  assert_close(logits, original["logits"].reshape(n * n, -1), "logits")
  same_image = converted.consistency_logit(logits)
  assert_close(same_image, original["same_image"].ravel(), "same-image logit")


def test_consistency_map_matches_the_original(original, converted):
  """The evaluation path: grid, projections, all pairs, symmetrised P(same image)."""
  scorer = ConsistencyModel(converted)
  result = scorer(original["image"], num_patches=NUM_PATCHES)
  np.testing.assert_array_equal(result.coords, original["coords"])
  probability = sigmoid(original["same_image"])
  expected = (probability + probability.T) / 2
  assert np.ptp(expected) > 0.2, "the pairs' scores barely differ: the comparison would be weak"
  np.testing.assert_allclose(result.matrix, expected, rtol=0, atol=TOLERANCE)
  attributes = sigmoid(original["logits"])
  symmetric = (attributes + attributes.transpose(1, 0, 2)) / 2
  for region in (np.arange(len(expected)) % 2 == 0, np.ones(len(expected), bool)):
    np.testing.assert_allclose(scorer.attribute_means(result.projections, region),
                               symmetric[region].mean(axis=0), rtol=0, atol=TOLERANCE)
