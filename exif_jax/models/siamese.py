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
  noise_stream, noise_feature, post_processing: options with no TF1 counterpart
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from exif_jax.models.resnet_v2 import ResNetV2


# Model options newer than some saved configs, and what their absence means.
OPTIONAL_FIELDS = {"noise_residuals": False, "noise_stream_width": 0,
                   "noise_stream_inputs": "residuals", "post_processing_classes": (),
                   "post_processing_from_posteriors": False,
                   "post_processing_pair_gradient": True, "named_exif_tags": (),
                   "named_exif_classes": 64}


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

  `config` is the `config.model` section: depth, width, feature_dim, head_widths,
  num_attributes, classifier_width, dtype ("float32" or "bfloat16", the compute dtype;
  parameters are always float32). Outputs are float32 whatever the compute dtype.
  """

  def __init__(self, config: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    if not config.head_widths:
      raise ValueError("head_widths needs at least one layer: the first one is split")
    self.dtype = jnp.dtype(config.dtype)
    self.feature_dim = config.feature_dim
    options = {name: config.get(name, default) for name, default in OPTIONAL_FIELDS.items()}
    self.backbone = ResNetV2(
        config.depth, config.width,
        inputs="colour_and_residuals" if options["noise_residuals"] else "colour",
        dtype=self.dtype, rngs=rngs)
    # With a noise stream the feature is [colour part, noise part], a half each; the
    # auxiliary head reads only the noise part, so naming post-processing shapes the noise
    # stream and leaves the colour stream to the camera attributes.
    noise_width = options["noise_stream_width"]
    self.noise_stream = (ResNetV2(config.depth, noise_width,
                                  inputs=options["noise_stream_inputs"], dtype=self.dtype,
                                  rngs=rngs) if noise_width else None)
    noise_dim = config.feature_dim // 2 if noise_width else 0
    self.noise_feature = (nnx.Linear(self.noise_stream.out_features, noise_dim,
                                     dtype=self.dtype, rngs=rngs) if noise_width else None)
    colour_dim = config.feature_dim - noise_dim
    self.feature = nnx.Linear(self.backbone.out_features, colour_dim, dtype=self.dtype,
                              rngs=rngs)
    self.post_processing_classes = tuple(options["post_processing_classes"])
    self.from_posteriors = options["post_processing_from_posteriors"]
    if self.from_posteriors and not self.post_processing_classes:
      raise ValueError("post_processing_from_posteriors needs post_processing_classes")
    self.pair_gradient = options["post_processing_pair_gradient"]
    if not self.pair_gradient and not self.from_posteriors:
      raise ValueError("post_processing_pair_gradient=False needs "
                       "post_processing_from_posteriors: without it there is no pair gradient "
                       "to stop")
    # With posteriors the head predicts only the EXIF attributes; the post-processing ones,
    # last in the attribute order, come from the auxiliary head.
    head_outputs = config.num_attributes - (
        len(self.post_processing_classes) if self.from_posteriors else 0)
    widths = (2 * config.feature_dim, *config.head_widths, head_outputs)
    self.head = nnx.List([
        nnx.Linear(i, o, dtype=self.dtype, rngs=rngs) for i, o in zip(widths[:-1], widths[1:])])
    self.classifier = ConsistencyClassifier(
        config.num_attributes, config.classifier_width, dtype=self.dtype, rngs=rngs)
    # Where in the feature the auxiliary head reads.
    self.post_processing_start = colour_dim if self.noise_stream is not None else 0
    self.post_processing = (
        nnx.Linear(config.feature_dim - self.post_processing_start,
                   sum(self.post_processing_classes), dtype=self.dtype, rngs=rngs)
        if self.post_processing_classes else None)
    # Another auxiliary head, on the colour part: the class of each patch's photo for each of
    # named_exif_tags (e.g. its make), out of named_exif_classes.
    self.named_exif_shape = (len(options["named_exif_tags"]), options["named_exif_classes"])
    self.exif_naming = (
        nnx.Linear(colour_dim, int(np.prod(self.named_exif_shape)), dtype=self.dtype, rngs=rngs)
        if options["named_exif_tags"] else None)

  def features(self, patches: jax.Array) -> jax.Array:
    """Patches [N, 128, 128, 3] in [0, 255] -> features [N, feature_dim] float32."""
    x = scale_patches(patches)
    features = self.feature(self.backbone(x))
    if self.noise_stream is not None:
      features = jnp.concatenate([features, self.noise_feature(self.noise_stream(x))], axis=-1)
    return features.astype(jnp.float32)

  def project(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Features [N, F] -> (a, b), each [N, P]: f @ W_a + bias and f @ W_b.

    a is the patch's contribution as the first of a pair, b as the second. With
    post_processing_from_posteriors both also carry the patch's post-processing log-posteriors
    after the head_widths[0] projection.
    """
    first = self.head[0]
    kernel = first.kernel[...].astype(self.dtype)
    features = features.astype(self.dtype)
    a = features @ kernel[:self.feature_dim] + first.bias[...].astype(self.dtype)
    b = features @ kernel[self.feature_dim:]
    if self.from_posteriors:
      log_posteriors = self._log_posteriors(features).astype(self.dtype)
      a, b = (jnp.concatenate([x, log_posteriors], axis=-1) for x in (a, b))
    return a, b

  def pair_logits(self, a: jax.Array, b: jax.Array) -> jax.Array:
    """Projections a [..., P], b [..., P] (broadcast) -> [..., num_attributes] float32 logits.

    `pair_logits(a[:, None], b[None, :])` scores all N x N ordered pairs.
    """
    if not self.from_posteriors:
      return self._after_first_layer(a + b)
    width = self.head[0].out_features
    return jnp.concatenate([
        self._after_first_layer(a[..., :width] + b[..., :width]),
        self._same_member_logits(a[..., width:], b[..., width:])], axis=-1)

  def pair_features(self, patch_a: jax.Array, patch_b: jax.Array
                    ) -> tuple[jax.Array, jax.Array]:
    """Patch pairs [B, 128, 128, 3] x 2 -> (f_a, f_b), each [B, feature_dim] float32.

    Both patches go through the backbone in one batch of 2B, so train-mode batch norm sees
    the statistics of all patches in the step.
    """
    f_a, f_b = jnp.split(self.features(jnp.concatenate([patch_a, patch_b])), 2)
    return f_a, f_b

  def head_logits(self, f_a: jax.Array, f_b: jax.Array) -> jax.Array:
    """Features [B, F] x 2 -> [B, num_attributes] float32 logits, through the plain head."""
    logits = self._after_first_layer(self.head[0](jnp.concatenate([f_a, f_b], axis=-1)))
    if not self.from_posteriors:
      return logits
    return jnp.concatenate([logits, self._same_member_logits(
        self._log_posteriors(f_a), self._log_posteriors(f_b))], axis=-1)

  def __call__(self, patch_a: jax.Array, patch_b: jax.Array) -> jax.Array:
    """Patch pairs [B, 128, 128, 3] x 2 -> [B, num_attributes] float32 logits (training path)."""
    return self.head_logits(*self.pair_features(patch_a, patch_b))

  def post_processing_logits(self, features: jax.Array) -> list[jax.Array]:
    """Features [N, F] -> per post-processing op, [N, members] float32 logits of the member
    each patch received (the auxiliary head; only when post_processing_classes is set)."""
    features = features[:, self.post_processing_start:].astype(self.dtype)
    return self._split_by_op(self.post_processing(features).astype(jnp.float32))

  def exif_naming_logits(self, features: jax.Array) -> jax.Array:
    """Features [N, F] -> [N, named tags, named_exif_classes] float32 logits of the class of
    each patch's photo (the EXIF naming head; only when named_exif_tags is set)."""
    colour = features[:, :self.exif_naming.in_features].astype(self.dtype)
    return self.exif_naming(colour).astype(jnp.float32).reshape(-1, *self.named_exif_shape)

  def _split_by_op(self, x: jax.Array) -> list[jax.Array]:
    """[..., sum(post_processing_classes)] -> per post-processing op, [..., members]."""
    return jnp.split(x, np.cumsum(self.post_processing_classes)[:-1], axis=-1)

  def _log_posteriors(self, features: jax.Array) -> jax.Array:
    """Features [N, F] -> [N, sum(post_processing_classes)]: per op, log-softmax of members."""
    return jnp.concatenate([jax.nn.log_softmax(logits) for logits in
                            self.post_processing_logits(features)], axis=-1)

  def _same_member_logits(self, log_p_a: jax.Array, log_p_b: jax.Array) -> jax.Array:
    """Per-patch log-posteriors [..., sum(classes)] x 2 -> [..., ops] "same member" logits.

    The pair label is 1 iff both patches got the same member, so from each patch's posterior
    p the chance of "same" is s = sum_k p_a(k) p_b(k). Against the 1/n chance that two uniform
    draws match, and pairs drawn 50/50 same or different, the logit is
    log(s / (1 - s)) + log(n - 1).
    """
    if not self.pair_gradient:
      log_p_a, log_p_b = jax.lax.stop_gradient((log_p_a, log_p_b))
    logits = []
    for n, la, lb in zip(self.post_processing_classes,
                         self._split_by_op(log_p_a.astype(jnp.float32)),
                         self._split_by_op(log_p_b.astype(jnp.float32))):
      log_same = jax.nn.logsumexp(la + lb, axis=-1)
      log_different = jnp.log1p(-jnp.exp(jnp.minimum(log_same, -1e-6)))
      logits.append(log_same - log_different + np.log(n - 1))
    return jnp.stack(logits, axis=-1)

  def consistency_logit(self, exif_logits: jax.Array) -> jax.Array:
    """[..., num_attributes] attribute logits -> [...] "same image" logit (stage 2)."""
    return self.classifier(exif_logits)

  def _after_first_layer(self, x: jax.Array) -> jax.Array:
    for layer in self.head[1:]:
      x = layer(nnx.relu(x))
    return x.astype(jnp.float32)
