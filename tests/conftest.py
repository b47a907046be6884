"""Shared test set-up: 4 fake CPU devices, the in-repo test corpus, a small shard set."""

import os

# Must be set before jax is imported anywhere in the test session.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import jax
import numpy as np
import pytest
from flax import nnx

REPO = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "data"  # The test corpus: photos/, camera/, edge/, tampered/.
# 4 splices and 2 authentic crops (512x512, with masks) between held-out chart cameras.
CHART_SPLICES = FIXTURES / "chart_splices"
PHOTOS = FIXTURES / "photos"  # 11 camera models, 3 photos each.
SHARED_DATA = REPO.parent / "shared" / "data"  # The full photo set, for shared_data tests.


def pytest_collection_modifyitems(config, items):
  """Tests marked shared_data skip when the full photo set is not beside the repository."""
  del config
  if SHARED_DATA.is_dir():
    return
  skip = pytest.mark.skip(reason=f"needs the full photo set at {SHARED_DATA}")
  for item in items:
    if "shared_data" in item.keywords:
      item.add_marker(skip)


@pytest.fixture(scope="session")
def photos_dir() -> pathlib.Path:
  return PHOTOS


@pytest.fixture(scope="session")
def fixtures_dir() -> pathlib.Path:
  return FIXTURES


def run_data_prep(photos: pathlib.Path, out: pathlib.Path, *extra: str):
  """Runs the real `python -m data_prep` CLI; returns the CompletedProcess."""
  command = [sys.executable, "-m", "data_prep", f"--photos={photos}", f"--out={out}", *extra]
  return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


def run_module(module, *args, status=0):
  """Runs `python -m module args`, which must exit with `status` (1: some images skipped)."""
  result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                          capture_output=True, text=True, check=False)
  assert result.returncode == status, result.stderr[-3000:]
  return result


def train_command(workdir: pathlib.Path, shards: pathlib.Path, *flags: str,
                  config: str = "configs/tiny.py") -> list[str]:
  """`python -m exif_jax.main` with the tiny config (unless told) on `shards`, as a user would
  run it."""
  return [sys.executable, "-m", "exif_jax.main", "--config", config,
          "--workdir", str(workdir), f"--config.data.data_dir={shards}", *flags]


def foreground_sigint() -> None:
  """A child's SIGINT as a terminal's foreground job has it (preexec_fn): a shell starts
  background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored."""
  signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_when(command: list[str], ready: Callable[[], bool], timeout: float = 600,
              sig: int = signal.SIGKILL) -> subprocess.CompletedProcess:
  """Runs `command` in the repository and sends its process group `sig` (SIGKILL unless told)
  as soon as ready() holds, as a terminal's Ctrl-C or a crash reaches its worker processes
  too; returns its exit status and stderr once it has ended.

  Also stops waiting when the process ends or after `timeout` seconds; callers assert on
  what the process left behind.
  """
  with tempfile.TemporaryFile("w+") as stderr:  # A pipe could fill up and block the command.
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
                               text=True, start_new_session=True, preexec_fn=foreground_sigint)
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
      time.sleep(0.01)
    if process.poll() is None:
      os.killpg(process.pid, sig)
    process.wait()
    stderr.seek(0)
    return subprocess.CompletedProcess(command, process.returncode, "", stderr.read())


def corpus_photos() -> list[pathlib.Path]:
  """The 33 photos of PHOTOS, sorted.

  Three photos per camera give "same value" pairs across photos, as in real training.
  """
  return sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() == ".jpg")


@pytest.fixture(scope="session")
def shards_dir(tmp_path_factory) -> pathlib.Path:
  """A small real dataset: 33 photos of 11 camera models, 4 crops each, both splits."""
  root = tmp_path_factory.mktemp("dataset")
  photo_list = root / "photos.txt"
  photo_list.write_text("".join(f"{p}\n" for p in corpus_photos()))
  out = root / "shards"
  result = run_data_prep(photo_list, out, "--patches_per_photo=4", "--val_fraction=0.25",
                         "--photos_per_shard=12", "--processes=2")
  assert result.returncode == 0, result.stderr[-3000:]
  return out


def tiny_config(shards: pathlib.Path, **train_overrides):
  from configs import tiny  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.data.data_dir = str(shards)
  config.train.update(train_overrides)
  return config


def tiny_stage2_config(shards: pathlib.Path, stage1_dir: pathlib.Path, **train_overrides):
  """The tiny config's stage 2 from the run in `stage1_dir`, as the recipes train it: half of
  its pairs from one image."""
  config = tiny_config(shards, **train_overrides)
  config.stage = "classifier"
  config.init_from = str(stage1_dir)
  config.data.same_image_fraction = 0.5
  return config


@pytest.fixture(scope="session")
def tiny_run(shards_dir, tmp_path_factory):
  """(workdir, model) of one uninterrupted tiny-config run on the real shards."""
  from exif_jax.training import train  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp("tiny_run")
  return workdir, train.train_and_evaluate(tiny_config(shards_dir), str(workdir))


@pytest.fixture(scope="session")
def tiny_stage2_run(tiny_run, shards_dir, tmp_path_factory):
  """(workdir, model) of stage 2 trained from tiny_run: a checkpoint whose maps the
  commands accept (a stage-1 one has an untrained same-image classifier)."""
  from exif_jax.training import train  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp("tiny_stage2_run")
  # Checkpoints at 2 and 4: two distinct models for the ensemble tests.
  config = tiny_stage2_config(shards_dir, tiny_run[0], steps=4)
  return workdir, train.train_and_evaluate(config, str(workdir))


def assert_resumes_exactly(make_config: Callable[..., Any], reference, workdir: pathlib.Path):
  """A run of make_config() stopped at step 4 and resumed ends with `reference`'s parameters
  (those of an uninterrupted run), bit for bit."""
  from exif_jax.training import train  # pylint: disable=g-import-not-at-top
  train.train_and_evaluate(make_config(steps=4), str(workdir))
  assert (workdir / "checkpoints" / "4").is_dir()
  resumed = train.train_and_evaluate(make_config(), str(workdir))
  for a, b in zip(params(resumed), params(reference), strict=True):
    np.testing.assert_array_equal(a, b)


def localize_with_bundled_model(images: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  """OUT of `exif-jax localize IMAGES` with the bundled model (no --checkpoint)."""
  result = subprocess.run(
      [sys.executable, "-m", "exif_jax", "localize", str(images), "--out", str(out),
       "--num_patches", "64"], cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  return out


@pytest.fixture(scope="session")
def bundled_examples_out(tmp_path_factory) -> pathlib.Path:
  """OUT of the README's `exif-jax localize examples/images`."""
  return localize_with_bundled_model(REPO / "examples" / "images",
                                     tmp_path_factory.mktemp("bundled_examples") / "out")


def params(model) -> list[np.ndarray]:
  """A model's nnx.Param arrays as numpy, in tree order."""
  return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]
