"""Post-processing of evaluation inputs for the robustness sweep (`eval --perturb`).

The kinds are the training augmentation's ops (exif_jax.data.augment) applied to the whole image,
so that they mean the same in training and in the sweep: jpeg=Q re-encodes at quality Q,
blur=S is a Gaussian of sigma S px, resize=F scales both sides by F (bilinear, OpenCV's
default; the mask by nearest neighbour to the image's new size). Every op is deterministic,
so a level's inputs are made on the fly, image by image, and are the same on every run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import cv2
import numpy as np

from eval.data import datasets
from exif_jax.data import augment
from exif_jax.data import files

# Kind -> what its levels are: each kind's identity level is left out, as the unperturbed
# row is always evaluated.
KINDS = {"jpeg": "a JPEG quality, an integer in 1-100",
         "resize": "a scale factor in (0, 1)",
         "blur": "a Gaussian sigma in px, in (0, 20]"}
_RESIZE_INTERPOLATION = "bilinear"


@dataclasses.dataclass(frozen=True)
class Perturbation:
  """One kind at one level."""
  kind: str
  level: float

  @property
  def name(self) -> str:
    """The level's folder name under OUT/perturb, e.g. jpeg-75 or resize-0.5."""
    return f"{self.kind}-{self.level:g}"

  @property
  def settings(self) -> dict[str, Any]:
    """What OUT/perturb/<name>/settings.json records, so that levels are never mixed."""
    recorded: dict[str, Any] = {"kind": self.kind, "level": self.level}
    if self.kind == "resize":
      recorded["interpolation"] = _RESIZE_INTERPOLATION
    return recorded

  def size(self, width: int, height: int) -> tuple[int, int]:
    """(width, height) of a perturbed image of width x height."""
    if self.kind != "resize":
      return width, height
    return max(1, round(width * self.level)), max(1, round(height * self.level))

  def __call__(self, pixels: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> the perturbed uint8 image."""
    if self.kind == "jpeg":
      return augment.rejpeg(np.ascontiguousarray(pixels), int(self.level))
    if self.kind == "blur":
      return augment.blur(pixels, self.level)
    return augment.resize(pixels, self.size(pixels.shape[1], pixels.shape[0]),
                          augment.INTERPOLATIONS[_RESIZE_INTERPOLATION])


def _level(kind: str, text: str) -> float:
  """One level of `kind` from its text; ValueError naming what it should be."""
  try:
    level = int(text) if kind == "jpeg" else float(text)
  except ValueError:
    level = None
  valid = level is not None and {
      "jpeg": lambda v: 1 <= v <= 100,
      "resize": lambda v: 0 < v < 1,
      "blur": lambda v: 0 < v <= 20}[kind](level)
  if not valid:
    raise ValueError(f"--perturb {kind}={text!r}: each level must be {KINDS[kind]}")
  return level


def parse(values: Sequence[str]) -> list[Perturbation]:
  """--perturb values (kind=level,level,...) -> perturbations in the order given.

  ValueError with a one-line reason for an unknown kind, a bad or repeated level, or a kind
  given twice.
  """
  perturbations: list[Perturbation] = []
  kinds: set[str] = set()
  for value in values:
    kind, equals, levels = value.partition("=")
    if kind not in KINDS or not equals or not levels:
      raise ValueError(f"--perturb {value!r}: expected KIND=LEVEL,LEVEL,... with KIND one of "
                       f"{', '.join(KINDS)}")
    if kind in kinds:
      raise ValueError(f"--perturb {kind} given twice: list all its levels in one flag")
    kinds.add(kind)
    parsed = [_level(kind, text.strip()) for text in levels.split(",")]
    if len(set(parsed)) != len(parsed):
      raise ValueError(f"--perturb {value!r}: a level is repeated")
    perturbations += [Perturbation(kind, level) for level in parsed]
  return perturbations


@dataclasses.dataclass(frozen=True)
class PerturbedExample(datasets.Example):
  """An example whose pixels (and mask, when resized) pass through a perturbation."""
  perturbation: Perturbation = dataclasses.field(kw_only=True)

  @classmethod
  def of(cls, example: datasets.Example, perturbation: Perturbation) -> PerturbedExample:
    fields = {field.name: getattr(example, field.name) for field in dataclasses.fields(example)}
    return cls(**fields, perturbation=perturbation)

  def load_image(self, max_pixels: int = files.MAX_PIXELS) -> np.ndarray:
    return self.perturbation(super().load_image(max_pixels))

  @property
  def mask(self) -> np.ndarray | None:
    """The mask at the perturbed image's size (nearest neighbour with pixel centres aligned
    as in the bilinear resize of the image), True = spliced."""
    mask = super().mask
    if mask is None or self.perturbation.kind != "resize":
      return mask
    size = self.perturbation.size(mask.shape[1], mask.shape[0])
    return cv2.resize(mask.view(np.uint8), size, interpolation=cv2.INTER_NEAREST_EXACT).astype(bool)
