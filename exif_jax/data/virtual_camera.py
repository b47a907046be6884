"""Virtual cameras: photo crops re-rendered through a randomly drawn camera pipeline.

A real photo's crop is area-downscaled to one patch (averaging pixel blocks suppresses its own
sensor noise, demosaicing and JPEG traces), turned back into linear light and rendered like a
raw capture: white balance divides the channels (the illuminant) before the colour filter
array keeps one channel per pixel, signal-dependent (Poisson-Gaussian) noise of a drawn gain
is added to that mosaic, the white balance gains and a gamma tone curve bring it back to 8
bits (on the mosaic: both act per pixel), and a demosaicing algorithm, an optional denoiser,
unsharp masking and a JPEG of a drawn quality and chroma subsampling produce the patch.

Each step draws one member of a fixed set: the member indices of all steps are the virtual
camera, and each step is a COMPONENT that two patches agree on or not. Everything here is
NumPy and OpenCV, deterministic given the Generator.
"""

from __future__ import annotations

import cv2
import numpy as np

from exif_jax.data import augment

# The "same or not" columns a virtual pair is labelled with, in order.
COMPONENTS = ("virtual_cfa", "virtual_demosaic", "virtual_noise", "virtual_denoise",
              "virtual_sharpen", "virtual_tone", "virtual_white_balance",
              "virtual_jpeg_quality", "virtual_chroma_subsampling")
(CFA, DEMOSAIC, NOISE, DENOISE, SHARPEN, TONE, WHITE_BALANCE, JPEG_QUALITY,
 CHROMA_SUBSAMPLING) = range(len(COMPONENTS))

# Colour of the 2x2 tile's pixels (0, 0), (0, 1), (1, 0), (1, 1) as RGB channel indices, and
# the OpenCV Bayer code that demosaics it (OpenCV names a pattern by its second row).
CFA_PATTERNS = {"RGGB": ((0, 1, 1, 2), "BG"), "BGGR": ((2, 1, 1, 0), "RG"),
                "GRBG": ((1, 0, 2, 1), "GB"), "GBRG": ((1, 2, 0, 1), "GR")}
DEMOSAICS = {"bilinear": "", "vng": "_VNG", "edge_aware": "_EA"}
# Poisson-Gaussian noise on linear values in [0, 1]: variance gain * (SHOT * x + READ**2).
NOISE_GAINS = (1.0, 2.0, 4.0, 8.0, 16.0)
SHOT, READ = 5e-5, 1e-3
DENOISERS = ("none", "gaussian", "bilateral")
SHARPEN_AMOUNTS = (0.0, 0.5, 1.0, 1.5)  # Unsharp mask of a sigma-1 Gaussian.
GAMMAS = (1.8, 2.0, 2.2, 2.4, 2.6)  # Tone curve x ** (1 / gamma); 2.2 undoes _TO_LINEAR.
# (red, blue) gains over green: daylight, cloudy, tungsten, fluorescent.
WHITE_BALANCES = ((2.0, 1.5), (2.3, 1.3), (1.4, 2.4), (1.8, 2.0))
JPEG_QUALITIES = (60, 75, 85, 95)
CHROMA_SUBSAMPLINGS = {"4:4:4": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
                       "4:2:2": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
                       "4:2:0": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420}
SET_SIZES = (len(CFA_PATTERNS), len(DEMOSAICS), len(NOISE_GAINS), len(DENOISERS),
             len(SHARPEN_AMOUNTS), len(GAMMAS), len(WHITE_BALANCES), len(JPEG_QUALITIES),
             len(CHROMA_SUBSAMPLINGS))

# Share of virtual pairs rendered by one camera (every label "same"). The other pairs agree
# on each component with probability SAME_COMPONENT, so that half of all labels are "same".
SAME_CAMERA_SHARE = 0.25
SAME_COMPONENT = (0.5 - SAME_CAMERA_SHARE) / (1 - SAME_CAMERA_SHARE)
DOWNSCALE = 2  # Crop side per patch side: area averaging of 2x2 blocks.
RAW_LEVELS = 4095  # 12-bit raw: the tone curve's lookup table, without banding in shadows.

_TO_LINEAR = ((np.arange(256) / 255.0) ** 2.2).astype(np.float32)  # The crop's sRGB-like encoding.
_TONE_CURVES = [np.rint(255 * (np.arange(RAW_LEVELS + 1) / RAW_LEVELS) ** (1 / gamma))
                .astype(np.uint8) for gamma in GAMMAS]
_BAYER_CODES = [[getattr(cv2, f"COLOR_Bayer{opencv_name}2RGB{suffix}")
                 for suffix in DEMOSAICS.values()] for _, opencv_name in CFA_PATTERNS.values()]


