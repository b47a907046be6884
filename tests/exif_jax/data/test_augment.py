"""Post-processing augmentations on real photo pixels: parameters, labels, ops and their order."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from configs import common
from conftest import FIXTURES
from exif_jax.data import augment

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


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.abs(a.astype(float) - b).mean())


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


def test_identity_weight_keeps_patches_untouched_as_often_in_a_and_b():
  config = common.data_config()
  config.identity_probability = 0.6
  options = augment.Options.from_config(config)
  rng = np.random.default_rng(3)
  draws = [augment.sample_pair(rng, options, 256, 256) for _ in range(8000)]
  params_a, params_b, labels = (np.stack(column) for column in zip(*draws))
  np.testing.assert_allclose(labels.mean(0), 0.5, atol=0.03)
  np.testing.assert_array_equal(labels, params_a == params_b)
  for op, members in enumerate(options.sets):
    weights = options.weights[op]
    # Half same (by weight), half two distinct members (by the product of their weights).
    expected = 0.5 * weights + 0.5 * weights * (1 - weights) / (1 - (weights ** 2).sum())
    identity = members.index(augment.IDENTITY[op])
    assert expected[identity] > 0.45 and expected[identity] > 2 / len(members)
    for params in (params_a, params_b):
      counts = np.bincount(params[:, op], minlength=len(members)) / len(draws)
      np.testing.assert_allclose(counts, expected, atol=0.02)
  config.identity_probability = 1.0
  with pytest.raises(ValueError, match="identity_probability"):
    augment.Options.from_config(config)


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


def test_resize_resamples_the_whole_region_with_several_interpolations(crop):
  factor = OPTIONS.resize_factors.index(0.75)
  region = crop[:171, :171]  # The whole crop is the region: no random offset.
  flags = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
           "lanczos": cv2.INTER_LANCZOS4, "box": cv2.INTER_AREA}
  references = [cv2.resize(region, (128, 128), interpolation=flags[name])
                for name in OPTIONS.resize_interpolations]
  seen = set()
  for seed in range(12):
    patch = augment.apply(region, params(resize=factor), np.random.default_rng(seed), OPTIONS)
    assert patch.shape == (128, 128, 3) and patch.dtype == np.uint8
    # Lanczos goes through float32: equal to OpenCV's uint8 path up to rounding.
    matches = [i for i, ref in enumerate(references)
               if np.abs(ref.astype(int) - patch).max() <= 1]
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

  def rejpeg(pixels):  # Pillow takes RGB as it is: a check on OpenCV's BGR order too.
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))

  def blur(pixels):
    return cv2.GaussianBlur(pixels, (0, 0), sigma)

  orders = {"jpeg_then_blur": blur(rejpeg(window)), "blur_then_jpeg": rejpeg(blur(window))}
  assert mean_difference(*orders.values()) > 1
  seen = set()
  for seed in range(12):
    patch = augment.apply(window, p, np.random.default_rng(seed), OPTIONS)
    # The blur is cv2.GaussianBlur's up to rounding; after a JPEG that stays far below 1.
    matches = [name for name, ref in orders.items() if mean_difference(ref, patch) < 0.25]
    assert len(matches) == 1
    seen.add(matches[0])
  assert seen == set(orders)


def test_rejpeg_is_the_standard_rgb_jpeg(crop):
  window = crop[:128, :128]
  for i, quality in enumerate(OPTIONS.jpeg_qualities):
    if quality:
      buffer = io.BytesIO()
      Image.fromarray(window).save(buffer, format="JPEG", quality=quality)
      patch = augment.apply(window, params(jpeg=i), np.random.default_rng(0), OPTIONS)
      np.testing.assert_array_equal(patch, np.asarray(Image.open(buffer)))


def test_blur_is_the_gaussian_of_its_sigma(crop):
  window = crop[:128, :128]
  for i, sigma in enumerate(OPTIONS.blur_sigmas):
    if sigma:
      patch = augment.apply(window, params(blur=i), np.random.default_rng(0), OPTIONS)
      reference = cv2.GaussianBlur(window, (0, 0), sigma)
      assert np.abs(reference.astype(int) - patch).max() <= 1


def test_same_rng_same_patch(crop):
  rng_params = np.random.default_rng(3)
  for _ in range(5):
    p, _, _ = augment.sample_pair(rng_params, OPTIONS, 256, 256)
    first = augment.apply(crop, p, np.random.default_rng(7), OPTIONS)
    again = augment.apply(crop, p, np.random.default_rng(7), OPTIONS)
    np.testing.assert_array_equal(first, again)
