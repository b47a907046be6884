"""What each training stage learns: its trainable parameters, its loss, and the outputs its
validation scores, one column of logits and labels per predicted quantity.

  exif                   stage 1: the 83 "same or not" attributes (paper 3.1-3.2), plus the
                         auxiliary heads the model has.
  classifier             stage 2: "same image or not" from the frozen stage-1 outputs (3.3).
  image_consistency      the Image-Consistency baseline (3.4): the same Siamese network, its
                         head and classifier trained end to end on "same image or not" alone;
                         its 83 head outputs are hidden units, not attributes.
  camera_classification  the Camera-Classification baseline (4.2): each patch's camera model,
                         a softmax over the training photos' cameras (model.camera_names).

The pair stages learn from batches of pairs or from all-pairs batches (data/all_pairs.py),
whose every pair i < j of patches is one example.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from exif_jax import models
from exif_jax.data import exif_attrs

STAGES = ("exif", "classifier", "image_consistency", "camera_classification")
# Validation holds out whole camera models, which the camera classifier has no class for. It
# scores what test time uses instead: whether two patches' predicted cameras agree, against
# whether their photos share a camera model.
SAME_CAMERA_LABEL = exif_attrs.INDEX["Image Model"]


def trainable(stage: str) -> nnx.filterlib.Filter:
  """Stage 2 trains only the classifier on frozen stage-1 outputs; the camera classifier the
  backbone, feature and camera head; the others everything."""
  if stage == "classifier":
    return nnx.All(nnx.Param, nnx.PathContains("classifier"))
  if stage == "camera_classification":
    return nnx.All(nnx.Param, nnx.Any(*map(nnx.PathContains, ("backbone", "feature", "camera"))))
  return nnx.Param


def trains_batch_norm(stage: str) -> bool:
  """Stage 2 keeps the frozen network's batch norm in inference mode; the others train it."""
  return stage != "classifier"


def column_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The validation columns of config.stage: the attributes (then the virtual-camera
  components, if any) in stage 1, one column in the others."""
  if config.stage == "exif":
    return exif_attrs.ATTRIBUTES + tuple(config.model.virtual_camera_components)
  return ("same_camera",) if config.stage == "camera_classification" else ("same_image",)


def _masked_mean(losses: jax.Array, known: jax.Array) -> jax.Array:
  """Mean of `losses` where `known` (labels -1 carry no loss); 0 when nothing is known."""
  return jnp.sum(jnp.where(known, losses, 0.0)) / jnp.maximum(jnp.sum(known), 1)


def _patch_classes(batch: dict[str, jax.Array], key: str) -> jax.Array:
  """int32 [2B, ...]: batch[key + "_a"] then batch[key + "_b"], as the patches of pair_features."""
  return jnp.concatenate([batch[f"{key}_a"], batch[f"{key}_b"]]).astype(jnp.int32)


def _softmax_loss(logits: jax.Array, classes: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy over the patches with a class (-1: none, no loss)."""
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(classes, 0))
  return _masked_mean(losses, classes >= 0)


def post_processing_loss(model: models.ExifConsistencyModel, features: jax.Array,
                         members: jax.Array) -> jax.Array:
  """Softmax cross-entropy of each patch's own post-processing members [N, ops], mean over ops.

  "Same or not" gives no gradient towards noticing blur or resampling in one patch until the
  other patch's feature already encodes it; naming each patch's own parameters does.
  """
  logits = model.post_processing_logits(features)
  members = members.astype(jnp.int32)
  return jnp.mean(jnp.stack([
      optax.softmax_cross_entropy_with_integer_labels(op_logits, members[:, op]).mean()
      for op, op_logits in enumerate(logits)]))