def draw_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(camera_a, camera_b, labels): member indices int64 [components] and int8 "same" labels.

  A share SAME_CAMERA_SHARE of pairs uses one camera; otherwise each component of B is A's
  member with probability SAME_COMPONENT and else another member, uniformly.
  """
  u_camera, *u = rng.random(1 + 3 * len(COMPONENTS)).tolist()
  camera_a = np.empty(len(COMPONENTS), np.int64)
  camera_b = np.empty(len(COMPONENTS), np.int64)
  for component, size in enumerate(SET_SIZES):
    u_a, u_same, u_b = u[3 * component:3 * component + 3]
    camera_a[component] = int(u_a * size)
    if u_camera < SAME_CAMERA_SHARE or u_same < SAME_COMPONENT:
      camera_b[component] = camera_a[component]
    else:
      other = int(u_b * (size - 1))
      camera_b[component] = other + (other >= camera_a[component])
  return camera_a, camera_b, (camera_a == camera_b).astype(np.int8)


def scene(crop: np.ndarray, patch_size: int, rng: np.random.Generator) -> np.ndarray:
  """uint8 [patch_size, patch_size, 3]: a random region of `crop` area-downscaled to a patch.

  The region is DOWNSCALE patches wide, or as wide as the crop's short side allows.
  """
  height, width, _ = crop.shape
  side = min(DOWNSCALE * patch_size, height, width)
  if side < patch_size:
    raise ValueError(f"crop {height}x{width} is smaller than one {patch_size}-px patch")
  u_y, u_x = rng.random(2).tolist()
  y, x = int(u_y * (height - side + 1)), int(u_x * (width - side + 1))
  return cv2.resize(crop[y:y + side, x:x + side], (patch_size, patch_size),
                    interpolation=cv2.INTER_AREA)


def render(scene_rgb: np.ndarray, camera: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """uint8 RGB of the same shape (even sides): `scene_rgb` as virtual camera `camera` shoots it."""
  height, width, _ = scene_rgb.shape
  channels, _ = list(CFA_PATTERNS.values())[camera[CFA]]
  red_gain, blue_gain = WHITE_BALANCES[camera[WHITE_BALANCE]]
  tile_gains = np.array([(red_gain, 1.0, blue_gain)[c] for c in channels], np.float32)
  gains = np.tile(tile_gains.reshape(2, 2), (height // 2, width // 2))
  # The mosaic keeps channel channels[2 * (y % 2) + x % 2] of pixel (y, x).
  mosaic = np.empty((height, width), np.uint8)
  for site, channel in enumerate(channels):
    dy, dx = divmod(site, 2)
    mosaic[dy::2, dx::2] = scene_rgb[dy::2, dx::2, channel]
  raw = _TO_LINEAR[mosaic] / gains  # What the sensor sees under the illuminant.
  gain = NOISE_GAINS[camera[NOISE]]
  # SFC64 draws normals several times faster than the pair stream's Philox; seeded from it.
  noise = np.random.Generator(np.random.SFC64(int(rng.bit_generator.random_raw()))
                              ).standard_normal((height, width), np.float32)
  raw += noise * np.sqrt(gain * (SHOT * raw + READ**2))
  balanced = np.clip(raw * gains, 0.0, 1.0)
  levels = np.rint(balanced * RAW_LEVELS).astype(np.int32)
  toned = _TONE_CURVES[camera[TONE]][levels]
  image = cv2.cvtColor(toned, _BAYER_CODES[camera[CFA]][camera[DEMOSAIC]])
  image = denoise(image, DENOISERS[camera[DENOISE]])
  image = sharpen(image, SHARPEN_AMOUNTS[camera[SHARPEN]])
  return augment.rejpeg(image, JPEG_QUALITIES[camera[JPEG_QUALITY]],
                        list(CHROMA_SUBSAMPLINGS.values())[camera[CHROMA_SUBSAMPLING]])


def denoise(image: np.ndarray, name: str) -> np.ndarray:
  """uint8 RGB after the in-camera denoiser `name` of DENOISERS (light, edge-keeping or not)."""
  if name == "gaussian":
    return augment.blur(image, 0.7)
  if name == "bilateral":
    return cv2.bilateralFilter(image, 5, 20, 2)
  return image


def sharpen(image: np.ndarray, amount: float) -> np.ndarray:
  """uint8 RGB + amount * (RGB - its sigma-1 Gaussian blur), saturated."""
  if not amount:
    return image
  return cv2.addWeighted(image, 1 + amount, augment.blur(image, 1.0), -amount, 0)
