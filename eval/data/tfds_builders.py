"""TFDS builders for the splice benchmarks: thin wrappers over `eval.data.datasets`,
manual_dir only.

TensorFlow is not needed: prepare with `file_format="array_record"` and read NumPy examples
with `builder.as_data_source()`:

  builder = ColumbiaUncompressed(data_dir=DIR, file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=COLUMBIA_FOLDER))
  test = builder.as_data_source()["test"]   # test[i]: image, mask, spliced, stem

(`tfds.data_source(name, ...)` works too once this module is imported). Each benchmark is one
"test" split. Images keep their original bytes when they are RGB JPEG or PNG (JPEG traces are
the signal); other formats (TIFF, BMP, grey or palette pixels) are stored as lossless RGB PNG.
`mask` is bool HxW, True = spliced, all False for authentic images.
"""

from __future__ import annotations

import inspect
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from eval.data import datasets

# Formats a TFDS image decoder (TensorFlow's or Pillow's) reads as they are; MPO is a JPEG.
_KEPT_FORMATS = frozenset({"JPEG", "MPO", "PNG"})


class _SpliceBenchmark(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared body: one `eval.data.datasets` loader, named by BENCHMARK, read from manual_dir."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BENCHMARK: str
  HOMEPAGE: str = ""

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if hasattr(cls, "BENCHMARK"):
      cls.MANUAL_DOWNLOAD_INSTRUCTIONS = inspect.getdoc(datasets.DATASETS[cls.BENCHMARK])

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "mask": tfds.features.Tensor(shape=(None, None), dtype=np.bool_, encoding="zlib"),
            "spliced": tfds.features.Scalar(dtype=np.bool_),
            "stem": tfds.features.Text(),
        }),
        homepage=self.HOMEPAGE,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    return {"test": self._generate_examples(dl_manager.manual_dir)}

  def _generate_examples(self, manual_dir: pathlib.Path):
    for example in datasets.load(self.BENCHMARK, manual_dir):
      image, size = _image_feature(example.image_path)
      mask = example.mask
      yield example.stem, {
          "image": image,
          "mask": np.zeros(size[::-1], bool) if mask is None else mask,
          "spliced": example.spliced,
          "stem": example.stem,
      }


def _image_feature(path: pathlib.Path) -> tuple[pathlib.Path | Image.Image, tuple[int, int]]:
  """The file itself when a decoder reads it as RGB, else its pixels (stored as PNG); (w, h)."""
  with Image.open(path) as image:
    if image.format in _KEPT_FORMATS and image.mode == "RGB":
      return path, image.size
    return image.convert("RGB"), image.size


class ColumbiaUncompressed(_SpliceBenchmark):
  """Columbia Uncompressed Image Splicing Detection Evaluation Dataset."""
  BENCHMARK = "columbia"
  HOMEPAGE = "https://www.ee.columbia.edu/ln/dvmm/downloads/authsplcuncmp/"


class CarvalhoDso1(_SpliceBenchmark):
  """Carvalho et al. DSO-1 splicing dataset."""
  BENCHMARK = "dso1"
  HOMEPAGE = ("http://ic.unicamp.br/~rocha/pub/downloads/2014-tiago-carvalho-thesis/"
              "tifs-database.zip")


class KorusRealisticTampering(_SpliceBenchmark):
  """Realistic Tampering Dataset (Korus & Huang)."""
  BENCHMARK = "korus"
  HOMEPAGE = "http://pkorus.pl/downloads/dataset-realistic-tampering"


class InTheWildSplices(_SpliceBenchmark):
  """In-the-Wild splices of Huh et al. (ECCV 2018)."""
  BENCHMARK = "in_the_wild"
  HOMEPAGE = "https://minyoungg.github.io/selfconsistency/"


class HaysSceneCompletion(_SpliceBenchmark):
  """Hays & Efros scene-completion splices."""
  BENCHMARK = "hays"
  HOMEPAGE = "http://graphics.cs.cmu.edu/projects/scene-completion/"


class SpliceFolder(_SpliceBenchmark):
  """Any images/ + masks/ folder, e.g. the output of eval.data.synth_splices."""
  BENCHMARK = "folder"


BUILDERS: dict[str, type[_SpliceBenchmark]] = {
    cls.BENCHMARK: cls for cls in (ColumbiaUncompressed, CarvalhoDso1, KorusRealisticTampering,
                                   InTheWildSplices, HaysSceneCompletion, SpliceFolder)}
