"""Benchmark loaders and TFDS builders on tiny folders laid out like each official release.

The folders are cut (never resized) from the test corpus: a 224x224 splice between two camera
models with its exact mask and untouched host, and real camera photos as authentic images.
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import FIXTURES
from eval.data import datasets
from eval.data import tfds_builders

@pytest.fixture(scope="module")
def splice():
  """(spliced pixels, original pixels, bool mask), each 224x224."""
  tampered = FIXTURES / "tampered"
  read = lambda name: np.asarray(Image.open(tampered / name))
  mask = read("mask.png") == 255
  assert 0.2 < mask.mean() < 0.6
  return read("spliced.png"), read("original.png"), mask


def camera(name: str) -> np.ndarray:
  """A small authentic image: the top-left 96x128 of a fixture camera photo."""
  return np.asarray(Image.open(FIXTURES / "camera" / f"{name}.jpg").crop((0, 0, 128, 96)))


def save(pixels: np.ndarray, path: pathlib.Path, **options) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels).save(path, **options)
  return path


def grey(mask: np.ndarray, inside: int = 255, outside: int = 0) -> np.ndarray:
  return np.where(mask, inside, outside).astype(np.uint8)


def near_boundary(mask: np.ndarray, radius: int = 3) -> np.ndarray:
  near = np.zeros_like(mask)
  for dy in range(-radius, radius + 1):
    for dx in range(-radius, radius + 1):
      near |= np.roll(mask, (dy, dx), axis=(0, 1)) != mask
  return near


def columbia_folder(root: pathlib.Path, splice) -> pathlib.Path:
  """4cam_auth, 4cam_splc and a JPEG edge mask coloured as the release colours it."""
  fake, _, mask = splice
  save(camera("canon_powershot_sx150_is"), root / "4cam_auth" / "canong3_02_sub_01.tif")
  save(camera("nikon_coolpix_s3100"), root / "4cam_auth" / "nikond70_05_sub_05.tif")
  save(fake, root / "4cam_splc" / "canong3_nikond70_sub_01.tif")
  level = np.where(near_boundary(mask), 255, 200).astype(np.uint8)
  edgemask = np.zeros(mask.shape + (3,), np.uint8)
  edgemask[..., 0] = np.where(mask, 0, level)
  edgemask[..., 1] = np.where(mask, level, 0)
  edgemask_dir = root / "4cam_splc" / "edgemask"
  save(edgemask, edgemask_dir / "canong3_nikond70_sub_01_edgemask.jpg", quality=90)
  save(edgemask[..., ::-1], edgemask_dir / "canong3_nikond70_sub_01_edgemask_3.jpg")
  (root / "README.txt").write_text("Columbia Uncompressed Image Splicing Detection\n")
  return root


def check(examples, expected: dict, max_wrong: float = 0.0):
  """expected: stem -> None (authentic) or the true bool mask of a spliced image."""
  assert [e.stem for e in examples] == sorted(expected)
  for example in examples:
    truth = expected[example.stem]
    assert example.spliced == (truth is not None), example.stem
    if truth is None:
      assert example.mask is None and example.mask_path is None
    else:
      mask = example.mask
      assert mask.dtype == bool and mask.shape == truth.shape
      assert np.mean(mask != truth) <= max_wrong, example.stem
    assert example.load_image().shape == (*(truth.shape if truth is not None else (96, 128)), 3)


def test_columbia_green_regions_are_spliced(tmp_path, splice):
  examples = datasets.load("columbia", columbia_folder(tmp_path, splice))
  # The edge mask is a JPEG: chroma subsampling blurs the red/green border by a pixel or two.
  check(examples, {"canong3_02_sub_01": None, "nikond70_05_sub_05": None,
                   "canong3_nikond70_sub_01": splice[2]}, max_wrong=0.005)
  assert examples[1].image_path.suffix == ".tif"


def test_dso1_black_is_spliced_inside_tifs_database(tmp_path, splice):
  fake, _, mask = splice
  root = tmp_path / "tifs-database"
  save(camera("casio_ex-s1"), root / "DSO-1" / "normal-01.png")
  save(camera("pentax_ist_dl"), root / "DSO-1" / "normal-02.png")
  save(fake, root / "DSO-1" / "splicing-01.png")
  inverted = np.repeat(grey(mask, inside=0, outside=255)[..., None], 3, axis=2)
  save(inverted, root / "DSO-1-Fake-Images-Masks" / "splicing-01.png")
  save(inverted, root / "DSI-1" / "unused.png")
  examples = datasets.load("dso1", tmp_path)  # The folder holding tifs-database/ ...
  assert datasets.load("dso1", root) == examples  # ... or tifs-database/ itself.
  check(examples, {"normal-01": None, "normal-02": None, "splicing-01": mask})


def test_korus_grey_and_white_are_tampered_and_stems_name_camera_and_kind(tmp_path, splice):
  fake, original, mask = splice
  collateral = near_boundary(mask) & ~mask
  root = tmp_path / "data-images"
  for camera_name, name in (("Canon_60D", "DPP0012"), ("Sony_A57", "DSC05538")):
    save(original, root / camera_name / "pristine" / f"{name}.TIF")
    save(fake, root / camera_name / "tampered-realistic" / f"{name}.TIF")
    three_level = np.where(mask, 255, np.where(collateral, 128, 0)).astype(np.uint8)
    save(three_level, root / camera_name / "ground-truth" / f"{name}.PNG")
  (root / "readme.md").write_text("# Realistic Tampering Dataset\n")
  examples = datasets.load("korus", tmp_path)
  assert datasets.load("korus", root) == examples
  assert [e.stem for e in examples] == [
      "Canon_60D-pristine-DPP0012", "Canon_60D-tampered-DPP0012",
      "Sony_A57-pristine-DSC05538", "Sony_A57-tampered-DSC05538"]
  assert [e.spliced for e in examples] == [False, True, False, True]
  np.testing.assert_array_equal(examples[1].mask, mask | collateral)
  assert examples[0].mask is None
  np.testing.assert_array_equal(examples[0].load_image(), original)


def test_in_the_wild_white_is_spliced_with_or_without_label_in_wild(tmp_path, splice):
  fake, _, mask = splice
  root = tmp_path / "label_in_wild"
  save(fake, root / "images" / "2251.jpg", quality=95)
  save(grey(mask), root / "masks" / "2251.png")
  save(camera("olympus_e-p3"), root / "images" / "0007.jpg")
  save(grey(np.zeros((96, 128), bool) | (np.arange(128) < 30)), root / "masks" / "0007.png")
  examples = datasets.load("in_the_wild", tmp_path)
  assert datasets.load("in_the_wild", root) == examples
  assert [e.stem for e in examples] == ["0007", "2251"]
  assert all(e.spliced for e in examples)
  np.testing.assert_array_equal(examples[1].mask, mask)
  assert examples[0].mask[:, :30].all() and not examples[0].mask[:, 30:].any()


def test_hays_flat_folder_with_jpeg_masks(tmp_path, splice):
  fake, _, mask = splice
  save(fake, tmp_path / "beach.jpg", quality=95)
  save(grey(mask), tmp_path / "beach_mask.jpg", quality=90)
  save(fake, tmp_path / "street.png")
  save(grey(mask), tmp_path / "street_mask.png")
  examples = datasets.load("hays", tmp_path)
  check(examples, {"beach": mask, "street": mask}, max_wrong=0.002)


def test_folder_images_without_masks_are_authentic(tmp_path, splice):
  fake, _, mask = splice
  save(fake, tmp_path / "images" / "a.png")
  save(grey(mask), tmp_path / "masks" / "a.png")
  save(camera("hp_photosmart_m627"), tmp_path / "images" / "b.jpg")
  (tmp_path / "images" / "notes.txt").write_text("not an image")
  examples = datasets.load("folder", tmp_path)
  check(examples, {"a": mask, "b": None})
  np.testing.assert_array_equal(examples[0].load_image(), fake)


def test_layout_errors_name_the_folder_or_file(tmp_path, splice):
  fake, _, mask = splice
  with pytest.raises(datasets.LayoutError, match="no such folder"):
    datasets.load("columbia", tmp_path / "missing")
  with pytest.raises(datasets.LayoutError, match=f"{tmp_path}.*DSO-1-Fake-Images-Masks"):
    datasets.load("dso1", tmp_path)
  with pytest.raises(ValueError, match="unknown dataset 'casia'"):
    datasets.load("casia", tmp_path)

  korus = tmp_path / "korus" / "Nikon_D90"
  tampered = save(fake, korus / "tampered-realistic" / "r1.TIF")
  with pytest.raises(datasets.LayoutError, match=f"{tampered}: spliced image without a mask"):
    datasets.load("korus", tmp_path / "korus")

  folder = tmp_path / "folder"
  save(fake, folder / "images" / "a.png")
  orphan = save(grey(mask), folder / "masks" / "b.png")
  with pytest.raises(datasets.LayoutError, match=f"{orphan}: mask without an image"):
    datasets.load("folder", folder)
  orphan.unlink()
  save(fake, folder / "images" / "a.jpg")
  with pytest.raises(datasets.LayoutError, match="same stem"):
    datasets.load("folder", folder)

  empty = tmp_path / "label_in_wild"
  (empty / "images").mkdir(parents=True)
  (empty / "masks").mkdir()
  with pytest.raises(datasets.LayoutError, match="no images"):
    datasets.load("in_the_wild", empty)


def test_mask_of_another_size_is_an_error_naming_it(tmp_path, splice):
  fake, _, mask = splice
  save(fake, tmp_path / "images" / "2251.jpg")
  small = save(grey(mask[:100]), tmp_path / "masks" / "2251.png")
  (example,) = datasets.load("in_the_wild", tmp_path)
  with pytest.raises(ValueError, match=f"{small}: mask is 224x100 but its image .* 224x224"):
    _ = example.mask


def test_every_benchmark_has_a_tfds_builder_with_the_loader_layout():
  assert set(tfds_builders.BUILDERS) == set(datasets.DATASETS)
  for name, builder in tfds_builders.BUILDERS.items():
    assert builder.MANUAL_DOWNLOAD_INSTRUCTIONS.startswith(
        datasets.DATASETS[name].__doc__.splitlines()[0])
    assert tfds.builder_cls(builder.name) is builder


def prepare(builder_cls, manual_dir: pathlib.Path, data_dir: pathlib.Path, **read_options):
  """download_and_prepare without TensorFlow, then the test split as a NumPy data source."""
  builder = builder_cls(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  source = builder.as_data_source(**read_options)["test"]
  return {example["stem"].decode(): example for example in source}


def test_tfds_columbia_builds_and_reads_without_tensorflow(tmp_path, splice):
  manual = columbia_folder(tmp_path / "manual", splice)
  examples = prepare(tfds_builders.ColumbiaUncompressed, manual, tmp_path / "tfds")
  assert sorted(examples) == [e.stem for e in datasets.load("columbia", manual)]
  for example in datasets.load("columbia", manual):
    stored = examples[example.stem]
    np.testing.assert_array_equal(stored["image"], example.load_image())
    assert stored["spliced"] == example.spliced
    truth = example.mask if example.spliced else np.zeros((96, 128), bool)
    np.testing.assert_array_equal(stored["mask"], truth)


def test_tfds_keeps_jpeg_bytes_and_stores_tiff_as_png(tmp_path, splice):
  fake, _, mask = splice
  manual = tmp_path / "manual"
  save(fake, manual / "images" / "a.tif")
  save(grey(mask), manual / "masks" / "a.png")
  jpeg = save(camera("sony_cybershot"), manual / "images" / "b.jpg", quality=90)
  raw = prepare(tfds_builders.SpliceFolder, manual, tmp_path / "tfds",
                decoders={"image": tfds.decode.SkipDecoding()})
  assert raw["b"]["image"] == jpeg.read_bytes()
  assert raw["a"]["image"].startswith(b"\x89PNG")
  assert raw["a"]["spliced"] and not raw["b"]["spliced"]
