"""Virtual-camera pairs mixed into the training stream (rendering: virtual_camera.py).

A share `config.data.virtual_camera_fraction` of pair indices, evenly spread so that every run
of n consecutive pairs holds floor or ceil of n * fraction of them, are virtual: two patches
of two different photos, each re-rendered by a drawn virtual camera, labelled "same or not"
per virtual_camera.COMPONENTS. Their EXIF labels are unknown (-1), and a real pair's
component labels are unknown, so each kind of pair only teaches its own columns. The all-pairs
stream (all_pairs.py) makes a share of its couples virtual the same way, each photo's k crops
rendered by the one camera drawn for it.
"""

from __future__ import annotations

import fractions

import numpy as np

from exif_jax.data import virtual_camera


class VirtualPairs:
  """Which pair indices are virtual, and how their crops become patches and labels."""

  def __init__(self, fraction: float, patch_size: int):
    # An exact ratio p / q: float products of huge pair indices would round.
    ratio = fractions.Fraction(fraction).limit_denominator(10_000)
    self.numerator, self.denominator = ratio.numerator, ratio.denominator
    self.patch_size = patch_size

  def is_virtual(self, index: int) -> bool:
    """Pair `index` is virtual iff floor(index * fraction) steps up at index + 1."""
    p, q = self.numerator, self.denominator
    return (index + 1) * p // q > index * p // q

  def render(self, crop_a: np.ndarray, crop_b: np.ndarray, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patch_a, patch_b, component labels): the crops as a drawn pair of virtual cameras
    shoots them, each uint8 [patch_size, patch_size, 3]."""
    camera_a, camera_b, labels = virtual_camera.draw_pair(rng)
    return (self.shoot(crop_a, camera_a, rng), self.shoot(crop_b, camera_b, rng), labels)

  def shoot(self, crop: np.ndarray, camera: np.ndarray, rng: np.random.Generator
            ) -> np.ndarray:
    """uint8 [patch_size, patch_size, 3]: a region of `crop` as virtual camera `camera`
    (member indices, virtual_camera.draw_pair) shoots it."""
    return virtual_camera.render(virtual_camera.scene(crop, self.patch_size, rng), camera, rng)
