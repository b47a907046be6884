"""The Siamese EXIF-consistency network (Huh et al. 2018, Sec. 3) and its stage-2 classifier.

patch -> ResNet v2 -> `feature` Linear -> f (per patch). A pair (f_a, f_b) -> MLP `head` on
concat(f_a, f_b) -> one "same or not" logit per attribute. Stage 2: `classifier` maps the
83 attribute logits to one "same image or not" logit.

For all pairs of an image's patches the first head layer is split: its kernel is
[W_a; W_b], so concat(f_a, f_b) @ W + bias = (f_a @ W_a + bias) + f_b @ W_b. `project` runs
once per patch and a pair costs only `pair_logits(a_i, b_j)`, the layers after the first.

Parameter names, and the TF1 checkpoint variables they correspond to:
  backbone      resnet_v2_50/...        (see resnet_v2.py)
  feature       resnet_v2_50/logits     (1x1 conv there, a Linear here)
  head[i]       predict/fc/fc_{i+1}; the last one, head[-1], is predict/fc_out
  classifier    classify/fc/fc_1 (classifier.hidden), classify/fc_out (classifier.out)
  post_processing, exif_naming, virtual_camera: optional auxiliary heads with no TF1
                counterpart
  camera        the Camera-Classification baseline's head (paper 4.2), no TF1 counterpart
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from exif_jax.data.exif_attrs import NUM_ATTRIBUTES
from exif_jax.models.resnet_v2 import ResNetV2


def default_config() -> ml_collections.ConfigDict:
  """`config.model` at its defaults: the paper's ResNet-50 v2, without auxiliary heads.

  The one place each model field and its default are written: configs/ start from it, and a
  saved config without a field (saved before the field existed) means its default.
  """
  model = ml_collections.ConfigDict()
  model.depth = 50
  model.width = 64
  model.feature_dim = 4096
  model.head_widths = (4096, 2048, 1024)
  model.classifier_width = 512
  model.dtype = "float32"  # Compute dtype; "bfloat16" on accelerators. Params stay float32.
  # Fixed SRM high-pass residuals beside RGB at the root conv (models/noise_residuals.py);
  # off in the paper.
  model.noise_residuals = False
  # Member counts of an auxiliary per-patch head that names each patch's own post-processing,
  # one per op (JPEG quality, blur, resize); () = none, as in the paper. Derived, not set by
  # hand: training fills it in from config.data when train.post_processing_weight > 0
  # (train.with_derived_fields), and checkpoints save it.
  model.post_processing_classes = ()
  # An auxiliary head on each patch's feature that names the value of these EXIF tags in the
  # patch's photo (e.g. ("Image Make",)); () = none, as in the paper. Its classes are the
  # training photos' values held by data.min_photos_per_value photos, at most
  # named_exif_classes of them.
  model.named_exif_tags = ()
  model.named_exif_classes = 64
  # The classes of a per-patch camera-model classifier on the feature (the paper's
  # Camera-Classification baseline), as camera ids (records.PhotoIndex.camera); () = none.
  # Derived, not set by hand: training stage "camera_classification" fills in the training
  # photos' cameras (train.with_derived_fields), and checkpoints save them.
  model.camera_names = ()
  # Names of virtual-camera pipeline components (exif_jax/data/virtual_camera.py) whose "same or
  # not" logits an extra layer on the head's last hidden layer appends to the training path's
  # attribute logits; () = none. Derived from config.data.virtual_camera_fraction, like
  # post_processing_classes.
  model.virtual_camera_components = ()
  return model


def with_defaults(config: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A model section, of a run or of a checkpoint, with the fields it lacks at their
  defaults; a field the model does not know is refused."""
  defaults = default_config()
  unknown = set(config.keys()) - set(defaults.keys())
  if unknown:
    raise ValueError(f"config.model: unknown fields {sorted(unknown)}; the model's fields are "
                     f"{sorted(defaults.keys())}")
  return ml_collections.ConfigDict({**defaults.to_dict(), **config})


