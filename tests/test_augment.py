"""Post-processing augmentations on real photo pixels: parameters, labels, ops and their order."""

import io

import numpy as np
import pytest
from PIL import Image
from PIL import ImageFilter

from configs import common
from conftest import FIXTURES
from exif_jax import augment

OPTIONS = augment.Options.from_config(common.data_config())
JPEG_NONE = OPTIONS.jpeg_qualities.index(0)
BLUR_NONE = OPTIONS.blur_sigmas.index(0.0)
RESIZE_NONE = OPTIONS.resize_factors.index(1.0)


def is_window(crop: np.ndarray, patch: np.ndarray) -> bool:
  """Whether `patch` is an unaltered window of `crop`."""
  height, width, _ = patch.shape
  for y, x in zip(*np.nonzero((crop == patch[0, 0]).all(-1))):
    if np.array_equal(crop[y:y + height, x:x + width], patch):
      return True
  return False


def params(jpeg=JPEG_NONE, blur=BLUR_NONE, resize=RESIZE_NONE) -> np.ndarray:
  out = np.empty(augment.NUM_OPS, np.int64)
  out[[augment.JPEG, augment.BLUR, augment.RESIZE]] = jpeg, blur, resize
  return out


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
  """A 256x256 crop of a real camera photo, like the ones data_prep stores."""
  pixels = np.asarray(Image.open(FIXTURES / "camera" / "nikon_coolpix_s3100.jpg"))
  return np.ascontiguousarray(pixels[100:356, 200:456])


def test_options_need_distinct_sets_with_the_identity():
  config = common.data_config()
  config.blur_sigmas = (1.0, 2.0)
  with pytest.raises(ValueError, match="blur_sigmas"):
    augment.Options.from_config(config)
  config = common.data_config()
  config.resize_factors = (1.0, 1.001)  # Both cut a 128-px region: no resize for either.
  with pytest.raises(ValueError, match="distinct region sizes"):
    augment.Options.from_config(config)
  config = common.data_config()
  config.resize_interpolations = ("bilinear", "sideways")
  with pytest.raises(KeyError):
    augment.Options.from_config(config)


def test_labels_say_whether_both_patches_got_the_same_member():
  rng = np.random.default_rng(0)
  draws = [augment.sample_pair(rng, OPTIONS, 256, 256) for _ in range(6000)]
  params_a = np.stack([d[0] for d in draws])
  params_b = np.stack([d[1] for d in draws])
  labels = np.stack([d[2] for d in draws])
  assert labels.dtype == np.int8
  np.testing.assert_array_equal(labels, params_a == params_b)
  np.testing.assert_allclose(labels.mean(0), 0.5, atol=0.03)  # Half same, half different.
  for op, members in enumerate(OPTIONS.sets):
    size = len(members)
    counts = np.bincount(params_a[:, op], minlength=size)
    np.testing.assert_allclose(counts / len(draws), 1 / size, atol=0.025)  # Uniform over the set.
    different = labels[:, op] == 0
    counts_b = np.bincount(params_b[different, op], minlength=size)
    assert (counts_b > 0).all()  # Any other member can be B's.


def test_resize_factors_fit_the_stored_crops():
  rng = np.random.default_rng(1)
  regions = OPTIONS.regions
  for side_a, side_b in [(128, 128), (128, 256), (256, 170), (200, 200)]:
    for _ in range(300):
      params_a, params_b, labels = augment.sample_pair(rng, OPTIONS, side_a, side_b)
      assert regions[params_a[augment.RESIZE]] <= min(side_a, side_b)
      assert regions[params_b[augment.RESIZE]] <= side_b
      assert labels[augment.RESIZE] == (params_a[augment.RESIZE] == params_b[augment.RESIZE])
  # 128-px crops leave only the factors >= 1; 0.75 needs a 171-px region.
  assert set(OPTIONS.fitting_factors(128)) == {
      i for i, f in enumerate(OPTIONS.resize_factors) if f >= 1}
  assert 171 in regions and OPTIONS.resize_factors[list(regions).index(171)] == 0.75


def test_identity_params_return_a_window_of_the_crop(crop):
  rng = np.random.default_rng(2)
  for _ in range(5):
    patch = augment.apply(crop, params(), rng, OPTIONS)
    assert patch.shape == (128, 128, 3) and patch.dtype == np.uint8
    assert is_window(crop, patch)
  assert not is_window(crop, 255 - patch)


def test_resize_by_half_resamples_the_whole_crop(crop):
  half = OPTIONS.resize_factors.index(0.5)
  references = [np.asarray(Image.fromarray(crop).resize((128, 128), Image.Resampling[n.upper()]))
                for n in OPTIONS.resize_interpolations]
  seen = set()
  for seed in range(12):
    patch = augment.apply(crop, params(resize=half), np.random.default_rng(seed), OPTIONS)
    matches = [i for i, ref in enumerate(references) if np.array_equal(ref, patch)]
    assert len(matches) == 1
    seen.add(matches[0])
  assert len(seen) >= 3  # Several interpolations are used.


def test_blur_and_jpeg_strength_follow_their_parameters(crop):
  window = crop[:128, :128]

  def distance(**kwargs) -> float:
    patch = augment.apply(window, params(**kwargs), np.random.default_rng(0), OPTIONS)
    return float(np.abs(patch.astype(float) - window).mean())

  blur = [distance(blur=i) for i in range(len(OPTIONS.blur_sigmas))]
  assert blur[BLUR_NONE] == 0 and np.all(np.diff(blur) > 0)  # Sigmas are sorted ascending.
  jpeg = {q: distance(jpeg=i) for i, q in enumerate(OPTIONS.jpeg_qualities)}
  assert jpeg[0] == 0 and jpeg[50] > jpeg[70] > jpeg[90] > jpeg[100] > 0


def test_ops_run_in_a_random_order(crop):
  window = crop[:128, :128]
  quality, sigma = 50, 3.0
  p = params(jpeg=OPTIONS.jpeg_qualities.index(quality), blur=OPTIONS.blur_sigmas.index(sigma))

  def rejpeg(image):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(buffer)

  def blur(image):
    return image.filter(ImageFilter.GaussianBlur(sigma))

  image = Image.fromarray(window)
  orders = {"jpeg_then_blur": np.asarray(blur(rejpeg(image))),
            "blur_then_jpeg": np.asarray(rejpeg(blur(image)))}
  seen = set()
  for seed in range(12):
    patch = augment.apply(window, p, np.random.default_rng(seed), OPTIONS)
    matches = [name for name, ref in orders.items() if np.array_equal(ref, patch)]
    assert len(matches) == 1
    seen.add(matches[0])
  assert seen == set(orders)


def test_same_rng_same_patch(crop):
  rng_params = np.random.default_rng(3)
  for _ in range(5):
    p, _, _ = augment.sample_pair(rng_params, OPTIONS, 256, 256)
    first = augment.apply(crop, p, np.random.default_rng(7), OPTIONS)
    again = augment.apply(crop, p, np.random.default_rng(7), OPTIONS)
    np.testing.assert_array_equal(first, again)
