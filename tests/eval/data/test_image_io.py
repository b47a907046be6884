"""Float and 32-bit integer images are read by their value range, as their 8-bit twin is."""

import json

import numpy as np
from PIL import Image

from conftest import CHART_SPLICES, run_module
from eval.data import image_io

SPLICED = CHART_SPLICES / "images" / "spliced_00000.png"


def test_float_and_32_bit_pixels_map_as_their_8_bit_twin(tmp_path):
  gray = np.asarray(Image.open(SPLICED).convert("L"))
  folder = tmp_path / "in"
  folder.mkdir()
  Image.fromarray(gray).save(folder / "eight_bit.png")
  Image.fromarray(gray.astype(np.float32) / 255).save(folder / "float_0_1.tif")  # Mode F.
  Image.fromarray(gray.astype(np.int32)).save(folder / "int_0_255.tif")  # Mode I.
  Image.fromarray(gray.astype(np.int32) * 257).save(folder / "int_0_65535.tif")
  Image.fromarray(gray.astype(np.int32) - 256).save(folder / "negative.tif")
  for name in ("float_0_1.tif", "int_0_255.tif", "int_0_65535.tif"):
    assert Image.open(folder / name).mode in ("F", "I")
    pixels = image_io.load_image(folder / name)
    assert np.abs(pixels.astype(int) - gray[..., None]).max() <= 1, name

  out = tmp_path / "out"
  done = run_module("eval.commands.localize", str(folder), "--out", str(out), "--method", "noise",
                    status=1)
  assert f"{folder / 'negative.tif'}: pixel values -246 to -107 fit no known range" in done.stderr
  assert "Traceback" not in done.stderr
  twin = np.load(out / "maps" / "eight_bit.png.npy")
  assert twin.max() > 0  # A map, not "no signal".
  for name in ("float_0_1.tif", "int_0_255.tif", "int_0_65535.tif"):
    assert not json.loads((out / "results" / f"{name}.json").read_text())["no_signal"]
    np.testing.assert_allclose(np.load(out / "maps" / f"{name}.npy"), twin, atol=0.02)