def scale_patches(patches: jax.Array) -> jax.Array:
  """Pixel values in [0, 255] (uint8 or float) -> float32 in [-1, 1], as the paper's input."""
  return patches.astype(jnp.float32) / 127.5 - 1.0


class ConsistencyClassifier(nnx.Module):
  """Stage 2: the 83 attribute predictions of a pair -> one "same image" logit.

  It reads the raw attribute logits, as the original classify/ layers do (the TF1
  checkpoint's weights expect them).
  """

  def __init__(self, num_attributes: int, width: int, *, dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    self.hidden = nnx.Linear(num_attributes, width, dtype=dtype, rngs=rngs)
    self.out = nnx.Linear(width, 1, dtype=dtype, rngs=rngs)

  def __call__(self, exif_logits: jax.Array) -> jax.Array:
    """[..., num_attributes] logits -> [...] float32 logit."""
    x = nnx.relu(self.hidden(exif_logits))
    return self.out(x)[..., 0].astype(jnp.float32)


class ExifConsistencyModel(nnx.Module):
  """Two patches -> per-attribute "same value" logits, plus the stage-2 classifier.

  `config` is the `config.model` section (`default_config` lists its fields; missing ones
  take their defaults). Parameters are float32 and outputs float32 whatever the compute dtype.
  """

  def __init__(self, config: Mapping[str, Any], *, rngs: nnx.Rngs):
    config = with_defaults(config)
    if not config.head_widths:
      raise ValueError("head_widths needs at least one layer: the first one is split")
    self.dtype = jnp.dtype(config.dtype)
    self.feature_dim = config.feature_dim
    self.backbone = ResNetV2(config.depth, config.width, noise_residuals=config.noise_residuals,
                             dtype=self.dtype, rngs=rngs)
    self.feature = nnx.Linear(self.backbone.out_features, config.feature_dim, dtype=self.dtype,
                              rngs=rngs)
    widths = (2 * config.feature_dim, *config.head_widths, NUM_ATTRIBUTES)
    self.head = nnx.List([
        nnx.Linear(i, o, dtype=self.dtype, rngs=rngs) for i, o in zip(widths[:-1], widths[1:])])
    self.classifier = ConsistencyClassifier(
        NUM_ATTRIBUTES, config.classifier_width, dtype=self.dtype, rngs=rngs)
    # Auxiliary per-patch heads on the feature: the post-processing members each patch
    # received, and the class of each patch's photo for each of named_exif_tags (e.g. its
    # make), out of named_exif_classes.
    self.post_processing_classes = tuple(config.post_processing_classes)
    self.post_processing = (
        nnx.Linear(config.feature_dim, sum(self.post_processing_classes), dtype=self.dtype,
                   rngs=rngs)
        if self.post_processing_classes else None)
    self.named_exif_shape = (len(config.named_exif_tags), config.named_exif_classes)
    self.exif_naming = (
        nnx.Linear(config.feature_dim, int(np.prod(self.named_exif_shape)), dtype=self.dtype,
                   rngs=rngs)
        if config.named_exif_tags else None)
    self.camera_names = tuple(config.camera_names)
    self.camera = (
        nnx.Linear(config.feature_dim, len(self.camera_names), dtype=self.dtype, rngs=rngs)
        if self.camera_names else None)
    self.virtual_camera = (
        nnx.Linear(widths[-2], len(config.virtual_camera_components), dtype=self.dtype,
                   rngs=rngs)
        if config.virtual_camera_components else None)

  def features(self, patches: jax.Array) -> jax.Array:
    """Patches [N, 128, 128, 3] in [0, 255] -> features [N, feature_dim] float32."""
    return self.feature(self.backbone(scale_patches(patches))).astype(jnp.float32)

  def project(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Features [N, F] -> (a, b), each [N, P]: f @ W_a + bias and f @ W_b.

    a is the patch's contribution as the first of a pair, b as the second.
    """
    first = self.head[0]
    kernel = first.kernel[...].astype(self.dtype)
    features = features.astype(self.dtype)
    a = features @ kernel[:self.feature_dim] + first.bias[...].astype(self.dtype)
    b = features @ kernel[self.feature_dim:]
    return a, b

  def pair_logits(self, a: jax.Array, b: jax.Array, components: bool = False) -> jax.Array:
    """Projections a [..., P], b [..., P] (broadcast) -> [..., num_attributes] float32 logits;
    with `components` (training) the virtual-camera component logits follow, as in head_logits.

    `pair_logits(a[:, None], b[None, :])` scores all N x N ordered pairs.
    """
    hidden = self._last_hidden(a + b)
    if components:
      return self._output_logits(hidden)
    return self.head[-1](hidden).astype(jnp.float32)

  def pair_features(self, patch_a: jax.Array, patch_b: jax.Array
                    ) -> tuple[jax.Array, jax.Array]:
    """Patch pairs [B, 128, 128, 3] x 2 -> (f_a, f_b), each [B, feature_dim] float32.

    Both patches go through the backbone in one batch of 2B, so train-mode batch norm sees
    the statistics of all patches in the step.
    """
    f_a, f_b = jnp.split(self.features(jnp.concatenate([patch_a, patch_b])), 2)
    return f_a, f_b

  def head_logits(self, f_a: jax.Array, f_b: jax.Array) -> jax.Array:
    """Features [B, F] x 2 -> [B, num_attributes] float32 logits, through the plain head;
    with a virtual-camera head, its component logits follow: [B, num_attributes + K]."""
    return self._output_logits(
        self._last_hidden(self.head[0](jnp.concatenate([f_a, f_b], axis=-1))))

  def __call__(self, patch_a: jax.Array, patch_b: jax.Array) -> jax.Array:
    """Patch pairs [B, 128, 128, 3] x 2 -> [B, num_attributes] float32 logits (training path)."""
    return self.head_logits(*self.pair_features(patch_a, patch_b))

  def post_processing_logits(self, features: jax.Array) -> list[jax.Array]:
    """Features [N, F] -> per post-processing op, [N, members] float32 logits of the member
    each patch received (the auxiliary head; only when post_processing_classes is set)."""
    logits = self.post_processing(features.astype(self.dtype)).astype(jnp.float32)
    return jnp.split(logits, np.cumsum(self.post_processing_classes)[:-1], axis=-1)

  def exif_naming_logits(self, features: jax.Array) -> jax.Array:
    """Features [N, F] -> [N, named tags, named_exif_classes] float32 logits of the class of
    each patch's photo (the EXIF naming head; only when named_exif_tags is set)."""
    logits = self.exif_naming(features.astype(self.dtype)).astype(jnp.float32)
    return logits.reshape(-1, *self.named_exif_shape)

  def camera_logits(self, features: jax.Array) -> jax.Array:
    """Features [N, F] -> [N, len(camera_names)] float32 logits of each patch's camera model
    (the camera head; only when camera_names is set)."""
    return self.camera(features.astype(self.dtype)).astype(jnp.float32)

  def consistency_logit(self, exif_logits: jax.Array) -> jax.Array:
    """[..., num_attributes] attribute logits (any columns after them are left out) ->
    [...] "same image" logit (stage 2)."""
    return self.classifier(exif_logits[..., :NUM_ATTRIBUTES])

  def _output_logits(self, hidden: jax.Array) -> jax.Array:
    """The last hidden activation -> the attribute logits, then any component logits."""
    logits = self.head[-1](hidden)
    if self.virtual_camera is not None:
      logits = jnp.concatenate([logits, self.virtual_camera(hidden)], axis=-1)
    return logits.astype(jnp.float32)

  def _last_hidden(self, x: jax.Array) -> jax.Array:
    """The first head layer's output -> the activation the last head layer reads."""
    for layer in self.head[1:-1]:
      x = layer(nnx.relu(x))
    return nnx.relu(x)