def named_exif_loss(model: models.ExifConsistencyModel, features: jax.Array, classes: jax.Array
                    ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Softmax cross-entropy of each patch's photo's class [N, tags] for each named EXIF tag,
  over the patches whose photo has one; and the predicted and true classes [N, tags].

  A pair label says only whether two photos share a make; naming it gives every patch a
  target of its own, with the classes shared across the camera models of a make.
  """
  logits = model.exif_naming_logits(features)
  classes = classes.astype(jnp.int32)
  return _softmax_loss(logits, classes), {"named_predicted": jnp.argmax(logits, axis=-1),
                                          "named_classes": classes}


def _auxiliary_losses(model: models.ExifConsistencyModel, features: jax.Array,
                      post: jax.Array, named: jax.Array, config: ml_collections.ConfigDict
                      ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Stage 1's per-patch losses of the auxiliary heads the model has, weighted, and the
  naming head's outputs."""
  loss, outputs = jnp.zeros((), jnp.float32), {}
  if model.post_processing is not None:
    loss += config.train.post_processing_weight * post_processing_loss(model, features, post)
  if model.exif_naming is not None:
    naming_loss, outputs = named_exif_loss(model, features, named)
    loss += config.train.named_exif_weight * naming_loss
  return loss, outputs


def agreement_logit(logits_a: jax.Array, logits_b: jax.Array) -> jax.Array:
  """[B, C] x 2 class logits -> [B] logit of P(both draws name the same class), sum_c p_a p_b."""
  log_same = jax.nn.logsumexp(jax.nn.log_softmax(logits_a) + jax.nn.log_softmax(logits_b), -1)
  log_same = jnp.minimum(log_same, jnp.log1p(-1e-6))  # P = 1 would give an infinite logit.
  return log_same - jnp.log(-jnp.expm1(log_same))


def camera_loss_and_outputs(model: models.ExifConsistencyModel, batch: dict[str, jax.Array]
                            ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Softmax cross-entropy of each patch's camera class (batch camera_a, camera_b; -1: none);
  the column validation scores is whether the pair's predicted cameras agree."""
  f_a, f_b = model.pair_features(batch["patch_a"], batch["patch_b"])
  logits = model.camera_logits(jnp.concatenate([f_a, f_b]))
  logits_a, logits_b = jnp.split(logits, 2)
  return _softmax_loss(logits, _patch_classes(batch, "camera")), {
      "logits": agreement_logit(logits_a, logits_b)[:, None],
      "labels": batch["labels"][:, SAME_CAMERA_LABEL, None].astype(jnp.int32)}


def _pair_targets(model: models.ExifConsistencyModel, exif_logits: jax.Array,
                  exif_labels: jax.Array, same_image: jax.Array, config: ml_collections.ConfigDict
                  ) -> tuple[jax.Array, jax.Array]:
  """(logits, labels) the pair stages learn: the attributes in stage 1, the consistency logit
  on the attribute logits against "same image" [P, 1] in the others."""
  if config.stage == "exif":
    return exif_logits, exif_labels
  if config.stage == "classifier":
    exif_logits = jax.lax.stop_gradient(exif_logits)
  return model.consistency_logit(exif_logits)[:, None], same_image.astype(jnp.int32)[:, None]


def _sigmoid_losses(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.sigmoid_binary_cross_entropy(logits, jnp.maximum(labels, 0).astype(jnp.float32))


def loss_and_outputs(model: models.ExifConsistencyModel, batch: dict[str, jax.Array],
                     config: ml_collections.ConfigDict
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The stage's loss, and the outputs validation reads: logits and labels per column (see
  column_names), and with the EXIF naming head its classes.

  Pair stages: masked sigmoid cross-entropy (label -1 = unknown: no loss). Stage 1 adds the
  auxiliary losses of the heads the model has. An all-pairs batch (data/all_pairs.py, with
  `patches`) goes to all_pairs_loss_and_outputs.
  """
  if "patches" in batch:
    return all_pairs_loss_and_outputs(model, batch, config)
  if config.stage == "camera_classification":
    return camera_loss_and_outputs(model, batch)
  f_a, f_b = model.pair_features(batch["patch_a"], batch["patch_b"])
  logits, labels = _pair_targets(model, model.head_logits(f_a, f_b),
                                 batch["labels"].astype(jnp.int32), batch["same_image"], config)
  loss = _masked_mean(_sigmoid_losses(logits, labels), labels >= 0)
  outputs = {"logits": logits, "labels": labels}
  if config.stage == "exif":
    auxiliary, naming = _auxiliary_losses(
        model, jnp.concatenate([f_a, f_b]), _patch_classes(batch, "post"),
        _patch_classes(batch, "named"), config)
    loss += auxiliary
    outputs.update(naming)
  return loss, outputs


def all_pair_labels(batch: dict[str, jax.Array], i: jax.Array, j: jax.Array
                    ) -> tuple[jax.Array, jax.Array]:
  """Labels of the pairs (i, j) of an all-pairs batch: int32 [P, columns] for the attributes
  (EXIF 1 same value, 0 different, -1 either photo's value unknown or both patches from one
  image; post-processing 1 iff the two patches got the same member), then with virtual
  cameras the components (1 same member, 0 different, -1 either patch real or both from one
  image), and int32 [P] same image.

  Two patches of one image share every EXIF value and camera member, and matching their
  content is easier than matching camera traces: they would make most "same" labels of a
  batch. They teach only the post-processing attributes (and stage 2's "same image").
  """
  same_image = batch["image"][i] == batch["image"][j]

  def compare(members: jax.Array) -> jax.Array:
    """1 same, 0 different, -1 either unknown (< 0) or one image, per column."""
    known = (members[i] >= 0) & (members[j] >= 0) & ~same_image[:, None]
    return jnp.where(known, members[i] == members[j], -1)

  columns = [compare(batch["codes"]), batch["post"][i] == batch["post"][j]]
  if "virtual" in batch:
    columns.append(compare(batch["virtual"]))
  labels = jnp.concatenate(columns, axis=-1).astype(jnp.int32)
  return labels, same_image.astype(jnp.int32)


def class_balanced_mean(losses: jax.Array, labels: jax.Array) -> jax.Array:
  """The mean over columns with a known label of each column's class-balanced loss.

  For column c with S_c the pairs labelled 1 and D_c those labelled 0, its loss is the mean
  over the classes present of the class's mean loss: (mean_{S_c} l + mean_{D_c} l) / 2 when
  both are present, the present one's mean otherwise. A rare "same" thus weighs as much as
  the common "different"; a column with no known pair (all -1) contributes nothing.
  """
  class_means, present = [], []
  for value in (0, 1):
    mask = labels == value
    count = jnp.sum(mask, axis=0)
    class_means.append(jnp.sum(jnp.where(mask, losses, 0.0), axis=0) / jnp.maximum(count, 1))
    present.append(count > 0)
  classes = present[0].astype(jnp.float32) + present[1]
  column = (jnp.where(present[0], class_means[0], 0.0)
            + jnp.where(present[1], class_means[1], 0.0)) / jnp.maximum(classes, 1)
  return jnp.sum(column) / jnp.maximum(jnp.sum(classes > 0), 1)


def all_pairs_loss_and_outputs(model: models.ExifConsistencyModel, batch: dict[str, jax.Array],
                               config: ml_collections.ConfigDict
                               ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """loss_and_outputs of an all-pairs batch: every pair i < j of its B patches.

  Each patch goes through the backbone and the split first head layer once; a pair costs the
  head layers after the first. The pair labels come from the batch on device
  (all_pair_labels); the loss is class_balanced_mean of the sigmoid cross-entropy, in stage 1
  over the 83 attributes and any virtual-camera components, in the other pair stages over the
  one "same image" column (pairs of one image are the positives). Stage 1 adds the per-patch
  auxiliary losses.
  """
  features = model.features(batch["patches"])
  a, b = model.project(features)
  i, j = jnp.triu_indices(features.shape[0], 1)
  exif_labels, same_image = all_pair_labels(batch, i, j)
  logits, labels = _pair_targets(model, model.pair_logits(a[i], b[j], components=True),
                                 exif_labels, same_image, config)
  loss = class_balanced_mean(_sigmoid_losses(logits, labels), labels)
  outputs = {"logits": logits, "labels": labels}
  if config.stage == "exif":
    auxiliary, naming = _auxiliary_losses(model, features, batch["post"], batch["named"], config)
    loss += auxiliary
    outputs.update(naming)
  return loss, outputs
